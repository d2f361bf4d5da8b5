"""``pipa-edge export CKPT --format onnx|engine|openvino [--precision ...] [--imgsz H W] [--profile ...]``.

Two routes: a ``.pt`` checkpoint (workstation, needs torch: :func:`pipa_edge.export.exporter.export`)
and an exported ``.onnx`` + sidecar → engine/OpenVINO (device, torch-free:
:func:`pipa_edge.export.from_onnx.export_from_onnx`).
"""

from __future__ import annotations

import argparse

HELP = ("export a checkpoint's segmenter to ONNX / TensorRT engine / OpenVINO, with parity and accuracy gates; "
        "or build the engine / OpenVINO IR from an exported .onnx on the device")
# flags that shape the graph: a checkpoint export only (an .onnx fixes them; its sidecar records them)
CKPT_ONLY = {"imgsz": "--imgsz", "batch": "--batch", "dynamic": "--dynamic", "input_format": "--input-format",
             "output": "--output", "output_resolution": "--output-resolution", "simplify": "--no-simplify",
             "temporal": "--stateful", "gate_data": "--gate-data", "max_drop": "--max-drop",
             "bench_runs": "--bench-runs"}


def add_parser(sub) -> None:
    p = sub.add_parser("export", help=HELP, description=HELP,
                       epilog="examples:\n  pipa-edge export runs/x/best.pt --format onnx --imgsz 512 1024\n"
                              "  pipa-edge export best.pt --profile export/jetson-orin.yaml\n"
                              "  pipa-edge export best.pt --precision int8 --calib frames/ --gate-data camvid/dusk\n"
                              "  pipa-edge export model.onnx --format engine --precision fp16     (on the device)\n"
                              "  pipa-edge export model.onnx --format engine --precision int8 --calib runs/collect",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", metavar="MODEL",
                   help="pipa-edge checkpoint (.pt), or an exported .onnx + sidecar (→ --format engine|openvino)")
    p.add_argument("--profile", default=None, help="device profile YAML (export/<device>.yaml); flags override it")
    p.add_argument("--format", choices=("onnx", "engine", "openvino"), default=None)
    p.add_argument("--precision", choices=("fp32", "fp16", "int8"), default=None)
    p.add_argument("--imgsz", type=int, nargs=2, metavar=("H", "W"), default=None,
                   help="input size (default: the size the checkpoint records, its recipe's eval size)")
    p.add_argument("--batch", type=int, default=None)
    p.add_argument("--dynamic", action="store_true", default=None, help="dynamic batch/H/W axes")
    p.add_argument("--input-format", choices=("float_nchw", "uint8_nhwc"), default=None,
                   help="uint8_nhwc = preprocessing inside the graph (raw RGB frames in)")
    p.add_argument("--output", choices=("logits", "probs", "labels"), default=None,
                   help="default probs (what the runtime's filter uses); labels = argmax in the graph, uint8")
    p.add_argument("--output-resolution", choices=("model", "input"), default=None,
                   help="model (default) = output stride; input = upsampled in the graph")
    p.add_argument("--no-simplify", dest="simplify", action="store_false", default=None)
    p.add_argument("--frames", default=None, help="folder of real frames for the parity gate (default: synthetic)")
    p.add_argument("--calib", default=None,
                   help="INT8 calibration frames: a folder of images or a `pipa-edge run --collect` folder")
    p.add_argument("--calib-n", type=int, default=None, help="number of calibration frames")
    p.add_argument("--gate-data", default=None, help="labelled folder (images/ + labels/) for the INT8 mIoU gate")
    p.add_argument("--max-drop", type=float, default=None, help="allowed INT8 mIoU drop (0.03 = 3 points)")
    p.add_argument("--stateful", dest="temporal", action="store_true", default=None,
                   help="also export <name>.stateful.onnx: temporal smoothing inside the graph (frame + state in, "
                        "labels + state out); tune with --set temporal.alpha=0.5 temporal.delta=0.1 temporal.persist=3")
    p.add_argument("--out", default=None, help="output folder (default: next to the checkpoint)")
    p.add_argument("--name", default=None, help="output file stem (default: checkpoint stem)")
    p.add_argument("--bench-runs", type=int, default=None, help="timed runs per format for the table (0 = skip)")
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="CPU threads (default: OMP_NUM_THREADS, else the usable CPUs; see docs/runtime.md)")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="override any ExportConfig key, e.g. --set tensorrt.workspace_gb=4")
    p.set_defaults(func=run)


def config_from_args(args):
    from pipa_edge.export.config import load_export_config

    overrides = {"format": args.format, "precision": args.precision,
                 "imgsz": tuple(args.imgsz) if args.imgsz else None, "batch": args.batch, "dynamic": args.dynamic,
                 "input_format": args.input_format, "output": args.output,
                 "output_resolution": args.output_resolution, "simplify": args.simplify, "out_dir": args.out,
                 "name": args.name, "bench_runs": args.bench_runs, "parity.frames": args.frames,
                 "int8.calib": args.calib, "int8.n": args.calib_n, "int8.gate_data": args.gate_data,
                 "int8.max_miou_drop": args.max_drop,
                 "temporal.enabled": args.temporal}
    return load_export_config(args.profile, overrides, tuple(args.sets))


def run(args) -> int:
    from pathlib import Path

    from pipa_edge.errors import ConfigError

    from pipa_edge.threads import set_threads

    suffix = Path(args.checkpoint).suffix.lower()
    set_threads(getattr(args, "threads", None), use_torch=suffix in (".pt", ".pth", ".ckpt"))
    if suffix == ".onnx":
        given = [flag for key, flag in CKPT_ONLY.items()
                 if getattr(args, key, None) is not None and (getattr(args, key) is not False or key == "simplify")]
        if given:
            raise ConfigError(f"{args.checkpoint}: {', '.join(given)} shape the graph at checkpoint export; an "
                              ".onnx keeps the settings its sidecar records")
        from pipa_edge.export.from_onnx import export_from_onnx

        export_from_onnx(args.checkpoint, config_from_args(args))
        return 0
    if suffix not in (".pt", ".pth", ".ckpt"):
        raise ConfigError(f"{args.checkpoint}: export expects a .pt checkpoint or an exported .onnx, not a '{suffix}' file")
    from pipa_edge.export.exporter import export

    export(args.checkpoint, config_from_args(args))
    return 0
