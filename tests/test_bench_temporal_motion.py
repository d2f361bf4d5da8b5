"""bench/temporal_motion.py: the labels' own flip rate (the floor) and flicker on label-stable pixels."""

from __future__ import annotations

import numpy as np

from pipa_edge.data.classes import SYNTH11

from _bench_util import load_bench


def _clip(n=4, shift=3, seed=0):
    """A textured frame panned ``shift`` px per frame; labels = vertical stripes that pan with it, and
    a block that changes class half-way (a change of the scene the flow cannot explain)."""
    rng = np.random.default_rng(seed)
    h, w = 48, 96
    base = rng.integers(0, 256, (h, w + n * shift, 3), dtype=np.uint8)
    import cv2

    base = cv2.GaussianBlur(base, (5, 5), 1.5)
    stripes = ((np.arange(w + n * shift) // 12) % 3).astype(np.int64)
    images = [np.ascontiguousarray(base[:, t * shift:t * shift + w]) for t in range(n)]
    labels = [np.broadcast_to(stripes[t * shift:t * shift + w], (h, w)).copy() for t in range(n)]
    for lab in labels[n // 2:]:  # a real change: a block turns into another class half-way
        lab[10:30, 30:60] = 10
    return images, labels


def test_perfect_and_noisy_predictions_against_the_labels_row():
    mod = load_bench("temporal_motion")
    k = SYNTH11.num_classes
    images, labels = _clip()
    sc = mod.Scorer(SYNTH11, ["raw"])
    perfect = [np.eye(k, dtype=np.float32)[lab].transpose(2, 0, 1) * 10 for lab in labels]
    sc.clip(images, perfect, labels)
    rows = sc.rows()
    # a perfect prediction flips exactly as the labels do, and never on label-stable pixels
    assert rows["raw"]["flip_rate"] == rows["labels"]["flip_rate"] > 0
    assert rows["raw"]["flip_rate_label_stable"] == 0.0 and rows["raw"]["miou"] == 1.0
    # noise on a third of the pixels shows as flicker on label-stable pixels
    rng = np.random.default_rng(1)
    noisy = []
    for lg in perfect:
        lg = lg.copy()
        m = rng.random(lg.shape[1:]) < 0.33
        lg[:, m] = rng.random((k, int(m.sum()))).astype(np.float32) * 20
        noisy.append(lg)
    sc2 = mod.Scorer(SYNTH11, ["raw", "ema"])
    sc2.clip(images, noisy, labels)
    r2 = sc2.rows()
    assert r2["raw"]["flip_rate_label_stable"] > 0.2
    assert r2["ema"]["flip_rate_label_stable"] < r2["raw"]["flip_rate_label_stable"]
