"""A cheap runtime by default: the default export (probabilities at model resolution) drives the
runtime's filter at model resolution; raw label PNGs per frame; the stateful export still works."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from _export_util import quick_cfg
from pipa_edge.data.classes import SYNTH11
from pipa_edge.export.config import ExportConfig
from pipa_edge.export.exporter import export
from pipa_edge.models.io import save_segmenter
from pipa_edge.models.zoo import build_segmenter
from pipa_edge.runtime.backends import load_backend

HW = (64, 96)


@pytest.fixture(scope="module")
def default_onnx(tmp_path_factory):
    d = tmp_path_factory.mktemp("rtdef")
    torch.manual_seed(0)
    ck = save_segmenter(d / "m.pt", build_segmenter("lraspp-mbv3", SYNTH11).eval(), input_size=list(HW),
                        input_size_from="val.resize")
    return export(ck, quick_cfg(d, imgsz=None, temporal={"enabled": True}))


def test_default_export_is_probs_at_model_resolution(default_onnx):
    cfg = ExportConfig()
    assert (cfg.output, cfg.output_resolution, cfg.imgsz) == ("probs", "model", None)
    with load_backend(default_onnx.files["onnx"]) as b:
        assert (b.meta.output, b.meta.output_resolution, b.meta.input_size) == ("probs", "model", HW)
        x = np.random.default_rng(0).integers(0, 256, (1, *HW, 3), dtype=np.uint8)
        y = b.infer(x)
    assert y.shape == (1, 11, HW[0] // 8, HW[1] // 8)  # LR-ASPP: stride 8
    np.testing.assert_allclose(y.sum(1), 1.0, atol=1e-4)


def test_stateful_export_still_works_with_the_defaults(default_onnx):
    rep = default_onnx.parity["ONNX stateful"]
    assert rep.passed and rep.agreement >= 0.999
    with load_backend(default_onnx.files["onnx_stateful"]) as b:
        assert b.stateful and b.meta.output == "labels" and b.meta.input_size == HW


def _labels_run(tmp_path, model, labels_size="frame", n=4):
    from pipa_edge.runtime import run_stream

    seen: list[np.ndarray] = []
    shapes: list[tuple] = []
    out = tmp_path / f"labels_{labels_size}"
    s = run_stream("test://?width=160&height=96", "none", model, max_frames=n, log_stats=False,
                   labels_out=str(out), labels_size=labels_size, stats_json=str(tmp_path / f"s_{labels_size}.json"),
                   on_frame=lambda f, lab: (seen.append(lab.copy()), shapes.append(f.image.shape[:2])))
    return s, out, seen, shapes


@pytest.mark.parametrize("labels_size", ["frame", "model"])
def test_run_writes_raw_label_pngs_from_model_resolution_labels(tmp_path, default_onnx, labels_size):
    pytest.importorskip("gi")
    import cv2

    s, out, seen, shapes = _labels_run(tmp_path, str(default_onnx.files["onnx"]), labels_size)
    files = sorted(out.glob("*.png"))
    assert s.frames == len(files) == len(seen) == 4 and files[0].name == "000000.png"
    stats = json.loads((tmp_path / f"s_{labels_size}.json").read_text())
    assert stats["smoothing"]["output_kind"] == "probs"
    for path, lab, hw in zip(files, seen, shapes):
        assert lab.shape == (HW[0] // 8, HW[1] // 8)  # the filter ran at model resolution
        png = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        assert png.dtype == np.uint8 and png.ndim == 2
        want = lab.astype(np.uint8)
        if labels_size == "frame":
            assert png.shape == hw
            want = cv2.resize(want, (hw[1], hw[0]), interpolation=cv2.INTER_NEAREST)
        np.testing.assert_array_equal(png, want)
        assert png.max() < 11


def test_cli_labels_out(tmp_path):
    pytest.importorskip("gi")
    from pipa_edge.cli.main import main

    out = tmp_path / "lab"
    assert main(["run", "test://?width=128&height=64", "none", "--model", "builtin:palette", "--input-size", "32x64",
                 "--max-frames", "3", "--quiet-stats", "--labels-out", str(out), "--labels-size", "model"]) == 0
    import cv2

    files = sorted(out.glob("*.png"))
    assert len(files) == 3
    assert cv2.imread(str(files[0]), cv2.IMREAD_UNCHANGED).shape == (8, 16)  # palette backend: stride 4


def test_cli_run_checkpoint_uses_recorded_size_and_probs(tmp_path, monkeypatch):
    from pipa_edge.cli import run as run_cli

    torch.manual_seed(0)
    ck = save_segmenter(tmp_path / "m.pt", build_segmenter("lraspp-mbv3", SYNTH11).eval(), input_size=[48, 80],
                        input_size_from="val.resize")
    got = {}
    monkeypatch.setattr("pipa_edge.runtime.pipeline.run_stream", lambda *a, **kw: got.update(kw))
    args = run_cli_args(run_cli, ["test://", "none", "--model", str(ck)])
    assert run_cli.run(args) == 0
    assert got["backend_opts"] == {"output": "probs", "output_resolution": "model", "input_size": (48, 80)}


def run_cli_args(mod, argv):
    import argparse

    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers()
    mod.add_parser(sub)
    return ap.parse_args(["run", *argv])
