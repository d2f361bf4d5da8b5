"""Contrastive losses against hand-computed tiny examples; samplers; view alignment; distillation."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pipa_edge.adapt.distill import distill_loss
from pipa_edge.adapt.patch_contrast import (Box, PatchContrast, box_iou, boxes_tensor, cell_coords,
                                             cell_coords_batched, locate_batched, make_views)
from pipa_edge.adapt.pixel_contrast import PixelContrast
from pipa_edge.adapt.sampling import RandomSampler, TaskSmartSampler, info_nce

IG = 255


def _nll(sp, sn):
    return -math.log(math.exp(sp) / (math.exp(sp) + sum(math.exp(s) for s in sn)))


def test_info_nce_hand_example():
    sim = torch.tensor([[1.0, 0.5, -1.0], [0.2, 0.3, 0.4]])
    pos = torch.tensor([[True, True, False], [False, False, True]])
    neg = torch.tensor([[False, False, True], [True, True, False]])
    exp = ((_nll(1.0, [-1.0]) + _nll(0.5, [-1.0])) / 2 + _nll(0.4, [0.2, 0.3])) / 2
    assert info_nce(sim, pos, neg).item() == pytest.approx(exp, rel=1e-6)
    # anchors without positives or negatives are left out; none at all -> 0 with a graph
    s = torch.zeros(2, 2, requires_grad=True)
    out = info_nce(s, torch.zeros(2, 2, dtype=torch.bool), torch.ones(2, 2, dtype=torch.bool))
    assert out.item() == 0.0 and out.requires_grad


def test_pixel_contrast_hand_example():
    tau = 0.5
    z = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0], [0.0, 1.0]])
    y = torch.tensor([0, 0, 1, IG])
    pc = PixelContrast(2, 2, IG, proj_dim=4, temperature=tau, anchors_per_class=10, negatives_per_anchor=10)
    pc.head = _Norm()  # the embeddings are given: the 4 cells of a (1, 2, 1, 4) map, labels at that size
    loss = pc(z.t().reshape(1, 2, 1, 4), y.view(1, 1, 4))
    # anchor 0: pos {1} s=1.2, neg {2} s=0; anchor 1: pos {0} s=1.2, neg {2} s=1.6; anchor 2 has no positive
    exp = (_nll(1.2, [0.0]) + _nll(1.2, [1.6])) / 2
    assert loss.item() == pytest.approx(exp, rel=1e-5)


def test_pixel_contrast_forward_downsamples_and_has_grad():
    torch.manual_seed(0)
    pc = PixelContrast(8, 3, IG, proj_dim=4, anchors_per_class=5)
    f = torch.randn(2, 8, 4, 4, requires_grad=True)
    lab = torch.randint(0, 3, (2, 16, 16))
    lab[:, :8] = IG
    loss = pc(f, lab)
    loss.backward()
    assert torch.isfinite(loss) and f.grad.abs().sum() > 0
    assert pc.last_stats["anchors"] <= 3 * 5


def test_samplers_respect_caps_and_ignore():
    torch.manual_seed(0)
    y = torch.tensor([0] * 50 + [1] * 3 + [IG] * 40 + [7] * 5)
    score = torch.rand(y.numel())
    for s in (RandomSampler(), TaskSmartSampler(0.5, 0.5)):
        idx = s.anchors(y, score, per_class=10, ignore_index=IG, num_classes=3)
        got = y[idx]
        assert (got != IG).all() and (got < 3).all()  # never ignore, never out of range
        assert (got == 0).sum() == 10 and (got == 1).sum() == 3
        assert idx.unique().numel() == idx.numel()
    ts = TaskSmartSampler(hard_anchor_ratio=1.0)
    idx = ts.anchors(y, score, per_class=4, ignore_index=IG, num_classes=3)
    top0 = torch.topk(score[:50], 4).indices
    assert set(idx[y[idx] == 0].tolist()) == set(top0.tolist())


def test_negative_sampling_caps_and_hardness():
    torch.manual_seed(0)
    sim = torch.randn(6, 20)
    allowed = torch.rand(6, 20) > 0.3
    for s in (RandomSampler(), TaskSmartSampler(hard_negative_ratio=0.5)):
        m = s.negatives(sim, allowed, 5)
        assert (m.sum(1) <= 5).all() and not (m & ~allowed).any()
    hard = TaskSmartSampler(hard_negative_ratio=1.0).negatives(sim, allowed, 3)
    for i in range(6):
        best = torch.topk(sim[i].masked_fill(~allowed[i], -1e9), 3).indices
        assert set(torch.nonzero(hard[i]).flatten().tolist()) == set(best.tolist())


def test_view_alignment_maps_the_same_image_pixel():
    """A linear 'image' (channels = x, y) survives crop → cell → match exactly, flips included."""
    torch.manual_seed(3)
    H, W, s = 48, 64, 4
    yy, xx = torch.meshgrid(torch.arange(H, dtype=torch.float32) + 0.5,
                            torch.arange(W, dtype=torch.float32) + 0.5, indexing="ij")
    img = torch.stack([xx, yy, xx * 0]).unsqueeze(0).repeat(4, 1, 1, 1)
    g = torch.Generator().manual_seed(1)
    v1, v2, boxes = make_views(img, (24, 32), scale=(0.6, 0.9), iou=(0.3, 0.7), flip=True, photometric=False,
                               generator=g)
    f1, f2 = F.avg_pool2d(v1, s), F.avg_pool2d(v2, s)  # "features" at stride 4: cell-centre coordinates
    n_checked, flips = 0, 0
    for b, (b1, b2) in enumerate(boxes):
        assert 0.3 - 1e-6 <= box_iou(b1, b2) <= 0.7 + 1e-6
        flips += int(b1.flip) + int(b2.flip)
        c1 = cell_coords(b1, f1.shape[-2:]).reshape(-1, 2)
        assert torch.allclose(f1[b, :2].reshape(2, -1).t(), c1, atol=1e-3)  # cell coords = what the crop shows
        assert torch.allclose(cell_coords_batched(boxes_tensor([b1]), f1.shape[-2:])[0], c1)
        loc, inside = locate_batched(c1[None], boxes_tensor([b2]), f2.shape[-2:])
        loc, inside = loc[0], inside[0]
        assert inside.sum() > 5
        sampled = F.grid_sample(f2[b:b + 1, :2], loc[inside].view(1, -1, 1, 2), mode="bilinear",
                                align_corners=False).view(2, -1).t()
        assert torch.allclose(sampled, c1[inside], atol=1e-3)
        n_checked += int(inside.sum())
    assert n_checked > 50 and flips > 0


class _Norm(nn.Module):
    def forward(self, x):
        return F.normalize(x, dim=1)


def test_patch_contrast_hand_example():
    """Identical 2x2 views: the positive of a cell is the same cell; neg_min_dist 0.5 → 3 negatives."""
    tau = 0.5
    pc = PatchContrast(2, IG, temperature=tau, anchors=100, negatives_per_anchor=100, neg_min_dist=0.5)
    pc.head = _Norm()
    z = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8], [-1.0, 0.0]])  # cells (0,0),(0,1),(1,0),(1,1)
    f = z.t().reshape(1, 2, 2, 2)
    box = Box(0.0, 0.0, 8.0, 8.0, False)
    loss = pc(f, f.clone(), [(box, box)])
    exp = []
    for a in range(4):
        sims = (z @ z[a]) / tau
        exp.append(_nll(sims[a].item(), [sims[n].item() for n in range(4) if n != a]))
    assert loss.item() == pytest.approx(sum(exp) / 4, rel=1e-5)


def test_patch_contrast_memory_filtered_by_label():
    pc = PatchContrast(2, IG, temperature=0.1, anchors=100, memory_size=16)
    pc.head = _Norm()
    f = torch.randn(1, 2, 3, 3, requires_grad=True)
    box = Box(0.0, 0.0, 6.0, 6.0, False)
    label = torch.zeros(1, 6, 6, dtype=torch.long)
    pc(f, f, [(box, box)], label=label)
    assert pc.memory is not None and pc.memory.shape[0] >= 1 and not pc.memory.requires_grad
    l1 = pc(f, f, [(box, box)], label=label)  # same-label memory entries: filtered out, same loss
    pc.memory_label = torch.full_like(pc.memory_label, 5)
    l2 = pc(f, f, [(box, box)], label=label)  # different label: now negatives, loss grows
    assert l2.item() > l1.item()
    l2.backward()
    assert f.grad.abs().sum() > 0


def test_distill_loss_hand_example():
    s = torch.zeros(1, 2, 1, 1)
    t = torch.tensor([2.0, 0.0]).view(1, 2, 1, 1)
    loss, logs = distill_loss(s, t, temperature=1.0, weight=1.0, pseudo_weight=1.0, threshold=0.5)
    pt = torch.softmax(torch.tensor([2.0, 0.0]), 0)
    kd = float((pt * (pt.log() - math.log(0.5))).sum())
    assert logs["loss_kd"] == pytest.approx(kd, rel=1e-5)
    assert logs["loss_kd_pl"] == pytest.approx(math.log(2), rel=1e-5)  # conf 0.88 >= 0.5: CE of uniform
    assert loss.item() == pytest.approx(kd + math.log(2), rel=1e-5)


def _pixel_losses(train: bool):
    """Loss of ``PixelContrast`` with the head on the sampled cells only (its forward) and with the head
    on the whole map (the same cells sampled), plus the head's BatchNorm input on the sampled cells."""
    torch.manual_seed(0)
    pc = PixelContrast(8, 3, IG, proj_dim=4, anchors_per_class=4, negatives_per_anchor=5).train(train)
    f = torch.randn(2, 8, 8, 8)
    lab = torch.randint(0, 3, (2, 8, 8))
    lab[0, 0] = IG
    seen = []
    hook = pc.head.net[1].register_forward_hook(lambda mod, inp, out: seen.append(inp[0].detach()))
    torch.manual_seed(1)
    sparse = pc(f, lab)
    hook.remove()
    head, pc.head = pc.head, _Norm()  # the whole map projected first; the loss then only normalises again
    whole = lambda: pc(head(f), lab)  # noqa: E731
    return pc, head, sparse, whole, f, seen[0]


