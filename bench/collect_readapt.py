"""Benchmark: the collect → re-adapt loop on real CamVid day → dusk, plus the collection overhead.

1. Train a day model (project trainer, source_only, CamVid ``day_train``), or reuse ``--day-ckpt``.
2. Score it on the dusk labels (mIoU before).
3. Stream the 31 dusk frames (sequence order, 1 s apart) through the torch backend; every frame's
   probabilities go to a :class:`~pipa_edge.runtime.collect.Collector` → ``runs/.../collection``.
   The same loop is timed with and without the collector (``offer()`` cost on the inference thread).
4. Re-adapt from the collection only (the day model initialises every run):
   ``mean_teacher`` — the recipe train/readapt_collected.yaml: day labels as source, the
   collected frames as target images; ``pseudo_ft`` — supervised fine-tuning on the collected
   pseudo-labels (``source: {type: collected}``).
5. Score each on the dusk labels (mIoU after). Prints a table, writes JSON (``--json``).

Run (≈ 8-10 min on 2 CPU cores)::

    OMP_NUM_THREADS=2 .venv/bin/python bench/collect_readapt.py --json docs/results/collection_readapt.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def train_cfg(args, out: str, **over) -> "object":
    from pipa_edge.train.config import TrainConfig

    h, w = args.size
    d = {"model": {"arch": args.arch, "classes": "camvid11"},
         "source": {"type": "camvid", "root": str(args.data), "split": "day_train", "resize": [h, w]},
         "val": [{"type": "camvid", "root": str(args.data), "split": "dusk_train", "resize": [h, w]}],
         "transform": {"crop_size": [h - h // 8, w - w // 8], "scale_range": [0.75, 1.25], "hflip": 0.5},
         "optim": {"lr": 1e-3, "warmup_iters": 20, "max_iters": args.day_iters, "grad_clip": 10.0},
         "batch_size": args.batch, "num_workers": 0, "seed": 0, "device": "cpu", "ckpt_interval": 10 ** 6,
         "log_interval": 10, "out_dir": out}
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(d.get(k), dict):
            d[k] = {**d[k], **v}
        else:
            d[k] = v
    return TrainConfig.model_validate(d)


def dusk_miou(model, args) -> dict:
    from pipa_edge.data.build import build_eval_dataset
    from pipa_edge.train.evaluate import evaluate

    ds = build_eval_dataset({"type": "camvid", "root": str(args.data), "split": "dusk_train",
                             "resize": list(args.size)})
    s = evaluate(model, ds, show_progress=False)
    return {"miou": float(s["miou"]), "pixel_acc": s["pixel_acc"], "per_class_iou": s["per_class_iou"]}


def stream_frames(args) -> list[np.ndarray]:
    from pipa_edge.data.build import build_dataset

    ds = build_dataset({"type": "camvid", "root": str(args.data), "split": "dusk_train", "labels": False,
                        "resize": list(args.size)})
    return [ds[i]["image"] for i in range(len(ds))]  # names sorted = sequence order


def run_stream(backend, frames, collector, passes: int) -> dict:
    """The runtime's inner loop: infer → (offer) ; returns timing per frame."""
    infer_s, offer_s = [], []
    t0 = time.perf_counter()
    for p in range(passes):
        for i, f in enumerate(frames):
            a = time.perf_counter()
            probs = backend.infer(f[None])[0]
            b = time.perf_counter()
            if collector is not None:
                collector.offer(f, probs, t=float(p * len(frames) + i))
            c = time.perf_counter()
            infer_s.append(b - a)
            offer_s.append(c - b)
    wall = time.perf_counter() - t0
    n = len(infer_s)
    return {"frames": n, "fps": n / wall, "infer_ms_median": 1e3 * float(np.median(infer_s)),
            "offer_ms_median": 1e3 * float(np.median(offer_s)), "offer_ms_p99": 1e3 * float(np.percentile(offer_s, 99))}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "camvid")
    ap.add_argument("--out", type=Path, default=REPO / "runs" / "collect_readapt")
    ap.add_argument("--arch", default="segformer-b0")
    ap.add_argument("--size", type=int, nargs=2, default=[120, 160], metavar=("H", "W"))
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--day-iters", type=int, default=300)
    ap.add_argument("--readapt-iters", type=int, default=120)
    ap.add_argument("--day-ckpt", type=Path, help="reuse a day-trained checkpoint (skips step 1)")
    ap.add_argument("--methods", default="mean_teacher,pseudo_ft,adabn")
    ap.add_argument("--collect-config", type=Path, default=None, help="YAML; default: the one below")
    ap.add_argument("--timing-passes", type=int, default=2)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    if not (args.data / "dusk_train").is_dir():
        print(f"error: {args.data}/dusk_train not found (real CamVid data lives in ../shared/data)", file=sys.stderr)
        return 2
    os.environ.setdefault("PIPA_NO_PROGRESS", "1")
    import torch

    torch.manual_seed(0)
    from pipa_edge.models.io import load_segmenter
    from pipa_edge.runtime.backends.torch_backend import TorchBackend
    from pipa_edge.runtime.collect import CollectConfig, Collector, collection_stats, load_collect_config, verify_collection
    from pipa_edge.train.trainer import train

    args.out.mkdir(parents=True, exist_ok=True)
    res: dict = {"command": "OMP_NUM_THREADS=2 .venv/bin/python bench/collect_readapt.py " + " ".join(sys.argv[1:]),
                 "size": args.size, "arch": args.arch, "threads": torch.get_num_threads()}
    t_start = time.time()
    # 1. day model
    if args.day_ckpt:
        day_ckpt = args.day_ckpt
    else:
        t0 = time.time()
        day_ckpt = train(train_cfg(args, str(args.out / "day"))).checkpoint
        res["day_train_s"] = round(time.time() - t0, 1)
    day = load_segmenter(day_ckpt)
    res["day_ckpt"] = str(day_ckpt)
    # 2. before
    res["dusk_before"] = dusk_miou(day, args)
    print(f"dusk mIoU of the day model: {100 * res['dusk_before']['miou']:.2f}  [{time.time() - t_start:.0f} s]",
          flush=True)
    # 3. collect over the dusk stream (+ overhead timing)
    frames = stream_frames(args)
    cfg = load_collect_config(args.collect_config) if args.collect_config else CollectConfig.model_validate({
        "thresholds": {"mode": "percentile", "percentile": 40, "min_value": 0.5, "max_value": 0.95, "min_pixels": 500},
        "stability": {"frames": 1}, "min_confident_fraction": 0.4, "max_mean_entropy": 0.6, "min_blur_var": 5.0,
        "min_interval_s": 0.5, "dedup": {"max_hamming": 4}, "quota_per_class": 40, "queue_size": 4,
        "storage": {"image_format": "png", "max_bytes": "64M", "save_confidence": True}})
    col_dir = args.out / "collection"
    shutil.rmtree(col_dir, ignore_errors=True)
    import hashlib
    sha = hashlib.sha256(Path(day_ckpt).read_bytes()).hexdigest()
    backend = TorchBackend(segmenter=day, input_size=tuple(args.size), output="probs")
    backend.infer(frames[0][None])  # warm-up
    collector = Collector(col_dir, cfg, day.classes, {"sha256": sha, "path": str(day_ckpt), "backend": "torch"},
                          source=f"file://{args.data}/dusk_train/images")
    res["collection_pass"] = run_stream(backend, frames, collector, 1)  # one pass: the real collection
    collector.close()
    # overhead: the same loop without / with / without a collector (alternated against machine noise)
    tdir = args.out / "collection_timing"
    runs = {"without": [], "with": []}
    for kind in (("without", "with", "without", "with") if args.timing_passes > 0 else ()):
        shutil.rmtree(tdir, ignore_errors=True)
        col = Collector(tdir, cfg, day.classes, {"sha256": sha, "backend": "torch"}) if kind == "with" else None
        runs[kind].append(run_stream(backend, frames, col, args.timing_passes))
        if col is not None:
            res["timing_collector_stats"] = col.close()
        shutil.rmtree(tdir, ignore_errors=True)
    for kind, rs in runs.items():
        if rs:
            res[f"timing_{kind}"] = {k: float(np.mean([r[k] for r in rs])) for k in rs[0]}
    res["collect_stats"] = {k: v for k, v in collector.stats().items()}
    res["collection"] = {k: v for k, v in collection_stats(col_dir).items() if k in ("samples", "bytes", "ignored_fraction", "class_samples")}
    res["verify_problems"] = verify_collection(col_dir)["problems"]
    # pseudo-label quality against the real dusk labels (only to report; adaptation never reads them)
    from pipa_edge.data.datasets.collected import CollectedDataset
    from pipa_edge.data.build import build_dataset
    gt = build_dataset({"type": "camvid", "root": str(args.data), "split": "dusk_train", "resize": list(args.size)})
    gt_by_img = {gt[i]["image"].tobytes(): gt[i]["label"] for i in range(len(gt))}
    n_live = collection_stats(col_dir)["samples"]
    if n_live == 0:
        print("nothing was collected (model too uncertain for the selection rules); stopping", file=sys.stderr)
        return 1
    cd = CollectedDataset(col_dir)
    agree = tot = 0
    for i in range(len(cd)):
        it = cd[i]
        g = gt_by_img.get(it["image"].tobytes())
        if g is None:
            continue
        m = (it["label"] != 255) & (g != 255)
        agree += int((it["label"][m] == g[m]).sum())
        tot += int(m.sum())
    res["pseudo_label_pixel_accuracy"] = agree / tot if tot else None
    print(f"collected {len(cd)} of {len(frames)} dusk frames; pseudo-label pixel accuracy "
          f"{100 * (res['pseudo_label_pixel_accuracy'] or 0):.1f}%  [{time.time() - t_start:.0f} s]", flush=True)
    # 4./5. re-adapt from the collection only, score
    res["after"] = {}
    for m in [x for x in args.methods.split(",") if x]:
        t0 = time.time()
        common = {"init_from": str(day_ckpt), "optim": {"lr": 2e-4, "warmup_iters": 10, "max_iters": args.readapt_iters}}
        if m == "mean_teacher":
            c = train_cfg(args, str(args.out / m), **common, method="mean_teacher",
                          target={"type": "collected", "root": str(col_dir), "labels": False,
                                  "resize": list(args.size)},
                          adapt={"pseudo_label": {"threshold": 0.9}})
        elif m == "pseudo_ft":
            c = train_cfg(args, str(args.out / m), **common, method="source_only",
                          source={"type": "collected", "root": str(col_dir), "resize": list(args.size)})
        elif m == "adabn":  # no training: the day model's BN statistics from the collected frames
            from pipa_edge.train.adabn import adabn_checkpoint

            n = collection_stats(col_dir)["samples"]
            c = None
            ck = args.out / m / "final.pt"
            adabn_checkpoint(day_ckpt, [{"type": "collected", "root": str(col_dir), "resize": list(args.size)}], ck,
                             num_images=n, batch_size=min(8, n), device="cpu", show_progress=False)
        else:
            raise SystemExit(f"unknown method {m}")
        model = load_segmenter(train(c).checkpoint if c is not None else ck)
        res["after"][m] = {**dusk_miou(model, args), "train_s": round(time.time() - t0, 1)}
        print(f"{m}: dusk mIoU {100 * res['after'][m]['miou']:.2f}  [{time.time() - t_start:.0f} s]", flush=True)
    res["total_s"] = round(time.time() - t_start, 1)
    # table
    print("\n| model | dusk mIoU (%) |\n|---|---|")
    print(f"| day model (before) | {100 * res['dusk_before']['miou']:.2f} |")
    for m, r in res["after"].items():
        print(f"| re-adapted from the collection: {m} | {100 * r['miou']:.2f} |")
    cp = res["collection_pass"]
    print(f"\ncollection pass: infer {cp['infer_ms_median']:.1f} ms/frame (median), offer() {cp['offer_ms_median']:.3f} ms "
          f"(median), {cp['offer_ms_p99']:.3f} ms (p99) on the inference thread")
    if "timing_with" in res:
        tw, tn = res["timing_with"], res["timing_without"]
        print("\n| loop | FPS | infer ms (median) | offer ms (median / p99) |\n|---|---|---|---|")
        print(f"| without collector | {tn['fps']:.2f} | {tn['infer_ms_median']:.1f} | - |")
        print(f"| with collector | {tw['fps']:.2f} | {tw['infer_ms_median']:.1f} | "
              f"{tw['offer_ms_median']:.3f} / {tw['offer_ms_p99']:.3f} |")
        res["fps_drop_percent"] = 100 * (1 - tw["fps"] / tn["fps"])
        print(f"FPS change with collection: {-res['fps_drop_percent']:+.1f}%")
    print(f"total {res['total_s']} s")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(res, indent=1, default=str))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
