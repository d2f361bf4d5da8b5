"""TensorRT without a GPU: TensorRT-RTX parses and builds our ONNX (the only TensorRT proof possible
on these machines), engine naming/caching, sidecar checks, and the one-line "no GPU" errors.

The native TensorRT backend's inference path (deserialise → buffers → execute) needs a GPU and is
not exercised here; docs/deploy.md lists it as unverified.
"""

from __future__ import annotations

import importlib.util
import json

import pytest

from _export_util import SIZE, make_ckpt, quick_cfg
from pipa_edge.errors import BackendUnavailable, ModelFileError
from pipa_edge.export.config import TensorRTConfig
from pipa_edge.export.exporter import export
from pipa_edge.runtime.backends import load_backend, read_sidecar, sidecar_path, write_sidecar
from pipa_edge.runtime.backends.trt_common import check_engine_meta, engine_name, strongly_typed

HAS_RTX = importlib.util.find_spec("tensorrt_rtx") is not None
needs_rtx = pytest.mark.skipif(not HAS_RTX, reason="tensorrt-rtx is not installed (pip install tensorrt-rtx-cu13)")


def _has_gpu() -> bool:
    try:
        from pipa_edge.runtime.backends.cuda_util import gpu_info

        gpu_info()
        return True
    except Exception:  # noqa: BLE001
        return False


@pytest.fixture(scope="module")
def onnx_set(tmp_path_factory):
    """FP32 (float in, logits), FP32 (uint8 in, labels out), FP16 graph and INT8 QDQ graph for SegFormer-B0."""
    d = tmp_path_factory.mktemp("trt")
    ck = make_ckpt(d, "segformer-b0")
    fp16 = export(ck, quick_cfg(d, precision="fp16"))
    int8 = export(ck, quick_cfg(d, precision="int8", name="q", int8={"n": 4, "gate_n": 2, "max_miou_drop": 1.0}))
    lab = export(make_ckpt(d, "lraspp-mbv3"), quick_cfg(d, input_format="uint8_nhwc", output="labels", name="lab"))
    return {"dir": d, "fp32": fp16.files["onnx"], "fp16": fp16.files["onnx_fp16"], "int8": int8.files["onnx_int8"],
            "labels": lab.files["onnx"]}


def test_engine_name_and_typing():
    name = engine_name("best", "ab" * 32, "10.3.0.26", "87", "fp16", (512, 1024))
    assert name == "best.abababababab.trt10.3.0.sm87.fp16.512x1024.engine"
    assert engine_name("m", "c" * 64, "1.7.1.116", "rtx", "int8", SIZE, "tensorrt_rtx").startswith(
        "m.cccccccccccc.trtrtx1.7.1.smrtx.int8.64x128")
    assert not strongly_typed("10.3.0") and not strongly_typed("8.6.1")
    assert strongly_typed("11.0.0") and strongly_typed("1.7.1", "tensorrt_rtx")


@needs_rtx
@pytest.mark.parametrize("kind,prec", [("fp32", "fp32"), ("fp16", "fp16"), ("int8", "int8"), ("labels", "fp32")])
def test_rtx_parses_and_builds(onnx_set, tmp_path, kind, prec):
    from pipa_edge.export.tensorrt import build_engine

    src = onnx_set[kind]
    meta = read_sidecar(src)
    cfg = TensorRTConfig(timing_cache=str(tmp_path / "tc.cache"))
    engine, emeta, hit = build_engine(src, meta, cfg, prec, tmp_path, src.stem.split(".")[0],
                                      flavour="tensorrt_rtx", require_gpu=False)
    assert not hit and engine.stat().st_size > 100_000
    assert engine.name.endswith(f".smrtx.{prec}.{SIZE[0]}x{SIZE[1]}.engine")
    side = json.loads(sidecar_path(engine).read_text())
    assert side["extra"]["strongly_typed"] and side["extra"]["tensorrt_flavour"] == "tensorrt_rtx"
    assert side["extra"]["onnx_sha256"] == meta.extra["file_sha256"] and side["precision"] == prec
    assert side["classes"]["names"] == list(meta.classes.names)
    assert side["extra"]["timing_cache"] is None  # timing cache ops are no-ops in TensorRT-RTX: not written
    assert not engine.read_bytes().startswith(b"{")  # plain plan, no header prepended
    _, _, hit2 = build_engine(src, meta, cfg, prec, tmp_path, src.stem.split(".")[0], flavour="tensorrt_rtx",
                              require_gpu=False)
    assert hit2


