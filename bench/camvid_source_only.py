"""Benchmark: SegFormer-B0 source-only on CamVid day, scored on day (sanity) and dusk (the domain gap).

    OMP_NUM_THREADS=2 .venv/bin/python bench/camvid_source_only.py [--seed 0] [--set key=value ...]

Trains with train/camvid_source_only.yaml (CPU-friendly: images halved to 180×240, 160×224 crops,
batch 8, 600 iterations), evaluates the final checkpoint on ``day_train`` and on ``dusk_train``
labels (11 classes, mIoU over classes present in the GT), prints a table and writes
``docs/camvid_source_only.json`` (plus the per-class IoU charts next to the checkpoint).
Needs ../shared/data/camvid (never copied into the repo).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(REPO / "train" / "camvid_source_only.yaml"))
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "camvid"), help="CamVid root")
    ap.add_argument("--seed", type=int, nargs="+", default=[0])
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    ap.add_argument("--out", default=str(REPO / "runs" / "bench_camvid_source_only"))
    ap.add_argument("--json", default=str(REPO / "docs" / "camvid_source_only.json"))
    args = ap.parse_args(argv)

    import torch

    from pipa_edge.train.config import EvalConfig, load_train_config
    from pipa_edge.train.eval_api import evaluate_checkpoint
    from pipa_edge.train.trainer import train

    if not Path(args.data, "day_train").is_dir():
        print(f"CamVid not found at {args.data} (expected day_train/ and dusk_train/)", file=sys.stderr)
        return 2
    rows, runs = [], []
    for seed in args.seed:
        out = Path(args.out) / f"seed{seed}"
        src = f"source={{type: camvid, root: {args.data}, split: day_train, resize: [180, 240]}}"
        cfg = load_train_config(args.config, [src, "val=null", f"seed={seed}", f"out_dir={out}", *args.overrides])
        t0 = time.perf_counter()
        res = train(cfg)
        train_s = time.perf_counter() - t0
        specs = [{"type": "camvid", "root": args.data, "split": s, "resize": [180, 240]}
                 for s in ("day_train", "dusk_train")]
        reports = evaluate_checkpoint(res.checkpoint, specs, out / "eval", eval_cfg=EvalConfig(), device=cfg.device,
                                      show_progress=False)
        run = {"seed": seed, "train_seconds": round(train_s, 1), "checkpoint": str(res.checkpoint), "results": {}}
        for split, rep in zip(("day", "dusk"), reports):
            run["results"][split] = {k: rep[k] for k in ("miou", "pixel_acc", "mean_acc", "per_class_iou", "images",
                                                         "classes_in_gt", "png")}
            rows.append((seed, split, rep["images"], rep["miou"], rep["pixel_acc"], train_s))
        runs.append(run)

    print()
    print(f"{'seed':>4} {'domain':<6} {'images':>6} {'mIoU %':>7} {'pix acc %':>9} {'train s':>8}")
    for seed, split, n, miou, acc, ts in rows:
        print(f"{seed:>4} {split:<6} {n:>6} {100 * miou:>7.2f} {100 * acc:>9.2f} {ts:>8.0f}")
    cfg_dump = cfg.model_dump(mode="json")
    result = {
        "benchmark": "camvid_source_only",
        "command": "OMP_NUM_THREADS=%s python bench/camvid_source_only.py %s"
                   % (os.environ.get("OMP_NUM_THREADS", "?"), " ".join(argv if argv is not None else sys.argv[1:])),
        "train_seconds_note": "wall-clock of training only (evaluation excluded)",
        "config": cfg_dump,
        "metric": "mIoU over the 11 CamVid classes present in the GT (void ignored), whole dataset confusion matrix",
        "runs": runs,
        "machine": {"platform": platform.platform(), "torch": torch.__version__, "threads": torch.get_num_threads(),
                    "cpu_count": os.cpu_count()},
    }
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=2))
    print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
