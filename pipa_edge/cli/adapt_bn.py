"""``pipa-edge adapt-bn MODEL.onnx --frames DIR|COLLECT_DIR|VIDEO [--out NEW.onnx] [--engine]``.

On the device, without torch: re-estimates an exported model's BatchNorm statistics on frames of
the deployment domain and writes a new ONNX (+ sidecar, + engine with ``--engine``);
:mod:`pipa_edge.runtime.bn_adapt`. The workstation twin on a checkpoint is ``pipa-edge adabn``.
"""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("adapt-bn", help="on the device: re-estimate an ONNX model's BatchNorm statistics on "
                                        "unlabelled frames (no torch, no training)",
                       description="Run the export's statistics graph over frames of the deployment domain "
                                   "(a folder of images, a `pipa-edge run --collect` folder, or a video), "
                                   "re-fold the new BatchNorm statistics into the model with NumPy and write a "
                                   "new ONNX + sidecar. The input model is never overwritten.")
    p.add_argument("model", help="an ONNX model exported by `pipa-edge export` (with its .bnadapt.npz and "
                                 ".bnstats.onnx next to it)")
    p.add_argument("--frames", required=True, metavar="SRC", help="folder of images, collection folder, or video file")
    p.add_argument("--out", default=None, help="new model (default: <model>_adapted.onnx next to it)")
    p.add_argument("--num-frames", type=int, default=200, help="frames to use (default 200, evenly spaced)")
    p.add_argument("--batch-size", type=int, default=8, help="frames per statistics batch (default 8, as adabn)")
    p.add_argument("--min-frames", type=int, default=8, help="refuse with fewer frames (default 8)")
    p.add_argument("--engine", action="store_true", help="also rebuild the TensorRT engine from the new ONNX "
                                                         "(as `pipa-edge export NEW.onnx --format engine`)")
    p.add_argument("--precision", choices=("fp32", "fp16", "int8"), default="fp16",
                   help="engine precision with --engine (default fp16; int8 calibrates on --frames)")
    p.add_argument("--providers", default=None, help="onnxruntime execution providers (default: CUDA if "
                                                     "present, else CPU)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pipa_edge.log import next_command, ok
    from pipa_edge.runtime.bn_adapt import adapt_bn_onnx

    rep = adapt_bn_onnx(args.model, args.frames, args.out, num_frames=args.num_frames, batch_size=args.batch_size,
                        min_frames=args.min_frames, providers=args.providers)
    if args.engine:
        from pathlib import Path

        from pipa_edge.export.bn_adapt import build_engine_for

        rep["engine"] = str(build_engine_for(Path(rep["out"]), args.precision, args.frames))
    c, f = rep["change"], rep["frames"]
    lc = rep["labels_changed"]
    ok("adapt-bn", f"{f['count']} frames ({rep['batches']} batches, {rep['seconds']:.1f}s, sha {f['sha12']}); "
                   f"{c['layers']} BN layer(s): mean |Δμ| {c['mean_abs_dmean_sd']:.3f}σ, mean |Δlog σ²| "
                   f"{c['mean_abs_dlogvar']:.3f}" + ("" if lc is None else f"; labels changed on {100 * lc:.1f}% "
                                                     "of the first batch's pixels") + f" → {rep['out']}")
    if rep["engine"]:
        ok("adapt-bn", f"engine → {rep['engine']}")
    next_command(f"pipa-edge run test:// --model {rep['engine'] or rep['out']}")
    return 0
