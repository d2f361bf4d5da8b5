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
from pipa_edge.errors import ConfigError


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


def _stem(seg: nn.Module) -> nn.Module:
    """The first convolution: its input is the (normalised, resized) image batch of a forward."""
    return next(x for x in seg.modules() if isinstance(x, nn.Conv2d))


@pytest.mark.parametrize("scale", [1.0, 0.5])
def test_target_bn_stats_adds_one_target_only_update_and_leaves_the_loss(scale):
    """adapt.target_bn_stats: one extra no-grad forward of the clean target images moves the running
    statistics first (running <- (1-m) running + m mean_target), then the main forward as before; the loss
    (batch statistics in training mode) and the gradients are those of the step without it."""
    results = {}
    for on in (False, True):
        seg = copy.deepcopy(_SEG)
        m = build_adapter("mean_teacher", seg, {"pseudo_label": {"threshold": 0.01}, "target_bn_stats": on,
                                                         "target_bn_scale": scale}).train()
        m.generator = torch.Generator().manual_seed(0)  # mixing draws apart from any RNG the extra forward uses
        for d in seg.modules():  # stochastic depth would draw from the global RNG in the extra forward too
            if type(d).__name__ == "DropPath":
                d.eval()
        bn = next(x for x in seg.modules() if isinstance(x, nn.modules.batchnorm._BatchNorm))
        r0 = bn.running_mean.clone()
        calls, sizes = [], []
        hook = bn.register_forward_hook(lambda mod, inp, out: calls.append((inp[0].detach().mean((0, 2, 3)),
                                                                              torch.is_grad_enabled())))
        seg_hook = _stem(seg).register_forward_pre_hook(lambda mod, args: sizes.append(tuple(args[0].shape[-2:])))
        torch.manual_seed(3)
        loss, _ = m.training_step(_BATCH, 5)
        loss.backward()
        hook.remove()
        seg_hook.remove()
        grad = next(p for p in seg.parameters() if p.grad is not None).grad.clone()
        results[on] = (loss.detach(), grad, calls, r0, bn.running_mean.clone(), bn.momentum, int(bn.num_batches_tracked))
        if on:  # the extra forward saw the target batch at the configured scale
            h, w = _BATCH["target"]["image"].shape[-2:]
            assert (round(h * scale), round(w * scale)) in sizes
    (l0, g0, c0, _, _, _, n0), (l1, g1, c1, r0, r1, mom, n1) = results[False], results[True]
    assert torch.allclose(l0, l1) and torch.allclose(g0, g1, atol=1e-6)
    assert len(c0) == 1 and c0[0][1] and len(c1) == 2 and not c1[0][1] and c1[1][1]  # no-grad target, then main
    assert n1 == n0 + 1
    expected = (1 - mom) * ((1 - mom) * r0 + mom * c1[0][0]) + mom * c1[1][0]
    assert torch.allclose(r1, expected, atol=1e-5)
    assert not torch.allclose(r1, (1 - mom) * r0 + mom * c1[1][0], atol=1e-5)  # the target batch did move them


def test_target_bn_images_source_is_the_control():
    """target_bn_images=source: the extra no-grad forward sees the source batch instead."""
    seg = copy.deepcopy(_SEG)
    m = build_adapter("mean_teacher", seg, {"pseudo_label": {"threshold": 0.01}, "target_bn_stats": True,
                                            "target_bn_images": "source"}).train()
    seen = []
    hook = _stem(seg).register_forward_pre_hook(lambda mod, args: seen.append(args[0].detach().clone()))
    m.training_step(_BATCH, 5)
    hook.remove()
    assert torch.allclose(seen[0], seg.normalize(_BATCH["source"]["image"].float()))
    with pytest.raises(ConfigError, match="target_bn_images"):
        build_adapter("mean_teacher", copy.deepcopy(_SEG), {"target_bn_images": "both"})
