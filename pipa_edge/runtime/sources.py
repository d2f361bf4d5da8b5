"""Capture: a :class:`SourceSpec` → frames ``(H, W, 3) uint8`` RGB.

GStreamer sources end in an appsink (``max-buffers=1 drop=true sync=false`` for live sources, a
short blocking queue for files so no frame is lost); images and the synthetic scene are read in
Python. Elements are chosen by feature detection (Jetson ``nvarguscamerasrc``/``nvvidconv`` when
present, portable elements otherwise). ``read()`` returns a :class:`Frame`, ``None`` on timeout,
and raises :class:`SourceEnded` (end of stream) or :class:`SourceLost` (error/disconnect).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from pipa_edge.errors import SourceError
from pipa_edge.runtime import gst as G
from pipa_edge.runtime.uri import SourceSpec, redact

CAMERA_HINT = ("try test:// (the embedded scene), a video file or folder of images, or list cameras with "
               "`v4l2-ctl --list-devices`")


@dataclass
class Frame:
    image: np.ndarray  # (H, W, 3) uint8 RGB
    index: int  # running index over the whole run (across reconnects/loops)
    t_capture: float  # time.monotonic() when the frame reached the runtime
    pts_ns: int = -1
    model_input: np.ndarray | None = None  # resized for the model (done early when frames are not dropped)
    pre_s: float = 0.0  # time spent resizing
    segment: int = 0  # bumped at every reopen/loop: the temporal filter restarts


class SourceEnded(Exception):
    """End of stream (file finished, or a live sender sent EOS)."""


class SourceLost(Exception):
    """The source failed or disconnected; a live source is reopened with back-off."""


class Reconnect:
    """When a live source stops answering, how long to keep reopening it (``run --reconnect-limit
    N --reconnect-timeout S``). ``lost(msg)`` counts one failed attempt and raises
    :class:`~pipa_edge.errors.SourceError` (one line, exit 2) once ``limit`` consecutive attempts
    failed or no frame came for ``timeout_s`` seconds; ``limit < 0`` / ``timeout_s == 0`` mean no
    such limit ("forever", e.g. under systemd). ``ok()`` (a frame arrived) resets both."""

    def __init__(self, uri: str, limit: int = 20, timeout_s: float = 60.0, clock=time.monotonic):
        self.uri, self.limit, self.timeout_s, self._clock = uri, int(limit), float(timeout_s), clock
        self.attempts = 0
        self.since = clock()

    def ok(self) -> None:
        self.attempts, self.since = 0, self._clock()

    def waited(self) -> float:
        return self._clock() - self.since

    def check(self) -> None:
        """Raise when the time limit is over (also while merely waiting for a first frame)."""
        if self.timeout_s > 0 and self.waited() >= self.timeout_s:
            self._give_up(f"no frame for {self.waited():.1f} s (--reconnect-timeout {self.timeout_s:g})")

    def lost(self, reason: str = "") -> None:
        self.attempts += 1
        if 0 <= self.limit < self.attempts:
            self._give_up(f"failed {self.attempts} time{'s' if self.attempts != 1 else ''} in a row in "
                          f"{self.waited():.1f} s (--reconnect-limit {self.limit})", reason)
        self.check()

    def _give_up(self, what: str, reason: str = "") -> None:
        reason = redact(reason)
        reason = reason[len(self.uri) + 2:] if reason.startswith(f"{self.uri}: ") else reason
        last = f"; last error: {reason}" if reason else ""
        raise SourceError(f"{self.uri}: giving up: {what}{last} (use --reconnect-limit -1 --reconnect-timeout 0 "
                          "to retry forever)")


class Source:
    """Base: ``open()``, ``read(timeout_s)``, ``close()``; counters ``dropped``/``corrupt``."""

    fps: float = 30.0

    def __init__(self, spec: SourceSpec, drop: bool):
        self.spec, self.drop = spec, drop
        self.dropped = 0
        self.corrupt = 0
        self.corrupt_names: list[str] = []  # the first few unreadable files (image sources)

    def open(self) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def read(self, timeout_s: float = 0.5) -> Frame | None:  # pragma: no cover - interface
        raise NotImplementedError

    def close(self) -> None:
        pass


MAX_NAMED = 5  # corrupt files named in the log and the summary


class ImageSource(Source):
    """An image, a folder or a glob of images (sorted); unreadable files are skipped and counted."""

    def __init__(self, spec: SourceSpec, drop: bool = False):
        super().__init__(spec, drop)
        self.fps = float(spec.options.get("fps", 30.0) or 30.0)
        self._i = 0

    def open(self) -> None:
        self._i = 0

    def read(self, timeout_s: float = 0.5) -> Frame | None:
        import cv2

        while self._i < len(self.spec.files):
            path = self.spec.files[self._i]
            self._i += 1
            img = cv2.imread(path, cv2.IMREAD_COLOR)
            if img is None or img.ndim != 3 or img.shape[2] != 3 or min(img.shape[:2]) < 2:
                self.corrupt += 1
                if len(self.corrupt_names) < MAX_NAMED:
                    self.corrupt_names.append(path)
                if self.corrupt <= MAX_NAMED:
                    from pipa_edge import log

                    log.warn("run", f"{path}: unreadable image, skipped")
                continue
            return Frame(cv2.cvtColor(img, cv2.COLOR_BGR2RGB), -1, time.monotonic())
        raise SourceEnded(self.spec.uri)


class SceneSource(Source):
    """``test://``: the project's synthetic driving scene (SceneStream), endless."""

    def __init__(self, spec: SourceSpec, drop: bool = False, stream_cls=None):
        super().__init__(spec, drop)
        o = spec.options
        self.fps = float(o.get("fps", 30.0) or 30.0)
        self.height, self.width = int(o.get("height", 256)), int(o.get("width", 512))
        self._cls = stream_cls
        self._it = None
        self._next_t = 0.0

    def open(self) -> None:
        o = self.spec.options
        stream = self._cls(height=self.height, width=self.width, seed=int(o.get("seed", 0)),
                           domain=str(o.get("domain", "real")))
        self._it = iter(stream)
        self._next_t = time.monotonic()

    def read(self, timeout_s: float = 0.5) -> Frame | None:
        if self.spec.live:  # pace like a camera
            now = time.monotonic()
            if self._next_t > now:
                time.sleep(min(self._next_t - now, timeout_s))
            self._next_t = max(self._next_t + 1.0 / self.fps, time.monotonic() - 1.0)
        try:
            item = next(self._it)
        except StopIteration:
            raise SourceEnded(self.spec.uri) from None
        img = item[0] if isinstance(item, (tuple, list)) else item
        img = np.asarray(img)
        if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
            self.corrupt += 1
            return None
        return Frame(np.ascontiguousarray(img), -1, time.monotonic())

    def close(self) -> None:
        self._it = None


