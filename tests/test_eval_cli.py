"""``pipa-edge eval``: data specs, JSON + PNG reports, whole vs sliding-window inference."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from pipa_edge.cli.main import main
from pipa_edge.data.build import build_eval_dataset
from pipa_edge.data.classes import SYNTH11
from pipa_edge.errors import ConfigError
from pipa_edge.models.io import load_segmenter, save_segmenter
from pipa_edge.models.segmenter import SegOutput, Segmenter
from pipa_edge.models.zoo import build_segmenter
from pipa_edge.train.config import EvalConfig
from pipa_edge.train.eval_api import parse_data_spec
from pipa_edge.train.evaluate import predict_logits, slide_logits
from pipa_edge.metrics import confusion_matrix, mean_iou
from pipa_edge.train.toydata import make_folder_dataset


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ck") / "model.pt"
    save_segmenter(path, build_segmenter("segformer-b0", SYNTH11))
    return path


def test_data_spec_parsing(tmp_path):
    c = parse_data_spec("camvid:/data/camvid:dusk_train", imgsz=(90, 120))
    assert (c.type, c.root, c.split, c.resize) == ("camvid", "/data/camvid", "dusk_train", (90, 120))
    assert parse_data_spec("folder:/a/b").split == "train"
    y = tmp_path / "d.yaml"
    y.write_text("{type: cityscapes, root: /cs, split: val, limit: 3}\n")
    assert parse_data_spec(str(y)).limit == 3
    with pytest.raises(ConfigError, match="unknown dataset type 'imagenet'"):
        parse_data_spec("imagenet:/x")
    with pytest.raises(ConfigError, match="TYPE:ROOT"):
        parse_data_spec("camvid")
    y.write_text("{type: cityscapes, root: /cs, splt: val}\n")
    with pytest.raises(ConfigError, match="splt"):
        parse_data_spec(str(y))


def test_eval_cli_writes_json_and_png_with_correct_miou(tmp_path, ckpt):
    root = make_folder_dataset(tmp_path / "val", SYNTH11, n=3, size=(40, 48), seed=2)
    out = tmp_path / "ev"
    rc = main(["eval", str(ckpt), "--data", f"folder:{root}", "--imgsz", "32", "32", "--out", str(out)])
    assert rc == 0
    rep = json.loads((out / "folder_val_train.json").read_text())
    png = (out / "folder_val_train_iou.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 2000
    assert rep["images"] == 3 and rep["data"]["resize"] == [32, 32]
    cm = np.asarray(rep["confusion_matrix"])
    assert cm.shape == (11, 11) and cm.sum() == rep["pixels"] == 3 * 30 * 30  # ignore border excluded
    # recompute independently from the model's predictions
    model = load_segmenter(ckpt)
    ds = build_eval_dataset({"type": "folder", "root": str(root), "classes": "synth11"}, resize=(32, 32))
    want = np.zeros((11, 11), np.int64)
    with torch.no_grad():
        for i in range(len(ds)):
            s = ds[i]
            pred = model(model.normalize(s["image"][None])).argmax(1)[0]
            want += confusion_matrix(pred.numpy(), s["label"].numpy(), 11)
    np.testing.assert_array_equal(cm, want)
    assert rep["miou"] == pytest.approx(mean_iou(want))


def test_eval_cli_errors_are_one_line(tmp_path, ckpt, capsys):
    assert main(["eval", str(ckpt), "--data", "camvid:/no/such/dir:day"]) == 2
    assert main(["eval", str(tmp_path / "missing.pt"), "--data", "folder:/x"]) == 2
    assert main(["eval", str(ckpt), "--data", "folder:/x", "--mode", "slide"]) == 2  # slide needs --crop
    err = capsys.readouterr().err
    assert "/no/such/dir" in err and "missing.pt" in err and "crop" in err and "Traceback" not in err


def test_slide_equals_whole_when_window_covers_image(ckpt):
    model = load_segmenter(ckpt)
    img = torch.randint(0, 256, (2, 3, 40, 56), dtype=torch.uint8)
    with torch.no_grad():
        whole = predict_logits(model, img, EvalConfig())
        slide = predict_logits(model, img, EvalConfig(mode="slide", crop=(64, 64), stride=(10, 10)))
    assert torch.equal(whole, slide)


class _Pointwise(Segmenter):
    """1×1 convolution: a pixel's logits do not depend on its neighbours, so any tiling is exact."""

    arch = "pointwise-test"

    def __init__(self):
        super().__init__(SYNTH11)
        self.conv = nn.Conv2d(3, SYNTH11.num_classes, 1)

    def forward_features(self, x):
        y = self.conv(x)
        return SegOutput(y, y)


def test_slide_stitches_overlapping_windows_exactly():
    torch.manual_seed(0)
    model = _Pointwise().eval()
    x = torch.randn(1, 3, 37, 50)
    with torch.no_grad():
        whole = model(x)
        slide = slide_logits(model, x, crop=(16, 20), stride=(7, 9))
    assert torch.allclose(whole, slide, atol=1e-5)
