"""Motion-compensated temporal filter: warp semantics, forward-backward check, providers, runtime wiring."""

from __future__ import annotations

import numpy as np
import pytest

from pipa_edge.errors import ConfigError
from pipa_edge.runtime.motion import (DISMotion, MotionCompensator, fb_valid, make_compensator, make_provider,
                                      register_provider, to_grey, warp_planes)
from pipa_edge.runtime.temporal import TemporalFilter, TemporalState, softmax


def _texture(h: int, w: int, seed: int = 0) -> np.ndarray:
    """Smooth random texture (uint8 grey), trackable by DIS."""
    import cv2

    rng = np.random.default_rng(seed)
    small = rng.uniform(0, 255, (h // 4 + 2, w // 4 + 2)).astype(np.float32)
    big = cv2.resize(small, (w + 8, h + 8), interpolation=cv2.INTER_CUBIC)
    return np.clip(big, 0, 255).astype(np.uint8)


class ShiftProvider:
    """A provider with a known, constant motion: the scene moved by (dx, dy) px from prev to cur.
    It ignores the frames, so it cannot answer the reverse query: use it with ``fb_check=False``."""

    name = "shift"

    def __init__(self, dx: float, dy: float):
        self.dx, self.dy, self.calls = dx, dy, []

    def flow(self, prev_grey, cur_grey):
        self.calls.append((prev_grey.copy(), cur_grey.copy()))
        f = np.empty(cur_grey.shape + (2,), np.float32)
        f[..., 0], f[..., 1] = -self.dx, -self.dy  # backward: cur(x) = prev(x - d)
        return f


def test_known_translation_warps_state_exactly_in_the_interior():
    h, w, k = 24, 32, 3
    rng = np.random.default_rng(0)
    ema = softmax(rng.normal(size=(1, k, h, w)).astype(np.float32) * 3)
    label = ema.argmax(1).astype(np.int32)
    state = TemporalState(ema.copy(), label.copy(), np.full_like(label, -1), np.zeros_like(label))
    mc = MotionCompensator(ShiftProvider(3, 2), fb_check=False, min_height=h)
    img = np.zeros((h, w, 3), np.uint8)
    mc.align(state, img)  # first frame: only remembered
    out = mc.align(state, img)
    np.testing.assert_allclose(out.ema[0, :, 2:, 3:], ema[0, :, :-2, :-3], atol=1e-6)
    np.testing.assert_array_equal(out.label[0, 2:, 3:], label[0, :-2, :-3])
    # the strip that entered the view has no state: reset to "fresh" (the current frame takes over)
    assert (out.ema[0, :, :2, :] == 0).all() and (out.ema[0, :, :, :3] == 0).all()
    assert (out.label[0, :2] == -1).all() and (out.label[0, :, :3] == -1).all()
    assert mc.last["valid"] == pytest.approx((h - 2) * (w - 3) / (h * w))


def test_dis_recovers_a_translated_probability_map():
    h, w = 96, 128
    tex = _texture(h, w)
    prev_img, cur_img = tex[4:4 + h, 4:4 + w], tex[1:1 + h, 2:2 + w]  # scene moved by (+2, +3) px
    yy, xx = np.mgrid[0:h + 8, 0:w + 8]
    field = np.stack([np.sin(xx / 9.0), np.cos(yy / 7.0), np.sin((xx + yy) / 11.0)]).astype(np.float32)
    probs_big = softmax(field[None] * 4)
    prev_p, cur_p = probs_big[:, :, 4:4 + h, 4:4 + w], probs_big[:, :, 1:1 + h, 2:2 + w]
    label = prev_p.argmax(1).astype(np.int32)
    state = TemporalState(prev_p.copy(), label, np.full_like(label, -1), np.zeros_like(label))
    mc = MotionCompensator(DISMotion("medium"))
    mc.align(state, prev_img)
    out = mc.align(state, cur_img)
    inner = (slice(None), slice(None), slice(10, h - 10), slice(10, w - 10))
    err_warped = np.abs(out.ema[inner] - cur_p[inner]).mean()
    err_static = np.abs(prev_p[inner] - cur_p[inner]).mean()
    assert err_warped < 0.2 * err_static
    assert mc.last["motion_px"] == pytest.approx(np.hypot(2, 3), abs=0.5)
    assert mc.last["valid"] > 0.8


def test_forward_backward_check_marks_the_disoccluded_region():
    h, w = 20, 30
    fwd = np.zeros((h, w, 2), np.float32)  # prev → cur: a square at x 10..15 moves 4 px right
    fwd[5:15, 10:16, 0] = 4
    bwd = np.zeros((h, w, 2), np.float32)  # cur → prev: the square now at x 14..19 came from 4 px left
    bwd[5:15, 14:20, 0] = -4
    valid = fb_valid(bwd, fwd)
    assert not valid[5:15, 10:14].any()  # background uncovered behind the square: no match
    assert valid[5:15, 14:20].all()  # the square itself: consistent round trip
    assert valid[:5].all() and valid[15:].all()  # static background
    assert not fb_valid(np.full((h, w, 2), -5, np.float32), np.zeros((h, w, 2), np.float32))[:, :5].any()


def test_dis_forward_backward_flags_an_occlusion():
    h, w = 96, 128
    bg = _texture(h, w, seed=1)[:h, :w]
    obj = _texture(40, 30, seed=2)[:40, :30]
    prev_img, cur_img = bg.copy(), bg.copy()
    prev_img[30:70, 40:70] = obj
    cur_img[30:70, 52:82] = obj  # the object moved 12 px right: x 40..52 is disoccluded in cur
    state = TemporalState.empty(1, 2, (h, w))
    state.ema[:] = 0.5
    mc = MotionCompensator(DISMotion("medium"))
    mc.align(state, prev_img)
    out = mc.align(state, cur_img)
    reset = out.ema[0].sum(0) == 0
    assert reset[34:66, 42:50].mean() > 0.5  # most of the uncovered background is reset
    assert reset[5:25, 5:120].mean() < 0.1  # static background kept


def test_zero_motion_equals_plain_ema():
    class Zero:
        name = "zero"

        def flow(self, prev_grey, cur_grey):
            return np.zeros(cur_grey.shape + (2,), np.float32)

    rng = np.random.default_rng(3)
    plain, mc = TemporalFilter(0.4, 0.1, 3), TemporalFilter(0.4, 0.1, 3, motion=MotionCompensator(Zero()))
    img = np.zeros((64, 64, 3), np.uint8)
    for _ in range(6):
        x = rng.normal(size=(1, 5, 16, 16)).astype(np.float32) * 2
        np.testing.assert_array_equal(plain.update(x, image=img), mc.update(x, image=img))
        np.testing.assert_array_equal(plain.state.ema, mc.state.ema)
        np.testing.assert_array_equal(plain.state.count, mc.state.count)


def test_moving_scene_does_not_lag_with_compensation():
    """A class boundary moving 2 px/frame: plain EMA + hysteresis lags behind it, the warped state does not."""
    h, w = 16, 48

    def frame(t):
        p = np.zeros((1, 2, h, w), np.float32)
        edge = 10 + 2 * t
        p[0, 0, :, :edge], p[0, 1, :, :edge] = 0.9, 0.1
        p[0, 0, :, edge:], p[0, 1, :, edge:] = 0.1, 0.9
        return p

    comp_mc = MotionCompensator(ShiftProvider(2, 0), fb_check=False, min_height=h)
    plain, comp = TemporalFilter(0.3, 0.1, 5), TemporalFilter(0.3, 0.1, 5, motion=comp_mc)
    img = np.zeros((h, w, 3), np.uint8)
    for t in range(8):
        p = frame(t)
        lp, lc = plain.update(p, "probs", image=img), comp.update(p, "probs", image=img)
    truth = frame(7).argmax(1)
    assert (lp != truth).mean() > 0.05  # plain EMA smears the old class over the moved boundary
    np.testing.assert_array_equal(lc, truth)


def test_label_only_backend_is_warped_too():
    f = TemporalFilter(persist=3, motion=MotionCompensator(ShiftProvider(1, 0), fb_check=False, min_height=4))
    img = np.zeros((4, 8, 3), np.uint8)
    lab = np.zeros((1, 4, 8), np.int32)
    lab[:, :, 4:] = 1
    f.update(lab, "labels", image=img)
    moved = np.zeros_like(lab)
    moved[:, :, 5:] = 1  # the boundary moved 1 px right: a warped state agrees at once
    np.testing.assert_array_equal(f.update(moved, "labels", image=img), moved)


def test_provider_interface_registry_and_grey_inputs():
    p = ShiftProvider(0, 0)
    register_provider("test-shift", lambda: p)
    assert make_provider("test-shift") is p
    with pytest.raises(ValueError, match="unknown motion provider"):
        make_provider("nope")
    mc = MotionCompensator("test-shift", fb_check=False, min_height=32)
    state = TemporalState.empty(1, 3, (8, 16))
    rgb0 = np.full((40, 80, 3), 10, np.uint8)
    rgb1 = np.full((40, 80, 3), 200, np.uint8)
    mc.align(state, rgb0)
    mc.align(state, rgb1)
    prev, cur = p.calls[-1]  # called as flow(prev, cur) with grey uint8 at >= min_height rows, state aspect
    assert prev.dtype == np.uint8 and prev.shape == (32, 64) and cur.shape == (32, 64)
    assert prev.mean() < cur.mean()
    assert to_grey(rgb1, (8, 16)).shape == (8, 16)
    assert isinstance(make_provider("dis"), DISMotion)


def test_auto_mode_skips_static_frames_and_keeps_the_reference():
    mc = make_compensator("auto")
    assert make_compensator("off") is None and make_compensator("on").static_mad is None
    with pytest.raises(ConfigError, match="motion_provider"):
        make_compensator("on", "nope")
    tex = _texture(96, 128)
    state = TemporalState.empty(1, 2, (24, 32))
    mc.align(state, tex[:96, :128])
    mc.align(state, tex[:96, :128])  # identical frame: static, no flow
    assert mc.last.get("skipped") == 1.0 and mc.skipped == 1
    mc.align(state, tex[3:99, 4:132])  # moved: flow runs
    assert "skipped" not in mc.last and mc.last["motion_px"] > 0.5


def test_warp_planes_shapes():
    x = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    z = np.zeros((3, 4, 2), np.float32)
    np.testing.assert_array_equal(warp_planes(x, z), x)
    np.testing.assert_array_equal(warp_planes(x[0], z), x[0])


def test_returned_labels_are_not_mutated_by_the_next_warp():
    """The runtime keeps the previous labels (drawn on another thread, flip rate): warping must copy."""
    f = TemporalFilter(motion=MotionCompensator(ShiftProvider(2, 0), fb_check=False, min_height=8))
    img = np.zeros((8, 16, 3), np.uint8)
    x = np.random.default_rng(0).normal(size=(1, 3, 8, 16)).astype(np.float32)
    first = f.update(x, image=img)
    kept = first.copy()
    f.update(x, image=img)
    np.testing.assert_array_equal(first, kept)
