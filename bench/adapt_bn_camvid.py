"""On-device BN re-estimation on real data: CamVid day model → `adapt-bn` on dusk frames → held-out dusk.

    OMP_NUM_THREADS=1 .venv/bin/python bench/adapt_bn_camvid.py --imgsz 192 256 \
        --ckpt runs/camvid_heldout/source_s{0,1,2}/final.pt --json docs/results/adapt_bn_camvid.json

(the three strong source models that ``bench/camvid_adapt.py`` trains; one or more checkpoints)

1. exports the checkpoint (ONNX at the model's size + the BN adaptation companion);
2. splits the 31 dusk frames into two contiguous halves (a sequence: neighbouring frames are near
   duplicates, so interleaving would leak) and, for each fold, runs ``adapt_bn_onnx`` (the
   torch-free device path; with ``--via-collect`` on a ``run --collect`` collection of that half) on one
   half and scores the ONNX before / after on the *other* half with
   ``evaluate_backend`` (the exported model through onnxruntime, as ``pipa-edge eval model.onnx``);
3. re-estimates the same statistics in torch (``recompute_bn_stats`` on the same frames and batches)
   and reports the argmax agreement of the re-folded ONNX with it on the held-out half, and the
   agreement with ``pipa-edge adabn`` itself (``adabn_checkpoint``: its own resize and image order);
4. cost of the statistics pass per 100 frames on this CPU (shared machine: under load).

Prints a table and writes JSON (``--out``/adapt_bn_camvid.json). Labels are only used to score.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _fold_dirs(root: Path, names: list[str], tmp: Path) -> dict:
    """Two folders of symlinks (never copies) to the dusk images: first and second half."""
    half = len(names) // 2
    folds = {"A": names[:half], "B": names[half:]}
    for k, sub in folds.items():
        d = tmp / f"dusk_{k}" / "images"  # the layout `folder:` datasets (pipa-edge adabn) read
        d.mkdir(parents=True)
        for n in sub:
            os.symlink(root / "dusk_train" / "images" / f"{n}.png", d / f"{n}.png")
    return folds


ACCEPT_ALL = ["thresholds.value=0", "min_confident_fraction=0", "max_mean_entropy=1", "min_blur_var=0",
              "min_interval_s=0", "stability.frames=1", "dedup.enabled=false", "queue_size=64",
              "storage.image_format=png"]


def _collect(onnx_path: Path, frames_dir: Path, out: Path) -> Path:
    """Stream the frames through the model with ``run --collect`` (every frame kept, PNG): the device path."""
    from pipa_edge.runtime.pipeline import run_stream

    run_stream(str(frames_dir / "images"), "none", str(onnx_path), drop=False, collect=str(out),
               collect_set=ACCEPT_ALL, log_stats=False)
    return out


def _torch_adabn(ckpt: Path, frames_dir: Path, size, batch_size: int):
    from pipa_edge.data.bn_frames import open_frames
    from pipa_edge.runtime.bn_adapt import batch_sizes
    from pipa_edge.models.io import read_checkpoint, segmenter_from_entry
    from pipa_edge.train.precise_bn import recompute_bn_stats
    import torch

    seg = segmenter_from_entry(read_checkpoint(ckpt)["segmenter"], where=str(ckpt)).eval()
    fs = open_frames(frames_dir)
    x = torch.from_numpy(np.stack(list(fs.frames(tuple(size))))).permute(0, 3, 1, 2).contiguous()
    recompute_bn_stats(seg, list(torch.split(x, batch_sizes(len(x), batch_size))))
    return seg


def _held_frames(ds, size) -> np.ndarray:
    import cv2

    out = []
    for i in range(len(ds)):
        img = ds[i]["image"].permute(1, 2, 0).numpy()
        if img.shape[:2] != tuple(size):
            img = cv2.resize(img, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
        out.append(img)
    return np.stack(out)


def run_fold(k: str, held_k: str, ckpt: Path, onnx_path: Path, folds, dirs, ds_all, out_dir: Path, args) -> dict:
    from torch.utils.data import Subset

    from pipa_edge.runtime.bn_adapt import adapt_bn_onnx
    from pipa_edge.export.parity import compare
    from pipa_edge.runtime.backends.ort_backend import OrtBackend
    from pipa_edge.runtime.backends.torch_backend import TorchBackend
    from pipa_edge.train.evaluate import evaluate_backend

    names = [ds_all[i]["name"] for i in range(len(ds_all))]
    held = Subset(ds_all, [names.index(n) for n in folds[held_k]])
    before_b = OrtBackend(onnx_path)
    meta = before_b.meta
    new = out_dir / f"adapted_on_{k}.onnx"
    src = _collect(onnx_path, dirs[k], out_dir / f"collect_{k}") if args.via_collect else dirs[k]
    t = time.perf_counter()
    rep = adapt_bn_onnx(onnx_path, src, new, batch_size=args.batch_size, min_frames=8, show_progress=False)
    wall = time.perf_counter() - t
    after_b = OrtBackend(new)
    score = lambda b, d: 100 * evaluate_backend(b, held, desc=d, show_progress=False)["miou"]  # noqa: E731
    before, after = score(before_b, "before"), score(after_b, "after")
    seg = _torch_adabn(ckpt, dirs[k], meta.input_size, args.batch_size)
    ref = TorchBackend(segmenter=seg, input_size=tuple(meta.input_size), output=meta.output,
                       output_resolution=meta.output_resolution)
    hf = _held_frames(held, meta.input_size)
    par = compare(ref, after_b, hf, f"dusk half {held_k}")
    row = {"adapt_on": k, "score_on": held_k, "frames_from": rep["frames"]["kind"],
           "adapt_frames": rep["frames"]["count"], "held_frames": len(held),
           "miou_before": round(before, 2), "miou_after": round(after, 2),
           "miou_torch_same_stats": round(score(ref, "torch"), 2),
           "agreement_vs_torch_same_stats": par.agreement, "max_abs_vs_torch": par.max_abs,
           "stats_s": rep["seconds"], "adapt_wall_s": round(wall, 2),
           "s_per_100_frames": round(100 * rep["seconds"] / rep["frames"]["count"], 2),
           "change": {k2: v for k2, v in rep["change"].items() if k2 != "per_layer"}}
    row.update(_vs_adabn_cli(ckpt, dirs[k], meta, after_b, hf, held, score, out_dir, args))
    return row


def _vs_adabn_cli(ckpt, frames_dir, meta, after_b, hf, held, score, out_dir: Path, args) -> dict:
    """``pipa-edge adabn`` itself (its dataset resize, its seeded image order) on the same frames."""
    from pipa_edge.export.parity import compare
    from pipa_edge.models.io import load_segmenter
    from pipa_edge.runtime.backends.torch_backend import TorchBackend
    from pipa_edge.train.adabn import adabn_checkpoint

    dst = out_dir / f"adabn_{Path(frames_dir).name}.pt"
    try:
        adabn_checkpoint(ckpt, [f"folder:{frames_dir}"], dst, imgsz=list(meta.input_size), num_images=200,
                         batch_size=args.batch_size, device="cpu", show_progress=False)
    except Exception as e:  # noqa: BLE001 - reported, not fatal for the table
        return {"adabn_cli_error": f"{type(e).__name__}: {e}"}
    ref = TorchBackend(segmenter=load_segmenter(dst), input_size=tuple(meta.input_size), output=meta.output,
                       output_resolution=meta.output_resolution)
    par = compare(ref, after_b, hf, "held-out half")
    return {"miou_adabn_cli": round(score(ref, "adabn"), 2), "agreement_vs_adabn_cli": par.agreement}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--ckpt", nargs="+", default=["runs/shared/camvid_source_only_s0/final.pt"],
                   help="one or more day checkpoints (e.g. the three seeds of the source model)")
    p.add_argument("--root", default=str(Path(__file__).resolve().parents[1].parent / "shared/data/camvid"))
    p.add_argument("--out", default="runs/adapt_bn_camvid")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--imgsz", type=int, nargs=2, default=None, metavar=("H", "W"),
                   help="export (and so adapt and score) at this size instead of the checkpoint's recorded one")
    p.add_argument("--via-collect", action="store_true",
                   help="stream each half through `run --collect` first and adapt on the collection")
    p.add_argument("--json", default=None, help="also write the JSON here (e.g. docs/results/adapt_bn_camvid.json)")
    args = p.parse_args(argv)
    from pipa_edge.data.build import build_eval_dataset
    from pipa_edge.export.config import ExportConfig
    from pipa_edge import log
    from pipa_edge.export.exporter import export
    from pipa_edge.runtime.backends.sidecar import read_sidecar
    from pipa_edge.train.eval_api import parse_data_spec

    root, out_dir = Path(args.root), Path(args.out)
    if not (root / "dusk_train").is_dir():
        print(f"{root}/dusk_train not found (real data absent)", file=sys.stderr)
        return 2
    log.set_quiet(True)  # the export's own table and stage lines
    models = []
    for i, c in enumerate(args.ckpt):
        ckpt, sub = Path(c), out_dir / f"model{i}"
        sub.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        res = export(ckpt, ExportConfig(out_dir=str(sub), name="source", bench_runs=0,
                                         **({"imgsz": list(args.imgsz)} if args.imgsz else {})))
        export_s = time.perf_counter() - t
        onnx_path = res.files["onnx"]
        size = list(read_sidecar(onnx_path).input_size)
        ds = build_eval_dataset(parse_data_spec(f"camvid:{root}:dusk_train", size))
        names = sorted(ds[j]["name"] for j in range(len(ds)))
        with tempfile.TemporaryDirectory() as tmp:
            folds = _fold_dirs(root, names, Path(tmp))
            dirs = {k: Path(tmp) / f"dusk_{k}" for k in folds}
            rows = [run_fold("A", "B", ckpt, onnx_path, folds, dirs, ds, sub, args),
                    run_fold("B", "A", ckpt, onnx_path, folds, dirs, ds, sub, args)]
        models.append({"checkpoint": str(ckpt), "input_size": size, "export_s_with_companion": round(export_s, 1),
                       "rows": rows})
    result = {"batch_size": args.batch_size, "threads": os.environ.get("OMP_NUM_THREADS"), "models": models,
              "summary": _summary(models),
              "note": "2-core machine shared with other jobs (timings under load)"}
    for path in [out_dir / "adapt_bn_camvid.json"] + ([Path(args.json)] if args.json else []):
        path.write_text(json.dumps(result, indent=2) + "\n")
    _print(result)
    return 0


def _summary(models: list) -> dict:
    """Per model: mean over the two held-out halves before / after; then mean and min of the gain."""
    per = []
    for m in models:
        b = float(np.mean([r["miou_before"] for r in m["rows"]]))
        a = float(np.mean([r["miou_after"] for r in m["rows"]]))
        per.append({"checkpoint": m["checkpoint"], "before": round(b, 2), "after": round(a, 2), "gain": round(a - b, 2)})
    gains = [p["gain"] for p in per]
    return {"per_model": per, "mean_before": round(float(np.mean([p["before"] for p in per])), 2),
            "mean_after": round(float(np.mean([p["after"] for p in per])), 2),
            "mean_gain": round(float(np.mean(gains)), 2), "min_gain": round(min(gains), 2),
            "agreement_vs_torch_min": min(r["agreement_vs_torch_same_stats"] for m in models for r in m["rows"]),
            "agreement_vs_adabn_cli_min": min((r.get("agreement_vs_adabn_cli", 0.0) for m in models
                                              for r in m["rows"]), default=None)}


def _print(result: dict) -> None:
    cols = ("adapt_on", "score_on", "adapt_frames", "held_frames", "miou_before", "miou_after",
            "miou_torch_same_stats", "agreement_vs_torch_same_stats", "miou_adabn_cli", "agreement_vs_adabn_cli",
            "s_per_100_frames")
    for m in result["models"]:
        print(f"checkpoint {m['checkpoint']}, input {m['input_size']}, batch {result['batch_size']}")
        print(" | ".join(cols))
        for r in m["rows"]:
            print(" | ".join(f"{100 * r[c]:.3f}%" if c.startswith("agreement") and isinstance(r.get(c), float)
                             else str(r.get(c, "-")) for c in cols))
    s = result["summary"]
    print(f"held-out mIoU (mean of the two halves, mean over models): {s['mean_before']} -> {s['mean_after']} "
          f"(gain {s['mean_gain']:+.2f}, min over models {s['min_gain']:+.2f})")


if __name__ == "__main__":
    sys.exit(main())
