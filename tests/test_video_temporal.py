"""Temporal contrast: hand-computed InfoNCE, correspondences through flow, gradient to the student."""

from __future__ import annotations

import math

import torch
from torch import nn

from pipa_edge.adapt.temporal_contrast import TemporalContrast, temporal_info_nce
from pipa_edge.data.classes import ClassSet
from pipa_edge.models.segmenter import SegOutput, Segmenter

CLS4 = ClassSet("t4", ("a", "b", "c", "d"), ((0, 0, 0), (1, 1, 1), (2, 2, 2), (3, 3, 3)))


def test_hand_computed_tiny_example():
    za = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    zpos = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    ya = torch.tensor([0, 1])
    zpool = torch.tensor([[0.0, 1.0]])
    ypool = torch.tensor([1])
    loss = temporal_info_nce(za, zpos, ya, zpool, ypool, temperature=0.5, negatives_per_anchor=10)
    # anchor 0 (class 0): positive s=1/0.5=2; negatives: anchor 1's positive (class 1) s=0.6/0.5, pool s=0
    l0 = -math.log(math.exp(2.0) / (math.exp(2.0) + math.exp(1.2) + math.exp(0.0)))
    # anchor 1 (class 1): positive s=0.8/0.5; negatives: anchor 0's positive (class 0) s=0; pool is class 1: no
    l1 = -math.log(math.exp(1.6) / (math.exp(1.6) + math.exp(0.0)))
    assert abs(float(loss) - (l0 + l1) / 2) < 1e-5


class TinySeg(Segmenter):
    arch, feature_dim, output_stride = "tiny", 8, 4

    def __init__(self):
        super().__init__(CLS4)
        self.encoder = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.BatchNorm2d(8), nn.ReLU(),
                                     nn.Conv2d(8, 8, 3, 2, 1), nn.ReLU())
        self.classifier = nn.Conv2d(8, 4, 1)

    def forward_features(self, x):
        f = self.encoder(x)
        return SegOutput(f, self.classifier(f))


def test_flow_defines_the_positive_and_gradient_reaches_student():
    torch.manual_seed(0)
    seg = TinySeg()
    b, h, w = 2, 32, 48
    x_p = torch.rand(b, 3, h, w + 8)
    x_t = x_p[..., 8:]  # frame t = frame t-k shifted left by 8 px: flow t → t-k is +8 in x
    x_p = x_p[..., :w]
    flow = torch.zeros(b, 2, h, w)
    flow[:, 0] = 8.0
    valid = torch.ones(b, h, w, dtype=torch.bool)
    valid[..., w - 8:] = False
    lab = torch.randint(0, 4, (b, h // 4, w // 4)).repeat_interleave(4, 1).repeat_interleave(4, 2)
    lab_prev = torch.roll(lab, 2, dims=2)  # labels move with the scene (8 px = 2 cells)
    tc = TemporalContrast(8, 4, 255, proj_dim=8, temperature=0.1, anchors_per_class=16, pool_per_class=16)
    f_t = seg.forward_features(seg.normalize(x_t * 255)).features
    f_p = seg.forward_features(seg.normalize(x_p * 255)).features
    loss = tc(f_t, f_p, flow, valid, lab, lab_prev)
    assert torch.isfinite(loss.detach()) and float(loss.detach()) > 0
    assert tc.last_stats["anchors"] > 0
    # same scene point: the (translation-equivariant) features agree where the flow points
    right_cos = tc.last_stats["pos_cos"]
    with torch.no_grad():
        tc.label_consistent = False
        tc(f_t, f_p, torch.zeros_like(flow), valid, lab, lab_prev)
        tc.label_consistent = True
    assert right_cos > 0.95 and right_cos > tc.last_stats["pos_cos"] + 0.05
    assert 0.5 < tc.last_stats["valid_frac"] < 0.9  # the right 2 of 12 cell columns are occluded
    loss.backward()
    g = seg.encoder[0].weight.grad
    assert g is not None and float(g.abs().sum()) > 0
    assert float(tc.head.net[0].weight.grad.abs().sum()) > 0


def test_no_valid_correspondence_gives_zero_loss_with_graph():
    tc = TemporalContrast(8, 4, 255, proj_dim=8)
    f = torch.randn(1, 8, 4, 4, requires_grad=True)
    loss = tc(f, f, torch.zeros(1, 2, 16, 16), torch.zeros(1, 16, 16, dtype=torch.bool),
              torch.zeros(1, 16, 16, dtype=torch.long), torch.zeros(1, 16, 16, dtype=torch.long))
    assert float(loss.detach()) == 0.0 and loss.requires_grad
