"""``pipa-edge run [SOURCE] [OUTPUT] --model FILE`` — segment a camera/file/network stream.

jetson-inference habits: ``pipa-edge run camera0 display://0``, ``pipa-edge run video.mp4 out.mp4``,
``pipa-edge run rtp://@:5000 rtp://10.0.0.2:5001 --headless``. SOURCE defaults to ``test://``
(the embedded synthetic scene); OUTPUT to ``display://0`` when a display exists, else ``none``.
Python twin: :func:`pipa_edge.runtime.run_stream`.
"""

from __future__ import annotations

import argparse
import os

BUILTIN_MODELS = ("builtin:palette",)  # model-free stand-in for pipeline checks (see runtime/toy.py)


def add_parser(sub) -> None:
    p = sub.add_parser("run", help="run segmentation on a video stream (camera, file, RTSP/RTP, test://)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", nargs="?", default="test://",
                   help="camera0 | csi://0 | /dev/video0 | FILE/FOLDER/GLOB | rtsp://… | rtp://@:PORT | test://")
    p.add_argument("output", nargs="?", default=None,
                   help="display://0 | out.mp4 | out.mkv | rtp://HOST:PORT | FOLDER/ | none")
    p.add_argument("--model", required=True, help="model file (.pt, .onnx, .engine, …) or builtin:palette")
    p.add_argument("--backend", default=None, help="torch | onnxruntime | tensorrt | openvino (default: by suffix)")
    p.add_argument("--input-size", default=None, metavar="HxW",
                   help="model input size for checkpoints (default: the size the checkpoint records, e.g. 180x240)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for the backend")
    p.add_argument("--loop", action="store_true", help="restart file sources at the end")
    drop = p.add_mutually_exclusive_group()
    drop.add_argument("--drop", dest="drop", action="store_true", default=None,
                      help="always process the latest frame only (default for live sources)")
    drop.add_argument("--no-drop", dest="drop", action="store_false", help="process every frame (default for files)")
    p.add_argument("--viz", choices=("overlay", "mask", "side"), default="overlay")
    p.add_argument("--alpha", type=float, default=0.5, help="overlay opacity 0..1 (default 0.5)")
    p.add_argument("--no-legend", dest="legend", action="store_false", help="hide the class legend")
    p.add_argument("--no-smooth", dest="smooth", action="store_false", help="disable temporal smoothing")
    p.add_argument("--smooth-alpha", type=float, default=0.5, help="EMA weight of the newest frame (1 = no EMA)")
    p.add_argument("--hysteresis-delta", type=float, default=0.1,
                   help="a new class must beat the current one by this probability margin (0 = off)")
    p.add_argument("--hysteresis-frames", type=int, default=3, help="…or persist this many frames")
    p.add_argument("--motion", choices=("off", "on", "auto"), default="auto",
                   help="warp the smoothing state with optical flow before blending (auto: skip while the "
                        "view is static; docs/runtime.md)")
    p.add_argument("--keyframe", type=int, default=1, help="run the model every N frames (default 1)")
    p.add_argument("--stats-json", default=None, help="write the run summary here at exit")
    p.add_argument("--max-frames", type=int, default=None, help="stop after N frames")
    p.add_argument("--headless", action="store_true", help="never open a display window")
    p.add_argument("--quiet-stats", dest="log_stats", action="store_false", help="no per-second stats line")
    p.add_argument("--stats-interval", type=float, default=1.0, metavar="S",
                   help="seconds between stats lines (default 1; e.g. 30 under journald)")
    p.add_argument("--reconnect-limit", type=int, default=20, metavar="N",
                   help="live source: exit (code 2) after N failed reconnects in a row (default 20; -1 = forever)")
    p.add_argument("--reconnect-timeout", type=float, default=60.0, metavar="S",
                   help="live source: exit (code 2) after S seconds without a frame (default 60; 0 = forever)")
    p.add_argument("--labels-out", default=None, metavar="DIR",
                   help="also write raw class-index PNGs, DIR/<frame:06d>.png (uint8, 255 = none)")
    p.add_argument("--labels-size", choices=("frame", "model"), default="frame",
                   help="--labels-out at the frame's size (nearest upsampling, default) or the model's output size")
    p.add_argument("--collect", default=None, metavar="DIR",
                   help="keep selected frames + pseudo-labels in DIR (see docs/deploy.md)")
    p.add_argument("--collect-config", default=None, metavar="FILE", help="collector settings (YAML)")
    p.add_argument("--collect-set", dest="collect_set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a collector setting (repeatable)")
    p.add_argument("--adapt-every", type=int, default=None, metavar="N",
                   help="with --collect and an .onnx model: re-estimate BatchNorm statistics on the collection "
                        "every N saved frames and swap the model in between frames (pipa-edge adapt-bn)")
    p.set_defaults(func=run)


