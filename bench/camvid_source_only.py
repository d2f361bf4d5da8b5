"""Benchmark: SegFormer-B0 source-only on CamVid day, scored on day (sanity) and dusk (the domain gap).

    OMP_NUM_THREADS=2 .venv/bin/python bench/camvid_source_only.py [--seed 0] [--set key=value ...]

Trains with train/camvid_source_only.yaml (CPU-friendly: images halved to 180×240, 160×224 crops,
batch 8, 600 iterations), evaluates the final checkpoint on ``day_train`` and on ``dusk_train``
labels (11 classes, mIoU over classes present in the GT), prints a table and writes
``docs/results/camvid_source_only.json`` (plus the per-class IoU charts next to the checkpoint).
Needs ../shared/data/camvid (never copied into the repo).

``--day-folds``: choose the source recipe WITHOUT dusk labels. Each ``--variant`` (``--set``
overrides on top of the recipe, defined in ``VARIANTS`` below) trains on one half of day_train
(2 folds: contiguous halves of each sequence, :mod:`pipa_edge.data.folds`) and is scored on the
other half; the day-validation mIoU pools both folds' confusion matrices (labels at native
resolution, image at each ``--eval-size``, default 180×240). Prints the table and the choice:

    OMP_NUM_THREADS=1 python bench/camvid_source_only.py --day-folds --parallel 2 \
        --eval-size 180 240 --eval-size 192 256 --json docs/results/camvid_source_dayfolds.json
    python bench/camvid_source_only.py --day-folds --smoke          # 3 iterations, 2 variants: minutes
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
sys.path.insert(0, str(REPO / "bench"))
import camvid_protocol as P  # noqa: E402

_OFF = ["transform.brightness=0", "transform.contrast=0", "transform.saturation=0", "transform.hue=0",
        "transform.gamma=0", "transform.blur_prob=0", "transform.noise_std=0", "loss.class_weights=none",
        "transform.scale_range=[0.75,1.25]"]
_JIT = ["transform.brightness=0.2", "transform.contrast=0.2", "transform.saturation=0.2"]
_CW = ["loss.class_weights=sqrt_inv_freq"]
# candidate source recipes (complete, whatever the recipe file says): the earlier recipe, + colour jitter,
# + class-balanced CE, + scale 0.75-1.5 (the reference = the shipped recipe), + hue/gamma/blur/noise
VARIANTS = {
    "none": _OFF,
    "jitter": _OFF + _JIT,
    "jitter_cw": _OFF + _JIT + _CW,
    "jitter_cw_s15": _OFF + _JIT + _CW + ["transform.scale_range=[0.75,1.5]"],
    "jitter_cw_s15_gbn": _OFF + _JIT + _CW + ["transform.scale_range=[0.75,1.5]", "transform.hue=0.05",
                                              "transform.gamma=0.2", "transform.blur_prob=0.25",
                                              "transform.noise_std=5"],
}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(REPO / "train" / "camvid_source_only.yaml"))
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "camvid"), help="CamVid root")
    ap.add_argument("--seed", type=int, nargs="+", default=[0])
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    ap.add_argument("--out", default=str(REPO / "runs" / "bench_camvid_source_only"))
    ap.add_argument("--json", default=None, help="default docs/results/camvid_source_only.json (--day-folds: none)")
    ap.add_argument("--day-folds", action="store_true", help="recipe selection on held-out day halves (see above)")
    ap.add_argument("--variant", nargs="+", default=None, choices=list(VARIANTS), help="--day-folds candidates")
    ap.add_argument("--eval-size", nargs=2, type=int, action="append", default=None, metavar=("H", "W"))
    ap.add_argument("--iters", type=int, default=None, help="--day-folds: iterations per run (default: the recipe's)")
    ap.add_argument("--smoke", action="store_true", help="--day-folds: 3 iterations, variants none + jitter_cw_s15")
    ap.add_argument("--parallel", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reuse", action="store_true", help="--day-folds: keep runs whose result_*.json exists")
    ap.add_argument("--job", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.job:
        return P.job_main(args.job)
    if args.day_folds:
        return day_folds(args, argv)
    args.json = args.json or str(REPO / "docs" / "results" / "camvid_source_only.json")

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


def day_fold_jobs(args) -> list[dict]:
    data, out = Path(args.data).resolve(), Path(args.out) / "dayfolds"
    variants = args.variant or (["none", "jitter_cw_s15"] if args.smoke else list(VARIANTS))
    iters = 3 if args.smoke else args.iters
    jobs = []
    for v in variants:
        for seed in args.seed:
            for k in (0, 1):
                tag = f"{v}_f{k}_s{seed}"
                src = P.camvid(data, "day_train", k, "train", resize=(180, 240))
                ov = [f"source={P.flow(src)}", "val=null", f"seed={seed}", f"out_dir={out / tag}",
                      "precise_bn.enabled=false", *VARIANTS[v], *args.overrides]
                ov += [f"optim.max_iters={iters}"] if iters else []
                ov += ["optim.warmup_iters=1"] if args.smoke else []
                jobs.append({"protocol": "dayfold", "name": v, "seed": seed, "fold": k, "method": "source_only",
                             "recipe": str(Path(args.config).resolve()), "overrides": ov, "out": str(out / tag),
                             "dep": None, "threads": args.threads, "device": "auto",
                             "eval_sizes": args.eval_size or [[180, 240]],
                             "scores": {"dayval": P.camvid(data, "day_train", k, "heldout")}})
    return jobs


def day_fold_table(results: list[dict]) -> list[dict]:
    """Per variant and size: per-seed day-validation mIoU (both folds' held-out halves pooled), mean ± sd."""
    runs: dict = {}
    for r in results:
        for size, sc in r["scores"].items():
            runs.setdefault((r["name"], size), {}).setdefault(r["seed"], {})[r["fold"]] = sc["dayval"]["confusion_matrix"]
    table = []
    for (v, size), seeds in runs.items():
        per = {s: P.pooled_miou([f[0], f[1]]) for s, f in sorted(seeds.items()) if set(f) >= {0, 1}}
        if per:
            m, sd = P.mean_sd(list(per.values()))
            table.append({"variant": v, "size": size, "per_seed": per, "mean": m, "sd": sd, "overrides": VARIANTS.get(v)})
    return table


def day_folds(args, argv) -> int:
    t0 = time.perf_counter()
    if not Path(args.data, "day_train").is_dir():
        print(f"CamVid not found at {args.data} (expected day_train/)", file=sys.stderr)
        return 2
    jobs = day_fold_jobs(args)
    results = P.run_all(jobs, args.parallel, Path(args.out) / "dayfolds", args.reuse, script=__file__)
    table = day_fold_table(results)
    sizes = sorted({t["size"] for t in table})
    print(f"\nday-validation mIoU % (2 folds over day_train, held-out halves pooled; mean ± sd over seeds {args.seed})")
    print(f"{'variant':20s} " + " ".join(f"{s:>14s}" for s in sizes))
    by = {(t["variant"], t["size"]): t for t in table}
    for v in dict.fromkeys(t["variant"] for t in table):
        print(f"{v:20s} " + " ".join(f"{P.fmt(by[(v, s)]['mean'], by[(v, s)]['sd']):>14s}" if (v, s) in by else f"{'-':>14s}"
                                     for s in sizes))
    choice = max(table, key=lambda t: t["mean"]) if table else None
    if choice:
        print(f"\nchoice on day validation: variant '{choice['variant']}' at {choice['size']} "
              f"({choice['mean']:.1f} mIoU); no dusk label was read")
    wall = round(time.perf_counter() - t0, 1)
    print(f"[bench] {len(results)} runs, wall {wall} s")
    if args.json:
        info = {"benchmark": "camvid_source_dayfolds", "command": "OMP_NUM_THREADS=%s python bench/camvid_source_only.py %s"
                % (os.environ.get("OMP_NUM_THREADS", "?"), " ".join(argv if argv is not None else sys.argv[1:])),
                "wall_s": wall, "table": table, "choice": choice,
                "runs": [{k: r.get(k) for k in ("name", "seed", "fold", "train_s", "overrides", "scores")} for r in results]}
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(info, indent=1))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
