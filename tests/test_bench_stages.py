"""Per-stage timings through the real runtime on the real dash-cam clip (skipped without it)."""

from __future__ import annotations

import pytest


def test_stages_on_dashcam(dashcam_video, tmp_path):
    pytest.importorskip("gi", reason="GStreamer (pygobject) is not installed")
    from pipa_edge.bench.latency import build_arch
    from pipa_edge.bench.stages import STAGES, bench_stages
    from pipa_edge.runtime.backends.torch_backend import TorchBackend

    b = TorchBackend(segmenter=build_arch("lraspp-mbv3"), input_size=(64, 96))
    r = bench_stages(str(dashcam_video), b, max_frames=6, workdir=tmp_path)
    assert r["frames"] == 6
    assert set(r["stages"]) == set(STAGES)
    assert r["stages"]["decode"]["stats"]["n"] == 6
    for name in ("inference", "temporal_filter", "postprocess_overlay", "encode"):
        assert r["stages"][name]["p50_ms"] > 0, name
    e2e = r["e2e"]
    assert e2e["latency_p50_ms"] >= e2e["age_at_inference_p50_ms"] > 0
    assert (tmp_path / "encode_probe.mp4").stat().st_size > 0


def test_cli_e2e(dashcam_video, tmp_path, capsys):
    pytest.importorskip("gi", reason="GStreamer (pygobject) is not installed")
    import json

    from pipa_edge.cli.main import main

    assert main(["bench", "lraspp-mbv3", "--imgsz", "64", "--iters", "2", "--warmup", "1", "--e2e", str(dashcam_video),
                 "--e2e-frames", "4", "--out", str(tmp_path)]) == 0
    data = json.loads((tmp_path / "bench.json").read_text())
    assert data["e2e"]["frames"] == 4 and data["e2e"]["stages"]["inference"]["p50_ms"] > 0
    assert "end-to-end frame age" in capsys.readouterr().out
