"""`pipa-edge bench` end to end on a tiny model with few iterations (no timing asserted)."""

from __future__ import annotations

import json

import pytest

from pipa_edge.cli.main import main


def _read(path):
    return json.loads(path.read_text())


def test_cli_arch_torch_and_onnxruntime(tmp_path, capsys):
    rc = main(["bench", "lraspp-mbv3", "--backend", "torch,onnxruntime", "--imgsz", "64", "--iters", "6",
               "--warmup", "2", "--rounds", "2", "--out", str(tmp_path), "--name", "tiny"])
    assert rc == 0
    data = _read(tmp_path / "tiny.json")
    keys = [r["key"] for r in data["results"]]
    assert keys == ["lraspp-mbv3|torch|fp32|64x64", "lraspp-mbv3.onnx|onnxruntime|fp32|64x64"]
    for r in data["results"]:
        assert r["host_ms"]["n"] == 6 and len(r["samples_ms"]) == 6
        assert r["warmup"]["iters"] == 2
        assert r["host_ms"]["min"] <= r["host_ms"]["p50"] <= r["host_ms"]["p99"] <= r["host_ms"]["max"]
    assert data["env"]["libs"]["onnxruntime"]
    assert (tmp_path / "tiny.csv").is_file() and (tmp_path / "tiny.png").is_file()
    assert (tmp_path / "models" / "lraspp-mbv3_64x64.onnx").is_file()  # exported once through pipa_edge.export
    out = capsys.readouterr().out
    assert "lraspp-mbv3" in out and "1.00x" in out

    # the exported file benches directly (onnxruntime chosen by suffix), and compare prints ratios
    # (a file's input size is fixed: --imgsz is ignored for it with a warning, not benched twice)
    rc = main(["bench", str(tmp_path / "models" / "lraspp-mbv3_64x64.onnx"), "--imgsz", "128", "--imgsz", "96",
               "--iters", "4", "--warmup", "1", "--out", str(tmp_path), "--name", "file"])
    assert rc == 0
    (only,) = _read(tmp_path / "file.json")["results"]
    assert only["backend"] == "onnxruntime" and only["input_size"] == [64, 64]
    assert "fixed input size" in capsys.readouterr().err
    capsys.readouterr()
    assert main(["bench", "--compare", str(tmp_path / "tiny.json"), str(tmp_path / "tiny.json")]) == 0
    assert "1.000" in capsys.readouterr().out


def test_cli_checkpoint_torch_backend(tmp_path):
    from pipa_edge.bench.latency import build_arch
    from pipa_edge.models.io import save_segmenter

    ckpt = save_segmenter(tmp_path / "m.pt", build_arch("lraspp-mbv3"))
    rc = main(["bench", str(ckpt), "--backend", "torch", "--backend", "onnxruntime", "--imgsz", "64x96", "--iters", "3",
               "--warmup", "1", "--out", str(tmp_path)])
    assert rc == 0
    t, o = _read(tmp_path / "bench.json")["results"]
    assert t["backend"] == "torch" and t["input_size"] == [64, 96]
    assert t["size_mb"] == pytest.approx(ckpt.stat().st_size / 1e6, rel=1e-3)
    # the checkpoint's own segmenter, exported through pipa_edge.export for onnxruntime
    assert o["model"] == "m.pt.onnx" and o["backend"] == "onnxruntime" and o["input_size"] == [64, 96]


@pytest.mark.parametrize("argv, msg", [
    (["bench", "no_such_model.onnx"], "not found"),
    (["bench", "not-an-arch"], "suffix"),
    (["bench", "lraspp-mbv3", "--imgsz", "65"], "multiple of 32"),
    (["bench"], "at least one MODEL"),
])
def test_cli_user_errors_exit_2(tmp_path, capsys, argv, msg):
    assert main(argv + ["--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert msg in err and "Traceback" not in err


def test_bench_backend_api_counts_iterations():
    from pipa_edge.bench.latency import bench_backend, build_arch
    from pipa_edge.runtime.backends.torch_backend import TorchBackend

    b = TorchBackend(segmenter=build_arch("lraspp-mbv3"), input_size=(64, 64))
    r = bench_backend(b, iters=4, warmup=None, warmup_s=0.5)
    assert r.host.n == 4 and r.gpu is None
    assert r.warmup["mode"].startswith("until-stable")
    assert r.warmup["iters"] >= 1
