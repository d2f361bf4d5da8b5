"""``pipa-edge data synth OUT`` (embedded sim→real generator) and ``pipa-edge data info ROOT``."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="generate the synthetic sim→real dataset, inspect datasets",
                       description="Dataset tools: the embedded synthetic generator and dataset summaries.")
    dsub = p.add_subparsers(dest="data_command", metavar="ACTION")
    s = dsub.add_parser("synth", help="render the synthetic sim→real driving dataset",
                        description="Render procedural driving scenes in a flat-coloured *sim* domain and a "
                                    "camera-like *real* domain (exact labels, synth11 classes), optionally "
                                    "sequences with ego-motion. Deterministic from --seed.")
    s.add_argument("out", help="output folder (created; an earlier synth run there is replaced)")
    s.add_argument("--n-sim", type=int, default=300, help="sim stills (default 300)")
    s.add_argument("--n-real", type=int, default=300, help="real-style stills (default 300)")
    s.add_argument("--n-seq", type=int, default=0, help="sequences per domain (default 0)")
    s.add_argument("--seq-len", type=int, default=16, help="frames per sequence (default 16)")
    s.add_argument("--size", nargs=2, type=int, default=(256, 512), metavar=("H", "W"), help="frame size (256 512)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--workers", type=int, default=None, help="processes (default: 2 for large runs)")
    s.set_defaults(func=run_synth)
    i = dsub.add_parser("info", help="counts and class histogram per split of a synthetic dataset folder")
    i.add_argument("root", help="a folder written by 'pipa-edge data synth'")
    i.set_defaults(func=run_info)
    p.set_defaults(func=lambda a: (p.print_help(), 2)[1])


def _table(title: str, header: list, rows: list) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=title)
    for h in header:
        t.add_column(h, justify="left" if h == header[0] else "right")
    for r in rows:
        t.add_row(*[str(v) for v in r])
    Console().print(t)


def run_synth(args: argparse.Namespace) -> int:
    import time

    from pipa_edge.data.synth.io import generate
    from pipa_edge.log import next_command, ok, stage

    stage("synth", f"rendering into {args.out} (seed {args.seed}, {args.size[0]}x{args.size[1]})")
    t0 = time.perf_counter()
    meta = generate(args.out, args.n_sim, args.n_real, args.n_seq, args.seq_len if args.n_seq else 0,
                    size=tuple(args.size), seed=args.seed, progress=True, workers=args.workers)
    dt = time.perf_counter() - t0
    rows = [[s, n, n * (meta["seq_len"] if s.endswith("_seq") else 1), f"{args.out}/{s}"]
            for s, n in meta["counts"].items() if n]
    _table("synthetic dataset", ["split", "items", "frames", "folder"], rows)
    ok("synth", f"{meta['frames']} frames in {dt:.1f} s ({meta['frames'] / max(dt, 1e-9):.1f} frames/s)")
    next_command(f"pipa-edge data info {args.out}")
    return 0


def run_info(args: argparse.Namespace) -> int:
    from pipa_edge.data.synth.io import dataset_info
    from pipa_edge.log import next_command

    info = dataset_info(args.root)
    splits = info["splits"]
    rows = [["items", *[d["items"] for d in splits.values()]], ["frames", *[d["frames"] for d in splits.values()]]]
    rows += [[f"% {name}", *[f"{100 * d['class_fraction'][k]:.2f}" for d in splits.values()]]
             for k, name in enumerate(info["classes"])]
    _table(f"{args.root} (generator {info.get('version', '?')}, seed {info.get('seed', '?')}, "
           f"size {info.get('size', '?')})", ["", *splits], rows)
    next_command("pipa-edge train train/synth_source_only.yaml")
    return 0
