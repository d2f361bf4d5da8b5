"""``run_stream``: capture → inference → output, three threads overlapping.

* capture thread: ``source.read()`` → a latest-only channel (live sources) or a blocking one
  (files: no frame lost); reopens live sources with back-off after an error, an EOS or a stall.
* inference thread: resize to the model input → ``backend.infer`` → temporal filter (labels at
  model resolution); the model runs every ``keyframe`` frames, other frames reuse the last labels.
* output thread: overlay/mask/side render + legend → sink (appsrc → encode → file/RTP/display).

The calling thread prints a stats line every ``stats_interval`` seconds and returns a
:class:`RunSummary`. SIGINT/SIGTERM (when ``handle_signals``) stop capture, drain the queues and
close the sink (EOS: the mp4 is finalised and playable).
"""

from __future__ import annotations

import signal
import threading
import time
from typing import Callable, Literal, Optional

import numpy as np
from pydantic import Field

from pipa_edge import log
from pipa_edge.config import StrictModel, validate
from pipa_edge.errors import PipaError
from pipa_edge.runtime.sinks import open_sink
from pipa_edge.runtime.sources import Frame, open_source
from pipa_edge.runtime.stats import RunSummary, StatsTracker
from pipa_edge.runtime.stream_runner import StreamRunner
from pipa_edge.runtime.uri import parse_output, parse_source


class RunOptions(StrictModel):
    """Options of ``pipa-edge run`` / :func:`run_stream` (validated; unknown keys are errors)."""

    backend: Optional[str] = None
    backend_opts: dict = Field(default_factory=dict)
    loop: bool = False
    drop: Optional[bool] = None  # None: live sources drop to the latest frame, files do not
    viz: Literal["overlay", "mask", "side"] = "overlay"
    alpha: float = Field(0.5, ge=0.0, le=1.0)  # overlay opacity
    legend: bool = True
    smooth: bool = True
    smooth_alpha: float = Field(0.5, gt=0.0, le=1.0)  # EMA weight of the newest frame
    hysteresis_delta: float = Field(0.1, ge=0.0, le=1.0)
    hysteresis_frames: int = Field(3, ge=1)
    motion: Literal["off", "on", "auto"] = "auto"  # warp the filter state with the motion (runtime/motion.py)
    motion_provider: str = "dis"  # runtime.motion provider name (OpenCV DIS on CPU)
    keyframe: int = Field(1, ge=1)  # run the model every N frames
    max_frames: Optional[int] = Field(None, ge=1)  # frames captured (a live source may drop some of them)
    stats_json: Optional[str] = None
    stats_interval: float = Field(1.0, gt=0.0)
    log_stats: bool = True
    reconnect: bool = True
    stall_timeout: float = Field(1.0, gt=0.0)  # live source silent this long → reopen
    max_backoff: float = Field(1.0, gt=0.0)  # cap of the reopen back-off (resume ≤ 2 s)
    reconnect_limit: int = Field(20, ge=-1)  # live source: give up after N failures in a row (-1: never)
    reconnect_timeout: float = Field(60.0, ge=0.0)  # ...or after S s without a frame (0: never); sources.Reconnect
    handle_signals: bool = False
    collect: Optional[str] = None  # folder: on-device pseudo-label collection (pipa_edge.runtime.collect)
    collect_config: Optional[str] = None
    collect_set: list[str] = Field(default_factory=list)  # key=value overrides of the collect config
    adapt_every: Optional[int] = Field(None, ge=1)  # with collect: BN re-estimation every N saved (adapt_swap.py)
    labels_out: Optional[str] = None  # folder: raw class-index PNG per frame (runtime/sinks.LabelFolderWriter)
    labels_size: Literal["frame", "model"] = "frame"  # labels PNG at the frame's size (nearest) or the model's


def _load(model, backend, opts):
    from pipa_edge.runtime.backends.base import Backend

    if isinstance(model, Backend):
        return model, False
    try:
        from pipa_edge.runtime.backends import load_backend
    except ImportError as e:  # pragma: no cover - while the backends package is incomplete
        raise PipaError(f"{model}: backends are not available ({e})") from None
    return load_backend(model, backend=backend, **opts), True


def _csi_available() -> bool:
    try:
        from pipa_edge.runtime.gst import has_element

        return has_element("nvarguscamerasrc")
    except PipaError:
        return False


