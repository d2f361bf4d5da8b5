"""One URI grammar for every source and output (jetson-utils style), in pure Python.

Sources::

    camera0, cameraN            Jetson CSI camera N when nvarguscamerasrc exists, else /dev/videoN
    csi://N                     Jetson CSI camera (nvarguscamerasrc sensor-id=N)
    v4l2:///dev/videoN, /dev/videoN
    PATH, file://PATH           a video, an image, a folder of images or a glob of images
    rtsp://[user:pass@]host[:port]/path
    rtp://@:PORT                RTP/UDP receiver (H.264 by default, ``?codec=h265|mjpeg``), bound to
                                ``?address=IP`` (default 0.0.0.0: every IPv4 interface; 127.0.0.1 =
                                local senders only; ``::`` = every IPv6 interface);
    rtp://GROUP:PORT            the same, joining an IPv4 multicast group (224.0.0.0-239.255.255.255)
    test://                     the embedded synthetic driving scene (the default)

Outputs::

    display://N                 a window (autovideosink; nveglglessink on Jetson)
    PATH.mp4, PATH.mkv          H.264 video file
    rtp://HOST:PORT             H.264 over RTP/UDP
    PATH/ (a folder)            one image per frame (``PATH/%06d.png``, or a printf pattern
                                such as ``out/frame_%05d.jpg``; a ``%`` in the folder's own
                                name is taken literally)
    none                        headless (discard)

Credentials in a URI (``rtsp://user:pass@host/...``) are used to connect but never shown:
:func:`redact` replaces the userinfo by ``***`` in ``SourceSpec.uri`` (what logs, errors, the
stats JSON and collected manifests print); only ``SourceSpec.location`` keeps the real URL.

Options go in the query string (``camera0?width=1280&height=720&fps=30``); unknown keys and bad
values raise :class:`~pipa_edge.errors.SourceError` naming the URI. Nothing here touches
GStreamer: the specs are turned into elements property by property in
:mod:`pipa_edge.runtime.sources`/:mod:`pipa_edge.runtime.sinks`, never spliced into a launch string.
"""

from __future__ import annotations

import glob as _glob
import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

from pipa_edge.errors import SourceError

VIDEO_EXT = (".mp4", ".mkv", ".avi", ".mov", ".webm", ".h264", ".264", ".ts", ".m4v", ".mpg", ".mpeg", ".flv")
IMAGE_EXT = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
OUTPUT_VIDEO_EXT = (".mp4", ".mkv")
RTP_CODECS = ("h264", "h265", "mjpeg")
_HOST_RE = re.compile(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9\-]{0,62})(?:\.[A-Za-z0-9\-]{1,63})*|\[[0-9A-Fa-f:.]+\])$")
_DEV_RE = re.compile(r"^/dev/video(\d+)$")
_GLOB_CHARS = set("*?[")

# query keys each kind accepts, with their types
_INT, _FLOAT, _STR, _BOOL = int, float, str, bool
SOURCE_OPTS: dict[str, dict[str, type]] = {
    "csi": {"width": _INT, "height": _INT, "fps": _INT, "flip": _INT},
    "v4l2": {"width": _INT, "height": _INT, "fps": _INT, "decode_threads": _INT},
    "file": {"fps": _FLOAT, "decode_threads": _INT},
    "rtsp": {"latency": _INT, "decode_threads": _INT},
    "rtp": {"codec": _STR, "latency": _INT, "address": _STR, "decode_threads": _INT},
    "test": {"width": _INT, "height": _INT, "fps": _FLOAT, "seed": _INT, "domain": _STR, "live": _BOOL},
}
OUTPUT_OPTS: dict[str, dict[str, type]] = {
    "display": {}, "file": {"bitrate": _INT, "fps": _FLOAT}, "rtp": {"bitrate": _INT, "fps": _FLOAT},
    "images": {}, "none": {},
}


_USERINFO_RE = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*://)([^/?#\s@]+@)")
RTP_DEFAULT_ADDRESS = "0.0.0.0"  # udpsrc's own default, made explicit: every IPv4 interface


def redact(uri: str) -> str:
    """``rtsp://user:pass@cam/live`` → ``rtsp://***@cam/live``; any text: every ``scheme://userinfo@``
    in it (also inside error messages that quote a URI)."""
    return _USERINFO_RE.sub(r"\1***@", str(uri))


