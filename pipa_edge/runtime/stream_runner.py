"""The three threads of :func:`pipa_edge.runtime.pipeline.run_stream`: capture → inference → output.

:class:`StreamRunner` owns the two channels between them, the temporal filter and the visualiser;
``guard(fn)`` wraps each thread body so that an exception stops the others and is re-raised by the
calling thread.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from pipa_edge import log
from pipa_edge.errors import SourceError
from pipa_edge.runtime.channel import Channel, Closed
from pipa_edge.runtime.sinks import LabelFolderWriter, NullSink
from pipa_edge.runtime.sources import Frame, Reconnect, Source, SourceEnded, SourceLost
from pipa_edge.runtime.stats import StatsTracker
from pipa_edge.runtime.temporal import TemporalFilter, flip_rate
from pipa_edge.runtime.viz import Visualizer

if TYPE_CHECKING:
    from pipa_edge.runtime.pipeline import RunOptions


@dataclass
class Result:
    """One frame's labels on their way from the inference thread to the output thread."""

    frame: Frame
    labels: np.ndarray
    age_s: float
    flip: float | None


class StreamRunner:
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
                            "motion-compensated (static cameras; docs/runtime.md)")
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
                if not self.results.put(Result(f, labels, t0 - f.t_capture, flip)):
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
