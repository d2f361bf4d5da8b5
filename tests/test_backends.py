"""Backends: load_backend dispatch, torch ↔ onnxruntime agreement, sidecars, bad model files."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from pipa_edge.errors import BackendUnavailable, ModelFileError, PipaError
from pipa_edge.runtime.backends import (available_backends, backend_for, load_backend, read_sidecar, sidecar_path,
                                        write_sidecar)
from pipa_edge.runtime.backends.base import ModelMeta

SIZE = (64, 128)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny LR-ASPP checkpoint and its ONNX export (uint8 input, logits at input size)."""
    import torch

    from pipa_edge.data.classes import SYNTH11
    from pipa_edge.export.onnx import build_meta, export_onnx
    from pipa_edge.models import build_segmenter, save_segmenter
    from pipa_edge.runtime.backends.sidecar import save_onnx

    d = tmp_path_factory.mktemp("backends")
    torch.manual_seed(0)
    model = build_segmenter("lraspp-mbv3", SYNTH11).eval()
    ckpt = save_segmenter(d / "tiny.pt", model)
    onnx_path = d / "tiny.onnx"
    meta = build_meta(model, SIZE, "uint8_nhwc", "logits", "input")
    save_onnx(export_onnx(model, onnx_path, SIZE, input_format="uint8_nhwc"), onnx_path, meta)
    return {"dir": d, "ckpt": ckpt, "onnx": onnx_path, "model": model}


def frames(n=2, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, *SIZE, 3), dtype=np.uint8)


def test_backend_chosen_by_suffix_or_name(tmp_path):
    assert backend_for("m.onnx") == "onnxruntime"
    assert backend_for("m.pt") == "torch"
    assert backend_for("a.b.engine") == "tensorrt"
    assert backend_for("m.xml") == "openvino"
    assert backend_for("m.onnx", "ov") == "openvino"
    with pytest.raises(ModelFileError, match="suffix '.bin'"):
        backend_for("weights.bin")
    with pytest.raises(BackendUnavailable, match="unknown backend 'foo'"):
        backend_for("m.onnx", "foo")
    assert {"torch", "onnxruntime"} <= set(available_backends())


def test_torch_and_onnxruntime_agree(tiny):
    x = frames(3)  # static batch 1 graph: the ORT backend loops over the batch
    with load_backend(tiny["onnx"]) as ob, load_backend(tiny["ckpt"], input_size=SIZE) as tb:
        assert ob.name == "onnxruntime" and tb.name == "torch"
        assert ob.meta.classes == tb.meta.classes and ob.meta.input_size == SIZE
        assert ob.meta.input_format == "uint8_nhwc" and tb.meta.input_format == "float_nchw"
        a, b = ob.infer(x), tb.infer(x)
    assert a.shape == b.shape == (3, tiny["model"].num_classes, *SIZE) and a.dtype == np.float32
    assert np.abs(a - b).max() < 1e-4
    assert (a.argmax(1) == b.argmax(1)).mean() > 0.999


