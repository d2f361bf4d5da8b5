"""`pipa-edge run` CLI: argument mapping, exit codes, the videotestsrc stand-in for test://."""

from __future__ import annotations

import json

import pytest

from pipa_edge.cli.main import main

pytest.importorskip("gi")


def test_cli_run_writes_images_and_stats(tmp_path):
    stats = tmp_path / "s.json"
    rc = main(["run", "test://?width=128&height=64", str(tmp_path / "frames") + "/", "--model", "builtin:palette",
               "--input-size", "32x64", "--max-frames", "5", "--viz", "mask", "--no-legend", "--smooth-alpha", "0.3",
               "--hysteresis-delta", "0.2", "--keyframe", "2", "--stats-json", str(stats), "--quiet-stats"])
    assert rc == 0
    s = json.loads(stats.read_text())
    assert s["frames"] == 5 and s["inferred"] == 3
    assert s["smoothing"] == {"enabled": True, "alpha": 0.3, "delta": 0.2, "frames": 3, "keyframe": 2,
                              "output_kind": "logits", "motion": "auto"}
    assert len(list((tmp_path / "frames").glob("*.png"))) == 5


@pytest.mark.parametrize("argv,needle", [
    (["run", "rtp://@:99999", "--model", "builtin:palette"], "rtp://@:99999"),
    (["run", "test://", "out.avi", "--model", "builtin:palette"], "out.avi"),
    (["run", "test://", "none", "--model", "builtin:nope"], "builtin:nope"),
    (["run", "test://", "none", "--model", "missing.onnx"], "missing.onnx"),
    (["run", "test://", "none", "--model", "builtin:palette", "--alpha", "2"], "alpha"),
    (["run", "test://", "none", "--model", "builtin:palette", "--input-size", "big"], "--input-size"),
])
def test_cli_user_errors_exit_2_with_one_line(argv, needle, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err


def test_headless_default_output(monkeypatch):
    from pipa_edge.cli.run import _default_output

    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert _default_output(False) == "none"
    monkeypatch.setenv("DISPLAY", ":0")
    assert _default_output(False) == "display://0" and _default_output(True) == "none"


def test_videotestsrc_stand_in_for_test_source(monkeypatch):
    """Without the synthetic generator, test:// falls back to GStreamer's videotestsrc."""
    from pipa_edge.runtime import sources
    from pipa_edge.runtime.uri import parse_source

    monkeypatch.setattr(sources, "scene_stream_class", lambda: None)
    src = sources.open_source(parse_source("test://?width=96&height=64"))
    assert isinstance(src, sources.GstSource)
    src.open()
    try:
        frames = [src.read(2.0) for _ in range(3)]
    finally:
        src.close()
    assert all(f is not None and f.image.shape == (64, 96, 3) for f in frames)
    assert (frames[0].image != frames[2].image).any()  # the ball moves


def test_sample_to_array_respects_row_stride():
    """An odd width has padded rows (stride = width*3 rounded up to 4): no shear, exact pixels."""
    import numpy as np

    from pipa_edge.runtime import gst as G

    Gst = G.gst()
    h, w = 5, 97
    stride = (w * 3 + 3) & ~3
    rows = np.zeros((h, stride), np.uint8)
    img = np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8)
    rows[:, : w * 3] = img.reshape(h, -1)
    rows[:, w * 3:] = 77  # padding must not leak into pixels
    sample = Gst.Sample.new(Gst.Buffer.new_wrapped(rows.tobytes()),
                            G.caps(f"video/x-raw,format=RGB,width={w},height={h},framerate=30/1"), None, None)
    np.testing.assert_array_equal(G.sample_to_array(sample), img)


def test_cli_collect_offers_every_inferred_frame(tmp_path):
    """--collect DIR hands each raw model output to the on-device collector (its own tests cover selection)."""
    pytest.importorskip("pipa_edge.runtime.collect.runtime")
    stats, out = tmp_path / "s.json", tmp_path / "collected"
    rc = main(["run", "test://?width=128&height=64", "none", "--model", "builtin:palette", "--input-size", "32x64",
               "--max-frames", "6", "--collect", str(out), "--collect-set", "min_interval_s=0", "--stats-json",
               str(stats), "--quiet-stats"])
    assert rc == 0
    s = json.loads(stats.read_text())
    assert s["collect"]["offered"] == s["inferred"] == 6
    assert (out / "meta.json").is_file()
