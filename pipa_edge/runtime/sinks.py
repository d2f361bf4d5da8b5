"""Output: an :class:`OutputSpec` → sink fed with ``(H, W, 3) uint8`` RGB frames.

GStreamer outputs start with an appsrc (``format=time``, constant frame duration) and are built
element by element: H.264 via ``nvv4l2h264enc`` on Jetson, else ``x264enc``, else ``openh264enc``.
``close()`` sends EOS and waits for it, so an mp4 gets its index (moov) and is playable.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipa_edge.errors import BackendUnavailable, SourceError
from pipa_edge.runtime import gst as G
from pipa_edge.runtime.uri import OutputSpec


class Sink:
    def open(self, hw: tuple[int, int], fps: float) -> None:
        pass

    def write(self, img: np.ndarray) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def close(self) -> None:
        pass


class NullSink(Sink):
    def write(self, img: np.ndarray) -> None:
        pass


class ImageFolderSink(Sink):
    """One image per frame: ``pattern % index`` (PNG/JPEG by suffix), written atomically."""

    def __init__(self, spec: OutputSpec):
        self.pattern = spec.location
        self.n = 0

    def open(self, hw, fps) -> None:
        Path(self.pattern).parent.mkdir(parents=True, exist_ok=True)

    def write(self, img: np.ndarray) -> None:
        import cv2

        from pipa_edge.fileio import write_bytes

        path = Path(self.pattern % self.n)
        ok, buf = cv2.imencode(path.suffix, cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
        if not ok:
            raise SourceError(f"{self.pattern}: cannot encode image {path}")
        write_bytes(path, buf.tobytes(), fsync=False,  # per frame: no fsync (slow on eMMC/SD)
                    kept=f"the {self.n} frame(s) written before are kept in {path.parent}")
        self.n += 1


class LabelFolderWriter:
    """Raw class-index PNGs, one per frame: ``DIR/<frame index:06d>.png`` (single-channel ``uint8``,
    value = class index, ``255`` = no label), for scoring or pseudo-labels without converting colours.

    ``size="frame"`` upsamples the model-resolution labels to the frame (nearest); ``"model"`` writes
    them as the filter produced them. Written atomically (``fileio.write_bytes``: a full disk is one
    ``WriteError`` line) from the output thread.
    """

    def __init__(self, folder: str | Path, size: str = "frame"):
        if size not in ("frame", "model"):
            raise ValueError(f"labels size must be 'frame' or 'model', got {size!r}")
        self.folder, self.size, self.n = Path(folder), size, 0
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise SourceError(f"--labels-out {folder}: cannot create the folder ({e.strerror})") from None

    def write(self, index: int, labels: np.ndarray, frame_hw: tuple[int, int]) -> Path:
        import cv2

        lab = np.where((labels >= 0) & (labels < 255), labels, 255).astype(np.uint8)
        if self.size == "frame" and lab.shape[:2] != tuple(frame_hw):
            lab = cv2.resize(lab, (frame_hw[1], frame_hw[0]), interpolation=cv2.INTER_NEAREST)
        from pipa_edge.fileio import write_bytes

        path = self.folder / f"{index:06d}.png"
        ok, buf = cv2.imencode(".png", lab)
        if not ok:
            raise SourceError(f"--labels-out {self.folder}: cannot encode {path.name}")
        write_bytes(path, buf.tobytes(), fsync=False,  # per frame: no fsync (slow on eMMC/SD)
                    kept=f"the {self.n} label file(s) written before are kept in {self.folder}")
        self.n += 1
        return path


def h264_encoder(bitrate_kbps: int, fps: float) -> list:
    """Feature-detected H.264 encoder chain (raw RGB in → byte-stream H.264 out)."""
    key = max(1, int(round(fps)))  # a keyframe per second: seekable files, fast RTP join
    if G.has_element("nvv4l2h264enc") and G.has_element("nvvidconv"):
        return [G.make("videoconvert"), G.capsfilter("video/x-raw,format=RGBA"), G.make("nvvidconv"),
                G.capsfilter("video/x-raw(memory:NVMM),format=NV12"),
                G.make("nvv4l2h264enc", bitrate=bitrate_kbps * 1000, iframeinterval=key, insert_sps_pps=True)]
    conv = [G.make("videoconvert"), G.capsfilter("video/x-raw,format=I420")]
    if G.has_element("x264enc"):
        # tune=zerolatency (4), speed-preset=ultrafast (1): no B-frame lookahead, low CPU
        return conv + [G.make("x264enc", bitrate=bitrate_kbps, tune=4, speed_preset=1, key_int_max=key)]
    if G.has_element("openh264enc"):
        return conv + [G.make("openh264enc", bitrate=bitrate_kbps * 1000, gop_size=key)]
    raise BackendUnavailable("no H.264 encoder: install gstreamer1.0-plugins-ugly (x264enc) or openh264")


class GstSink(Sink):
    """appsrc → [encode → mux → file | pay → udp | display]."""

    def __init__(self, spec: OutputSpec):
        self.spec = spec
        self.pipeline = None
        self.appsrc = None
        self.n = 0
        self.duration = 0

    def _build(self, hw, fps):
        Gst = G.gst()
        h, w = hw
        num, den = int(round(fps * 1000)), 1000
        p = Gst.Pipeline.new("output")
        self.appsrc = G.make("appsrc", "src", format=Gst.Format.TIME, is_live=False, do_timestamp=False,
                             block=True, max_bytes=3 * h * w * 4,
                             caps=G.caps(f"video/x-raw,format=RGB,width={w},height={h},framerate={num}/{den}"))
        s, o = self.spec, self.spec.options
        bitrate = int(o.get("bitrate", 4000))
        if s.kind == "file":
            Path(s.location).parent.mkdir(parents=True, exist_ok=True)
            mux = G.make("mp4mux" if s.container == "mp4" else "matroskamux")
            els = [self.appsrc] + h264_encoder(bitrate, fps) + [G.make("h264parse"), mux,
                                                                G.make("filesink", location=s.location)]
        elif s.kind == "rtp":
            els = [self.appsrc] + h264_encoder(bitrate, fps) + [
                G.make("h264parse"), G.make("rtph264pay", config_interval=1, pt=96), _udpsink(s.location, s.port)]
        elif s.kind == "display":
            sink = None
            for name in ("nv3dsink", "nveglglessink", "autovideosink"):
                if G.has_element(name):
                    sink = G.make(name, sync=False)
                    break
            if sink is None:
                raise BackendUnavailable("no video display sink installed (autovideosink)")
            els = [self.appsrc, G.make("videoconvert")] + ([G.make("nvvidconv")] if G.is_jetson() else []) + [sink]
        else:  # pragma: no cover
            raise SourceError(f"{s.uri}: no GStreamer output for kind '{s.kind}'")
        G.add_chain(p, els)
        return p

    def open(self, hw, fps) -> None:
        Gst = G.gst()
        fps = float(self.spec.options.get("fps", 0) or fps or 30.0)
        self.duration = int(Gst.SECOND / fps)
        self.pipeline = self._build(hw, fps)
        if self.pipeline.set_state(Gst.State.PLAYING) == Gst.StateChangeReturn.FAILURE:
            _e, errs, _w = G.bus_errors(self.pipeline)
            G.stop(self.pipeline)
            self.pipeline = None
            raise SourceError(f"{self.spec.uri}: cannot open output" + (f" ({errs[0]})" if errs else ""))

    def write(self, img: np.ndarray) -> None:
        Gst = G.gst()
        _eos, errs, _w = G.bus_errors(self.pipeline)
        if errs:
            raise SourceError(f"{self.spec.uri}: output failed ({errs[0]})")
        ret = self.appsrc.emit("push-buffer", G.array_to_buffer(img, self.n * self.duration, self.duration))
        if ret not in (Gst.FlowReturn.OK,):
            raise SourceError(f"{self.spec.uri}: output refused a frame ({ret.value_nick})")
        self.n += 1

    def close(self, timeout_s: float = 10.0) -> None:
        """EOS → wait until the muxer has finalised the file → NULL. Safe to call twice."""
        if self.pipeline is None:
            return
        Gst = G.gst()
        try:
            self.appsrc.emit("end-of-stream")
            bus = self.pipeline.get_bus()
            bus.timed_pop_filtered(int(timeout_s * Gst.SECOND), Gst.MessageType.EOS | Gst.MessageType.ERROR)
        finally:
            G.stop(self.pipeline)
            self.pipeline = None


def _udpsink(host: str, port: int):
    el = G.make("udpsink", host=host, port=port, sync=False)
    el.set_property("async", False)
    return el


def open_sink(spec: OutputSpec) -> Sink:
    if spec.kind == "none":
        return NullSink()
    if spec.kind == "images":
        return ImageFolderSink(spec)
    return GstSink(spec)
