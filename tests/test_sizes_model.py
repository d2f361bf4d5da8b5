"""Sizes that follow the model: the recorded input size, export/eval defaults, non-stride sizes.

Random-init LR-ASPP / SegFormer-B0 models on synthetic data (the numbers compared are the two
paths' own outputs, never hard-coded).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from _export_util import quick_cfg
from pipa_edge import log
from pipa_edge.data.classes import SYNTH11
from pipa_edge.errors import ConfigError
from pipa_edge.export.exporter import export
from pipa_edge.models.input_size import checkpoint_input_size, recorded_input_size, size_fields, size_from_config
from pipa_edge.models.io import save_segmenter
from pipa_edge.models.zoo import build_segmenter
from pipa_edge.runtime.backends import read_sidecar
from pipa_edge.train.config import load_train_config

REPO = Path(__file__).resolve().parents[1]
HW = (72, 96)  # not a multiple of 32 (nor of 16): like the CamVid recipes' 180x240


def _ckpt(folder: Path, arch: str = "lraspp-mbv3", size=HW, name: str | None = None) -> Path:
    torch.manual_seed(0)
    extra = {"input_size": list(size), "input_size_from": "val.resize"} if size else {}
    return save_segmenter(folder / (name or f"{arch}.pt"), build_segmenter(arch, SYNTH11).eval(), **extra)


@pytest.fixture
def warns(monkeypatch):
    seen: list[str] = []
    monkeypatch.setattr(log, "warn", lambda stage, msg: seen.append(msg))
    return seen


def test_model_size_rule_on_the_recipes():
    cam = load_train_config(REPO / "train" / "camvid_source_only.yaml")
    assert size_from_config(cam) == ((192, 256), "val.resize")  # the day-fold choice, not the training resize
    assert size_from_config(cam.model_dump(mode="json")) == ((192, 256), "val.resize")  # as stored in a checkpoint
    video = load_train_config(REPO / "train" / "camvid_dashcam_video_pipa.yaml")  # val: null → the target frames
    assert size_from_config(video) == ((180, 320), "target.resize")
    gta = load_train_config(REPO / "train" / "gta5_cityscapes_source_only.yaml")
    assert size_from_config(gta)[0] == (512, 1024)
    assert size_fields(cam) == {"input_size": [192, 256], "input_size_from": "val.resize"}
    assert size_from_config({"source": {"type": "synth", "root": "x"}}) == (None, "unknown")


def test_recorded_size_new_old_and_missing(tmp_path):
    assert recorded_input_size({"input_size": [90, 120], "input_size_from": "val.resize"})[0] == (90, 120)
    old = {"config": {"val": [{"type": "camvid", "root": "r", "resize": [180, 240]}]}}  # written before the record
    hw, origin = recorded_input_size(old)
    assert hw == (180, 240) and "config" in origin
    assert recorded_input_size({"segmenter": {}}) == (None, "unknown")
    assert checkpoint_input_size(_ckpt(tmp_path))[0] == HW


def test_train_hint_and_final_checkpoint_record_the_size(tmp_path, monkeypatch):
    from pipa_edge.models.io import read_checkpoint
    from pipa_edge.train import trainer
    from pipa_edge.train.checkpoint import train_next_command
    from pipa_edge.train.toydata import make_folder_dataset

    cam = load_train_config(REPO / "train" / "camvid_source_only.yaml")
    hint = train_next_command("runs/x/final.pt", cam)
    assert hint.endswith("--imgsz 192 256") and "camvid:" in hint and ":day_train" in hint
    src = make_folder_dataset(tmp_path / "src", SYNTH11, n=2, size=(40, 56), seed=0)
    cfg = load_train_config(None, [
        "model.classes=synth11", "model.arch=lraspp-mbv3", f"source={{type: folder, root: {src}, classes: synth11}}",
        f"val={{type: folder, root: {src}, classes: synth11, resize: [40, 56]}}", "transform.crop_size=[32,32]",
        "optim.max_iters=1", "optim.warmup_iters=0", "batch_size=2", "device=cpu", f"out_dir={tmp_path / 'run'}"])
    hints: list[str] = []
    monkeypatch.setattr(trainer, "next_command", hints.append)
    res = trainer.train(cfg)
    for path in (res.checkpoint, res.last):
        ck = read_checkpoint(path)
        assert ck["input_size"] == [40, 56] and ck["input_size_from"] == "val.resize"
    assert hints and hints[-1].endswith("--imgsz 40 56")


def test_export_defaults_to_the_recorded_non_stride_size(tmp_path, warns):
    res = export(_ckpt(tmp_path), quick_cfg(tmp_path, imgsz=None))
    meta = read_sidecar(res.files["onnx"])
    assert meta.input_size == HW and not warns
    sizes = meta.extra["sizes"]
    assert sizes["model_input_size"] == list(HW) and sizes["export_input_size"] == list(HW)
    assert sizes["chosen_from"].startswith("checkpoint") and sizes["model_output_size"] == [9, 12]
    assert res.parity["ONNX"].passed  # the graph traced at 72x96 reproduces PyTorch at 72x96
    assert meta.output == "probs" and meta.output_resolution == "model"


def test_export_at_another_size_warns_with_both_sizes(tmp_path, warns):
    res = export(_ckpt(tmp_path), quick_cfg(tmp_path, imgsz=(64, 128)))
    meta = read_sidecar(res.files["onnx"])
    assert meta.input_size == (64, 128)
    assert meta.extra["sizes"]["chosen_from"].startswith("imgsz")
    assert any("64x128" in w and "72x96" in w for w in warns), warns


def test_old_checkpoint_falls_back_with_a_warning(tmp_path, warns):
    from pipa_edge.export.config import ExportConfig
    from pipa_edge.export.exporter import resolve_size
    from pipa_edge.models.io import load_segmenter

    ck = _ckpt(tmp_path, size=None, name="old.pt")
    seg = load_segmenter(ck)
    cfg, sizes = resolve_size(ExportConfig(), *checkpoint_input_size(ck), seg, str(ck))
    assert cfg.imgsz == (512, 1024) and sizes["model_input_size"] is None
    assert sizes["chosen_from"].startswith("fallback")
    assert any("old.pt" in w and "records no input size" in w for w in warns)


def test_run_falls_back_to_the_export_fallback_size(tmp_path, warns, monkeypatch):
    """`pipa-edge run` uses export.config.FALLBACK_IMGSZ (no second literal) for such a checkpoint."""
    import pipa_edge.export.config as export_config
    from pipa_edge.cli.run import checkpoint_size

    ck = _ckpt(tmp_path, size=None, name="old.pt")
    monkeypatch.setattr(export_config, "FALLBACK_IMGSZ", (64, 128))
    assert checkpoint_size(str(ck)) == (64, 128)
    assert any("old.pt" in w and "running at 64x128" in w for w in warns)


def test_size_the_network_cannot_run_is_one_line_error(tmp_path):
    ck = _ckpt(tmp_path, "deeplabv3plus-mbv2", size=(90, 120))  # skip concat needs a multiple of 16
    with pytest.raises(ConfigError, match=r"deeplabv3plus-mbv2 cannot run at 90x120") as e:
        export(ck, quick_cfg(tmp_path, imgsz=None))
    assert "\n" not in str(e.value)


def test_cli_export_without_imgsz_uses_the_checkpoint(tmp_path):
    from pipa_edge.cli.main import main

    ck = _ckpt(tmp_path)
    assert main(["export", str(ck), "--out", str(tmp_path / "o"), "--bench-runs", "0", "--set", "parity.n=1"]) == 0
    assert read_sidecar(tmp_path / "o" / "lraspp-mbv3.onnx").input_size == HW


def test_eval_defaults_to_the_recorded_size(tmp_path, warns):
    from pipa_edge.train.eval_api import evaluate_checkpoint
    from pipa_edge.train.toydata import make_folder_dataset

    root = make_folder_dataset(tmp_path / "val", SYNTH11, n=2, size=(144, 192), seed=1)
    rep = evaluate_checkpoint(_ckpt(tmp_path), [f"folder:{root}"], tmp_path / "ev", show_progress=False)[0]
    assert rep["data"]["resize"] == list(HW) and rep["sizes"]["model_input_size"] == list(HW)
    old = evaluate_checkpoint(_ckpt(tmp_path, size=None, name="old.pt"), [f"folder:{root}"], tmp_path / "ev2",
                              show_progress=False)[0]
    assert old["data"]["resize"] is None and any("records no input size" in w for w in warns)


@pytest.mark.parametrize("arch", ["lraspp-mbv3", "segformer-b0"])
def test_eval_of_the_onnx_agrees_with_eval_of_the_pt(tmp_path, arch):
    """``pipa-edge eval model.onnx`` (default export: probs at model resolution, onnxruntime) scores what
    ``pipa-edge eval model.pt`` scores at the same size."""
    from pipa_edge.cli.main import main
    from pipa_edge.train.toydata import make_folder_dataset

    root = make_folder_dataset(tmp_path / "val", SYNTH11, n=3, size=(144, 192), seed=4)
    ck = _ckpt(tmp_path, arch)
    onnx_path = export(ck, quick_cfg(tmp_path / "x", imgsz=None)).files["onnx"]
    assert main(["eval", str(ck), "--data", f"folder:{root}", "--out", str(tmp_path / "pt")]) == 0
    assert main(["eval", str(onnx_path), "--data", f"folder:{root}", "--out", str(tmp_path / "onnx")]) == 0
    a = json.loads((tmp_path / "pt" / "folder_val_train.json").read_text())
    b = json.loads((tmp_path / "onnx" / "folder_val_train.json").read_text())
    assert a["data"]["resize"] == b["data"]["resize"] == list(HW)
    assert b["sizes"]["kind"] == "exported" and b["sizes"]["model_input_size"] == list(HW)
    cma, cmb = np.asarray(a["confusion_matrix"]), np.asarray(b["confusion_matrix"])
    assert cma.sum() == cmb.sum() > 0
    assert np.abs(cma - cmb).sum() / 2 <= 0.001 * cma.sum()  # pixels that changed class: ≤ 0.1 %
    assert abs(a["miou"] - b["miou"]) <= 2e-3
    if arch == "lraspp-mbv3":  # an exported model is scored whole-image: slide is a one-line error (exit 2)
        assert main(["eval", str(onnx_path), "--data", f"folder:{root}", "--mode", "slide", "--crop", "32", "32",
                     "--out", str(tmp_path / "s")]) == 2
