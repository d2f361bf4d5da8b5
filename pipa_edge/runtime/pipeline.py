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
from dataclasses import dataclass
from typing import Callable, Literal, Optional

import numpy as np
from pydantic import Field

from pipa_edge import log
from pipa_edge.config import StrictModel, validate
from pipa_edge.errors import PipaError, SourceError
from pipa_edge.runtime.channel import Channel, Closed
from pipa_edge.runtime.sinks import LabelFolderWriter, NullSink, open_sink
from pipa_edge.runtime.sources import Frame, Reconnect, Source, SourceEnded, SourceLost, open_source
from pipa_edge.runtime.stats import RunSummary, StatsTracker
from pipa_edge.runtime.temporal import TemporalFilter, flip_rate
from pipa_edge.runtime.uri import parse_output, parse_source
from pipa_edge.runtime.viz import Visualizer


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


@dataclass
class _Result:
    frame: Frame
    labels: np.ndarray
    age_s: float
    flip: float | None


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


class _Runner:
    def __init__(self, src: Source, sink, backend, opts: RunOptions, stats: StatsTracker, stop: threading.Event):
        self.src, self.sink, self.backend, self.o, self.stats, self.stop = src, sink, backend, opts, stats, stop
        live = src.spec.live
        self.frames_in = Channel(1 if src.drop else 2, drop=src.drop)
        self.results = Channel(2, drop=False)
        self.errors: list[BaseException] = []
        self.reason = "stopped"
        self.reconnects = 0
        self.live = live
        meta = backend.meta
        self.kind = meta.output
        self.in_graph = bool(getattr(backend, "stateful", False))  # the graph smooths: NumPy filter off
        from pipa_edge.runtime.motion import make_compensator

        motion = make_compensator(opts.motion, opts.motion_provider) if opts.smooth and not self.in_graph else None
        self.filter = TemporalFilter(opts.smooth_alpha, opts.hysteresis_delta, opts.hysteresis_frames,
                                     enabled=opts.smooth and not self.in_graph, motion=motion)
        if self.in_graph and opts.motion == "on":
            log.warn("run", "--motion on does not apply to a stateful graph: its in-graph state is not "
                            "motion-compensated (static cameras; docs/temporal.md)")
        if self.in_graph:
            t = meta.extra.get("stateful", {})
            log.stage("run", f"temporal smoothing runs in the graph (stateful model: alpha {t.get('alpha')}, "
                             f"delta {t.get('delta')}, persist {t.get('persist')}); --smooth options do not apply")
        self.viz = Visualizer(meta.classes, opts.viz, opts.alpha, opts.legend)
        self.on_frame = None
        self.collector = None
        self.swap = None  # --adapt-every: pipa_edge.runtime.adapt_swap.AdaptSwap
        self.labels_out = LabelFolderWriter(opts.labels_out, opts.labels_size) if opts.labels_out else None
        self.draw = not isinstance(sink, NullSink)

    # ---- capture ----
    def capture(self) -> None:
        o, src = self.o, self.src
        idx, opened, connected, segment = 0, False, False, 0
        backoff, last = 0.1, time.monotonic()
        self.rc = Reconnect(src.spec.uri, o.reconnect_limit, o.reconnect_timeout if o.reconnect else 0)
        try:
            while not self.stop.is_set():
                if not opened:
                    try:
                        src.open()
                        opened, last = True, time.monotonic()
                    except SourceLost as e:
                        if idx == 0 and not self.live:
                            raise SourceError(str(e)) from None
                        self.rc.lost(str(e))
                        log.warn("run", f"{e}; retrying in {backoff:.1f} s")
                        self.stop.wait(backoff)
                        backoff = min(backoff * 2, o.max_backoff)
                        continue
                try:
                    f = src.read(0.2)
                except SourceEnded:
                    if self.live and o.reconnect or o.loop:
                        src.close()
                        opened = False
                        segment += 1
                        if self.live:
                            self._lost(f"{src.spec.uri}: end of stream; reopening in {backoff:.1f} s")
                            connected = False
                            self.stop.wait(backoff)
                            backoff = min(backoff * 2, o.max_backoff)
                        continue
                    self.reason = "end of stream"
                    break
                except SourceLost as e:
                    if not (self.live and o.reconnect):
                        raise SourceError(str(e)) from None
                    src.close()
                    opened, connected = False, False
                    segment += 1
                    self._lost(f"{e}; reopening in {backoff:.1f} s")
                    self.stop.wait(backoff)
                    backoff = min(backoff * 2, o.max_backoff)
                    continue
                now = time.monotonic()
                if f is None:
                    if self.live and o.reconnect:
                        self.rc.check()
                    if self.live and o.reconnect and connected and now - last > o.stall_timeout:
                        src.close()
                        opened, connected = False, False
                        segment += 1
                        self._lost(f"{src.spec.uri}: no frame for {now - last:.1f} s; reopening")
                    continue
                if not connected and idx > 0:
                    log.ok("run", f"{src.spec.uri}: receiving frames again")
                connected, last, backoff = True, now, 0.1
                self.rc.ok()
                f.index, f.segment = idx, segment
                if not src.drop and f.index % o.keyframe == 0:  # resize here, overlapping the model
                    self._preprocess(f)
                idx += 1
                if not self.frames_in.put(f):
                    break
                if o.max_frames and idx >= o.max_frames:
                    self.reason = "max frames"
                    break
        finally:
            src.close()
            self.frames_in.close()

    def _lost(self, msg: str) -> None:
        self.rc.lost(msg.split("; reopening")[0])  # gives up (SourceError) at --reconnect-limit/-timeout
        self.reconnects += 1
        log.warn("run", msg)

    def _preprocess(self, f: Frame) -> np.ndarray:
        import cv2

        t0 = time.monotonic()
        mh, mw = self.backend.meta.input_size
        img = f.image
        f.model_input = img if img.shape[:2] == (mh, mw) else cv2.resize(img, (mw, mh), interpolation=cv2.INTER_LINEAR)
        f.pre_s = time.monotonic() - t0
        return f.model_input

    # ---- inference ----
    def infer(self) -> None:
        b, o = self.backend, self.o
        labels, prev, segment = None, None, None
        try:
            while True:
                try:
                    f = self.frames_in.get(0.2)
                except Closed:
                    break
                if f is None:
                    continue
                if self.swap is not None:  # a re-estimated model swaps in here, between two frames
                    b = self.backend = self.swap.between_frames(b)
                t0 = time.monotonic()
                if f.segment != segment:  # new stream after a reopen/loop: restart the filter
                    self.filter.reset()
                    if self.in_graph:
                        b.reset_state()
                    labels, prev, segment = None, None, f.segment
                if labels is None or f.index % o.keyframe == 0:
                    x = f.model_input if f.model_input is not None else self._preprocess(f)
                    t1 = time.monotonic()
                    out = b.infer(x[None])
                    t2 = time.monotonic()
                    if self.collector is not None:  # returns at once; selection runs on its own thread
                        self.collector.offer(f.image, out[0], t=f.t_capture, kind=self.kind)
                    labels = self.filter.update(out, self.kind, image=x)[0]
                    t3 = time.monotonic()
                    self.stats.model_step(f.pre_s, t2 - t1, t3 - t2, self.filter.motion_s)
                if self.on_frame is not None:
                    self.on_frame(f, labels)
                flip = flip_rate(prev, labels)
                prev = labels
                if not self.results.put(_Result(f, labels, t0 - f.t_capture, flip)):
                    break
        finally:
            self.results.close()

    # ---- output ----
    def output(self) -> None:
        opened, hw = False, (0, 0)
        try:
            while True:
                try:
                    r = self.results.get(0.2)
                except Closed:
                    break
                if r is None:
                    continue
                t0 = time.monotonic()
                if self.draw:
                    vis = self.viz.render(r.frame.image, r.labels)
                else:  # output 'none': nothing is drawn, so nothing is upsampled or coloured
                    vis = r.frame.image
                t1 = time.monotonic()
                if not opened:
                    hw = vis.shape[:2]
                    self.sink.open(hw, self.src.fps)
                    opened = True
                elif vis.shape[:2] != hw:  # a reconnected source changed size: keep the output's
                    import cv2

                    vis = cv2.resize(vis, (hw[1], hw[0]), interpolation=cv2.INTER_AREA)
                self.sink.write(vis)
                if self.labels_out is not None:  # labels stay at model resolution until here
                    self.labels_out.write(r.frame.index, r.labels, r.frame.image.shape[:2])
                now = time.monotonic()
                self.stats.output(now - r.frame.t_capture, r.age_s, t1 - t0, r.flip)
        finally:
            self.sink.close()

    def guard(self, fn):
        def run():
            try:
                fn()
            except BaseException as e:  # noqa: BLE001 - re-raised in the calling thread
                self.errors.append(e)
                self.stop.set()
                self.frames_in.abort()
                self.results.abort()

        return run


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
    own_collector = False
    try:  # nothing may leak the backend or the collector before the run's try/finally below
        runner = _Runner(src, sink, backend, o, stats, stop)
        runner.on_frame = on_frame
        if collector is None and o.collect:
            from pipa_edge.runtime.collect.runtime import open_collector

            collector = open_collector(o.collect, o.collect_config, backend, source=src_spec.uri,
                                       overrides=o.collect_set)
            own_collector = True
    except BaseException:
        if owned:
            backend.close()
        raise
    runner.collector = collector
    if swap is not None:
        swap.collector = collector
        runner.swap = swap
    log.stage("run", f"{src_spec.describe()} → {out_spec.kind} '{out_spec.uri}' with {backend.describe()}")
    old_handlers = {}
    if o.handle_signals and threading.current_thread() is threading.main_thread():
        def on_signal(signum, _frame):
            if stop.is_set():
                return
            log.warn("run", f"{signal.Signals(signum).name}: stopping, finalising the output")
            runner.reason = signal.Signals(signum).name
            stop.set()

        for sig in (signal.SIGINT, signal.SIGTERM):
            old_handlers[sig] = signal.signal(sig, on_signal)
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
                log.stage("run", stats.window_line(src.dropped + runner.frames_in.dropped, src.corrupt))
        for t in threads:
            t.join(5.0)
    except BaseException:  # e.g. KeyboardInterrupt without handle_signals: still finalise the output
        stop.set()
        for t in threads:
            t.join(10.0)
        raise
    finally:
        stop.set()
        for sig, h in old_handlers.items():
            signal.signal(sig, h)
        collect_stats = None
        if runner.swap is not None:
            runner.swap.close()
        if collector is not None:
            collect_stats = collector.close() if own_collector else getattr(collector, "stats", dict)()
            if own_collector and hasattr(collector, "log_summary"):
                collector.log_summary()
        if owned:
            backend.close()
    summary = stats.summary(
        source=src_spec.uri, output=out_spec.uri, backend=backend.describe(),
        dropped=src.dropped + runner.frames_in.dropped, corrupt=src.corrupt, reconnects=runner.reconnects,
        corrupt_files=list(getattr(src, "corrupt_names", [])),
        smoothing={"enabled": o.smooth, "alpha": o.smooth_alpha, "delta": o.hysteresis_delta,
                   "frames": o.hysteresis_frames, "keyframe": o.keyframe, "output_kind": backend.meta.output,
                   "motion": o.motion if o.smooth and not runner.in_graph else "off"},
        exit_reason="error" if runner.errors else runner.reason, collect=collect_stats)
    if o.stats_json:
        summary.write_json(o.stats_json)
    if runner.errors:
        raise runner.errors[0]
    log.ok("run", summary.line())
    return summary
