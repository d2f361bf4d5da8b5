#!/usr/bin/env python3
"""Temporal contrast on real footage: a CamVid-adapted model continued on the dash-cam clip, with and
without the temporal term, scored on the held-out tail of the clip (TC, flip rate) and on CamVid.

Both arms start from the same checkpoint (e.g. the CamVid day → dusk PiPa++ model) and run the same
recipe (``train/camvid_dashcam_video_pipa.yaml``: labelled CamVid day as source, the first
``--train-frames`` frames of the clip as unlabelled target) for the same iterations and seed; the
only difference is the temporal contrast term on frame pairs (t, t-1) (image arm:
``target.pair_offset=null adapt.temporal_contrast.enabled=false``). Scores: TC / flip rate with DIS
flow on the frames from ``--eval-start`` on (never seen in training); the share of tail pixels per
predicted class (a model that predicts one class everywhere is perfectly "consistent"); CamVid
dusk / day mIoU (labels), so consistency is not bought with accuracy.

    python bench/dashcam_temporal.py --init runs/camvid_cpu/pipa_s0/final.pt --json docs/results/dashcam_temporal.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
RECIPE = "train/camvid_dashcam_video_pipa.yaml"
ARMS = {"image": ["target.pair_offset=null", "adapt.temporal_contrast.enabled=false"], "video": []}


def train_arm(arm: str, a) -> tuple[Path, float]:
    from pipa_edge.train.config import load_train_config
    from pipa_edge.train.trainer import train

    out = Path(a.out) / arm
    ov = [f"init_from={a.init}", f"out_dir={out}", f"seed={a.seed}", f"optim.max_iters={a.iters}",
          f"ckpt_interval={a.iters}", f"source.root={a.camvid}", f"target.root={a.video}",
          f"target.limit={a.train_frames}", "device=cpu"] + ARMS[arm]
    t0 = time.perf_counter()
    res = train(load_train_config(REPO / RECIPE, ov))
    return Path(res.checkpoint), time.perf_counter() - t0


def score(ckpt: Path, a) -> dict:
    import numpy as np
    import torch

    from pipa_edge.data.build import build_eval_dataset
    from pipa_edge.data.datasets.video import VideoDataset
    from pipa_edge.models.io import load_segmenter
    from pipa_edge.train.config import EvalConfig
    from pipa_edge.train.evaluate import evaluate
    from pipa_edge.train.video_eval import evaluate_sequences

    seg = load_segmenter(ckpt).eval()
    tail = VideoDataset(a.video, seg.classes, resize=tuple(a.imgsz), start=a.eval_start)
    v = evaluate_sequences(seg, tail, "cpu", show_progress=False)
    counts = np.zeros(seg.classes.num_classes)
    with torch.no_grad():
        for i in range(0, len(tail), 4):
            x = torch.from_numpy(np.stack([tail[j]["image"] for j in range(i, min(i + 4, len(tail)))]))
            pred = seg(seg.normalize(x.permute(0, 3, 1, 2).contiguous())).argmax(1)
            counts += np.bincount(pred.flatten().numpy(), minlength=len(counts))
    share = counts / counts.sum()
    out = {"checkpoint": str(ckpt), "tc": v["tc"], "flip_rate": v["flip_rate"], "frames": v["frames"],
           "pairs": v["pairs"], "class_share": {n: round(float(s), 4) for n, s in zip(seg.classes.names, share)},
           "classes_over_1pct": int((share > 0.01).sum())}
    for split in ("dusk_train", "day_train"):
        ds = build_eval_dataset({"type": "camvid", "root": a.camvid, "split": split, "resize": [180, 240]})
        out[f"{split.split('_')[0]}_miou"] = evaluate(seg, ds, EvalConfig(), "cpu", show_progress=False)["miou"]
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--init", required=True, help="CamVid-adapted checkpoint both arms start from")
    ap.add_argument("--camvid", default=str(REPO.parent / "shared/data/camvid"))
    ap.add_argument("--video", default=str(REPO.parent / "shared/data/video/solidWhiteRight.mp4"))
    ap.add_argument("--out", default="runs/dashcam_temporal")
    ap.add_argument("--json", default="docs/results/dashcam_temporal.json")
    ap.add_argument("--iters", type=int, default=150)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--train-frames", type=int, default=150, help="target = the first N frames of the clip")
    ap.add_argument("--eval-start", type=int, default=160, help="TC / flip rate on frames from here on")
    ap.add_argument("--imgsz", type=int, nargs=2, default=[180, 320])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    a = ap.parse_args()
    if a.eval_start < a.train_frames:
        ap.error("--eval-start must not be inside the training frames")
    import torch

    torch.set_num_threads(a.threads)
    res = {"command": "python bench/dashcam_temporal.py " + " ".join(sys.argv[1:]), "torch": torch.__version__,
           "device": f"cpu ({a.threads} threads)", "recipe": RECIPE, "iters": a.iters, "seed": a.seed,
           "train_frames": [0, a.train_frames], "eval_frames_from": a.eval_start, "imgsz": a.imgsz,
           "rows": {"start": score(Path(a.init), a)}}
    jpath = REPO / a.json
    jpath.parent.mkdir(parents=True, exist_ok=True)
    for arm in a.arms:
        ck, secs = train_arm(arm, a)
        res["rows"][arm] = {**score(ck, a), "train_s": round(secs, 1)}
        jpath.write_text(json.dumps(res, indent=1))
    jpath.write_text(json.dumps(res, indent=1))
    print(f"\n{'row':8s} {'TC %':>7s} {'flip %':>7s} {'classes>1%':>10s} {'dusk mIoU':>9s} {'day mIoU':>8s} {'train s':>8s}")
    for k, r in res["rows"].items():
        print(f"{k:8s} {100 * r['tc']:7.2f} {100 * r['flip_rate']:7.2f} {r['classes_over_1pct']:10d} "
              f"{100 * r['dusk_miou']:9.1f} {100 * r['day_miou']:8.1f} {r.get('train_s', 0):8.0f}")
    print(f"[bench] wrote {a.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
