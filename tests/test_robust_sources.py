"""Live sources that never answer give up (--reconnect-limit / --reconnect-timeout) with one line and
exit 2; credentials in URIs never reach logs, errors, the stats JSON or collected manifests; the RTP
receiver's bind address; camera hints; corrupt frames named; a '%' in an output folder.

Network tests use 127.0.0.1 only (a port with nothing listening / nothing sending).
"""

from __future__ import annotations

import json
import socket

import numpy as np
import pytest

from pipa_edge.cli.main import main
from pipa_edge.errors import SourceError
from pipa_edge.runtime.sources import Reconnect
from pipa_edge.runtime.uri import RTP_DEFAULT_ADDRESS, parse_output, parse_source, redact


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def _free_port(kind=socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- reconnect policy ------------------------------------------------------------------------
def test_reconnect_limit_counts_failures_in_a_row_and_a_frame_resets():
    c = Clock()
    rc = Reconnect("rtsp://***@cam/x", limit=2, timeout_s=0, clock=c)
    rc.lost("a")
    rc.lost("b")
    rc.ok()  # a frame arrived: the count starts again
    rc.lost("c")
    rc.lost("d")
    with pytest.raises(SourceError) as e:
        rc.lost("rtsp://***@cam/x: connection refused")
    assert str(e.value).startswith("rtsp://***@cam/x: giving up: failed 3 times in a row")
    assert "--reconnect-limit 2" in str(e.value) and "last error: connection refused" in str(e.value)


def test_reconnect_timeout_and_forever():
    c = Clock()
    rc = Reconnect("rtp://@:5000", limit=-1, timeout_s=5, clock=c)
    for _ in range(100):  # no attempt limit
        rc.lost("x")
    c.t = 4.9
    rc.check()
    c.t = 5.0
    with pytest.raises(SourceError, match=r"no frame for 5.0 s \(--reconnect-timeout 5\)"):
        rc.check()
    forever = Reconnect("u", limit=-1, timeout_s=0, clock=c)
    c.t = 1e6
    for _ in range(1000):
        forever.lost("x")
    forever.check()


def test_rtsp_to_nothing_gives_up_with_one_redacted_line(tmp_path, capsys):
    pytest.importorskip("gi")
    port = _free_port()  # nothing listens there
    stats = tmp_path / "s.json"
    rc = main(["run", f"rtsp://admin:s3cret@127.0.0.1:{port}/live", "none", "--model", "builtin:palette",
               "--reconnect-limit", "1", "--reconnect-timeout", "20", "--stats-json", str(stats)])
    err = capsys.readouterr().err
    assert rc == 2
    final = err.strip().splitlines()[-1]
    assert final.startswith(f"error: rtsp://***@127.0.0.1:{port}/live: giving up: failed 2 times in a row")
    assert "s3cret" not in err and "admin" not in err and "Traceback" not in err
    s = json.loads(stats.read_text())
    assert s["source"] == f"rtsp://***@127.0.0.1:{port}/live" and s["exit_reason"] == "error"
    assert "s3cret" not in stats.read_text()


def test_rtp_without_sender_gives_up_after_the_timeout(capsys):
    pytest.importorskip("gi")
    port = _free_port(socket.SOCK_DGRAM)
    rc = main(["run", f"rtp://@:{port}?address=127.0.0.1", "none", "--model", "builtin:palette",
               "--reconnect-timeout", "1"])
    err = capsys.readouterr().err
    assert rc == 2 and "no frame for" in err and "--reconnect-timeout 1" in err


# ---- credentials -----------------------------------------------------------------------------
@pytest.mark.parametrize("raw,shown", [
    ("rtsp://user:pa:ss@cam.local:554/live?latency=50", "rtsp://***@cam.local:554/live?latency=50"),
    ("rtsps://token@10.0.0.2/x", "rtsps://***@10.0.0.2/x"),
    ("rtp://@:5000", "rtp://@:5000"),
    ("see rtsp://a:b@h/1 and http://c:d@e/", "see rtsp://***@h/1 and http://***@e/"),
    ("/data/clip.mp4", "/data/clip.mp4"),
])
def test_redact(raw, shown):
    assert redact(raw) == shown


def test_parsed_spec_and_errors_hide_credentials():
    spec = parse_source("rtsp://user:pw123@cam.local/live")
    assert spec.uri == "rtsp://***@cam.local/live" and "pw123" not in spec.describe()
    assert spec.location == "rtsp://user:pw123@cam.local/live"  # what GStreamer connects with
    with pytest.raises(SourceError) as e:
        parse_source("rtsp://user:pw123@bad_host!/live")
    assert "pw123" not in str(e.value) and "rtsp://***@" in str(e.value)
    with pytest.raises(SourceError) as e:
        parse_source("rtsp://user:pw123@cam/live?nope=1")
    assert "pw123" not in str(e.value)


def test_collected_manifest_has_no_credentials(tmp_path):
    from test_collect_store import easy_cfg, sample

    from pipa_edge.data.classes import CAMVID11
    from pipa_edge.runtime.collect.collector import Collector

    col = Collector(tmp_path / "c", easy_cfg(), CAMVID11, source="rtsp://user:pw123@cam.local/live")
    for i in range(3):
        col.offer(*sample(i), t=float(i))
    col.close()
    text = (tmp_path / "c" / "manifest.jsonl").read_text()
    assert text and "pw123" not in text and "rtsp://***@cam.local/live" in text


# ---- RTP bind address --------------------------------------------------------------------------
def test_rtp_receiver_bind_address():
    assert parse_source("rtp://@:5000").location == RTP_DEFAULT_ADDRESS == "0.0.0.0"
    assert parse_source("rtp://@:5000?address=127.0.0.1").location == "127.0.0.1"
    assert parse_source("rtp://@:5000?address=[::1]").location == "::1"
    assert parse_source("rtp://239.1.2.3:5000").location == "239.1.2.3"
    with pytest.raises(SourceError, match="address 'eth0' is not an IP address"):
        parse_source("rtp://@:5000?address=eth0")
    with pytest.raises(SourceError, match="multicast source listens on its group"):
        parse_source("rtp://239.1.2.3:5000?address=127.0.0.1")


def test_rtp_udpsrc_is_bound_to_the_address():
    pytest.importorskip("gi")
    from pipa_edge.runtime.sources import open_source

    src = open_source(parse_source(f"rtp://@:{_free_port(socket.SOCK_DGRAM)}?address=127.0.0.1"))
    p = src._build()
    udp = next(e for e in p.children if e.get_factory().get_name() == "udpsrc")
    assert udp.get_property("address") == "127.0.0.1"


# ---- cameras, corrupt frames, output folders ---------------------------------------------------
def test_missing_camera_suggests_alternatives(capsys):
    pytest.importorskip("gi")
    rc = main(["run", "/dev/video97", "none", "--model", "builtin:palette"])
    err = capsys.readouterr().err
    assert rc == 2 and "/dev/video97 does not exist" in err
    assert "test://" in err and "v4l2-ctl --list-devices" in err and err.count("error:") == 1


def test_folder_with_corrupt_frames_names_them(tmp_path, capsys):
    pytest.importorskip("gi")
    import cv2

    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(3):
        cv2.imwrite(str(folder / f"{i:03d}_good.png"), np.full((32, 64, 3), 40 * i, np.uint8))
    for i in range(7):
        (folder / f"{i:03d}_bad.png").write_bytes(b"not a png")
    stats = tmp_path / "s.json"
    rc = main(["run", str(folder), "none", "--model", "builtin:palette", "--input-size", "32x64",
               "--stats-json", str(stats), "--quiet-stats"])
    err = capsys.readouterr().err
    assert rc == 0
    s = json.loads(stats.read_text())
    assert s["frames"] == 3 and s["corrupt"] == 7
    assert [p.rsplit("/", 1)[-1] for p in s["corrupt_files"]] == [f"{i:03d}_bad.png" for i in range(5)]
    assert "000_bad.png: unreadable image, skipped" in err and "(+2 more)" not in err
    assert "corrupt 7 (000_bad.png, 001_bad.png, 002_bad.png, 003_bad.png, 004_bad.png +2 more)" in err


def test_percent_in_an_output_folder_is_literal(tmp_path):
    assert parse_output("out/50%/").location == "out/50%%/%06d.png"
    assert parse_output("out/50%/f_%03d.jpg").location == "out/50%%/f_%03d.jpg"
    pytest.importorskip("gi")
    out = tmp_path / "run 100%"
    rc = main(["run", "test://?width=64&height=32", f"{out}/", "--model", "builtin:palette", "--input-size",
               "32x64", "--max-frames", "3", "--quiet-stats"])
    assert rc == 0 and sorted(p.name for p in out.glob("*.png")) == ["000000.png", "000001.png", "000002.png"]
