"""``pipa-edge adabn CKPT --data SPEC [--data SPEC ...] [--imgsz H W] [--eval SPEC] [--out NEW.pt]``.

Re-estimates a checkpoint's BatchNorm statistics on unlabelled images of the deployment domain
(AdaBN / precise BN; :mod:`pipa_edge.train.adabn`) and writes a new checkpoint to export.
"""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("adabn", help="re-estimate a checkpoint's BatchNorm statistics on unlabelled images "
                                     "(no training)",
                       description="Replace a checkpoint's BatchNorm running statistics by those its weights "
                                   "produce on unlabelled images of the deployment domain (AdaBN). The weights "
                                   "do not change; the result is a new checkpoint for `pipa-edge export`.")
    p.add_argument("checkpoint", help="a pipa-edge checkpoint (final.pt / last.pt)")
    p.add_argument("--data", action="append", required=True, metavar="SPEC",
                   help="unlabelled images: TYPE:ROOT[:SPLIT] (folder:DIR, collected:DIR, video:clip.mp4 or just "
                        "clip.mp4, camvid:ROOT:SPLIT, ...) or a dataset YAML (repeatable)")
    p.add_argument("--imgsz", nargs=2, type=int, metavar=("H", "W"),
                   help="resize to the size the model will run at (needed when the images differ in size)")
    p.add_argument("--num-images", type=int, default=200, help="images to average over (default 200, "
                                                               "a seeded random subset)")
    p.add_argument("--batch-size", type=int, default=8, help="images per forward (default 8, at least 2)")
    p.add_argument("--seed", type=int, default=0, help="seed of the image subset (default 0)")
    p.add_argument("--eval", action="append", default=[], metavar="SPEC",
                   help="labelled data to score before and after (repeatable)")
    p.add_argument("--out", default=None, help="new checkpoint (default: <checkpoint>_adabn.pt next to it)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="CPU threads (default: OMP_NUM_THREADS, else the usable CPUs; see docs/runtime.md)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pipa_edge.log import next_command, ok, stage
    from pipa_edge.threads import set_threads
    from pipa_edge.train.adabn import adabn_checkpoint

    set_threads(args.threads)

    stage("adabn", f"{args.checkpoint}: BN statistics from {', '.join(args.data)}")
    rep = adabn_checkpoint(args.checkpoint, args.data, args.out, imgsz=args.imgsz, num_images=args.num_images,
                           batch_size=args.batch_size, seed=args.seed, device=args.device, evaluate_on=args.eval)
    if rep["evaluations"]:
        from rich.console import Console
        from rich.table import Table

        t = Table(title="mIoU with the checkpoint's statistics and with the re-estimated ones")
        for col in ("data", "before", "after", "change"):
            t.add_column(col, justify="left" if col == "data" else "right")
        for name, e in rep["evaluations"].items():
            b, a = e["miou_before"], e["miou_after"]
            fmt = (lambda v: "n/a" if v is None else f"{100 * v:.2f}")
            t.add_row(name, fmt(b), fmt(a), "n/a" if None in (a, b) else f"{100 * (a - b):+.2f}")
        Console().print(t)
    size = "×".join(str(v) for v in rep["image_size"]) if rep["image_size"] else "?"
    ok("adabn", f"{rep['images']} images ({size}, {rep['batches']} batches of {rep['batch_size']}) → {rep['out']}")
    next_command(f"pipa-edge export {rep['out']}")
    return 0
