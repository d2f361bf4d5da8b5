"""``pipa-edge eval CKPT|MODEL.onnx --data SPEC [--data SPEC ...] [--imgsz H W] [--mode slide --crop H W]``.

Scores at the model's size by default: the size the checkpoint records (its recipe's whole-image
eval size), or an exported model's deployed ``input_size`` — an ``.onnx`` (engine, OpenVINO) runs
through its runtime backend, so the number is the shipped artefact's number.

SPEC is ``TYPE:ROOT[:SPLIT]`` (e.g. ``camvid:../shared/data/camvid:dusk_train``) or a YAML file
with a dataset mapping. Writes ``<out>/<name>.json`` and ``<out>/<name>_iou.png`` per dataset.
``--video``: temporal consistency / label flip rate on sequences or video files instead
(``<out>/<name>_video.json``; :mod:`pipa_edge.train.video_eval`).
"""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="mIoU / confusion matrix / per-class IoU chart of a checkpoint",
                       description="Evaluate a pipa-edge checkpoint on labelled datasets.")
    p.add_argument("checkpoint", help="a pipa-edge checkpoint (final.pt / last.pt) or an exported model (.onnx, "
                                      ".engine, .xml) with its sidecar")
    p.add_argument("--data", action="append", required=True, metavar="SPEC",
                   help="TYPE:ROOT[:SPLIT] or a dataset YAML (repeatable)")
    p.add_argument("--imgsz", nargs=2, type=int, metavar=("H", "W"),
                   help="resize images (and labels) to H W (default: the model's recorded/deployed size)")
    p.add_argument("--backend", default=None,
                   help="exported models: onnxruntime | tensorrt | openvino (default: by suffix)")
    p.add_argument("--mode", choices=("whole", "slide"), default="whole", help="inference mode (default whole)")
    p.add_argument("--crop", nargs=2, type=int, metavar=("H", "W"), help="sliding window size (mode slide)")
    p.add_argument("--stride", nargs=2, type=int, metavar=("H", "W"), help="sliding window stride (default 2/3 crop)")
    p.add_argument("--miou", choices=("gt", "union", "all"), default="gt",
                   help="classes in the mean: present in GT (default), in GT or prediction, or all")
    p.add_argument("--limit", type=int, default=None, help="first N images only")
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="CPU threads (default: OMP_NUM_THREADS, else the usable CPUs; see docs/runtime.md)")
    p.add_argument("--out", default=None, help="output folder (default: <checkpoint folder>/eval)")
    p.add_argument("--video", action="store_true",
                   help="temporal metrics on sequences/videos: TC, label flip rate (+ mIoU where labelled)")
    p.add_argument("--flow", choices=("dis", "none"), default="dis",
                   help="--video: motion compensation with OpenCV DIS flow (default) or none (static camera)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from pipa_edge.config import validate
    from pipa_edge.threads import set_threads
    from pipa_edge.train.config import EvalConfig
    from pipa_edge.train.eval_api import evaluate_checkpoint

    set_threads(args.threads, use_torch=not str(args.checkpoint).lower().endswith(".onnx"))
    ecfg = validate(EvalConfig, {"mode": args.mode, "crop": args.crop, "stride": args.stride,
                                 "batch_size": args.batch_size, "miou_convention": args.miou}, where="eval options")
    out = args.out or str(Path(args.checkpoint).parent / "eval")
    if getattr(args, "video", False):
        from pipa_edge.train.video_eval import evaluate_video

        evaluate_video(args.checkpoint, args.data, out, imgsz=args.imgsz, device=args.device, limit=args.limit,
                       flow=args.flow)
        return 0
    evaluate_checkpoint(args.checkpoint, args.data, out, imgsz=args.imgsz, eval_cfg=ecfg, device=args.device,
                        limit=args.limit, num_workers=args.workers, backend=getattr(args, "backend", None))
    return 0
