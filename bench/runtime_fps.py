"""Runtime benchmark: ``pipa-edge run`` FPS vs the bare backend and the filter's share, DEFAULT export.

    OMP_NUM_THREADS=2 .venv/bin/python bench/runtime_fps.py                  # SegFormer-B0 + LR-ASPP
    OMP_NUM_THREADS=2 .venv/bin/python bench/runtime_fps.py --old-default    # + the pre-change export
    OMP_NUM_THREADS=1 .venv/bin/python bench/runtime_fps.py --model final.onnx --flips   # a given model

Per architecture: a random-init checkpoint recording ``--input-size`` as its size (random weights:
the timings are real, the labels are not) → ``pipa-edge export`` with **every default** (ONNX,
probabilities at model resolution, the checkpoint's size) → the onnxruntime backend with
``--threads`` threads. Then ``--rounds`` rounds, each one:

1. *bare*: ``backend.infer`` in a tight loop on the first ``--frames`` frames of the real dash-cam
   clip (decoded once through the runtime's own source, resized to the model size) → bare FPS;
2. *run*: ``run_stream(clip, none)`` on the same frames, its stats JSON read back → run FPS,
   ``temporal_pct_of_infer`` (the filter's share of inference) and ``infer_ms_mean``; once per
   ``--motion`` mode (default ``off auto``: ``auto`` is the run default since the motion-compensated
   filter, whose optical flow runs inside the filter step and is counted in its share).

Ratios are measured within one round (adjacent passes): ``run / bare`` FPS and the drift-free
*in-run efficiency* ``run FPS × mean infer time of the same run`` (1.0: the model never waits for
capture or output). The machine is shared: the load average is recorded per round and the spread
over rounds reported. ``--old-default`` adds the export as it was before (logits at input
resolution) for comparison; ``--flips`` the flip-rate pass (palette classifier, and ``--model``).
Writes ``docs/results/runtime_fps.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DEFAULT_VIDEO = REPO.parent / "shared" / "data" / "video" / "solidWhiteRight.mp4"
OLD_DEFAULT = {"output": "logits", "output_resolution": "input"}  # `export` defaults before issue 23


def export_default(arch: str, hw: tuple[int, int], out: Path, overrides: dict | None = None) -> Path:
    """Random-init ``arch`` checkpoint recording ``hw`` → ``export`` with the defaults (+ ``overrides``)."""
    import torch

    from pipa_edge.data.classes import SYNTH11
    from pipa_edge.export.config import ExportConfig
    from pipa_edge.export.exporter import export
    from pipa_edge.models.io import save_segmenter
    from pipa_edge.models.zoo import build_segmenter

    torch.manual_seed(0)
    ck = save_segmenter(out / f"{arch}.pt", build_segmenter(arch, SYNTH11).eval(), input_size=list(hw),
                        input_size_from="bench --input-size")
    name = f"{arch}{'-old' if overrides else ''}"
    cfg = ExportConfig.model_validate({"out_dir": str(out), "name": name, "bench_runs": 0, "parity": {"n": 2},
                                       **(overrides or {})})
    return export(ck, cfg).files["onnx"]


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


def bare_pass(backend, xs) -> dict:
    """``backend.infer`` alone in a tight loop (after 3 warm-up frames); wall and process CPU time."""
    for x in xs[:3]:
        backend.infer(x[None])
    t_inf = []
    c0 = time.process_time()
    for x in xs:
        t0 = time.perf_counter()
        out = backend.infer(x[None])
        t_inf.append(time.perf_counter() - t0)
    cpu = time.process_time() - c0
    return {"frames": len(xs), "fps": len(xs) / float(np.sum(t_inf)), "infer_ms_mean": 1000 * float(np.mean(t_inf)),
            "cpu_ms_per_frame": 1000 * cpu / len(xs), "output_shape": list(np.shape(out))}


def decode_pass(video: str, n: int, hw: tuple[int, int]) -> dict:
    """The run's capture alone: the runtime's source (GStreamer decode → RGB) + resize to the model
    size; wall and process CPU time per frame (every GStreamer thread counts) from the first frame
    to the ``n``-th (pipeline start-up excluded, as the run's steady-state FPS excludes it)."""
    import cv2

    from pipa_edge.runtime.sources import SourceEnded, open_source
    from pipa_edge.runtime.uri import parse_source

    src = open_source(parse_source(video), drop=False)
    src.open()
    got, c0, t0 = 0, None, None
    try:
        while got < n:
            try:
                f = src.read(2.0)
            except SourceEnded:
                break
            if f is None:
                continue
            cv2.resize(f.image, (hw[1], hw[0]), interpolation=cv2.INTER_LINEAR)
            got += 1
            if got == 1:
                c0, t0 = time.process_time(), time.perf_counter()
    finally:
        src.close()
    cpu, wall, k = time.process_time() - c0, time.perf_counter() - t0, max(1, got - 1)
    return {"frames": got, "cpu_ms_per_frame": 1000 * cpu / k, "wall_ms_per_frame": 1000 * wall / k}


def run_pass(backend, video: str, n: int, tmp: Path, motion: str) -> dict:
    """``run_stream(video, none)`` on the first ``n`` frames (none dropped); the run's stats JSON."""
    from pipa_edge.runtime import run_stream

    stats = tmp / "run_stats.json"
    opts = {} if motion == "default" else {"motion": motion}
    run_stream(video, "none", backend, max_frames=n, drop=False, log_stats=False, stats_json=str(stats), **opts)
    return json.loads(stats.read_text())


def flip_pass(backend, xs) -> dict:
    """Flip rate (fraction of pixels whose label changes frame to frame), raw argmax vs smoothed."""
    from pipa_edge.runtime.temporal import TemporalFilter, flip_rate

    raw, smooth = TemporalFilter(enabled=False), TemporalFilter()
    fr_raw, fr_s, prev_r, prev_s = [], [], None, None
    for x in xs:
        out = backend.infer(x[None])
        r, s = raw.update(out, backend.meta.output), smooth.update(out, backend.meta.output)
        if prev_r is not None:
            fr_raw.append(flip_rate(prev_r, r))
            fr_s.append(flip_rate(prev_s, s))
        prev_r, prev_s = r, s
    return {"frames": len(xs), "backend": backend.describe(), "flip_rate_raw": float(np.mean(fr_raw)),
            "flip_rate_smoothed": float(np.mean(fr_s))}


SPIN = {"default": None, "off": False, "on": True}  # --spin: onnxruntime's intra-op spinning (ort_backend)


def bench_model(label: str, path: Path, frames, args, tmp: Path, motion: str = "off",
                spin: str = "default") -> dict:
    """Rounds of bare + run on one model. With ``spin`` not ``default``, each round also times the
    bare loop of a default-options backend and the ratio's denominator is the faster of the two bare
    loops (so a setting that slows the bare model cannot raise its own ratio)."""
    from pipa_edge.runtime.backends import load_backend

    opts = {"threads": args.threads}
    if path.suffix.lower() in (".pt", ".pth", ".ckpt"):  # a checkpoint runs as `pipa-edge run` runs it
        from pipa_edge.cli.run import checkpoint_size

        opts.update(output="probs", output_resolution="model",
                    input_size=args.hw if args.input_size_given else checkpoint_size(str(path)))
    backend = load_backend(path, backend=args.backend, **opts, **({"spin": SPIN[spin]} if spin != "default" else {}))
    ref = load_backend(path, backend=args.backend, **opts) if spin != "default" else None
    xs = resize_all(backend, frames)[: args.frames]
    rounds = []
    for i in range(args.rounds):
        load0 = os.getloadavg()[0]
        bare = bare_pass(backend, xs)
        bare_ref = bare_pass(ref, xs) if ref is not None else None
        best = max(bare["fps"], bare_ref["fps"]) if bare_ref else bare["fps"]
        video = f"{args.video}?decode_threads={args.decode_threads}" if args.decode_threads else args.video
        dec = decode_pass(video, args.frames, backend.meta.input_size)
        run = run_pass(backend, video, args.frames, tmp, motion)
        rounds.append({"bare_fps": best, "bare_fps_this_setting": bare["fps"],
                       "bare_fps_default_options": bare_ref["fps"] if bare_ref else bare["fps"],
                       "bare_infer_ms_mean": bare["infer_ms_mean"], "run_fps": run["fps"],
                       "run_infer_ms_mean": run["infer_ms_mean"], "ratio": run["fps"] / best,
                       # capture's CPU per frame vs inference's: if the bare loop keeps every core busy,
                       # decoding must take its CPU from inference and run / bare cannot exceed this
                       "decode_cpu_ms": dec["cpu_ms_per_frame"], "bare_cpu_ms": bare["cpu_ms_per_frame"],
                       "bare_core_use": bare["cpu_ms_per_frame"] / bare["infer_ms_mean"],
                       "cpu_bound_ratio": bare["cpu_ms_per_frame"] / (bare["cpu_ms_per_frame"] + dec["cpu_ms_per_frame"]),
                       "efficiency": run["fps"] * run["infer_ms_mean"] / 1000.0,
                       "filter_pct_of_infer": run["temporal_pct_of_infer"], "temporal_ms_p50": run["temporal_ms_p50"],
                       # typical frame: medians (the mean-based share above also carries preemption spikes under load)
                       "filter_p50_pct_of_infer_p50": 100 * run["temporal_ms_p50"] / run["infer_ms_p50"],
                       "motion_ms_p50": run.get("motion_ms_p50"),
                       "loadavg_1min": [round(load0, 2), round(os.getloadavg()[0], 2)], "run_frames": run["frames"]})
        r = rounds[-1]
        print(f"  {label} round {i + 1}: bare {r['bare_fps']:.2f} fps, run {r['run_fps']:.2f} fps, ratio "
              f"{r['ratio']:.3f}, in-run eff. {r['efficiency']:.3f}, filter {r['filter_pct_of_infer']:.2f} %, "
              f"decode {r['decode_cpu_ms']:.1f} CPU-ms/frame, bare {r['bare_cpu_ms']:.1f} CPU-ms/frame, "
              f"CPU-bound ratio {r['cpu_bound_ratio']:.3f}, load {r['loadavg_1min']}", flush=True)
    if ref is not None:
        ref.close()
    res = {"label": label, "motion": motion, "spin": spin, "file": path.name, "backend": backend.describe(),
           "output": backend.meta.output, "output_resolution": backend.meta.output_resolution,
           "output_shape": bare["output_shape"], "rounds": rounds}
    for k in ("ratio", "efficiency", "filter_pct_of_infer", "filter_p50_pct_of_infer_p50", "bare_fps", "run_fps",
              "decode_cpu_ms", "bare_cpu_ms", "bare_core_use", "cpu_bound_ratio"):
        v = [r[k] for r in rounds]
        res[k] = {"median": float(np.median(v)), "min": float(np.min(v)), "max": float(np.max(v))}
    if args.flips and args.model:
        res["flips"] = flip_pass(backend, resize_all(backend, frames))
    backend.close()
    return res


def table(results: list[dict], args) -> list[str]:
    def spread(d, fmt):
        return f"{fmt.format(d['median'])} ({fmt.format(d['min'])}–{fmt.format(d['max'])})"

    lines = ["| model (export) | output | bare FPS | run FPS | run / bare | in-run eff. | filter % of infer (sum) "
             "| filter p50 / infer p50 % | decode CPU ms | bare CPU ms (cores busy) | CPU-bound ratio |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['label']} | {r['output']} {'×'.join(map(str, r['output_shape'][-2:]))} | "
                     f"{spread(r['bare_fps'], '{:.1f}')} | {spread(r['run_fps'], '{:.1f}')} | "
                     f"{spread(r['ratio'], '{:.3f}')} | {spread(r['efficiency'], '{:.3f}')} | "
                     f"{spread(r['filter_pct_of_infer'], '{:.2f}')} | "
                     f"{spread(r['filter_p50_pct_of_infer_p50'], '{:.2f}')} | {r['decode_cpu_ms']['median']:.1f} | "
                     f"{r['bare_cpu_ms']['median']:.1f} ({r['bare_core_use']['median']:.2f}) | "
                     f"{spread(r['cpu_bound_ratio'], '{:.3f}')} |")
    return lines


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--arch", nargs="+", default=["segformer-b0", "lraspp-mbv3"])
    ap.add_argument("--model", default=None, help="bench this model file instead of random-init default exports")
    ap.add_argument("--backend", default=None)
    ap.add_argument("--video", default=str(DEFAULT_VIDEO))
    ap.add_argument("--frames", type=int, default=120, help="frames per pass")
    ap.add_argument("--input-size", default=None,
                    help="the size the random-init checkpoints record (default 256x512); for a --model .pt: "
                         "overrides the size it records")
    ap.add_argument("--threads", type=int, default=2, help="backend threads")
    ap.add_argument("--rounds", type=int, default=3, help="bare + run rounds per model (spread reported)")
    ap.add_argument("--old-default", action="store_true", help="also bench the pre-change export (logits @ input)")
    ap.add_argument("--flips", action="store_true", help="flip-rate pass (palette classifier; --model)")
    ap.add_argument("--motion", nargs="+", default=["off", "auto"],
                    help="run's motion compensation per pass (runtime/motion.py; 'default': the run default)")
    ap.add_argument("--spin", nargs="+", default=["default"], choices=list(SPIN),
                    help="onnxruntime intra-op spinning per pass (default: the backend's default)")
    ap.add_argument("--decode-threads", type=int, default=0,
                    help="run passes: cap the software H.264 decoder's threads (URI option decode_threads; 0 = auto)")
    ap.add_argument("--json", default=str(REPO / "docs" / "results" / "runtime_fps.json"))
    args = ap.parse_args(argv)
    args.input_size_given = args.input_size is not None
    hw = args.hw = tuple(int(v) for v in (args.input_size or "256x512").lower().split("x"))
    if not Path(args.video).exists():
        print(f"video not found: {args.video} (the real clip lives in ../shared/data)", file=sys.stderr)
        return 2
    results = []
    with tempfile.TemporaryDirectory() as tmpd:
        tmp = Path(tmpd)
        sp = [(m, s) for m in args.motion for s in args.spin]
        tag = {s: "" if s == "default" else f", spin {s}" for s in args.spin}
        todo = [(f"{Path(args.model).name}{tag[s]}", Path(args.model), m, s) for m, s in sp] if args.model else []
        for arch in ([] if args.model else args.arch):  # export before GStreamer runs: onnxsim aborts after it
            path = export_default(arch, hw, tmp)
            todo += [(f"{arch} (default export, motion {m}{tag[s]})", path, m, s) for m, s in sp]
            if args.old_default:  # the filter as issue 23 measured it: no motion compensation
                todo.append((f"{arch} (old default export, motion off)", export_default(arch, hw, tmp, OLD_DEFAULT),
                             "off", "default"))
        frames = read_frames(args.video, None)
        for label, path, motion, spin in todo:
            results.append(bench_model(label, path, frames, args, tmp, motion, spin))
    flips = {}
    if args.flips:
        from pipa_edge.runtime.toy import PaletteBackend

        pal = PaletteBackend(input_size=(135, 240), stride=2)  # per-pixel colour classifier: a noisy real predictor
        flips["palette"] = flip_pass(pal, resize_all(pal, frames))
    res = {"command": "python bench/runtime_fps.py " + " ".join(argv if argv is not None else sys.argv[1:]),
           "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "host": platform.node(),
           "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
           "weights": "given model" if args.model else "random init (timings real, labels not)",
           "video": Path(args.video).name, "decode_threads": args.decode_threads, "frames": args.frames,
           "input_size": list(hw), "threads": args.threads,
           "results": results, "flips": flips}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(res, indent=2) + "\n")
    print(f"{res['video']}, {args.frames} frames, {hw[0]}x{hw[1]}, {args.threads} threads, median (min–max) of "
          f"{args.rounds} rounds")
    print("\n".join(table(results, args)))
    for name, fl in flips.items():
        print(f"flip rate {name}: raw {100 * fl['flip_rate_raw']:.2f} % → smoothed "
              f"{100 * fl['flip_rate_smoothed']:.2f} %")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