def test_torch_backend_output_kinds(tiny):
    x = frames(1)
    with load_backend(tiny["ckpt"], input_size=SIZE, output="labels", output_resolution="model") as tb:
        lab = tb.infer(x)
    stride = tiny["model"].output_stride
    assert lab.dtype == np.uint8 and lab.shape == (1, SIZE[0] // stride, SIZE[1] // stride)
    with load_backend(tiny["ckpt"], input_size=SIZE, output="probs") as tb:
        pr = tb.infer(x)
    np.testing.assert_allclose(pr.sum(1), 1.0, atol=1e-5)


def test_sidecar_roundtrip_and_embedded_fallback(tiny, tmp_path):
    meta = read_sidecar(tiny["onnx"])
    assert sidecar_path(tiny["onnx"]).name == "tiny.onnx.json"
    assert meta.extra["file_sha256"] and meta.extra["format"] == "pipa-edge-sidecar/1"
    assert ModelMeta.from_dict(meta.to_dict()) == meta
    # without its sidecar the ONNX still loads from the metadata embedded in the graph
    lone = tmp_path / "lone.onnx"
    shutil.copy(tiny["onnx"], lone)
    with load_backend(lone) as b:
        assert b.meta.classes == meta.classes and b.meta.output == "logits"


def test_no_metadata_at_all_is_an_error(tiny, tmp_path):
    import onnx

    proto = onnx.load(str(tiny["onnx"]))
    del proto.metadata_props[:]
    bare = tmp_path / "bare.onnx"
    onnx.save(proto, str(bare))
    with pytest.raises(ModelFileError, match="bare.onnx: no metadata"):
        load_backend(bare)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_corrupt_onnx_is_one_line_error(tiny, tmp_path, damage):
    bad = tmp_path / "bad.onnx"
    data = tiny["onnx"].read_bytes()
    bad.write_bytes({"truncate": data[: len(data) // 3], "garbage": b"\x00notonnx" * 100, "empty": b""}[damage])
    with pytest.raises(ModelFileError) as e:
        load_backend(bad, verify=False)
    msg = str(e.value)
    assert "bad.onnx" in msg and "\n" not in msg


def test_sidecar_sha_mismatch_and_signature_mismatch(tiny, tmp_path):
    # a model replaced after export: sidecar sha256 no longer matches
    swapped = tmp_path / "swapped.onnx"
    shutil.copy(tiny["onnx"], swapped)
    meta = read_sidecar(tiny["onnx"])
    meta.extra["file_sha256"] = "0" * 64
    write_sidecar(swapped, meta)
    with pytest.raises(ModelFileError, match="sha256 differs"):
        load_backend(swapped)
    # a sidecar describing another graph (float input, labels output)
    meta.extra.pop("file_sha256")
    meta.input_format, meta.output = "float_nchw", "labels"
    write_sidecar(swapped, meta)
    with pytest.raises(ModelFileError, match="input_format 'float_nchw'"):
        load_backend(swapped)


def test_broken_sidecar_json(tiny, tmp_path):
    m = tmp_path / "m.onnx"
    shutil.copy(tiny["onnx"], m)
    sidecar_path(m).write_text("{not json")
    with pytest.raises(ModelFileError, match="m.onnx.json: sidecar is not valid JSON"):
        load_backend(m)
    sidecar_path(m).write_text(json.dumps({"input_size": [1, 2]}))
    with pytest.raises(ModelFileError, match="sidecar is incomplete"):
        load_backend(m)


def test_missing_and_corrupt_checkpoint(tmp_path):
    with pytest.raises(ModelFileError, match="not found"):
        load_backend(tmp_path / "nope.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(PipaError, match="bad.pt"):
        load_backend(bad)


def test_unavailable_provider_is_clear(tiny):
    with pytest.raises(BackendUnavailable, match="execution provider 'nonexistent'"):
        load_backend(tiny["onnx"], providers="nonexistent")


def test_ort_spin_option_reaches_the_session_and_keeps_outputs(tiny):
    """``spin`` sets onnxruntime's ``session.intra_op.allow_spinning``; ``None`` leaves it unset
    (onnxruntime's default); the outputs do not depend on it."""
    key = "session.intra_op.allow_spinning"
    x = frames(1)
    with load_backend(tiny["onnx"], threads=2) as d, load_backend(tiny["onnx"], threads=2, spin=False) as off, \
            load_backend(tiny["onnx"], threads=2, spin=True) as on:
        assert off.session.get_session_options().get_session_config_entry(key) == "0"
        assert on.session.get_session_options().get_session_config_entry(key) == "1"
        with pytest.raises(RuntimeError, match="does not have configuration"):  # unset: onnxruntime's default
            d.session.get_session_options().get_session_config_entry(key)
        np.testing.assert_array_equal(d.infer(x), off.infer(x))
