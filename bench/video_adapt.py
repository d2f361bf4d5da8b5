#!/usr/bin/env python3
"""Video PiPa++ benchmark on the embedded generator's sequences (CPU): mean teacher vs PiPa++ image
vs PiPa++ video (+ temporal contrast): mIoU, temporal consistency (TC) and label flip rate on
unseen 'real_seq' sequences; the training-step overhead of the temporal term; optionally TC /
flip rate of CamVid-adapted checkpoints on the real dash-cam clip (no labels).

Every row is the project's trainer on train/synth_video_pipa.yaml with overrides, started from the
same source-only checkpoint (trained once, seed 0). Metrics: :func:`pipa_edge.train.video_eval.evaluate_sequences`.

    python bench/video_adapt.py --out runs/video --json docs/results/video_adapt.json --seeds 0 --iters 200
    python bench/video_adapt.py --out runs/video --json docs/results/video_adapt.json --only overhead
    python bench/video_adapt.py --dashcam ../shared/data/video/solidWhiteRight.mp4 \\
        --dashcam-ckpt 'pipa=runs/camvid_day2dusk_pipa/final.pt' --only dashcam
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
RECIPE = "train/synth_video_pipa.yaml"
IMAGE = ["target.pair_offset=null", "adapt.temporal_contrast.enabled=false"]
ROWS = {  # row -> (method, overrides)
    "mean_teacher": ("mean_teacher", IMAGE),
    "pipa_image": ("pipa", IMAGE),
    "pipa_video": ("pipa", []),
}
LABELS = {"source_only": "source-only", "mean_teacher": "mean teacher", "pipa_image": "PiPa++ image",
          "pipa_video": "PiPa++ video (+temporal)"}


def synth(out: Path, seed: int, n_sim: int, n_real: int, n_seq: int) -> Path:
    if not (out / "meta.json").is_file():
        subprocess.run([sys.executable, "-m", "pipa_edge.cli.main", "data", "synth", str(out), "--n-sim", str(n_sim),
                        "--n-real", str(n_real), "--n-seq", str(n_seq), "--seq-len", "10", "--size", "128", "256",
                        "--seed", str(seed), "--workers", "1"], check=True, cwd=REPO)
    return out


def train_row(row: str, seed: int, data: Path, init: Path, out: Path, iters: int) -> Path:
    from pipa_edge.train.config import load_train_config
    from pipa_edge.train.trainer import train

    method, extra = ROWS[row]
    ov = [f"method={method}", f"seed={seed}", f"init_from={init}", f"out_dir={out}", f"optim.max_iters={iters}",
          f"source.root={data}", f"target.root={data}", "source.resize=null", "target.resize=null", "val=null",
          f"ckpt_interval={iters}"] + extra
    if (out / "final.pt").is_file():
        return out / "final.pt"
    return train(load_train_config(RECIPE, ov)).checkpoint


def score(ckpt: Path, eval_data: Path) -> dict:
    from pipa_edge.data.synth.dataset import SynthDataset
    from pipa_edge.models.io import load_segmenter
    from pipa_edge.train.video_eval import evaluate_sequences

    model = load_segmenter(ckpt)
    ds = SynthDataset(eval_data, "real_seq", classes=model.classes)
    r = evaluate_sequences(model, ds, "cpu", show_progress=False)
    return {k: r[k] for k in ("miou", "tc", "flip_rate", "frames", "pairs")}


def overhead(init: Path, data: Path, steps: int = 8) -> dict:
    """Median training-step time of PiPa++ image vs video on the same batches (flow from DIS on the
    fly in the adapter, and flow given with the batch)."""
    import torch

    from pipa_edge.data.build import build_train_dataset
    from pipa_edge.adapt.flow import batch_flow
    from pipa_edge.train.config import load_train_config
    from pipa_edge.train.build import build_model_and_method

    cfg = load_train_config(RECIPE, [f"init_from={init}", f"source.root={data}", f"target.root={data}",
                                     "source.resize=null", "target.resize=null", "val=null"])
    src = build_train_dataset(cfg.source, cfg.transform, 0)
    from pipa_edge.data.build import AugmentedDataset, build_dataset
    from pipa_edge.data.datasets.pairs import PairTrainTransform

    tgt = AugmentedDataset(build_dataset(cfg.target.model_copy(update={"labels": False})), PairTrainTransform(cfg.transform), 1)
    coll = torch.utils.data.default_collate
    b = cfg.batch_size
    batches = []
    for k in range(steps + 2):
        s = coll([src[(k * b + i) % len(src)] for i in range(b)])
        t = coll([tgt[(k * b + i) % len(tgt)] for i in range(b)])
        s.pop("name"), t.pop("name")
        batches.append({"source": s, "target": t})
    out = {}
    variants = {"image": ("student", False, False), "video_dis_in_step": ("student", True, False),
                "video_flow_in_batch": ("student", True, True), "video_teacher_key": ("teacher", True, False)}
    for name, (key, temporal, given) in variants.items():
        c = cfg.model_copy(update={"method": "pipa", "adapt": cfg.adapt.model_copy(update={
            "temporal_contrast": cfg.adapt.temporal_contrast.model_copy(update={"enabled": temporal,
                                                                                "key_encoder": key})})})
        torch.manual_seed(0)
        m = build_model_and_method(c, torch.device("cpu"))
        opt = torch.optim.AdamW(m.trainable_parameters(), lr=1e-5)
        times = []
        for k, bt in enumerate(batches):
            tb = dict(bt["target"])
            if not temporal:
                tb.pop("image_prev")
            elif given:
                tb["flow"], tb["flow_valid"] = batch_flow(tb["image"], tb["image_prev"])  # as a data worker would
            t0 = time.perf_counter()
            loss, _ = m.training_step({"source": bt["source"], "target": tb}, k)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            m.after_optimizer_step(k)
            if k >= 2:
                times.append(time.perf_counter() - t0)
        times.sort()
        out[name] = {"median_s": times[len(times) // 2], "steps": len(times)}
    base = out["image"]["median_s"]
    for v in out.values():
        v["overhead"] = v["median_s"] / base - 1.0
    return out


def dashcam(video: str, ckpts: list[str], imgsz: tuple[int, int], limit: int | None) -> dict:
    from pipa_edge.models.io import load_segmenter
    from pipa_edge.data.datasets.video import VideoDataset
    from pipa_edge.train.video_eval import evaluate_sequences

    out = {}
    for spec in ckpts:
        name, _, path = spec.partition("=")
        if not Path(path).is_file():
            out[name] = {"checkpoint": path, "missing": True}
            continue
        model = load_segmenter(path)
        ds = VideoDataset(video, model.classes, resize=imgsz, limit=limit)
        r = evaluate_sequences(model, ds, "cpu", show_progress=False)
        out[name] = {"checkpoint": path, **{k: r[k] for k in ("tc", "flip_rate", "frames", "pairs")}}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="runs/video")
    ap.add_argument("--json", default="docs/results/video_adapt.json")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--iters", type=int, default=200, help="adaptation iterations per row")
    ap.add_argument("--src-iters", type=int, default=400, help="source-only iterations")
    ap.add_argument("--rows", nargs="*", default=list(ROWS), choices=list(ROWS),
                    help="rows to train (none: only the --variant rows)")
    ap.add_argument("--only", choices=("rows", "overhead", "dashcam"), default=None)
    ap.add_argument("--dashcam", default=str(REPO.parent / "shared/data/video/solidWhiteRight.mp4"))
    ap.add_argument("--dashcam-ckpt", action="append", default=[], metavar="NAME=PATH")
    ap.add_argument("--dashcam-imgsz", type=int, nargs=2, default=[180, 320])
    ap.add_argument("--dashcam-limit", type=int, default=None)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--variant", action="append", default=[], metavar="NAME:BASE_ROW:key=v,key=v",
                    help="an extra row: BASE_ROW with recipe overrides (ablations); trained for --seeds")
    args = ap.parse_args()
    for v in args.variant:
        name, base, sets = (v.split(":", 2) + [""])[:3]
        if base not in ROWS or not name or name in ROWS:
            ap.error(f"--variant '{v}': want NAME:BASE_ROW:key=v,... with BASE_ROW one of {', '.join(ROWS)}")
        ROWS[name] = (ROWS[base][0], ROWS[base][1] + [x for x in sets.split(",") if x])
        LABELS[name] = f"{LABELS[base]} [{sets}]"
        args.rows.append(name)
    import torch

    torch.set_num_threads(args.threads)
    out = REPO / args.out
    jpath = REPO / args.json
    res = json.loads(jpath.read_text()) if jpath.is_file() else {}
    cmd = "python bench/video_adapt.py " + " ".join(sys.argv[1:])
    res.setdefault("commands", [])
    if cmd not in res["commands"]:
        res["commands"].append(cmd)
    res["torch"], res["device"] = torch.__version__, f"cpu ({args.threads} thread{'s' if args.threads > 1 else ''})"
    data = synth(out / "synth", 0, 120, 32, 12)
    eval_data = synth(out / "synth_eval", 1, 0, 0, 4)
    init = out / "source_only" / "final.pt"
    if not init.is_file():
        from pipa_edge.train.config import load_train_config
        from pipa_edge.train.trainer import train

        train(load_train_config("train/synth_source_only.yaml", [
            f"source.root={data}", "source.resize=null", "val=null", f"optim.max_iters={args.src_iters}",
            f"out_dir={out / 'source_only'}", f"ckpt_interval={args.src_iters}"]))
    if args.only in (None, "rows"):
        rows = res.setdefault("rows", {})
        rows.setdefault("source_only", {})["0"] = score(init, eval_data)
        for row in args.rows:
            for seed in args.seeds:
                t0 = time.time()
                reused = (out / f"{row}_s{seed}" / "final.pt").is_file()
                ck = train_row(row, seed, data, init, out / f"{row}_s{seed}", args.iters)
                train_s = round(time.time() - t0, 1)
                r = score(ck, eval_data)
                if reused:  # trained by an earlier invocation: its time is not known here
                    r["reused"] = True
                else:
                    r["train_s"] = train_s
                rows.setdefault(row, {})[str(seed)] = r
                jpath.write_text(json.dumps(res, indent=2))
        res["iters"], res["eval"] = args.iters, f"{eval_data} real_seq (unseen sequences, seed 1)"
    if args.only in (None, "overhead"):
        res["overhead"] = overhead(init, data)
    if args.only in (None, "dashcam") and args.dashcam_ckpt:
        res["dashcam"] = {"video": args.dashcam, "imgsz": args.dashcam_imgsz,
                          "results": dashcam(args.dashcam, args.dashcam_ckpt, tuple(args.dashcam_imgsz),
                                             args.dashcam_limit)}
    jpath.parent.mkdir(parents=True, exist_ok=True)
    jpath.write_text(json.dumps(res, indent=2))
    print_table(res)
    return 0


def print_table(res: dict) -> None:
    import numpy as np

    f = lambda v: "n/a" if v is None else f"{100 * v:.2f}"  # noqa: E731
    print(f"\n{'row':28s} {'seeds':>5s} {'mIoU %':>10s} {'TC %':>10s} {'flip %':>10s}")
    for row, seeds in res.get("rows", {}).items():
        vals = list(seeds.values())
        m = {k: [v[k] for v in vals if v.get(k) is not None] for k in ("miou", "tc", "flip_rate")}
        cell = lambda xs: "n/a" if not xs else (f(np.mean(xs)) + (f"±{100 * np.std(xs):.1f}" if len(xs) > 1 else ""))  # noqa: E731
        print(f"{LABELS.get(row, row):28s} {len(vals):5d} {cell(m['miou']):>10s} {cell(m['tc']):>10s} {cell(m['flip_rate']):>10s}")
    for k, v in res.get("overhead", {}).items():
        print(f"step time {k:22s} {1000 * v['median_s']:8.0f} ms  ({100 * v['overhead']:+.0f}% vs image)")
    for k, v in res.get("dashcam", {}).get("results", {}).items():
        print(f"dash-cam {k:20s} " + ("checkpoint missing" if v.get("missing") else
                                      f"TC {f(v['tc'])}%  flip {f(v['flip_rate'])}%  ({v['frames']} frames)"))


if __name__ == "__main__":
    raise SystemExit(main())
