"""``pipa-edge train CONFIG.yaml [--set key=value ...] [--resume]``.

Multi-GPU / multi-node: ``torchrun --nproc_per_node N -m pipa_edge.cli.main train CONFIG.yaml``.
"""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a segmenter (source-only or adaptation) from a YAML recipe",
                       description="Train from a recipe (see train/*.yaml). Under torchrun it runs DDP.")
    p.add_argument("config", help="recipe YAML (e.g. train/synth_source_only.yaml)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set optim.max_iters=200 (repeatable)")
    p.add_argument("--resume", action="store_true", help="continue from OUT_DIR/last.pt exactly where it stopped")
    p.add_argument("--out", dest="out_dir", default=None, help="output folder (same as --set out_dir=...)")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="CPU threads (= --set threads=N; default: OMP_NUM_THREADS, else the usable CPUs; "
                        "see docs/runtime.md)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pipa_edge.config import dump_config
    from pipa_edge.train.config import load_train_config

    overrides = list(args.overrides)
    if args.out_dir:
        overrides.append(f"out_dir={args.out_dir}")
    if args.threads is not None:
        overrides.append(f"threads={args.threads}")
    cfg = load_train_config(args.config, overrides)
    if args.print_config:
        print(dump_config(cfg), end="")
        return 0
    from pipa_edge.train.trainer import train

    train(cfg, resume=args.resume)
    return 0