@dataclass
class SourceSpec:
    """A parsed, validated source. ``kind`` is csi|v4l2|file|rtsp|rtp|test."""

    uri: str
    kind: str
    live: bool
    location: str = ""  # device, path, url or ""
    media: str = ""  # for files: video|image|folder|glob
    index: int = 0  # camera/sensor index
    port: int = 0
    options: dict = field(default_factory=dict)
    files: list = field(default_factory=list)  # image sources: the sorted list of files

    def describe(self) -> str:
        extra = f" {self.media}" if self.media else ""
        return f"{self.kind}{extra} '{self.uri}'" + (" (live)" if self.live else "")


@dataclass
class OutputSpec:
    """A parsed, validated output. ``kind`` is display|file|rtp|images|none."""

    uri: str
    kind: str
    location: str = ""  # path, folder pattern or host
    port: int = 0
    index: int = 0
    container: str = ""  # mp4|mkv for kind=file
    options: dict = field(default_factory=dict)


def _coerce(uri: str, key: str, raw: str, typ: type):
    try:
        if typ is bool:
            low = raw.strip().lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        val = typ(raw)
    except ValueError:
        raise SourceError(f"{uri}: option '{key}={raw}' is not a valid {typ.__name__}") from None
    if typ in (int, float) and val < 0:
        raise SourceError(f"{uri}: option '{key}={raw}' must not be negative")
    return val


def _options(uri: str, query: str, allowed: dict[str, type]) -> dict:
    out = {}
    for key, raw in parse_qsl(query, keep_blank_values=True):
        if key not in allowed:
            known = ", ".join(allowed) or "none"
            raise SourceError(f"{uri}: unknown option '{key}' (accepted here: {known})")
        out[key] = _coerce(uri, key, raw, allowed[key])
    return out


def _split_query(text: str) -> tuple[str, str]:
    """``path?k=v`` → (path, query); a '?' is a query only when followed by ``key=``."""
    if "?" in text:
        head, _, q = text.rpartition("?")
        if q and all("=" in part for part in q.split("&")):
            return head, q
    return text, ""


def _is_multicast(host: str) -> bool:
    parts = host.split(".")
    if len(parts) != 4 or not all(p.isdigit() and int(p) < 256 for p in parts):
        return False
    return 224 <= int(parts[0]) <= 239


