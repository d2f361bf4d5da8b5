"""``pipa-edge bench MODEL… [--backend …] [--imgsz …] [--iters N] [--warmup N|--warmup-s S] [--e2e SOURCE]``.

MODEL is a pipa-edge checkpoint (.pt → torch), .onnx (onnxruntime), .engine (tensorrt), .xml
(openvino), or an arch name such as ``segformer-b0`` (random init, synth11 classes). Every
MODEL × backend × size is one row; rows are timed interleaved. Also: ``--train`` (training-step
benchmark), ``--compare BEFORE.json AFTER.json`` and ``--suite`` (bench/suite.py → docs/benchmarks.md).
"""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="latency percentiles per backend/precision/size, per-stage e2e, training step",
                       description="Benchmark models: warm-up, N timed runs, p50/p90/p99, CoV, FPS, environment; "
                                   "table + JSON + CSV + histogram/CDF PNG.")
    p.add_argument("models", nargs="*", metavar="MODEL",
                   help="model files (.pt/.onnx/.engine/.xml) or arch names (segformer-b0, lraspp-mbv3, ...)")
    p.add_argument("--backend", action="append", metavar="NAME",
                   help="torch, onnxruntime, tensorrt, openvino (repeatable or comma list; default: by suffix)")
    p.add_argument("--imgsz", action="append", metavar="HxW",
                   help="input size(s) H, HxW (repeatable; default 512x1024 for arch/.pt, the file's own size else)")
    p.add_argument("--batch", type=int, default=1, help="frames per infer call (default 1)")
    p.add_argument("--iters", type=int, default=100, help="timed iterations per row (default 100)")
    w = p.add_mutually_exclusive_group()
    w.add_argument("--warmup", type=int, default=None, metavar="N", help="exactly N warm-up iterations")
    w.add_argument("--warmup-s", type=float, default=30.0, metavar="S",
                   help="warm up until stable (medians of two 5-run windows within 5%%), at most S s (default 30)")
    p.add_argument("--rounds", type=int, default=5, help="interleave rows in this many blocks (default 5)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--threads", type=int, default=None, help="intra-op threads (default: OMP_NUM_THREADS / library)")
    p.add_argument("--e2e", metavar="SOURCE", help="also run the real pipeline on SOURCE: per-stage ms, frame age")
    p.add_argument("--e2e-frames", type=int, default=100, metavar="N", help="frames for --e2e (default 100)")
    p.add_argument("--train", action="store_true", help="training step: source_only / mean_teacher / pipa")
    p.add_argument("--train-arch", default=None, help="arch for --train (default: first arch MODEL or segformer-b0)")
    p.add_argument("--train-imgsz", default=None, metavar="HxW", help="crop for --train (default 256x256)")
    p.add_argument("--train-batch", type=int, default=2)
    p.add_argument("--train-iters", type=int, default=10)
    p.add_argument("--adapt-set", action="append", default=[], metavar="KEY=VALUE",
                   help="AdaptConfig override for --train (e.g. sampler.kind=random)")
    p.add_argument("--compare", nargs=2, metavar=("BEFORE", "AFTER"), help="print after/before ratios of two JSONs")
    p.add_argument("--suite", action="store_true", help="run the project's suite (bench/suite.py)")
    p.add_argument("--out", default="runs/bench", help="output folder (default runs/bench)")
    p.add_argument("--name", default="bench", help="file stem of the JSON/CSV/PNG (default bench)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import shlex
    import sys

    if args.compare:
        from pipa_edge.bench.report import compare, print_compare

        before, after = args.compare
        print_compare(compare(before, after), before, after)
        return 0
    if args.suite:
        import runpy
        from pathlib import Path

        import pipa_edge
        from pipa_edge.errors import PipaError

        script = Path(pipa_edge.__file__).resolve().parents[1] / "bench" / "suite.py"
        if not script.is_file():
            raise PipaError(f"{script}: the benchmark suite ships with the source checkout; run it from there")
        old = sys.argv
        sys.argv = [str(script)]
        try:
            runpy.run_path(str(script), run_name="__main__")
        except SystemExit as e:
            return int(e.code or 0)
        finally:
            sys.argv = old
        return 0
    from pipa_edge.bench.api import bench

    bench(args.models, args.backend, args.imgsz, iters=args.iters, warmup=args.warmup, warmup_s=args.warmup_s,
          batch=args.batch, rounds=args.rounds, device=args.device, threads=args.threads, e2e=args.e2e,
          e2e_frames=args.e2e_frames, train=args.train, train_arch=args.train_arch, train_imgsz=args.train_imgsz,
          train_batch=args.train_batch, train_iters=args.train_iters, adapt_set=args.adapt_set, out_dir=args.out,
          name=args.name, command=" ".join(["pipa-edge"] + [shlex.quote(a) for a in sys.argv[1:]])
          if sys.argv[1:2] == ["bench"] else None)
    return 0
