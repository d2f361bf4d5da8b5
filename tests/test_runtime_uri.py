"""URI grammar: valid sources/outputs parse to the right spec; invalid ones raise SourceError naming the URI."""

from __future__ import annotations

import numpy as np
import pytest

from pipa_edge.errors import PipaError, SourceError
from pipa_edge.runtime.uri import parse_output, parse_source


def _png(path):
    import cv2

    cv2.imwrite(str(path), np.zeros((8, 8, 3), np.uint8))


def test_default_and_test_source():
    s = parse_source(None)
    assert (s.kind, s.live) == ("test", False)
    s = parse_source("test://?width=320&height=160&seed=3&live=1")
    assert s.options == {"width": 320, "height": 160, "seed": 3, "live": True} and s.live


@pytest.mark.parametrize("csi,kind,loc", [(True, "csi", ""), (False, "v4l2", "/dev/video1")])
def test_camera_resolves_by_feature(csi, kind, loc):
    s = parse_source("camera1?width=1280&height=720", csi_available=csi)
    assert (s.kind, s.index, s.location, s.live) == (kind, 1, loc, True)
    assert s.options["width"] == 1280


def test_camera_and_network_sources():
    assert parse_source("csi://0").kind == "csi"
    s = parse_source("v4l2:///dev/video2")
    assert (s.kind, s.location, s.index) == ("v4l2", "/dev/video2", 2)
    assert parse_source("/dev/video0").kind == "v4l2"
    s = parse_source("rtsp://user:pw@cam.local:8554/stream?latency=100")
    assert (s.kind, s.location, s.options["latency"]) == ("rtsp", "rtsp://user:pw@cam.local:8554/stream", 100)
    s = parse_source("rtp://@:5000")
    assert (s.kind, s.port, s.options["codec"], s.live) == ("rtp", 5000, "h264", True)
    s = parse_source("rtp://239.0.0.1:5004?codec=h265")
    assert (s.location, s.port, s.options["codec"]) == ("239.0.0.1", 5004, "h265")


def test_file_sources(tmp_path):
    video = tmp_path / "clip with space!.mp4"
    video.write_bytes(b"\0")
    s = parse_source(str(video))
    assert (s.kind, s.media, s.location, s.live) == ("file", "video", str(video), False)
    assert parse_source(f"file://{video}").location == str(video)
    for i in range(3):
        _png(tmp_path / f"f{i}.png")
    s = parse_source(str(tmp_path))
    assert s.media == "folder" and len(s.files) == 3
    s = parse_source(str(tmp_path / "f*.png"))
    assert s.media == "glob" and [p[-6:] for p in s.files] == ["f0.png", "f1.png", "f2.png"]
    assert parse_source(str(tmp_path / "f1.png")).media == "image"


@pytest.mark.parametrize("uri", [
    "camera", "cameraX", "csi://a", "v4l2://dev/video0", "v4l2:///dev/sda", "rtsp://", "rtsp://bad host/x",
    "rtp://:5000", "rtp://@:0", "rtp://10.0.0.2:5000", "rtp://@", "rtp://239.0.0.1", "rtp://@:70000", "rtp://@:5000?codec=vp9", "rtp://@:5000?bogus=1",
    "test://host", "test://?width=abc", "test://?width=-5", "test://?domain=mars", "http://example.com/x.mp4",
    "camera0?fps=1.5", "/no/such/file.mp4", "notes.txt", "file:///no/such/dir/*.png", "test://\x00",
])
def test_invalid_sources_name_the_uri(uri, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(SourceError) as e:
        parse_source(uri)
    assert isinstance(e.value, PipaError)
    shown = uri if "\x00" not in uri else repr(uri)
    assert shown in str(e.value) and "\n" not in str(e.value)


def test_outputs(tmp_path):
    assert parse_output(None).kind == "none" and parse_output("none").kind == "none"
    d = parse_output("display://0")
    assert (d.kind, d.index) == ("display", 0)
    o = parse_output(str(tmp_path / "out.mp4") + "?bitrate=2000")
    assert (o.kind, o.container, o.options["bitrate"]) == ("file", "mp4", 2000)
    assert parse_output("x.mkv").container == "mkv"
    r = parse_output("rtp://127.0.0.1:5001")
    assert (r.kind, r.location, r.port) == ("rtp", "127.0.0.1", 5001)
    f = parse_output(str(tmp_path / "frames") + "/")
    assert f.kind == "images" and f.location.endswith("%06d.png")
    assert parse_output(str(tmp_path / "frames" / "f_%04d.jpg")).location.endswith("f_%04d.jpg")


@pytest.mark.parametrize("uri", ["x.avi", "frame.png", "out/f_%q.png", "rtp://@:5000", "rtp://host",
                                 "rtp://host:0", "display://abc", "ftp://x/y.mp4", "out.mp4?bogus=1", "weird.xyz"])
def test_invalid_outputs_name_the_uri(uri):
    with pytest.raises(SourceError) as e:
        parse_output(uri)
    assert uri in str(e.value)
