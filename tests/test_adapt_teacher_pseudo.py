"""EMA teacher formula, pseudo-labels (threshold, quality weight, margins), majority-vote labels."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pipa_edge.adapt.pseudo import confident_labels, downsample_labels, make_pseudo_labels
from pipa_edge.adapt.teacher import EMATeacher, ema_alpha
from pipa_edge.data.classes import ClassSet
from pipa_edge.models.segmenter import SegOutput, Segmenter

CLS3 = ClassSet("t3", ("a", "b", "c"), ((0, 0, 0), (1, 1, 1), (2, 2, 2)))


class _BNSeg(Segmenter):
    arch, feature_dim, output_stride = "bn", 4, 1

    def __init__(self):
        super().__init__(CLS3)
        self.conv = nn.Conv2d(3, 4, 1)
        self.bn = nn.BatchNorm2d(4)
        self.cls = nn.Conv2d(4, 3, 1)

    def forward_features(self, x):
        f = self.bn(self.conv(x))
        return SegOutput(f, self.cls(f))


def test_ema_alpha_formula():
    assert ema_alpha(0, 0.999) == 0.0
    assert ema_alpha(1, 0.999) == pytest.approx(0.5)
    assert ema_alpha(9, 0.999) == pytest.approx(0.9)
    assert ema_alpha(10**6, 0.999) == pytest.approx(0.999)


@pytest.mark.parametrize("ema_buffers", [True, False])
def test_ema_update_matches_formula(ema_buffers):
    torch.manual_seed(0)
    student = _BNSeg()
    teacher = EMATeacher(student, alpha=0.99, ema_buffers=ema_buffers)
    assert all(not p.requires_grad for p in teacher.parameters())
    with torch.no_grad():  # move the student away from the teacher (params and BN stats)
        for p in student.parameters():
            p.add_(torch.randn_like(p))
        student.train()
        student(torch.randn(4, 3, 5, 5))
    before_t = {k: v.clone() for k, v in teacher.model.state_dict().items()}
    stud = {k: v.clone() for k, v in student.state_dict().items()}
    it = 4
    a = teacher.update(student, it)
    assert a == pytest.approx(min(1 - 1 / (it + 1), 0.99))
    after = teacher.model.state_dict()
    for k, v in after.items():
        if not v.is_floating_point():
            assert torch.equal(v, stud[k]), k
        elif "running" in k and not ema_buffers:
            assert torch.equal(v, stud[k]), k
        else:
            assert torch.allclose(v, a * before_t[k] + (1 - a) * stud[k], atol=1e-6), k


def test_teacher_stays_in_eval_mode():
    t = EMATeacher(_BNSeg())
    t.train()
    assert not t.model.training


def test_pseudo_labels_threshold_quality_and_margins():
    # 1 image, 4x2 pixels, 3 classes; confidences chosen by hand
    p = torch.tensor([[0.98, 0.01, 0.01], [0.2, 0.7, 0.1], [0.0, 0.0, 1.0], [0.5, 0.49, 0.01],
                      [0.97, 0.02, 0.01], [0.1, 0.1, 0.8], [0.01, 0.99, 0.0], [0.3, 0.3, 0.4]])
    logits = torch.log(p.clamp_min(1e-9)).t().reshape(1, 3, 4, 2)
    pl = make_pseudo_labels(logits, threshold=0.968, quality_weight=True)
    conf = p.max(1).values.reshape(1, 4, 2)
    assert torch.equal(pl.label, p.argmax(1).reshape(1, 4, 2))
    assert torch.allclose(pl.conf, conf, atol=1e-5)
    exp_conf = conf >= 0.968  # 0.98, 1.0, 0.97, 0.99 -> 4 of 8
    assert torch.equal(pl.confident, exp_conf)
    assert pl.quality.item() == pytest.approx(0.5)
    assert torch.allclose(pl.weight, torch.full((1, 4, 2), 0.5))
    hard = make_pseudo_labels(logits, threshold=0.968, quality_weight=False, ignore_top=1, ignore_bottom=1)
    assert torch.equal(hard.weight[0, 1:3], exp_conf[0, 1:3].float())
    assert hard.weight[0, 0].sum() == 0 and hard.weight[0, 3].sum() == 0
    lab = confident_labels(hard, 255)
    assert (lab[0, 0] == 255).all() and (lab[0, 3] == 255).all()  # margins are never "confident"
    assert lab[0, 1, 0] == 2 and lab[0, 1, 1] == 255


def test_class_quantile_lowers_thresholds():
    logits = torch.randn(2, 3, 8, 8) * 0.5
    strict = make_pseudo_labels(logits, threshold=0.99)
    loose = make_pseudo_labels(logits, threshold=0.99, class_quantile=0.5)
    assert strict.confident.sum() <= loose.confident.sum()
    assert loose.confident.float().mean() > 0.3  # about half of each class passes


def test_majority_vote_downsampling_ignore_never_wins():
    ig = 255
    lab = torch.tensor([[[0, 0, 1, 1],
                         [0, 1, ig, ig],
                         [2, 2, ig, ig],
                         [ig, 2, ig, 1]]])
    out = downsample_labels(lab, (2, 2), num_classes=3, ignore_index=ig, min_valid=0.5)
    # top-left: 0,0,0,1 -> 0; top-right: 1,1,ig,ig (valid 0.5) -> 1; bottom-left: 2,2,ig,2 -> 2;
    # bottom-right: ig,ig,ig,1 (valid 0.25 < 0.5) -> ignore
    assert out.tolist() == [[[0, 1], [2, ig]]]
    out2 = downsample_labels(lab, (2, 2), num_classes=3, ignore_index=ig, min_valid=0.25)
    assert out2[0, 1, 1] == 1
    assert out2.dtype == torch.int64
    assert not math.isnan(float(out2.float().mean()))


def test_majority_vote_keeps_boundary_cells_with_their_winner():
    ig = 255
    lab = torch.tensor([[[0, 0, 1, 1],
                         [0, 1, 1, 1],
                         [2, 2, 0, 0],
                         [2, ig, 0, 0]]])
    # cells: 0,0,0,1 (3/4 class 0); 1,1,1,1 (pure); 2,2,2,ig (3/3 of the labelled); 0,0,0,0 (pure)
    assert downsample_labels(lab, (2, 2), 3, ig, 0.5).tolist() == [[[0, 1], [2, 0]]]


def _vote_reference(label, size, k, ig, min_valid):
    valid = (label >= 0) & (label < k) & (label != ig)
    onehot = F.one_hot(torch.where(valid, label, 0), k).permute(0, 3, 1, 2).float() * valid.unsqueeze(1)
    counts = F.adaptive_avg_pool2d(onehot, size)
    out = counts.argmax(1)
    frac = counts.sum(1)
    out[(frac < min_valid - 1e-6) | (frac <= 0)] = ig
    return out


@pytest.mark.parametrize("size", [(10, 14), (7, 9)])  # divisible (bincount path) and not (pooling path)
def test_majority_vote_matches_one_hot_pooling(size):
    g = torch.Generator().manual_seed(3)
    lab = torch.randint(0, 5, (3, 40, 56), generator=g)
    lab[torch.rand(lab.shape, generator=g) < 0.3] = 255
    lab[0, :8] = 255  # whole ignore cells
    out = downsample_labels(lab, size, num_classes=5, ignore_index=255, min_valid=0.5)
    assert out.shape == (3, *size) and out.dtype == torch.int64
    assert torch.equal(out, _vote_reference(lab, size, 5, 255, 0.5))