@needs_rtx
def test_rtx_reports_unsupported_nodes(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    from pipa_edge.export.tensorrt import TensorRTBuildError, parse_onnx
    from pipa_edge.runtime.backends.trt_common import import_trt

    node = helper.make_node("StringNormalizer", ["s"], ["y"], name="my_bad_node")
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("s", TensorProto.STRING, [1])],
                          [helper.make_tensor_value_info("y", TensorProto.STRING, [1])])
    path = tmp_path / "bad.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    trt, _ = import_trt("tensorrt_rtx")
    with pytest.raises(TensorRTBuildError) as e:
        parse_onnx(trt, path, strongly=True)
    msg = str(e.value)
    assert "bad.onnx" in msg and "my_bad_node" in msg and "\n" not in msg


def _fake_engine(tmp_path, **extra):
    from pipa_edge.data.classes import SYNTH11
    from pipa_edge.runtime.backends.base import ModelMeta
    from pipa_edge.runtime.backends.sidecar import file_sha256

    eng = tmp_path / "m.engine"
    eng.write_bytes(b"\x00plan" * 1000)
    meta = ModelMeta(SYNTH11, SIZE, (0.5,) * 3, (0.5,) * 3,
                     extra={"engine_sha256": file_sha256(eng), "tensorrt_version": "10.3.0",
                            "tensorrt_flavour": "tensorrt", "sm": "87", "gpu": "Orin", **extra})
    write_sidecar(eng, meta)
    return eng, meta


def test_sidecar_checks_before_deserialising(tmp_path):
    eng, meta = _fake_engine(tmp_path)
    check_engine_meta(eng, meta, "10.3.0.26", "tensorrt", "87", meta.extra["engine_sha256"])  # all good
    with pytest.raises(ModelFileError, match="built with TensorRT 10.3.0 but this is TensorRT 10.7.0"):
        check_engine_meta(eng, meta, "10.7.0", "tensorrt", "87", None)
    with pytest.raises(ModelFileError, match="sm87 .*this GPU is sm86"):
        check_engine_meta(eng, meta, "10.3.0", "tensorrt", "86", None)
    with pytest.raises(ModelFileError, match="built with tensorrt but tensorrt_rtx"):
        check_engine_meta(eng, meta, "10.3.0", "tensorrt_rtx", None, None)
    with pytest.raises(ModelFileError, match="sha256 differs"):
        check_engine_meta(eng, meta, "10.3.0", "tensorrt", None, "0" * 64)


def test_truncated_engine_and_missing_sidecar(tmp_path):
    eng, _ = _fake_engine(tmp_path)
    eng.write_bytes(eng.read_bytes()[:100])
    with pytest.raises(ModelFileError, match="m.engine: engine does not match its sidecar"):
        load_backend(eng)
    sidecar_path(eng).unlink()
    with pytest.raises(ModelFileError, match="sidecar m.engine.json not found"):
        load_backend(eng)


@pytest.mark.skipif(_has_gpu(), reason="this machine has a GPU: the no-GPU error cannot be shown")
def test_no_gpu_is_one_line(tmp_path):
    from pipa_edge.cli.main import main

    if HAS_RTX:  # an engine whose sidecar matches the installed TensorRT-RTX: the next check is the GPU
        import tensorrt_rtx

        eng, _ = _fake_engine(tmp_path, tensorrt_flavour="tensorrt_rtx", tensorrt_version=tensorrt_rtx.__version__,
                              sm="rtx")
        with pytest.raises(BackendUnavailable, match="no CUDA GPU on this machine"):
            load_backend(eng)
    ck = make_ckpt(tmp_path, "lraspp-mbv3")
    assert main(["export", str(ck), "--format", "engine", "--imgsz", "64", "128", "--out", str(tmp_path)]) == 2
    assert not list(tmp_path.glob("*.onnx"))  # failed before doing any work
