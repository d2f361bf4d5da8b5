"""Robustness: RTP source stopped and restarted (loopback), SIGINT finalises the mp4, short soak."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from pipa_edge.runtime import run_stream
from pipa_edge.runtime.toy import PaletteBackend

pytest.importorskip("gi")
REPO = Path(__file__).resolve().parents[1]


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rtp_sender(port: int) -> subprocess.Popen:
    """A second GStreamer pipeline sending H.264/RTP to 127.0.0.1 only."""
    exe = shutil.which("gst-launch-1.0")
    if exe is None:
        pytest.skip("gst-launch-1.0 not installed (gstreamer1.0-tools)")
    return subprocess.Popen([exe, "-q", "videotestsrc", "is-live=true", "pattern=ball", "!",
                             "video/x-raw,width=160,height=96,framerate=30/1", "!", "x264enc", "tune=zerolatency",
                             "speed-preset=ultrafast", "key-int-max=10", "!", "rtph264pay", "config-interval=1",
                             "pt=96", "!", "udpsink", "host=127.0.0.1", f"port={port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


class _Clock(PaletteBackend):
    def __init__(self, **kw):
        super().__init__(**kw)
        self.times: list[float] = []

    def infer(self, frames):
        self.times.append(time.monotonic())
        return super().infer(frames)


def test_rtp_source_reconnects_after_sender_restart():
    port = _free_udp_port()
    backend = _Clock(input_size=(48, 80))
    result: dict = {}

    def run():
        result["s"] = run_stream(f"rtp://@:{port}", "none", backend, max_frames=90, log_stats=False)

    sender = _rtp_sender(port)
    t = threading.Thread(target=run, daemon=True)
    try:
        t.start()
        deadline = time.monotonic() + 20
        while len(backend.times) < 20 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(backend.times) >= 20, "no frames from the RTP sender"
        sender.send_signal(signal.SIGINT)
        sender.wait(10)
        time.sleep(1.6)  # longer than the stall timeout: the runtime reopens the source
        n_before = len(backend.times)
        t_restart = time.monotonic()
        sender = _rtp_sender(port)
        t.join(30)
    finally:
        sender.terminate()
        sender.wait(10)
    assert not t.is_alive() and "s" in result, "run did not finish after the sender came back"
    s = result["s"]
    after = [x for x in backend.times if x > t_restart]
    assert s.frames >= 80 and s.reconnects >= 1 and n_before < s.frames
    assert after and after[0] - t_restart <= 2.0, f"resumed after {after[0] - t_restart if after else None} s"


def test_rtp_output_feeds_rtp_source():
    """pipa-edge's rtp://HOST:PORT output is a valid rtp://@:PORT source (loopback only)."""
    port = _free_udp_port()
    res: dict = {}
    stop = threading.Event()

    def rx():
        res["rx"] = run_stream(f"rtp://@:{port}", "none", PaletteBackend(input_size=(32, 64)), max_frames=15,
                               log_stats=False)

    def tx():
        res["tx"] = run_stream("test://?width=128&height=64&live=1&fps=30", f"rtp://127.0.0.1:{port}",
                               PaletteBackend(input_size=(32, 64)), log_stats=False, stop_event=stop)

    t_rx = threading.Thread(target=rx, daemon=True)
    t_rx.start()
    time.sleep(0.3)
    t_tx = threading.Thread(target=tx, daemon=True)
    t_tx.start()
    t_rx.join(30)
    stop.set()
    t_tx.join(15)
    assert "rx" in res and res["rx"].exit_reason == "max frames"
    assert res["rx"].frames >= 10  # a live source may drop a frame to stay on the latest one
    assert "tx" in res and res["tx"].exit_reason == "stopped" and res["tx"].frames >= 15


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_finalises_playable_mp4(tmp_path, sig):
    import cv2

    out, stats = tmp_path / "live.mp4", tmp_path / "stats.json"
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-m", "pipa_edge.cli.main", "run", "test://?width=160&height=96&live=1",
                             str(out), "--model", "builtin:palette", "--input-size", "48x80", "--stats-json",
                             str(stats)], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if out.exists() and out.stat().st_size > 20_000:
                break
            time.sleep(0.1)
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        proc.send_signal(sig)
        _o, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err.decode()[-2000:]
    summary = json.loads(stats.read_text())
    assert summary["exit_reason"] == sig.name and summary["frames"] > 0
    cap = cv2.VideoCapture(str(out))
    n = 0
    while cap.read()[0]:
        n += 1
    assert n == summary["frames"], (n, summary["frames"])  # every written frame is in the finalised file


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc (Linux)")
def test_short_soak_no_rss_or_fd_growth(tmp_path):
    """300 frames (the 10,000-frame version is bench/runtime_soak.py)."""
    kw = dict(max_frames=300, log_stats=False)
    uri = "test://?width=128&height=64"
    run_stream(uri, str(tmp_path / "warm.mkv"), PaletteBackend(input_size=(32, 64)), **kw)  # warm caches/plugins
    rss0, fd0 = _rss_mb(), _fds()
    s = run_stream(uri, str(tmp_path / "soak.mkv"), PaletteBackend(input_size=(32, 64)), **kw)
    rss1, fd1 = _rss_mb(), _fds()
    assert s.frames == 300
    assert rss1 - rss0 < 20.0, f"RSS grew {rss1 - rss0:.1f} MB"
    assert fd1 <= fd0, f"file descriptors grew {fd0} → {fd1}"
    assert np.isfinite(rss0)
