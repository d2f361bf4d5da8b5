"""Per-stage host latency through the real pipeline, and end-to-end frame age (``--e2e SOURCE``).

Three passes over the same source, all through the runtime's own components:

1. **decode** — the runtime's :class:`~pipa_edge.runtime.sources.Source` for SOURCE read frame by
   frame (file sources only: a live camera's read time is its frame interval, not decode).
2. **pipeline** — :func:`pipa_edge.runtime.pipeline.run_stream` on SOURCE with the model, headless
   by default; its :class:`~pipa_edge.runtime.stats.RunSummary` gives preprocess (resize),
   inference, temporal filter and render (overlay) p50, end-to-end latency p50/p99 (capture
   timestamp → frame written to the sink), frame age at inference start and output FPS. The
   three runtime threads overlap, so stage times do not add up to the latency.
3. **encode** — the decoded frames written through the runtime's H.264 file sink
   (:func:`~pipa_edge.runtime.sinks.open_sink`); amortised ms/frame = (all writes + EOS flush) / n,
   since the encoder runs asynchronously behind ``appsrc``.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from pipa_edge.bench.stats import LatencyStats
from pipa_edge.errors import BackendUnavailable, PipaError

STAGES = ("decode", "preprocess", "inference", "temporal_filter", "postprocess_overlay", "encode")


def _runtime():
    try:
        from pipa_edge.runtime import pipeline, sinks, sources, uri
    except ImportError as e:
        raise BackendUnavailable(f"--e2e: the runtime is not available ({e})") from None
    return pipeline, sources, sinks, uri


def decode_pass(source: str, max_frames: int = 100, keep: int = 60) -> tuple[list[float], list, float]:
    """ms per ``Source.read`` for a file source; returns (samples, kept frames, fps)."""
    _pipeline, sources, _sinks, uri = _runtime()
    spec = uri.parse_source(source)
    if spec.live:
        return [], [], 0.0
    src = sources.open_source(spec, drop=False)
    samples, frames = [], []
    src.open()
    try:
        while len(samples) < max_frames:
            t0 = time.perf_counter_ns()
            try:
                f = src.read(5.0)
            except sources.SourceEnded:
                break
            dt = (time.perf_counter_ns() - t0) / 1e6
            if f is None:
                continue
            samples.append(dt)
            if len(frames) < keep:
                frames.append(f.image)
        fps = float(getattr(src, "fps", 0.0) or 0.0)
    finally:
        src.close()
    return samples, frames, fps


def encode_pass(frames: list, fps: float, workdir: str | Path) -> float | None:
    """Amortised ms/frame of the runtime's H.264 mp4 sink on ``frames`` (None when unavailable)."""
    if not frames:
        return None
    _pipeline, _sources, sinks, uri = _runtime()
    out = Path(workdir) / "encode_probe.mp4"
    try:
        sink = sinks.open_sink(uri.parse_output(str(out)))
        sink.open(frames[0].shape[:2], fps or 25.0)
    except PipaError:
        return None
    t0 = time.perf_counter_ns()
    for img in frames:
        sink.write(img)
    sink.close()
    return (time.perf_counter_ns() - t0) / 1e6 / len(frames)


def bench_stages(source: str, model, *, max_frames: int = 100, output: str | None = None, backend: str | None = None,
                 smooth: bool = True, workdir: str | Path | None = None, encode: bool = True,
                 drop: bool | None = None) -> dict:
    """Per-stage ms and end-to-end frame age for ``model`` (a Backend or a model file) on ``source``.

    ``drop`` is the runtime's: ``None`` = live sources keep only the latest frame, files queue every
    frame (so on a file slower than the model, frame age includes queueing).
    """
    from pipa_edge.bench.report import preload_matplotlib

    preload_matplotlib()  # before GStreamer loads: the plot written afterwards would crash otherwise
    pipeline, _sources, _sinks, _uri = _runtime()
    work = Path(workdir or tempfile.mkdtemp(prefix="pipa-bench-e2e-"))
    work.mkdir(parents=True, exist_ok=True)
    dec, frames, fps = decode_pass(source, max_frames)
    summary = pipeline.run_stream(source, output, model=model, backend=backend, max_frames=max_frames,
                                  log_stats=False, drop=drop, smooth=smooth)
    enc = encode_pass(frames, fps, work) if encode else None
    s = summary.to_dict()
    dec_stats = LatencyStats.from_samples(dec).to_dict() if dec else None
    stages = {
        "decode": {"p50_ms": dec_stats["p50"] if dec_stats else None, "p99_ms": dec_stats["p99"] if dec_stats else None,
                   "how": "Source.read per frame (file sources only)", "stats": dec_stats},
        "preprocess": {"p50_ms": s.get("preprocess_ms_p50"), "how": "run_stream: resize to model input"},
        "inference": {"p50_ms": s.get("infer_ms_p50"), "how": "run_stream: Backend.infer"},
        "temporal_filter": {"p50_ms": s.get("temporal_ms_p50"), "how": "run_stream: softmax + EMA + hysteresis",
                            "pct_of_inference": s.get("temporal_pct_of_infer")},
        "postprocess_overlay": {"p50_ms": s.get("render_ms_p50"), "how": "run_stream: overlay + legend"},
        "encode": {"p50_ms": enc, "how": "H.264 mp4 sink, amortised (writes + EOS flush) / frames"},
    }
    return {"source": source, "drop": drop, "frames": s.get("frames"), "fps": s.get("fps"), "backend": s.get("backend"),
            "stages": stages,
            "e2e": {"latency_p50_ms": s.get("latency_ms_p50"), "latency_p99_ms": s.get("latency_ms_p99"),
                    "age_at_inference_p50_ms": s.get("age_ms_p50"), "age_at_inference_p99_ms": s.get("age_ms_p99"),
                    "how": "capture timestamp (frame reaches the runtime) → frame written to the sink"},
            "run_summary": s}


def print_stages(result: dict, console=None) -> None:
    from rich.table import Table

    from pipa_edge.bench.report import make_console

    console = console or make_console()
    e2e = result["e2e"]
    t = Table(title=f"per-stage host latency: {result['source']} ({result['frames']} frames, "
                    f"{result['fps'] or 0:.1f} FPS out)", title_justify="left")
    t.add_column("stage")
    t.add_column("p50 ms", justify="right")
    t.add_column("measured by")
    for name in STAGES:
        st = result["stages"][name]
        v = st.get("p50_ms")
        t.add_row(name, "-" if v is None else f"{v:.2f}", st["how"])
    lat, p99 = e2e.get("latency_p50_ms"), e2e.get("latency_p99_ms")
    t.add_row("[bold]end-to-end frame age[/]", "-" if lat is None else f"{lat:.2f} (p99 {p99:.2f})", e2e["how"])
    console.print(t)
