"""INT8 QDQ on ONNX Runtime: calibration cache, parity, and the mIoU accuracy gate within a stated bound.

Bound: on the compact CNN (LR-ASPP MobileNetV3) at 64×128 the INT8 graph loses at most
MAX_DROP = 5 mIoU points against its FP32 graph, scored on labels the FP32 model predicts itself
(so FP32 scores 100 % and the drop is the quantisation damage alone; a random-weight model has no
meaningful ground-truth mIoU to compare).
"""

from __future__ import annotations

import numpy as np
import pytest

from _export_util import SIZE, make_ckpt, quick_cfg
from pipa_edge.export.exporter import export
from pipa_edge.runtime.backends import load_backend, read_sidecar

MAX_DROP = 0.05


@pytest.fixture(scope="module")
def int8_export(tmp_path_factory):
    d = tmp_path_factory.mktemp("int8")
    ckpt = make_ckpt(d, "lraspp-mbv3")
    res = export(ckpt, quick_cfg(d, precision="int8", int8={"n": 8, "gate_n": 4}))
    return {"dir": d, "ckpt": ckpt, "res": res}


def test_int8_qdq_export_runs_on_ort(int8_export):
    import onnx

    res = int8_export["res"]
    p8 = res.files["onnx_int8"]
    ops = {n.op_type for n in onnx.load(str(p8)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    meta = read_sidecar(p8)
    assert meta.precision == "int8" and meta.extra["calibration"]["frames"] == 8
    assert p8.stat().st_size < 0.5 * res.files["onnx"].stat().st_size  # int8 weights
    assert res.accuracy is not None and res.accuracy["passed"]
    assert res.parity["ONNX INT8"].agreement > 0.9
    with load_backend(p8) as b:
        y = b.infer(np.zeros((1, *SIZE, 3), np.uint8))
    assert y.shape == (1, 11, SIZE[0] // 8, SIZE[1] // 8) and np.isfinite(y).all()  # default: model resolution


def test_int8_accuracy_drop_within_bound(int8_export):
    from pipa_edge.export.frames import from_synth
    from pipa_edge.export.quantize import accuracy_gate

    res = int8_export["res"]
    fs = from_synth(6, SIZE, seed=5)
    with load_backend(res.files["onnx"]) as fp32, load_backend(res.files["onnx_int8"]) as int8:
        own = np.concatenate([fp32.infer(fs.frames[i:i + 1]).argmax(1) for i in range(6)]).astype(np.uint8)
        rep = accuracy_gate(fp32, int8, fs.frames, own, "self-labelled synthetic", MAX_DROP)
        assert rep.miou_before == pytest.approx(1.0)
        assert rep.drop <= MAX_DROP, rep.line()
        # the gate does fail when the allowed drop is impossible to meet
        strict = accuracy_gate(fp32, int8, fs.frames, own, "self", -0.01)
    assert not strict.passed and "allowed" in strict.line()


def test_calibration_cached_by_data_hash(int8_export, tmp_path):
    from pipa_edge.export.frames import from_synth
    from pipa_edge.export.quantize import quantize_qdq

    res = int8_export["res"]
    meta = read_sidecar(res.files["onnx"])
    fs = from_synth(4, SIZE, seed=9)
    cache = tmp_path / "cache"
    _, hit1 = quantize_qdq(res.files["onnx"], tmp_path / "a.onnx", meta, fs.frames, fs.sha12, cache_dir=cache)
    _, hit2 = quantize_qdq(res.files["onnx"], tmp_path / "b.onnx", meta, fs.frames, fs.sha12, cache_dir=cache)
    other = from_synth(4, SIZE, seed=10)
    _, hit3 = quantize_qdq(res.files["onnx"], tmp_path / "c.onnx", meta, other.frames, other.sha12, cache_dir=cache)
    assert (hit1, hit2, hit3) == (False, True, False)
    assert (tmp_path / "a.onnx").read_bytes() == (tmp_path / "b.onnx").read_bytes()


def test_int8_gate_on_real_labelled_folder(int8_export, camvid_root, tmp_path):
    """The gate reads a labelled folder (images/ + labels/); CamVid classes need a CamVid model."""
    import torch

    from pipa_edge.data.classes import CAMVID11
    from pipa_edge.models import build_segmenter, save_segmenter

    torch.manual_seed(0)
    ckpt = save_segmenter(tmp_path / "camvid.pt", build_segmenter("lraspp-mbv3", CAMVID11))
    res = export(ckpt, quick_cfg(tmp_path, precision="int8",
                                 int8={"n": 4, "gate_n": 4, "calib": str(camvid_root / "dusk_train"),
                                       "gate_data": str(camvid_root / "dusk_train"), "max_miou_drop": 1.0}))
    acc = res.accuracy
    assert acc["frames"] == 4 and "dusk_train" in acc["source"] and 0 <= acc["miou_before"] <= 1
