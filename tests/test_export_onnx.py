"""ONNX export: every graph option against PyTorch on ONNX Runtime, dynamic shapes, gates, sidecar."""

from __future__ import annotations

import numpy as np
import pytest

from _export_util import SIZE, make_ckpt, quick_cfg
from pipa_edge.errors import PipaError
from pipa_edge.export.exporter import export
from pipa_edge.runtime.backends import load_backend, read_sidecar


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    d = tmp_path_factory.mktemp("onnx")
    return {"dir": d, "lraspp-mbv3": make_ckpt(d, "lraspp-mbv3"), "segformer-b0": make_ckpt(d, "segformer-b0")}


def frames(n=2, size=SIZE, seed=3):
    return np.random.default_rng(seed).integers(0, 256, (n, *size, 3), dtype=np.uint8)


OPTIONS = [(f, o, r) for f in ("float_nchw", "uint8_nhwc") for o in ("logits", "probs", "labels")
           for r in ("model", "input")]


@pytest.mark.parametrize("input_format,output,resolution", OPTIONS)
def test_graph_options_match_torch(ckpts, tmp_path, input_format, output, resolution):
    cfg = quick_cfg(tmp_path, input_format=input_format, output=output, output_resolution=resolution,
                    name=f"m_{input_format}_{output}_{resolution}")
    res = export(ckpts["lraspp-mbv3"], cfg)
    onnx_path = res.files["onnx"]
    rep = res.parity["ONNX"]
    assert rep.passed and rep.agreement >= 0.999
    if output != "labels":
        assert rep.max_abs < 1e-3
    import onnx

    g = onnx.load(str(onnx_path)).graph
    assert onnx.load(str(onnx_path)).opset_import[0].version == 17
    out_type = g.output[0].type.tensor_type.elem_type
    assert out_type == (onnx.TensorProto.UINT8 if output == "labels" else onnx.TensorProto.FLOAT)
    in_type = g.input[0].type.tensor_type.elem_type
    assert in_type == (onnx.TensorProto.UINT8 if input_format == "uint8_nhwc" else onnx.TensorProto.FLOAT)
    assert all(o.type.tensor_type.elem_type != onnx.TensorProto.INT64 for o in g.output)
    if resolution == "input":  # explicit sizes, half-pixel (align_corners=False) resize
        resize = [n for n in g.node if n.op_type == "Resize"][-1]
        attrs = {a.name: a for a in resize.attribute}
        assert attrs["coordinate_transformation_mode"].s == b"half_pixel"
        assert len(resize.input) == 4 and resize.input[3]  # 'sizes' input, not scales
    with load_backend(onnx_path) as ob, load_backend(ckpts["lraspp-mbv3"], input_size=SIZE, output=output,
                                                     output_resolution=resolution) as tb:
        x = frames()
        a, b = ob.infer(x), tb.infer(x)
    stride = 8
    expect_hw = SIZE if resolution == "input" else (SIZE[0] // stride, SIZE[1] // stride)
    assert a.shape[-2:] == expect_hw and a.shape == b.shape
    if output == "probs":
        np.testing.assert_allclose(a.sum(1), 1.0, atol=1e-4)
    la = a if output == "labels" else a.argmax(1)
    lb = b if output == "labels" else b.argmax(1)
    assert (la == lb).mean() >= 0.999


def test_segformer_export_and_sidecar(ckpts, tmp_path):
    res = export(ckpts["segformer-b0"], quick_cfg(tmp_path, output="logits"))
    rep = res.parity["ONNX"]
    assert rep.passed and rep.max_abs < 1e-3
    meta = read_sidecar(res.files["onnx"])
    assert meta.extra["arch"] == "segformer-b0" and meta.extra["opset"] == 17
    assert meta.input_size == SIZE and meta.classes.name == "synth11"
    import onnx

    ops = {n.op_type for n in onnx.load(str(res.files["onnx"])).graph.node}
    assert "LayerNormalization" in ops  # opset 17 keeps LayerNorm as one op (FP32-pinnable in TensorRT)
    assert res.report.is_file() and res.rows[0].format == "PyTorch"
    # the decoder fold (export.fold, default on) is recorded, and the 1024 -> 256 fuse conv is gone;
    # parity above compares the folded graph with the unmodified PyTorch model
    assert meta.extra["folds"] == ["segformer_decoder_fold"]
    dims = [list(t.dims) for t in onnx.load(str(res.files["onnx"])).graph.initializer]
    assert [256, 1024, 1, 1] not in dims
    plain = export(ckpts["segformer-b0"], quick_cfg(tmp_path, output="logits", fold=False, name="nofold"))
    assert plain.parity["ONNX"].passed and read_sidecar(plain.files["onnx"]).extra["folds"] == []
    assert [256, 1024, 1, 1] in [list(t.dims) for t in onnx.load(str(plain.files["onnx"])).graph.initializer]


def test_dynamic_batch_and_size(ckpts, tmp_path):
    res = export(ckpts["lraspp-mbv3"], quick_cfg(tmp_path, dynamic=True, input_format="uint8_nhwc", output="logits",
                                                 output_resolution="input"))
    x = frames(3, (96, 160))
    with load_backend(res.files["onnx"]) as ob, load_backend(ckpts["lraspp-mbv3"], input_size=(96, 160)) as tb:
        a, b = ob.infer(x), tb.infer(x)
    assert a.shape == (3, 11, 96, 160)
    assert np.abs(a - b).max() < 1e-3


def test_parity_gate_fails_with_clear_report(ckpts, tmp_path):
    from pipa_edge.export.parity import ParityError, compare, gate
    from pipa_edge.models import load_segmenter
    from pipa_edge.runtime.backends.torch_backend import TorchBackend

    other = make_ckpt(tmp_path, "lraspp-mbv3", seed=1)  # different weights: must not pass
    res = export(other, quick_cfg(tmp_path))  # the default export: probs at model resolution
    ref = TorchBackend(segmenter=load_segmenter(ckpts["lraspp-mbv3"]), input_size=SIZE, output="probs",
                       output_resolution="model")
    with load_backend(res.files["onnx"]) as ob:
        rep = compare(ref, ob, frames(2), "random frames")
    assert not rep.passed
    with pytest.raises(ParityError, match=r"parity gate failed: .*argmax agreement .*gate ≥ 99.9%"):
        gate(rep, "x.onnx")


def test_simplify_failure_is_loud():
    import onnx
    from onnx import TensorProto, helper

    from pipa_edge.export.simplify import SimplifyError, simplify

    node = helper.make_node("NoSuchOp", ["x"], ["y"], domain="bogus.domain")
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    proto = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("bogus.domain", 1)])
    with pytest.raises(SimplifyError, match="bad.onnx: onnxsim"):
        simplify(proto, where="bad.onnx")
    assert isinstance(onnx.ModelProto(), onnx.ModelProto)


