"""bench/grad_conflict.py: per-objective gradients from repeated steps with one RNG state."""

from __future__ import annotations

import math

import pytest
import torch

from pipa_edge.adapt import build_adapter
from pipa_edge.bench.latency import build_arch
from pipa_edge.bench.train_step import synthetic_batch

from _bench_util import load_bench


def _bench():
    return load_bench("grad_conflict")


def _method(w_pixel: float, w_patch: float):
    torch.manual_seed(0)
    seg = build_arch("segformer-b0", 0)
    cfg = {"pixel_contrast": {"enabled": True, "weight": w_pixel, "anchors_per_class": 8, "negatives_per_anchor": 16},
           "patch_contrast": {"enabled": True, "weight": w_patch, "anchors": 16, "num_images": 1},
           "pseudo_label": {"threshold": 0.01}}
    m = build_adapter("pipa", seg, cfg)
    m.train()
    return m, [synthetic_batch(seg.classes, 2, (64, 64), 0)]


def test_terms_split_exactly_and_weights_are_restored():
    mod = _bench()
    m, batches = _method(0.0, 0.5)
    rows = mod.measure(m, batches, it=10, clip=1.0)
    r = rows[0]
    # pixel weight 0: its "gradient" is the difference of two identical steps → exactly zero,
    # which holds only if each repeated step replays the same random draws (mixing, crops, samples)
    assert r["norm_pixel"] == 0.0 and math.isnan(r["cos_ce_pixel"])
    assert r["norm_patch"] > 0 and r["norm_ce"] > 0
    assert -1.0 <= r["cos_ce_patch"] <= 1.0
    assert 0 < r["clip_factor"] <= 1.0
    assert m.cfg.pixel_contrast.weight == 0.0 and m.cfg.patch_contrast.weight == 0.5  # config left as found
    assert all(p.grad is None for p in m.parameters())


def test_patch_gradient_scales_with_its_weight():
    mod = _bench()
    a = mod.measure(*_method(0.1, 0.2), it=10, clip=0.0)[0]
    b = mod.measure(*_method(0.1, 0.4), it=10, clip=0.0)[0]
    assert b["norm_patch"] == pytest.approx(2 * a["norm_patch"], rel=1e-3)
    assert b["norm_pixel"] == pytest.approx(a["norm_pixel"], rel=1e-4)
    assert b["cos_ce_patch"] == pytest.approx(a["cos_ce_patch"], abs=1e-3)
    assert a["clip_factor"] == 1.0  # clip 0 = no clipping