def _default_output(headless: bool) -> str:
    has_display = bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return "display://0" if has_display and not headless else "none"


def _parse_hw(text: str | None):
    if not text:
        return None
    from pipa_edge.errors import ConfigError

    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ConfigError(f"--input-size '{text}': expected HxW, e.g. 256x512") from None
    return (h, w)


def checkpoint_size(path: str) -> tuple[int, int]:
    """The input size a checkpoint records (:mod:`pipa_edge.models.input_size`); else
    :data:`~pipa_edge.export.config.FALLBACK_IMGSZ` with a warning."""
    from pipa_edge import log
    from pipa_edge.export.config import FALLBACK_IMGSZ
    from pipa_edge.models.input_size import checkpoint_input_size

    hw, origin = checkpoint_input_size(path)
    if hw is None:
        hw = tuple(FALLBACK_IMGSZ)
        log.warn("run", f"{path}: the checkpoint records no input size; running at {hw[0]}x{hw[1]} "
                        "(pass --input-size HxW)")
    else:
        log.stage("run", f"input size {hw[0]}x{hw[1]} ({origin})")
    return hw


def run(args) -> int:
    from pipa_edge.errors import ConfigError
    from pipa_edge.runtime.pipeline import run_stream

    output = args.output or _default_output(args.headless)
    if args.headless and output.startswith("display://"):
        output = "none"
    backend_opts = {}
    hw = _parse_hw(args.input_size)
    if hw:
        backend_opts["input_size"] = hw
    if args.threads:
        backend_opts["threads"] = args.threads
    model = args.model
    if (args.backend or "").lower() in ("torch", "pytorch") or model.lower().endswith((".pt", ".pth", ".ckpt")):
        # a checkpoint runs eagerly as the default export would: probabilities at the model's stride
        # (cheap filter; labels are upsampled only for display), at the size the checkpoint records
        backend_opts.update(output="probs", output_resolution="model")
        if not hw and model.lower().endswith((".pt", ".pth", ".ckpt")):
            backend_opts["input_size"] = checkpoint_size(model)
    if model in BUILTIN_MODELS:
        from pipa_edge.runtime.toy import PaletteBackend

        model = PaletteBackend(input_size=hw or (128, 256))
    elif model.startswith("builtin:"):
        raise ConfigError(f"--model '{model}': unknown built-in (known: {', '.join(BUILTIN_MODELS)})")
    run_stream(args.source, output, model, backend=args.backend, backend_opts=backend_opts, loop=args.loop,
               drop=args.drop, viz=args.viz, alpha=args.alpha, legend=args.legend, smooth=args.smooth,
               smooth_alpha=args.smooth_alpha, hysteresis_delta=args.hysteresis_delta,
               hysteresis_frames=args.hysteresis_frames, motion=args.motion, keyframe=args.keyframe,
               stats_json=args.stats_json,
               max_frames=args.max_frames, log_stats=args.log_stats, handle_signals=True, collect=args.collect,
               collect_config=args.collect_config, collect_set=args.collect_set, adapt_every=args.adapt_every,
               reconnect_limit=args.reconnect_limit, reconnect_timeout=args.reconnect_timeout,
               stats_interval=args.stats_interval, labels_out=args.labels_out,
               labels_size=args.labels_size)
    return 0
