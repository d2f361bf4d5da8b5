"""TC and flip rate: identical predictions, a known shift with exact / without flow."""

from __future__ import annotations

import numpy as np

from pipa_edge.train.video_metrics import VideoMeter, pair_flip_rate, pair_tc, warp_prediction


def _stripes(h=20, w=40, shift=0):
    x = np.arange(w) + shift
    return np.broadcast_to(((x // 10) % 2).astype(np.uint8), (h, w)).copy()


def test_identical_predictions():
    p = _stripes()
    m = VideoMeter(2)
    tc, fl = m.update(p, p.copy())
    assert tc == 1.0 and fl == 0.0
    m.update(p, p, np.zeros(p.shape + (2,), np.float32))
    s = m.summary()
    assert s["tc"] == 1.0 and s["flip_rate"] == 0.0 and s["pairs"] == 2


def test_known_shift_with_and_without_flow():
    s = 3
    p_t = _stripes()
    p_next = _stripes(shift=s)  # the scene moved: pixel x of t+1 shows what pixel x+s showed at t
    flow = np.zeros(p_t.shape + (2,), np.float32)
    flow[..., 0] = s  # t+1 → t
    m = VideoMeter(2)
    tc, fl = m.update(p_t, p_next, flow)
    assert tc == 1.0 and fl == 0.0  # motion-compensated: perfectly consistent
    assert m.valid_frac[0] == (40 - s) / 40  # the right border has no counterpart
    # without motion compensation: a = 0 on x 0-9, 20-29; b = 0 on x 0-6, 17-26, 37-39 → 12 columns flip
    tc0, fl0 = VideoMeter(2).update(p_t, p_next)
    assert abs(fl0 - 12 / 40) < 1e-9
    # per class: intersection 7 + 7 columns, union 20 + 20 - 14 = 26
    a, b = p_t[0], p_next[0]
    inter0, union0 = np.sum((a == 0) & (b == 0)), np.sum((a == 0) | (b == 0))
    inter1, union1 = np.sum((a == 1) & (b == 1)), np.sum((a == 1) | (b == 1))
    assert abs(tc0 - (inter0 / union0 + inter1 / union1) / 2) < 1e-9
    assert abs(tc0 - 14 / 26) < 1e-9


def test_warp_prediction_marks_outside():
    p = _stripes(4, 10)
    flow = np.zeros((4, 10, 2), np.float32)
    flow[..., 1] = -2  # looks 2 rows up
    w = warp_prediction(p, flow)
    assert (w[:2] == -1).all() and (w[2:] == p[:2]).all()
    assert np.isnan(pair_tc(p, p, np.zeros_like(p, bool), 2)) and np.isnan(pair_flip_rate(p, p, np.zeros_like(p, bool)))