def test_pixel_contrast_head_on_sampled_cells_equals_full_map_in_eval_mode():
    """Eval mode (running BN statistics): the head on the sampled cells only = the head on the whole map."""
    pc, _, sparse, whole, f, _ = _pixel_losses(train=False)
    assert pc.last_stats["candidates"] < f.shape[0] * f.shape[2] * f.shape[3]  # a strict subset was projected
    torch.manual_seed(1)
    assert sparse.item() == pytest.approx(whole().item(), rel=1e-5)


def test_pixel_contrast_head_on_sampled_cells_differs_in_train_mode_only_by_bn_statistics():
    """Train mode (what adaptation uses): the head's BatchNorm normalises with the sampled cells' batch
    statistics, so the loss is not that of the whole map; it is the whole-map loss with the BatchNorm
    fed exactly those statistics."""
    pc, head, sparse, whole, f, x = _pixel_losses(train=True)
    assert pc.last_stats["candidates"] < f.shape[0] * f.shape[2] * f.shape[3]
    torch.manual_seed(1)
    with torch.no_grad():
        full_batch_stats = whole().item()  # BN over all B*h*w cells
    assert sparse.item() != pytest.approx(full_batch_stats, rel=1e-4)
    bn = head.net[1]
    bn.running_mean.copy_(x.mean((0, 2, 3)))
    bn.running_var.copy_(x.var((0, 2, 3), unbiased=False))
    bn.eval()  # the whole map normalised with the sampled cells' statistics
    torch.manual_seed(1)
    assert sparse.item() == pytest.approx(whole().item(), rel=1e-5)
