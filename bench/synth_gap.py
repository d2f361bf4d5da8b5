"""Benchmark: is there a genuine sim→real domain gap in the embedded synthetic generator?

    OMP_NUM_THREADS=2 .venv/bin/python bench/synth_gap.py [--steps 250] [--threads 2] [--device cpu|cuda]

(On a CPU shared with other jobs use ``OMP_NUM_THREADS=1 ... --threads 1``: two threads on two busy
cores were 10× slower per step here.) Generates ``n_sim + n_eval`` sim and ``n_real + n_eval`` real-style frames (256×512, seed 0),
trains a small segmenter from scratch with a plain torch loop (no project trainer):

- *source-only* on ``n_sim`` labelled sim frames,
- *oracle* on ``n_real`` labelled real-style frames,

and scores both on held-out sim and held-out real frames (mIoU over the synth11 classes present
in the ground truth). A real gap shows as source-only real ≪ source-only sim, with the oracle
doing well on real. Prints a table and writes JSON (default docs/results/synth_gap.json).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def load_split(root: Path, split: str, lo: int, hi: int, size: tuple[int, int]):
    import cv2

    from pipa_edge.data.synth.dataset import SynthDataset

    ds = SynthDataset(root, split)
    H, W = size
    imgs, labs = [], []
    for i in range(lo, hi):
        it = ds[i]
        img, lab = it["image"], it["label"]
        if img.shape[:2] != (H, W):
            img = cv2.resize(img, (W, H), interpolation=cv2.INTER_AREA)
            lab = cv2.resize(lab, (W, H), interpolation=getattr(cv2, "INTER_NEAREST_EXACT", cv2.INTER_NEAREST))
        imgs.append(img)
        labs.append(lab)
    return np.stack(imgs), np.stack(labs)


def batch_aug(imgs: np.ndarray, labs: np.ndarray, rng: np.random.Generator, bs: int):
    """Random images, horizontal flip and a random 0.75–1.0 scale crop resized back (geometry only)."""
    import cv2

    idx = rng.integers(0, len(imgs), bs)
    H, W = imgs.shape[1:3]
    xs, ys = [], []
    for i in idx:
        img, lab = imgs[i], labs[i]
        s = rng.uniform(0.75, 1.0)
        h, w = int(H * s), int(W * s)
        y0, x0 = rng.integers(0, H - h + 1), rng.integers(0, W - w + 1)
        img = cv2.resize(img[y0:y0 + h, x0:x0 + w], (W, H), interpolation=cv2.INTER_LINEAR)
        lab = cv2.resize(lab[y0:y0 + h, x0:x0 + w], (W, H), interpolation=cv2.INTER_NEAREST)
        if rng.random() < 0.5:
            img, lab = img[:, ::-1], lab[:, ::-1]
        xs.append(img)
        ys.append(lab)
    return np.stack(xs), np.stack(ys)


def train(arch: str, classes, imgs, labs, steps: int, bs: int, lr: float, device: str, seed: int, tag: str):
    import torch
    import torch.nn.functional as F

    from pipa_edge.models import build_segmenter

    torch.manual_seed(seed)
    model = build_segmenter(arch, classes).to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: (1 - s / steps) ** 0.9)
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    for step in range(steps):
        x, y = batch_aug(imgs, labs, rng, bs)
        xt = model.normalize(torch.from_numpy(np.ascontiguousarray(x)).permute(0, 3, 1, 2).to(device))
        yt = torch.from_numpy(np.ascontiguousarray(y)).long().to(device)
        loss = F.cross_entropy(model(xt), yt, ignore_index=classes.ignore_index)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % max(steps // 10, 1) == 0 or step == steps - 1:
            print(f"[{tag}] step {step + 1}/{steps} loss {loss.item():.3f} ({time.perf_counter() - t0:.0f} s)",
                  flush=True)
    recalibrate_bn(model, imgs, labs, rng, bs, device)
    return model.eval(), time.perf_counter() - t0


def recalibrate_bn(model, imgs, labs, rng, bs: int, device: str, batches: int = 25) -> None:
    """Re-estimate BatchNorm running statistics with the final weights (cumulative average).

    MobileNetV3 uses BN momentum 0.01, so after a few hundred steps from scratch its running
    statistics still lag the weights and eval-mode predictions are poor; this fixes that.
    """
    import torch

    from pipa_edge.train.precise_bn import recompute_bn_stats

    def gen():
        for _ in range(batches):
            x, _ = batch_aug(imgs, labs, rng, bs)
            yield torch.from_numpy(np.ascontiguousarray(x)).permute(0, 3, 1, 2).to(device)

    recompute_bn_stats(model, gen())


def evaluate(model, classes, imgs, labs, device: str, bs: int = 16) -> dict:
    import torch

    K = classes.num_classes
    conf = np.zeros((K, K), np.int64)
    with torch.no_grad():
        for i in range(0, len(imgs), bs):
            x = torch.from_numpy(imgs[i:i + bs]).permute(0, 3, 1, 2).to(device)
            pred = model(model.normalize(x)).argmax(1).cpu().numpy()
            gt = labs[i:i + bs]
            m = gt < K
            conf += np.bincount(gt[m].astype(np.int64) * K + pred[m], minlength=K * K).reshape(K, K)
    inter = np.diag(conf).astype(np.float64)
    union = conf.sum(0) + conf.sum(1) - inter
    present = conf.sum(1) > 0
    iou = np.where(union > 0, inter / np.maximum(union, 1), np.nan)
    return {"miou": float(np.nanmean(np.where(present, iou, np.nan)) * 100),
            "acc": float(inter.sum() / max(conf.sum(), 1) * 100),
            "iou": {n: (round(float(iou[k]) * 100, 2) if present[k] else None) for k, n in enumerate(classes.names)}}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(REPO / "runs" / "synth_gap" / "data"), help="where to generate the data")
    ap.add_argument("--n-sim", type=int, default=300)
    ap.add_argument("--n-real", type=int, default=100)
    ap.add_argument("--n-eval", type=int, default=100, help="held-out frames per domain")
    ap.add_argument("--arch", default="lraspp-mbv3")
    ap.add_argument("--train-size", nargs=2, type=int, default=(128, 256), metavar=("H", "W"))
    ap.add_argument("--steps", type=int, default=250)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda", "auto"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--workers", type=int, default=None, help="generator processes")
    ap.add_argument("--skip-generate", action="store_true", help="reuse the data already in --data")
    ap.add_argument("--json", default=str(REPO / "docs" / "results" / "synth_gap.json"))
    args = ap.parse_args(argv)

    import torch

    from pipa_edge.data.classes import SYNTH11
    from pipa_edge.data.synth import GENERATOR_VERSION
    from pipa_edge.data.synth.io import generate

    torch.set_num_threads(args.threads)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    root = Path(args.data)
    n_frames = args.n_sim + args.n_real + 2 * args.n_eval
    t_gen = None
    if not args.skip_generate:
        t0 = time.perf_counter()
        generate(root, args.n_sim + args.n_eval, args.n_real + args.n_eval, size=(256, 512), seed=args.seed,
                 progress=False, workers=args.workers)
        t_gen = time.perf_counter() - t0
        print(f"generated {n_frames} frames at 256x512 in {t_gen:.1f} s", flush=True)
    size = tuple(args.train_size)
    sim_tr = load_split(root, "sim", 0, args.n_sim, size)
    sim_ev = load_split(root, "sim", args.n_sim, args.n_sim + args.n_eval, size)
    real_tr = load_split(root, "real", 0, args.n_real, size)
    real_ev = load_split(root, "real", args.n_real, args.n_real + args.n_eval, size)

    results = {}
    for tag, (imgs, labs) in (("source_only", sim_tr), ("oracle", real_tr)):
        model, t_train = train(args.arch, SYNTH11, imgs, labs, args.steps, args.batch, args.lr, device, args.seed, tag)
        results[tag] = {"trained_on": "sim" if tag == "source_only" else "real", "train_s": round(t_train, 1),
                        "sim_heldout": evaluate(model, SYNTH11, *sim_ev, device),
                        "real_heldout": evaluate(model, SYNTH11, *real_ev, device)}
    so, orc = results["source_only"], results["oracle"]
    gap = {"source_only_sim_minus_real": so["sim_heldout"]["miou"] - so["real_heldout"]["miou"],
           "oracle_minus_source_only_on_real": orc["real_heldout"]["miou"] - so["real_heldout"]["miou"]}

    print()
    print(f"{'model':<13} {'trained on':<16} {'mIoU sim (held-out)':>20} {'mIoU real (held-out)':>21}")
    for tag, n in (("source_only", args.n_sim), ("oracle", args.n_real)):
        r = results[tag]
        print(f"{tag:<13} {r['trained_on'] + f' ({n} frames)':<16} {r['sim_heldout']['miou']:>20.1f} "
              f"{r['real_heldout']['miou']:>21.1f}")
    print(f"gap: source-only sim - real = {gap['source_only_sim_minus_real']:.1f} mIoU; "
          f"oracle - source-only on real = {gap['oracle_minus_source_only_on_real']:.1f} mIoU")
    print("\nper-class IoU on real (held-out): source-only / oracle")
    for n in SYNTH11.names:
        a, b = so["real_heldout"]["iou"][n], orc["real_heldout"]["iou"][n]
        print(f"  {n:<13} {a if a is not None else '-':>7} / {b if b is not None else '-'}")

    cmd = " ".join(argv if argv is not None else sys.argv[1:])
    omp = os.environ.get("OMP_NUM_THREADS", "")
    dev_name = torch.cuda.get_device_name(0) if device == "cuda" else platform.processor() or platform.machine()
    out = {"command": f"OMP_NUM_THREADS={omp} python bench/synth_gap.py {cmd}".strip(),
           "generator_version": GENERATOR_VERSION, "arch": args.arch, "device": device, "device_name": dev_name,
           "threads": args.threads, "torch": torch.__version__, "python": platform.python_version(),
           "seed": args.seed,
           "counts": {"sim_train": args.n_sim, "real_train": args.n_real, "eval_per_domain": args.n_eval},
           "generated_size": [256, 512], "train_size": list(size), "steps": args.steps, "batch": args.batch,
           "lr": args.lr, "generate_s": None if t_gen is None else round(t_gen, 1),
           "frames_per_s": None if t_gen is None else round(n_frames / t_gen, 1), "generate_workers": args.workers,
           "results": results, "gap": {k: round(v, 2) for k, v in gap.items()},
           "miou_convention": "mean IoU over synth11 classes present in the ground truth of the split",
           "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS")}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
