"""adapt.aux_bn_update: auxiliary student forwards may leave the BatchNorm running statistics alone."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from pipa_edge.adapt import build_adapter
from pipa_edge.adapt.bn import bn_running_stats
from pipa_edge.bench.latency import build_arch
from pipa_edge.bench.train_step import synthetic_batch


def _bn_buffers(module: nn.Module) -> dict[str, torch.Tensor]:
    return {n: b.clone() for n, b in module.named_buffers() if "running_" in n or "num_batches" in n}


def test_context_restores_running_stats_and_keeps_gradients():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 2, 1)).train()
    x = torch.randn(2, 3, 5, 5) * 3 + 1
    grads = []
    for update in (False, True):
        net.zero_grad()
        main = net(x * 0.5).mean()  # a forward outside the block, as the adapter's main forward
        after_main = _bn_buffers(net)
        with bn_running_stats(net, update):
            aux = net(x).square().mean()
        after_aux = _bn_buffers(net)
        (main + aux).backward()  # after the block: both graphs must still be intact
        assert all(torch.equal(after_main[k], after_aux[k]) for k in after_main) is (not update)
        grads.append([p.grad.clone() for p in net.parameters()])
    assert all(torch.equal(a, b) for a, b in zip(*grads))  # normalisation uses batch stats either way


def _step(aux_bn_update: bool, patch: bool):
    seg = copy.deepcopy(_SEG)
    cfg = {"pseudo_label": {"threshold": 0.01}, "aux_bn_update": aux_bn_update,
           "patch_contrast": {"enabled": patch, "anchors": 16, "num_images": 2}}
    m = build_adapter("pipa" if patch else "mean_teacher", seg, cfg).train()
    torch.manual_seed(3)
    loss, _ = m.training_step(_BATCH, 5)
    assert torch.isfinite(loss)
    loss.backward()  # the trainer's backward after the step (restoring the stats must not break it)
    return _bn_buffers(m.segmenter)


_SEG = build_arch("segformer-b0", 0)
_BATCH = synthetic_batch(_SEG.classes, 2, (64, 64), 0)


@pytest.mark.parametrize("aux_bn_update", [False, True])
def test_patch_views_touch_running_stats_only_when_asked(aux_bn_update):
    """Running stats after a PiPa step with the patch views = after a mean-teacher step on the same
    batch (only the main forward moved them) iff aux_bn_update is false."""
    assert any("running_mean" in n for n in _bn_buffers(_SEG))  # the SegFormer decoder has a BatchNorm
    ref = _step(aux_bn_update, patch=False)
    got = _step(aux_bn_update, patch=True)
    same = all(torch.equal(ref[k], got[k]) for k in ref)
    assert same is (not aux_bn_update)
