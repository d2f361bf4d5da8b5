"""Temporal contrast inside the Adapter and the trainer's target path for frame pairs."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from pipa_edge.adapt import AdaptConfig, build_adapter
from pipa_edge.data.classes import ClassSet, SYNTH11
from pipa_edge.models.segmenter import SegOutput, Segmenter

CLS4 = ClassSet("t4", ("a", "b", "c", "d"), ((0, 0, 0), (90, 90, 90), (170, 170, 170), (250, 250, 250)))


class TinySeg(Segmenter):
    arch, feature_dim, output_stride = "tiny", 8, 4

    def __init__(self):
        super().__init__(CLS4)
        self.encoder = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.BatchNorm2d(8), nn.ReLU(),
                                     nn.Conv2d(8, 8, 3, 2, 1), nn.ReLU())
        self.classifier = nn.Conv2d(8, 4, 1)
        nn.init.normal_(self.classifier.weight, std=3.0)  # varied pseudo-labels from the start (negatives exist)

    def forward_features(self, x):
        f = self.encoder(x)
        return SegOutput(f, self.classifier(f))


def _batch(b=2, h=32, w=48, shift=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    lab = torch.randint(0, 4, (b, h // 8, w // 8), generator=g).repeat_interleave(8, 1).repeat_interleave(8, 2)
    big = torch.randint(0, 4, (b, h // 8, (w + shift) // 8 + 1), generator=g).repeat_interleave(8, 1).repeat_interleave(8, 2)
    pal = torch.tensor(CLS4.palette, dtype=torch.float32)
    scene = (pal[big].permute(0, 3, 1, 2) + torch.rand(b, 3, h, big.shape[-1], generator=g) * 40).clamp(0, 255)
    scene = scene.to(torch.uint8)
    return {"source": {"image": torch.randint(0, 256, (b, 3, h, w), dtype=torch.uint8, generator=g), "label": lab},
            "target": {"image": scene[..., shift:shift + w].contiguous(), "image_prev": scene[..., :w].contiguous()}}


def _cfg(**tc):
    return AdaptConfig.model_validate({"pseudo_label": {"threshold": 0.3},
                                       "temporal_contrast": {"enabled": True, "dis_preset": "fast", **tc}})


def test_temporal_term_in_the_step_reaches_the_student():
    torch.manual_seed(0)
    seg = TinySeg()
    keys = set(seg.state_dict())
    ad = build_adapter("pipa", seg, _cfg())
    assert ad.temporal is not None and set(seg.state_dict()) == keys  # exported model unchanged
    loss, logs = ad.training_step(_batch(), 0)
    assert "loss_temporal" in logs and np.isfinite(logs["loss_temporal"]) and logs["temporal_valid"] > 0.3
    loss.backward()
    assert float(seg.encoder[0].weight.grad.abs().sum()) > 0
    assert float(ad.temporal.head.net[0].weight.grad.abs().sum()) > 0
    ids = {id(p) for p in ad.trainable_parameters()}
    assert ids >= {id(p) for p in ad.temporal.parameters()}


def test_flow_from_the_batch_teacher_key_encoder_and_image_batches():
    torch.manual_seed(0)
    ad = build_adapter("pipa", TinySeg(), _cfg(key_encoder="teacher"))
    b = _batch()
    flow = torch.zeros(2, 2, 32, 48)
    flow[:, 0] = 4.0
    b["target"]["flow"], b["target"]["flow_valid"] = flow, torch.ones(2, 32, 48, dtype=torch.bool)
    _, logs = ad.training_step(b, 0)
    assert logs["loss_temporal"] > 0 and logs["temporal_valid"] > 0.5
    b["target"].pop("image_prev")  # an image batch: the same config trains without the temporal term
    _, logs = ad.training_step(b, 1)
    assert "loss_temporal" not in logs
    assert build_adapter("mean_teacher", TinySeg(), _cfg()).temporal is None


def test_trainer_target_pairs_share_the_crop(tmp_path):
    from pipa_edge.train.config import TrainConfig
    from pipa_edge.train.toydata import make_folder_dataset
    from pipa_edge.train.build import build_datasets

    make_folder_dataset(tmp_path / "src", SYNTH11, n=2, size=(32, 48))
    frames = tmp_path / "frames" / "clip"
    frames.mkdir(parents=True)
    import cv2

    for i in range(3):  # identical frames: any difference between t and t-k would come from the augmentation
        assert cv2.imwrite(str(frames / f"{i}.png"), (np.random.default_rng(0).random((40, 60, 3)) * 255).astype(np.uint8))
    cfg = TrainConfig.model_validate({
        "model": {"classes": "synth11"}, "method": "pipa",
        "source": {"type": "folder", "root": str(tmp_path / "src"), "classes": "synth11"},
        "target": {"type": "frames", "root": str(tmp_path / "frames"), "pair_offset": 1, "flow": "dis"},
        "transform": {"crop_size": [24, 24], "scale_range": [0.5, 1.5], "hflip": 0.5, "brightness": 0.4}})
    _, target, _ = build_datasets(cfg)
    assert len(target) == 2
    for i in range(2):
        it = target[i]
        assert it["image"].shape == it["image_prev"].shape == (3, 24, 24)
        assert torch.equal(it["image"], it["image_prev"]) and it["flow"].shape == (2, 24, 24)