def run_stream(source: str | None = None, output: str | None = None, model=None, *,
               on_frame: Callable[[Frame, np.ndarray], None] | None = None,
               stop_event: threading.Event | None = None, collector=None, **opts) -> RunSummary:
    """Segment ``source`` into ``output`` with ``model`` (a Backend or a model file path).

    ``opts`` are :class:`RunOptions` fields. ``on_frame(frame, labels)`` is called in the inference
    thread after the temporal filter (labels at model resolution);
    setting ``stop_event`` stops the run like SIGINT. ``collector`` (or ``collect=DIR``) receives
    ``offer(frame_rgb, raw_output, t, kind)`` right after each inference. Returns the :class:`RunSummary` (also written
    to ``stats_json``). Raises :class:`~pipa_edge.errors.PipaError` for bad URIs/models.
    """
    o = validate(RunOptions, opts, where="run options")
    if model is None:
        raise PipaError("run: no model given (--model FILE)")
    src_spec = parse_source(source, csi_available=_csi_available() if (source or "").startswith("camera") else False)
    out_spec = parse_output(output)
    swap = None
    if o.adapt_every:  # on-device BN re-estimation in the stream (issue 25); checked before anything opens
        from pipa_edge.runtime.adapt_swap import prepare

        swap = prepare(model, o)
    src = open_source(src_spec, drop=o.drop)  # built, opened by the capture thread
    sink = open_sink(out_spec)  # built, opened by the output thread
    backend, owned = _load(model, o.backend, o.backend_opts)
    stop = stop_event if stop_event is not None else threading.Event()
    stats = StatsTracker()
    try:  # nothing may leak the backend or the collector before the run's try/finally below
        runner = StreamRunner(src, sink, backend, o, stats, stop)
        runner.on_frame = on_frame
        collector, own_collector = _collector(collector, o, backend, src_spec.uri)
    except BaseException:
        if owned:
            backend.close()
        raise
    runner.collector = collector
    if swap is not None:
        swap.collector = collector
        runner.swap = swap
    log.stage("run", f"{src_spec.describe()} → {out_spec.kind} '{out_spec.uri}' with {backend.describe()}")
    old_handlers = _install_signal_handlers(runner) if o.handle_signals else {}
    try:
        _run_threads(runner, o)
    finally:
        stop.set()
        for sig, h in old_handlers.items():
            signal.signal(sig, h)
        collect_stats = _close_extras(runner, collector, own_collector)
        if owned:
            backend.close()
    summary = _summary(runner, o, backend, src_spec.uri, out_spec.uri, collect_stats)
    if o.stats_json:
        summary.write_json(o.stats_json)
    if runner.errors:
        raise runner.errors[0]
    log.ok("run", summary.line())
    return summary


def _collector(collector, o: RunOptions, backend, source: str):
    """``(collector, owned)``: the caller's, else the one ``--collect DIR`` opens (closed by the run)."""
    if collector is not None or not o.collect:
        return collector, False
    from pipa_edge.runtime.collect.runtime import open_collector

    return open_collector(o.collect, o.collect_config, backend, source=source, overrides=o.collect_set), True


def _install_signal_handlers(runner: StreamRunner) -> dict:
    """SIGINT/SIGTERM stop the run (the output is finalised); returns the handlers to restore."""
    if threading.current_thread() is not threading.main_thread():
        return {}

    def on_signal(signum, _frame):
        if runner.stop.is_set():
            return
        log.warn("run", f"{signal.Signals(signum).name}: stopping, finalising the output")
        runner.reason = signal.Signals(signum).name
        runner.stop.set()

    return {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}


def _run_threads(runner: StreamRunner, o: RunOptions) -> None:
    """Start capture, inference and output; log a stats line every ``stats_interval`` until output ends."""
    threads = [threading.Thread(target=runner.guard(fn), name=f"pipa-{name}", daemon=True)
               for name, fn in (("capture", runner.capture), ("infer", runner.infer), ("output", runner.output))]
    try:
        for t in threads:
            t.start()
        next_line = time.monotonic() + o.stats_interval
        while threads[-1].is_alive():
            threads[-1].join(0.05)
            if o.log_stats and time.monotonic() >= next_line:
                next_line += o.stats_interval
                log.stage("run", runner.stats.window_line(runner.src.dropped + runner.frames_in.dropped,
                                                          runner.src.corrupt))
        for t in threads:
            t.join(5.0)
    except BaseException:  # e.g. KeyboardInterrupt without handle_signals: still finalise the output
        runner.stop.set()
        for t in threads:
            t.join(10.0)
        raise


def _close_extras(runner: StreamRunner, collector, own_collector: bool) -> dict | None:
    """Close the adapt swap and the collector; returns the collector's stats (None without one)."""
    if runner.swap is not None:
        runner.swap.close()
    if collector is None:
        return None
    collect_stats = collector.close() if own_collector else getattr(collector, "stats", dict)()
    if own_collector and hasattr(collector, "log_summary"):
        collector.log_summary()
    return collect_stats


def _summary(runner: StreamRunner, o: RunOptions, backend, source: str, output: str, collect_stats) -> RunSummary:
    """``backend``: the one the run started with (an adapt swap may have replaced ``runner.backend``)."""
    src = runner.src
    return runner.stats.summary(
        source=source, output=output, backend=backend.describe(),
        dropped=src.dropped + runner.frames_in.dropped, corrupt=src.corrupt, reconnects=runner.reconnects,
        corrupt_files=list(getattr(src, "corrupt_names", [])),
        smoothing={"enabled": o.smooth, "alpha": o.smooth_alpha, "delta": o.hysteresis_delta,
                   "frames": o.hysteresis_frames, "keyframe": o.keyframe, "output_kind": backend.meta.output,
                   "motion": o.motion if o.smooth and not runner.in_graph else "off"},
        exit_reason="error" if runner.errors else runner.reason, collect=collect_stats)