class GstSource(Source):
    """Any GStreamer-decoded source ending in an RGB appsink."""

    def __init__(self, spec: SourceSpec, drop: bool):
        super().__init__(spec, drop)
        self.pipeline = None
        self.appsink = None
        self._arrivals: OrderedDict = OrderedDict()
        self._arrived = 0
        self._pulled = 0
        self._lock = threading.Lock()
        self.fps = float(spec.options.get("fps", 0) or 0) or 30.0
        self._fps_known = False

    # ---- pipeline construction (element by element) ----
    def _decode_tail(self) -> list:
        """Elements after the decoder: [nvvidconv →] videoconvert → RGB caps → appsink."""
        els = []
        if G.is_jetson():
            els += [G.make("nvvidconv"), G.capsfilter("video/x-raw,format=RGBA")]
        els += [G.make("videoconvert"), G.capsfilter("video/x-raw,format=RGB")]
        self.appsink = G.make("appsink", "sink", emit_signals=False, sync=False,
                              max_buffers=1 if self.drop else 2, drop=self.drop)
        return els + [self.appsink]

    def _build(self):
        Gst = G.gst()
        s, o = self.spec, self.spec.options
        p = Gst.Pipeline.new("capture")
        if s.kind == "file":
            src = G.make("filesrc", location=s.location)
            dec = G.make("decodebin")
            G.cap_decoder_threads(dec, int(o.get("decode_threads", 0)))
            tail = self._decode_tail()
            G.add_chain(p, [src, dec])
            G.add_chain(p, tail)
            G.link_dynamic(dec, tail[0])
        elif s.kind == "rtsp":
            src = G.make("uridecodebin", uri=s.location)
            G.cap_decoder_threads(src, int(o.get("decode_threads", 0)))
            latency = int(o.get("latency", 200))

            def setup(_bin, source):
                if source.find_property("latency") is not None:
                    source.set_property("latency", latency)

            src.connect("source-setup", setup)
            tail = self._decode_tail()
            p.add(src)
            G.add_chain(p, tail)
            G.link_dynamic(src, tail[0])
        elif s.kind == "rtp":
            codec = o.get("codec", "h264")
            enc = {"h264": "H264", "h265": "H265", "mjpeg": "JPEG"}[codec]
            props = {"port": s.port, "caps": G.caps(
                f"application/x-rtp,media=video,clock-rate=90000,encoding-name={enc}")}
            if s.location:
                props["address"] = s.location
            src = G.make("udpsrc", **props)
            jb = G.make("rtpjitterbuffer", latency=int(o.get("latency", 50)))
            depay = G.make({"h264": "rtph264depay", "h265": "rtph265depay", "mjpeg": "rtpjpegdepay"}[codec])
            dec = G.make("decodebin")
            G.cap_decoder_threads(dec, int(o.get("decode_threads", 0)))
            tail = self._decode_tail()
            G.add_chain(p, [src, jb, depay, dec])
            G.add_chain(p, tail)
            G.link_dynamic(dec, tail[0])
        elif s.kind == "v4l2":
            src = G.make("v4l2src", device=s.location)
            els = [src]
            if any(k in o for k in ("width", "height", "fps")):
                c = ",".join(f"{k}={int(o[k])}" for k in ("width", "height") if k in o)
                c += f",framerate={int(o['fps'])}/1" if "fps" in o else ""
                els.append(G.capsfilter(f"video/x-raw,{c.lstrip(',')}; image/jpeg,{c.lstrip(',')}"))
            dec = G.make("decodebin")
            G.cap_decoder_threads(dec, int(o.get("decode_threads", 0)))
            tail = self._decode_tail()
            G.add_chain(p, els + [dec])
            G.add_chain(p, tail)
            G.link_dynamic(dec, tail[0])
        elif s.kind == "csi":
            w, h, fps = int(o.get("width", 1280)), int(o.get("height", 720)), int(o.get("fps", 30))
            src = G.make("nvarguscamerasrc", sensor_id=s.index)
            nvmm = G.capsfilter(f"video/x-raw(memory:NVMM),width={w},height={h},framerate={fps}/1")
            conv = G.make("nvvidconv", flip_method=int(o.get("flip", 0)))
            self.appsink = G.make("appsink", "sink", emit_signals=False, sync=False, max_buffers=1, drop=True)
            G.add_chain(p, [src, nvmm, conv, G.capsfilter("video/x-raw,format=RGBA"), G.make("videoconvert"),
                            G.capsfilter("video/x-raw,format=RGB"), self.appsink])
        elif s.kind == "test":  # videotestsrc stand-in when the synthetic generator is unavailable
            w, h = int(o.get("width", 512)), int(o.get("height", 256))
            fps = max(1, int(round(float(o.get("fps", 30)))))
            src = G.make("videotestsrc", is_live=bool(s.live))
            G.gst().util_set_object_arg(src, "pattern", "ball")  # a moving ball
            self.appsink = G.make("appsink", "sink", emit_signals=False, sync=False,
                                  max_buffers=1 if self.drop else 2, drop=self.drop)
            G.add_chain(p, [src, G.capsfilter(f"video/x-raw,width={w},height={h},framerate={fps}/1"),
                            G.make("videoconvert"), G.capsfilter("video/x-raw,format=RGB"), self.appsink])
        else:  # pragma: no cover - parse_source only yields the kinds above
            raise SourceError(f"{s.uri}: no capture for kind '{s.kind}'")
        pad = self.appsink.get_static_pad("sink")
        pad.add_probe(Gst.PadProbeType.BUFFER, self._on_buffer)
        return p

    def _on_buffer(self, _pad, info):
        buf = info.get_buffer()
        with self._lock:
            self._arrived += 1
            if buf is not None:
                self._arrivals[int(buf.pts)] = time.monotonic()
                while len(self._arrivals) > 32:
                    self._arrivals.popitem(last=False)
        return G.gst().PadProbeReturn.OK

    def open(self) -> None:
        Gst = G.gst()
        self.close()
        with self._lock:
            self._arrivals.clear()
            self._arrived = self._pulled = 0
        self.pipeline = self._build()
        ret = self.pipeline.set_state(Gst.State.PLAYING)
        if ret == Gst.StateChangeReturn.FAILURE:
            _eos, errs, _w = G.bus_errors(self.pipeline)
            self.close()
            raise SourceLost(f"{self.spec.uri}: cannot start capture" + (f" ({redact(errs[0])})" if errs else ""))

    def read(self, timeout_s: float = 0.5) -> Frame | None:
        Gst = G.gst()
        if self.pipeline is None:
            raise SourceLost(f"{self.spec.uri}: not open")
        sample = self.appsink.try_pull_sample(int(timeout_s * Gst.SECOND))
        if sample is None:
            eos, errs, _w = G.bus_errors(self.pipeline)
            if errs:
                raise SourceLost(f"{self.spec.uri}: {redact(errs[0])}")
            if eos or self.appsink.is_eos():
                raise SourceEnded(self.spec.uri)
            return None
        buf = sample.get_buffer()
        with self._lock:
            self._pulled += 1
            t = self._arrivals.pop(int(buf.pts), None)
            backlog = self._arrived - self._pulled
        if self.drop and backlog > 2:  # appsink dropped what it could not hold (1 queued + 1 in flight)
            self.dropped += backlog - 2
            with self._lock:
                self._pulled += backlog - 2
        if not self._fps_known:
            self._fps_known = True
            ok, num, den = sample.get_caps().get_structure(0).get_fraction("framerate")
            if ok and num > 0 and den > 0 and "fps" not in self.spec.options:
                self.fps = num / den
        if buf.has_flags(Gst.BufferFlags.CORRUPTED):
            self.corrupt += 1
            return None
        img = G.sample_to_array(sample)
        if img is None:
            self.corrupt += 1
            return None
        return Frame(img, -1, t if t is not None else time.monotonic(), int(buf.pts))

    def close(self) -> None:
        if self.pipeline is not None:
            G.stop(self.pipeline)
            self.pipeline = None
            self.appsink = None


def scene_stream_class():
    """The synthetic generator's SceneStream, or None while it does not exist."""
    try:
        from pipa_edge.data.synth.stream import SceneStream
    except ImportError:
        return None
    return SceneStream


def open_source(spec: SourceSpec, drop: bool | None = None) -> Source:
    """Build (not yet open) the capture for ``spec``; ``drop`` defaults to ``spec.live``."""
    drop = spec.live if drop is None else bool(drop)
    if spec.kind == "file" and spec.media in ("image", "folder", "glob"):
        return ImageSource(spec, drop)
    if spec.kind == "test":
        cls = scene_stream_class()
        if cls is not None:
            return SceneSource(spec, drop, cls)
    if spec.kind == "csi" and not G.has_element("nvarguscamerasrc"):
        raise SourceError(f"{spec.uri}: CSI camera needs nvarguscamerasrc (Jetson); not installed here",
                          hint=CAMERA_HINT)
    if spec.kind == "v4l2":
        import os

        if not os.path.exists(spec.location):
            raise SourceError(f"{spec.uri}: camera device {spec.location} does not exist", hint=CAMERA_HINT)
    return GstSource(spec, drop)