def test_real_frames_parity(ckpts, tmp_path, camvid_root):
    res = export(ckpts["lraspp-mbv3"], quick_cfg(tmp_path, parity={"frames": str(camvid_root / "dusk_train"),
                                                                   "n": 4}))
    rep = res.parity["ONNX"]
    assert rep.passed and "dusk_train" in rep.source and rep.frames == 4


def test_deepstream_config(ckpts, tmp_path):
    res = export(ckpts["lraspp-mbv3"], quick_cfg(tmp_path))
    text = res.files["deepstream"].read_text()
    kv = dict(line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#"))
    meta = read_sidecar(res.files["onnx"])
    assert kv["network-type"] == "2" and kv["onnx-file"] == res.files["onnx"].name
    assert kv["num-detected-classes"] == str(meta.classes.num_classes)
    assert kv["segmentation-output-order"] == "0" and kv["infer-dims"] == f"3;{SIZE[0]};{SIZE[1]}"
    # nvinfer: y = scale * (x - offset) must equal (x/255 - mean)/std for the mean std
    offsets = [float(v) for v in kv["offsets"].split(";")]
    np.testing.assert_allclose(offsets, [255 * m for m in meta.mean], rtol=1e-4)
    scale = float(kv["net-scale-factor"])
    std = np.mean(meta.std)
    x = 200.0
    assert abs(scale * (x - offsets[0]) - (x / 255 - meta.mean[0]) / std) < 1e-6
    labels = (tmp_path / f"{res.files['onnx'].stem}.labels.txt").read_text().split("\n")
    assert labels[: meta.classes.num_classes] == list(meta.classes.names)
    # labels output cannot feed nvinfer: no config written
    res2 = export(ckpts["lraspp-mbv3"], quick_cfg(tmp_path, output="labels", name="lab"))
    assert "deepstream" not in res2.files


def test_bad_checkpoint_is_one_line(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(PipaError, match="bad.pt"):
        export(bad, quick_cfg(tmp_path))
