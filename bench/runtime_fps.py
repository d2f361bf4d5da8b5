"""Runtime benchmark: end-to-end FPS of ``pipa-edge run`` vs the bare backend, filter cost, flip rate.

    OMP_NUM_THREADS=1 .venv/bin/python bench/runtime_fps.py [--model FILE] [--video PATH] [--frames N]

1. Decode the clip once through the runtime's own capture (same frames, same resize) and time
   ``backend.infer`` alone → *bare FPS*; on the same outputs time the temporal filter (softmax +
   EMA + hysteresis) → *filter cost in % of inference*; count label flips frame to frame with and
   without smoothing → *flip rate* (fraction of pixels whose label changes between frames).
2. ``run_stream(video, OUTPUT)`` on the same first N frames (no frame dropped) → *end-to-end FPS*
   (steady state: first to last output frame), headless (``none``) and encoding an mp4.

Targets (docs/runtime.md): e2e/bare ≥ 0.95 headless, filter ≤ 3 % of inference. On a shared
CPU the load drifts between passes, so besides the ratio to a separate bare run the bench reports
the *in-run efficiency*: e2e FPS × mean ``backend.infer`` time measured inside the same run
(1.0 = the model never waits for capture or output). Without
``--model`` an *untrained* LR-ASPP MobileNetV3 is used (random init): FPS numbers are real, flip
rates then describe the filter on a noisy predictor, not on a trained model — rerun with a
checkpoint for those. Writes docs/runtime_fps.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DEFAULT_VIDEO = REPO.parent / "shared" / "data" / "video" / "solidWhiteRight.mp4"


def make_backend(args):
    if args.model:
        from pipa_edge.runtime.backends import load_backend

        opts = {"threads": args.threads, "output_resolution": "model"}  # ignored by exported graphs
        if args.input_size:
            opts["input_size"] = args.hw
        return load_backend(args.model, backend=args.backend, **opts), args.model
    import torch

    from pipa_edge.data.classes import SYNTH11
    from pipa_edge.models.zoo import build_segmenter
    from pipa_edge.runtime.backends.torch_backend import TorchBackend

    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    seg = build_segmenter(args.arch, SYNTH11).eval()
    backend = TorchBackend(segmenter=seg, input_size=args.hw, output_resolution="model")
    return backend, f"untrained {args.arch} (random init)"


def read_frames(video: str, n: int | None) -> list[np.ndarray]:
    from pipa_edge.runtime.sources import SourceEnded, open_source
    from pipa_edge.runtime.uri import parse_source

    src = open_source(parse_source(video), drop=False)
    src.open()
    frames = []
    try:
        while n is None or len(frames) < n:
            try:
                f = src.read(2.0)
            except SourceEnded:
                break
            if f is not None:
                frames.append(f.image)
    finally:
        src.close()
    return frames


def resize_all(backend, frames):
    import cv2

    mh, mw = backend.meta.input_size
    return [cv2.resize(f, (mw, mh), interpolation=cv2.INTER_LINEAR) for f in frames]


def bare_pass(backend, xs, args) -> dict:
    """Time ``backend.infer`` alone on the first N frames, and the temporal filter on its outputs."""
    from pipa_edge.runtime.temporal import TemporalFilter

    xs = xs[: args.frames]
    for x in xs[:3]:  # warm-up
        backend.infer(x[None])
    smooth = TemporalFilter(args.smooth_alpha, args.delta, args.persist)
    t_inf, t_filt = [], []
    for x in xs:
        t0 = time.perf_counter()
        out = backend.infer(x[None])
        t1 = time.perf_counter()
        smooth.update(out, backend.meta.output)
        t_inf.append(t1 - t0)
        t_filt.append(time.perf_counter() - t1)
    return {"frames": len(xs), "fps": len(xs) / float(np.sum(t_inf)), "infer_ms_p50": 1000 * float(np.median(t_inf)),
            "filter_ms_p50": 1000 * float(np.median(t_filt)),
            "filter_pct_of_infer": 100 * float(np.sum(t_filt) / np.sum(t_inf)), "output_shape": list(np.shape(out))}


def flip_pass(backend, xs, args) -> dict:
    """Flip rate (fraction of pixels whose label changes frame to frame) with and without smoothing."""
    from pipa_edge.runtime.temporal import TemporalFilter, flip_rate

    raw, smooth = TemporalFilter(enabled=False), TemporalFilter(args.smooth_alpha, args.delta, args.persist)
    fr_raw, fr_s, prev_r, prev_s = [], [], None, None
    for x in xs:
        out = backend.infer(x[None])
        r, s = raw.update(out, backend.meta.output), smooth.update(out, backend.meta.output)
        if prev_r is not None:
            fr_raw.append(flip_rate(prev_r, r))
            fr_s.append(flip_rate(prev_s, s))
        prev_r, prev_s = r, s
    return {"frames": len(xs), "backend": backend.describe(), "flip_rate_raw": float(np.mean(fr_raw)),
            "flip_rate_smoothed": float(np.mean(fr_s)),
            "reduction": 1.0 - float(np.mean(fr_s)) / max(1e-12, float(np.mean(fr_raw)))}


def e2e_pass(backend, video, output, args) -> dict:
    from pipa_edge.runtime import run_stream

    s = run_stream(video, output, backend, max_frames=args.frames, drop=False, smooth_alpha=args.smooth_alpha,
                   hysteresis_delta=args.delta, hysteresis_frames=args.persist, log_stats=False)
    return s.to_dict()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None)
    ap.add_argument("--backend", default=None)
    ap.add_argument("--arch", default="lraspp-mbv3")
    ap.add_argument("--video", default=str(DEFAULT_VIDEO))
    ap.add_argument("--frames", type=int, default=120, help="frames for the FPS comparison")
    ap.add_argument("--input-size", default="256x512")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=2, help="alternating bare/e2e rounds (median)")
    ap.add_argument("--smooth-alpha", type=float, default=0.5)
    ap.add_argument("--delta", type=float, default=0.1)
    ap.add_argument("--persist", type=int, default=3)
    ap.add_argument("--json", default=str(REPO / "docs" / "runtime_fps.json"))
    args = ap.parse_args(argv)
    args.hw = tuple(int(v) for v in args.input_size.lower().split("x"))
    if not Path(args.video).exists():
        print(f"video not found: {args.video} (the real clip lives in ../shared/data)", file=sys.stderr)
        return 2
    backend, model_desc = make_backend(args)
    frames = read_frames(args.video, None)
    xs = resize_all(backend, frames)
    bares, nones = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.rounds):  # alternate: the shared CPU's load drifts
            bares.append(bare_pass(backend, xs, args))
            nones.append(e2e_pass(backend, args.video, "none", args))
        e2e_mp4 = e2e_pass(backend, args.video, str(Path(tmp) / "bench.mp4"), args)
    bare = sorted(bares, key=lambda r: r["fps"])[len(bares) // 2]
    e2e_none = sorted(nones, key=lambda r: r["fps"])[len(nones) // 2]
    flips = {}
    if args.model:
        flips["model"] = flip_pass(backend, xs, args)
    from pipa_edge.runtime.toy import PaletteBackend

    pal = PaletteBackend(input_size=(135, 240), stride=2)  # per-pixel colour classifier: a noisy real predictor
    flips["palette"] = flip_pass(pal, resize_all(pal, frames), args)
    res = {"command": "python bench/runtime_fps.py " + " ".join(argv if argv is not None else sys.argv[1:]),
           "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "host": platform.node(),
           "cpu": platform.processor() or platform.machine(), "model": model_desc, "backend": backend.describe(),
           "video": Path(args.video).name, "bare_rounds": [r["fps"] for r in bares],
           "e2e_none_rounds": [r["fps"] for r in nones], "bare": bare, "e2e_none": e2e_none, "e2e_mp4": e2e_mp4,
           "ratio_none": e2e_none["fps"] / bare["fps"], "ratio_mp4": e2e_mp4["fps"] / bare["fps"],
           # drift-free: e2e FPS over the backend's own rate measured inside the same run
           "efficiency_none": e2e_none["fps"] * e2e_none["infer_ms_mean"] / 1000.0,
           "efficiency_mp4": e2e_mp4["fps"] * e2e_mp4["infer_ms_mean"] / 1000.0, "flips": flips}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(res, indent=2) + "\n")
    rows = [("bare backend FPS", f"{bare['fps']:.2f}", f"median of {args.rounds}, {bare['frames']} frames"),
            ("e2e FPS, output none", f"{e2e_none['fps']:.2f}", f"ratio {res['ratio_none']:.3f} vs the bare run"),
            ("e2e FPS, output mp4", f"{e2e_mp4['fps']:.2f}", f"ratio {res['ratio_mp4']:.3f} vs the bare run"),
            ("in-run efficiency, none", f"{res['efficiency_none']:.3f}",
             "e2e FPS × mean infer time of the same run (target ≥ 0.95)"),
            ("in-run efficiency, mp4", f"{res['efficiency_mp4']:.3f}", "x264 shares the 2 cores with the model"),
            ("inference p50 ms", f"{bare['infer_ms_p50']:.1f}", f"output {bare['output_shape']}"),
            ("temporal filter p50 ms", f"{bare['filter_ms_p50']:.2f}",
             f"{bare['filter_pct_of_infer']:.2f} % of inference (target ≤ 3 %)"),
            ("e2e latency p50/p99 ms", f"{e2e_none['latency_ms_p50']:.0f}/{e2e_none['latency_ms_p99']:.0f}",
             "file source, no drop: includes queueing")]
    for name, fl in flips.items():
        rows.append((f"flip rate raw ({name})", f"{100 * fl['flip_rate_raw']:.2f} %", f"{fl['frames']} frames"))
        rows.append((f"flip rate smoothed ({name})", f"{100 * fl['flip_rate_smoothed']:.2f} %",
                     f"-{100 * fl['reduction']:.0f} %, alpha {args.smooth_alpha}, delta {args.delta}, k {args.persist}"))
    print(f"model: {model_desc} — {backend.describe()} — {res['video']}")
    for name, val, note in rows:
        print(f"  {name:<28} {val:>12}  {note}")
    print(f"wrote {args.json}")
    backend.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