def _port(uri: str, text: str | int | None) -> int:
    try:
        port = int(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise SourceError(f"{uri}: missing or invalid port") from None
    if not 1 <= port <= 65535:
        raise SourceError(f"{uri}: port {port} out of range 1-65535")
    return port


def _list_images(folder: Path) -> list[str]:
    return sorted(str(p) for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXT)


def _file_source(uri: str, path_text: str, query: str, check_exists: bool) -> SourceSpec:
    if not path_text:
        raise SourceError(f"{uri}: empty file path")
    opts = _options(uri, query, SOURCE_OPTS["file"])
    spec = SourceSpec(uri, "file", live=False, location=path_text, options=opts)
    if any(c in path_text for c in _GLOB_CHARS):
        spec.media = "glob"
        spec.files = sorted(f for f in _glob.glob(path_text) if Path(f).suffix.lower() in IMAGE_EXT)
        if check_exists and not spec.files:
            raise SourceError(f"{uri}: glob matches no image file ({', '.join(IMAGE_EXT)})")
        return spec
    p = Path(path_text)
    if p.is_dir():
        spec.media = "folder"
        spec.files = _list_images(p)
        if check_exists and not spec.files:
            raise SourceError(f"{uri}: folder holds no image file ({', '.join(IMAGE_EXT)})")
        return spec
    suffix = p.suffix.lower()
    if suffix in IMAGE_EXT:
        spec.media, spec.files = "image", [str(p)]
    elif suffix in VIDEO_EXT or not check_exists:
        spec.media = "video"
    else:
        raise SourceError(f"{uri}: unknown file type '{suffix or '(none)'}' (video: {', '.join(VIDEO_EXT)}; "
                          f"image: {', '.join(IMAGE_EXT)})")
    if check_exists and not p.is_file():
        raise SourceError(f"{uri}: file not found")
    return spec


def parse_source(uri: str | None, *, csi_available: bool = False, check_exists: bool = True) -> SourceSpec:
    """Parse and validate a source URI. ``csi_available`` decides what ``cameraN`` means.

    The returned ``uri`` and every error message are :func:`redact` ed; ``location`` keeps the
    credentials a network source needs."""
    try:
        spec = _parse_source(uri, csi_available, check_exists)
    except SourceError as e:
        raise SourceError(redact(str(e))) from None
    spec.uri = redact(spec.uri)
    return spec


def _rtp_address(uri: str, opts: dict, group: str) -> str:
    addr = str(opts.pop("address", "") or "")
    if group:
        if addr:
            raise SourceError(f"{uri}: 'address' is for rtp://@:PORT; a multicast source listens on its group")
        return group
    addr = addr.strip("[]") or RTP_DEFAULT_ADDRESS
    try:
        ipaddress.ip_address(addr)
    except ValueError:
        raise SourceError(f"{uri}: address '{addr}' is not an IP address of this machine (e.g. 0.0.0.0, "
                          f"127.0.0.1, 192.168.1.10)") from None
    return addr


def _parse_source(uri: str | None, csi_available: bool, check_exists: bool) -> SourceSpec:
    uri = "test://" if uri is None or str(uri).strip() == "" else str(uri).strip()
    if any(ord(c) < 32 for c in uri):
        raise SourceError(f"{uri!r}: control characters in URI")
    m = re.fullmatch(r"camera(\d+)((?:\?.*)?)", uri)
    if m:
        n, query = int(m.group(1)), m.group(2)[1:]
        kind = "csi" if csi_available else "v4l2"
        spec = SourceSpec(uri, kind, live=True, index=n, options=_options(uri, query, SOURCE_OPTS[kind]))
        spec.location = "" if kind == "csi" else f"/dev/video{n}"
        return spec
    m = _DEV_RE.match(_split_query(uri)[0])
    if m:
        path, query = _split_query(uri)
        return SourceSpec(uri, "v4l2", live=True, location=path, index=int(m.group(1)),
                          options=_options(uri, query, SOURCE_OPTS["v4l2"]))
    if "://" not in uri:
        path, query = _split_query(uri)
        return _file_source(uri, path, query, check_exists)
    scheme = uri.split("://", 1)[0].lower()
    if scheme == "file":
        path, query = _split_query(uri[len("file://"):])
        return _file_source(uri, unquote(path), query, check_exists)
    parts = urlsplit(uri)
    if scheme == "test":
        if parts.netloc or parts.path not in ("", "/"):
            raise SourceError(f"{uri}: test:// takes no host or path, only options (test://?width=512&height=256)")
        opts = _options(uri, parts.query, SOURCE_OPTS["test"])
        if opts.get("domain", "real") not in ("real", "synth"):
            raise SourceError(f"{uri}: domain must be 'real' or 'synth'")
        for k in ("width", "height"):
            if k in opts and not 16 <= opts[k] <= 8192:
                raise SourceError(f"{uri}: {k}={opts[k]} out of range 16-8192")
        return SourceSpec(uri, "test", live=bool(opts.get("live", False)), options=opts)
    if scheme == "csi":
        if not parts.netloc.isdigit() or parts.path not in ("", "/"):
            raise SourceError(f"{uri}: expected csi://N with a sensor number N")
        return SourceSpec(uri, "csi", live=True, index=int(parts.netloc),
                          options=_options(uri, parts.query, SOURCE_OPTS["csi"]))
    if scheme == "v4l2":
        m = _DEV_RE.match(parts.path)
        if parts.netloc or not m:
            raise SourceError(f"{uri}: expected v4l2:///dev/videoN")
        return SourceSpec(uri, "v4l2", live=True, location=parts.path, index=int(m.group(1)),
                          options=_options(uri, parts.query, SOURCE_OPTS["v4l2"]))
    if scheme in ("rtsp", "rtsps"):
        try:
            host = parts.hostname
            port = parts.port
        except ValueError:
            raise SourceError(f"{uri}: invalid host or port") from None
        if not host or not _HOST_RE.match(host if ":" not in host else f"[{host}]"):
            raise SourceError(f"{uri}: missing or invalid host")
        if port is not None:
            _port(uri, port)
        opts = _options(uri, parts.query, SOURCE_OPTS["rtsp"])
        location = uri.split("?", 1)[0] if parts.query else uri
        return SourceSpec(uri, "rtsp", live=True, location=location, options=opts)
    if scheme == "rtp":
        netloc = parts.netloc
        host = netloc.rsplit(":", 1)[0] if ":" in netloc else netloc
        if host == "@":
            host = ""
        elif not _is_multicast(host):
            raise SourceError(f"{uri}: an RTP source listens on a port: rtp://@:PORT, or joins a multicast group "
                              f"rtp://239.x.x.x:PORT (rtp://HOST:PORT is an output)")
        port = _port(uri, netloc.rsplit(":", 1)[1] if ":" in netloc else None)
        opts = _options(uri, parts.query, SOURCE_OPTS["rtp"])
        codec = opts.setdefault("codec", "h264").lower()
        if codec not in RTP_CODECS:
            raise SourceError(f"{uri}: codec '{codec}' not supported (known: {', '.join(RTP_CODECS)})")
        return SourceSpec(uri, "rtp", live=True, location=_rtp_address(uri, opts, host), port=port, options=opts)
    raise SourceError(f"{uri}: unknown source scheme '{scheme}://' (known: camera0, csi://, v4l2://, file://, "
                      f"rtsp://, rtp://@:PORT, test://)")


def parse_output(uri: str | None) -> OutputSpec:
    """Parse and validate an output URI (see the module docstring)."""
    uri = "none" if uri is None or str(uri).strip() == "" else str(uri).strip()
    if any(ord(c) < 32 for c in uri):
        raise SourceError(f"{uri!r}: control characters in URI")
    if uri.lower() in ("none", "null", "headless"):
        return OutputSpec(uri, "none")
    scheme = uri.split("://", 1)[0].lower() if "://" in uri else ""
    if scheme == "display":
        parts = urlsplit(uri)
        if parts.netloc and not parts.netloc.isdigit():
            raise SourceError(f"{uri}: expected display://N")
        return OutputSpec(uri, "display", index=int(parts.netloc or 0),
                          options=_options(uri, parts.query, OUTPUT_OPTS["display"]))
    if scheme == "rtp":
        parts = urlsplit(uri)
        netloc = parts.netloc
        host, _, port_text = netloc.rpartition(":")
        if not host or host.startswith("@") or not _HOST_RE.match(host):
            raise SourceError(f"{uri}: expected rtp://HOST:PORT with a host name or address")
        return OutputSpec(uri, "rtp", location=host.strip("[]"), port=_port(uri, port_text),
                          options=_options(uri, parts.query, OUTPUT_OPTS["rtp"]))
    if scheme and scheme != "file":
        raise SourceError(f"{uri}: unknown output scheme '{scheme}://' (known: display://, rtp://, file://, "
                          f"*.mp4, *.mkv, a folder, none)")
    path, query = _split_query(uri[len("file://"):] if scheme == "file" else uri)
    path = unquote(path) if scheme == "file" else path
    if not path:
        raise SourceError(f"{uri}: empty output path")
    suffix = Path(path).suffix.lower()
    if suffix in OUTPUT_VIDEO_EXT:
        return OutputSpec(uri, "file", location=path, container=suffix[1:],
                          options=_options(uri, query, OUTPUT_OPTS["file"]))
    if "%" in Path(path).name and not _is_folder(path):
        if suffix not in IMAGE_EXT:
            raise SourceError(f"{uri}: image pattern needs an image suffix ({', '.join(IMAGE_EXT)})")
        try:
            Path(path).name % 1
        except (TypeError, ValueError):
            raise SourceError(f"{uri}: bad frame-number pattern (use e.g. frame_%05d.png)") from None
        location = str(Path(_escape_percent(str(Path(path).parent))) / Path(path).name)
        return OutputSpec(uri, "images", location=location, options=_options(uri, query, OUTPUT_OPTS["images"]))
    if suffix in VIDEO_EXT:
        raise SourceError(f"{uri}: output container '{suffix}' not supported (use .mp4 or .mkv)")
    if suffix in IMAGE_EXT:
        raise SourceError(f"{uri}: a single image cannot hold a stream; give a folder or a pattern such as "
                          f"{Path(path).stem}_%05d{suffix}")
    if suffix and not _is_folder(path):
        raise SourceError(f"{uri}: unknown output type '{suffix}' (use .mp4, .mkv, a folder/, rtp://, display://, none)")
    return OutputSpec(uri, "images", location=str(Path(_escape_percent(path)) / "%06d.png"),
                      options=_options(uri, query, OUTPUT_OPTS["images"]))


def _is_folder(path: str) -> bool:
    return path.endswith(("/", "\\")) or Path(path).is_dir()


def _escape_percent(folder: str) -> str:
    """A folder name is literal text in a frame-number pattern: ``%`` → ``%%`` (printf, GStreamer
    multifilesink/splitmuxsink locations)."""
    return folder.replace("%", "%%")
