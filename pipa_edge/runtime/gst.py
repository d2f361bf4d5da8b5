"""Small GStreamer helpers: lazy init, feature detection, programmatic element chains, buffers ↔ NumPy.

Pipelines are built element by element with properties set through GObject (never by splicing
user text into a ``gst-launch`` string). Works with GStreamer >= 1.20 (Jetson JetPack 6).
"""

from __future__ import annotations

import threading
from functools import lru_cache

import numpy as np

from pipa_edge.errors import BackendUnavailable

_lock = threading.Lock()
_gst = None


def gst():
    """Import and initialise Gst once (raises BackendUnavailable with the install command)."""
    global _gst
    with _lock:
        if _gst is None:
            try:
                import gi

                gi.require_version("Gst", "1.0")
                gi.require_version("GstVideo", "1.0")
                gi.require_version("GstApp", "1.0")
                from gi.repository import Gst, GstApp, GstVideo  # noqa: F401
            except (ImportError, ValueError) as e:
                raise BackendUnavailable(
                    f"GStreamer/PyGObject not available ({e}); run scripts/setup.sh or install "
                    "gir1.2-gstreamer-1.0 gir1.2-gst-plugins-base-1.0 and pip install 'pipa-edge[runtime]'") from None
            Gst.init(None)
            _gst = Gst
    return _gst


@lru_cache(maxsize=None)
def has_element(name: str) -> bool:
    return gst().ElementFactory.find(name) is not None


def is_jetson() -> bool:
    """NVIDIA's Jetson GStreamer elements are present (nvvidconv)."""
    return has_element("nvvidconv")


def make(factory: str, name: str | None = None, **props):
    """Create an element and set its properties (``foo_bar`` → ``foo-bar``)."""
    Gst = gst()
    el = Gst.ElementFactory.make(factory, name)
    if el is None:
        raise BackendUnavailable(f"GStreamer element '{factory}' is not installed")
    for k, v in props.items():
        el.set_property(k.replace("_", "-"), v)
    return el


def caps(text: str):
    """Caps from a string built only from validated numbers/constants (never user text)."""
    c = gst().Caps.from_string(text)
    if c is None:
        raise ValueError(f"invalid caps {text!r}")
    return c


def capsfilter(text: str):
    return make("capsfilter", caps=caps(text))


def add_chain(pipeline, elements: list) -> None:
    """Add elements to ``pipeline`` and link them in order."""
    for el in elements:
        pipeline.add(el)
    for a, b in zip(elements, elements[1:]):
        if not a.link(b):
            raise BackendUnavailable(f"cannot link GStreamer elements {a.get_factory().get_name()} → "
                                     f"{b.get_factory().get_name()}")


def link_dynamic(src_el, sink_el, want: str = "video") -> None:
    """Link a dynamic-pad element (decodebin, rtspsrc) to ``sink_el`` when its ``want`` pad appears."""

    def on_pad(_el, pad):
        sink_pad = sink_el.get_static_pad("sink")
        if sink_pad is None or sink_pad.is_linked():
            return
        c = pad.get_current_caps() or pad.query_caps(None)
        name = c.get_structure(0).get_name() if c and c.get_size() else ""
        if name.startswith(want):
            pad.link(sink_pad)

    src_el.connect("pad-added", on_pad)


def cap_decoder_threads(bin_el, n: int) -> None:
    """Set ``max-threads`` = ``n`` on every software decoder (avdec_*, ...) that ``bin_el``
    (decodebin / uridecodebin) creates, at any depth; ``n`` = 0 keeps the decoder's own choice."""

    def on_element(_bin, _sub, el):
        if el.find_property("max-threads") is not None:
            el.set_property("max-threads", int(n))

    if n:
        bin_el.connect("deep-element-added", on_element)


def sample_to_array(sample) -> np.ndarray | None:
    """RGB sample → ``(H, W, 3) uint8`` copy, honouring the row stride (GstVideoMeta or caps)."""
    Gst = gst()
    from gi.repository import GstVideo

    buf = sample.get_buffer()
    s = sample.get_caps().get_structure(0)
    ok_w, w = s.get_int("width")
    ok_h, h = s.get_int("height")
    if not (ok_w and ok_h):
        return None
    stride = 0
    meta = GstVideo.buffer_get_video_meta(buf)
    if meta is not None:
        stride = int(meta.stride[0])
    if stride <= 0:
        stride = (w * 3 + 3) & ~3  # GStreamer's default RGB row alignment (4 bytes)
    ok, info = buf.map(Gst.MapFlags.READ)
    if not ok:
        return None
    try:
        if info.size < stride * (h - 1) + w * 3:
            return None  # truncated buffer: treated as a corrupt frame by the caller
        flat = np.frombuffer(info.data, np.uint8, count=stride * (h - 1) + w * 3)
        rows = np.lib.stride_tricks.as_strided(flat, shape=(h, w * 3), strides=(stride, 1))
        return rows.reshape(h, w, 3).copy()
    finally:
        buf.unmap(info)


def array_to_buffer(img: np.ndarray, pts_ns: int, duration_ns: int):
    Gst = gst()
    data = np.ascontiguousarray(img).tobytes()
    buf = Gst.Buffer.new_wrapped(data)
    buf.pts = pts_ns
    buf.dts = pts_ns
    buf.duration = duration_ns
    return buf


def bus_errors(pipeline, max_messages: int = 64) -> tuple[bool, list[str], int]:
    """Drain the bus without blocking: ``(eos, error_texts, warning_count)``."""
    Gst = gst()
    bus = pipeline.get_bus()
    eos, errors, warnings = False, [], 0
    for _ in range(max_messages):
        msg = bus.pop_filtered(Gst.MessageType.EOS | Gst.MessageType.ERROR | Gst.MessageType.WARNING)
        if msg is None:
            break
        if msg.type == Gst.MessageType.EOS:
            eos = True
        elif msg.type == Gst.MessageType.ERROR:
            err, _dbg = msg.parse_error()
            errors.append(f"{msg.src.get_name() if msg.src else '?'}: {err.message}")
        else:
            warnings += 1
    return eos, errors, warnings


def stop(pipeline, timeout_s: float = 2.0) -> None:
    """Set to NULL (releases devices, sockets and files)."""
    if pipeline is None:
        return
    Gst = gst()
    pipeline.set_state(Gst.State.NULL)
    pipeline.get_state(int(timeout_s * Gst.SECOND))
