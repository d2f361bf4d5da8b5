"""``pipa-edge eval --video``: TC / flip rate on sequences, motion compensation, CLI report."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from pipa_edge.cli.main import main
from pipa_edge.data.classes import ClassSet, SYNTH11
from pipa_edge.data.datasets.sequences import FramesDataset
from pipa_edge.models.io import save_segmenter
from pipa_edge.models.segmenter import SegOutput, Segmenter
from pipa_edge.models.zoo import build_segmenter
from pipa_edge.train.video_eval import evaluate_sequences

CLS2 = ClassSet("t2", ("dark", "bright"), ((0, 0, 0), (255, 255, 255)))


class Threshold(Segmenter):
    """Class = red channel above mid-grey (a per-pixel rule: predictions move exactly with the scene)."""

    arch, feature_dim, output_stride = "thr", 1, 1

    def __init__(self):
        super().__init__(CLS2, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
        self.conv = nn.Conv2d(3, 2, 1)
        with torch.no_grad():
            self.conv.weight.zero_()
            self.conv.weight[1, 0] = 10.0
            self.conv.bias.zero_()

    def forward_features(self, x):
        return SegOutput(x[:, :1], self.conv(x))


def _moving_frames(root, n=4, shift=3, h=48, w=64):
    rng = np.random.default_rng(0)
    blocks = (rng.random((h // 4 + 2, (w + n * shift) // 4 + 2)) > 0.5).astype(np.uint8) * 200 + 20
    tex = cv2.resize(blocks, (blocks.shape[1] * 4, blocks.shape[0] * 4), interpolation=cv2.INTER_NEAREST)
    tex = cv2.GaussianBlur(np.stack([tex] * 3, -1), (0, 0), 0.8)  # texture for the flow, still thresholdable
    (root / "clip").mkdir(parents=True)
    for i in range(n):
        assert cv2.imwrite(str(root / "clip" / f"{i:03d}.png"), np.ascontiguousarray(tex[:h, i * shift:i * shift + w]))
    return root


def test_motion_compensated_tc_on_a_panning_clip(tmp_path):
    ds = FramesDataset(_moving_frames(tmp_path), CLS2)
    model = Threshold()
    comp = evaluate_sequences(model, ds, flow="dis", show_progress=False)
    static = evaluate_sequences(model, ds, flow="none", show_progress=False)
    assert comp["frames"] == 4 and comp["pairs"] == 3 and comp["miou"] is None
    assert comp["tc"] > 0.9 and comp["flip_rate"] < 0.05  # the prediction moves with the scene
    assert static["flip_rate"] > comp["flip_rate"] + 0.1 and static["tc"] < comp["tc"]


def test_eval_video_cli_writes_report(tmp_path):
    torch.manual_seed(0)
    ck = tmp_path / "m.pt"
    save_segmenter(ck, build_segmenter("lraspp-mbv3", SYNTH11))
    _moving_frames(tmp_path / "frames", n=3)
    out = tmp_path / "ev"
    rc = main(["eval", str(ck), "--video", "--data", f"frames:{tmp_path / 'frames'}", "--imgsz", "32", "64",
               "--out", str(out), "--device", "cpu"])
    assert rc == 0
    rep = json.loads((out / "frames_frames_train_video.json").read_text())
    assert rep["frames"] == 3 and rep["pairs"] == 2 and 0.0 <= rep["tc"] <= 1.0 and 0.0 <= rep["flip_rate"] <= 1.0
    assert main(["eval", str(ck), "--video", "--data", f"frames:{tmp_path / 'nope'}", "--out", str(out)]) == 2
