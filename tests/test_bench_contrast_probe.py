"""bench/contrast_probe.py: class separability of embeddings, and the probe of a PiPa++ step."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from pipa_edge.adapt import build_adapter
from pipa_edge.bench.latency import build_arch
from pipa_edge.bench.train_step import synthetic_batch

from _bench_util import load_bench


def _bench():
    return load_bench("contrast_probe")


def test_separability_by_hand():
    mod = _bench()
    # class 0 = (2, 1)/√5 twice, class 1 = (1, 2)/√5 twice: cosine within a class 1, between classes 0.8
    a, b = F.normalize(torch.tensor([2.0, 1.0]), dim=0), F.normalize(torch.tensor([1.0, 2.0]), dim=0)
    x = torch.stack([a, a, b, b])
    y = torch.tensor([0, 0, 1, 1])
    s = mod.separability(x, y, num_classes=2)
    assert s["within"] == pytest.approx(1.0, abs=1e-6) and s["between"] == pytest.approx(0.8, abs=1e-6)
    assert s["centroid_acc"] == 1.0 and s["classes"] == 2
    collapsed = mod.separability(torch.stack([a, a, a, a]), y, 2)
    assert collapsed["between"] == pytest.approx(1.0) and collapsed["centroid_acc"] == 0.5  # argmax ties → class 0


def test_probe_reports_losses_near_chance_for_a_fresh_head():
    mod = _bench()
    torch.manual_seed(0)
    seg = build_arch("segformer-b0", 0)
    cfg = {"pixel_contrast": {"enabled": True, "anchors_per_class": 8, "negatives_per_anchor": 16},
           "patch_contrast": {"enabled": False}, "pseudo_label": {"threshold": 0.01},
           "sampler": {"kind": "task_smart"}}
    m = build_adapter("pipa", seg, cfg)
    m.train()
    rows = mod.probe(m, [synthetic_batch(seg.classes, 2, (64, 64), 0)], it=10, max_cells=200)
    r = rows[0]
    assert r["cells"] > 0 and 0 < r["z_classes"] <= seg.classes.num_classes
    assert r["chance"] == pytest.approx(math.log(17))  # 16 negatives per anchor
    for k in ("loss_run_sampler", "loss_random_sampler", "loss_hard_anchors_only", "loss_hard_negatives_only"):
        assert math.isfinite(r[k]) and r[k] > 0
    assert -1.0 <= r["z_between"] <= 1.0 and -1.0 <= r["f_within"] <= 1.0
    assert m.pixel.forward.__name__ != "grab"  # the capture hook is removed again
