#!/usr/bin/env python3
"""Data-layer throughput: ms per sample to read (decode + label map) and to transform, per dataset.

Reads real CamVid (day_train) and the Cityscapes sample from ``../shared/data`` when present, and
always a synthetic 1280x720 image/label pair for the transform at GTA5 scale. Single process,
one OpenCV thread (the per-DataLoader-worker cost).

    python bench/data_loading.py --data ../shared/data --json docs/results/data_loading.json
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

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from pipa_edge.data.build import build_dataset  # noqa: E402
from pipa_edge.data.transforms import TrainTransform, TransformConfig  # noqa: E402


def _time(fn, n: int) -> tuple[float, float]:
    ts = []
    for i in range(n):
        t0 = time.perf_counter()
        fn(i)
        ts.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(ts)), float(np.percentile(ts, 90))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    ap.add_argument("--n", type=int, default=40, help="samples timed per row")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    cv2.setNumThreads(1)
    data = Path(args.data)
    rows = []
    cam = data / "camvid"
    if cam.is_dir():
        ds = build_dataset({"type": "camvid", "root": str(cam), "split": "day_train"})
        rows.append(("read camvid 480x360", *_time(lambda i: ds[i % len(ds)], args.n)))
        tr = TrainTransform(TransformConfig(crop_size=(320, 320), cat_max_ratio=0.75))
        items = [ds[i] for i in range(8)]
        rows.append(("train transform camvid crop 320 (scale 0.5-2, cat_max 0.75)",
                     *_time(lambda i: tr(items[i % 8], np.random.default_rng(i)), args.n)))
    cs = data / "cityscapes_sample"
    if cs.is_dir():
        ds2 = build_dataset({"type": "cityscapes", "root": str(cs), "split": "val"})
        rows.append(("read cityscapes sample 256x128", *_time(lambda i: ds2[0], args.n)))
    rng = np.random.default_rng(0)
    big = {"image": rng.integers(0, 256, (720, 1280, 3), dtype=np.uint8),
           "label": rng.integers(0, 19, (720, 1280), dtype=np.uint8), "name": "x"}
    for name, cfg in (("plain", TransformConfig()),
                      ("cat_max 0.75", TransformConfig(cat_max_ratio=0.75)),
                      ("jitter b/c/s/h", TransformConfig(brightness=0.3, contrast=0.3, saturation=0.3, hue=0.05))):
        t = TrainTransform(cfg)
        rows.append((f"train transform 1280x720 crop 512 ({name})",
                     *_time(lambda i: t(big, np.random.default_rng(i)), args.n)))
    w = max(len(r[0]) for r in rows)
    print(f"{'row':<{w}}  median ms  p90 ms")
    for name, med, p90 in rows:
        print(f"{name:<{w}}  {med:9.2f}  {p90:6.2f}")
    if args.json:
        out = {"command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
               "machine": platform.processor() or platform.machine(), "opencv_threads": 1,
               "load_average_1min": round(os.getloadavg()[0], 2),  # a shared machine makes timings noisy
               "rows": [{"row": r[0], "median_ms": round(r[1], 3), "p90_ms": round(r[2], 3)} for r in rows]}
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
