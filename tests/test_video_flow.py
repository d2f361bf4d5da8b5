"""Optical-flow correspondences, forward-backward occlusion mask, int16_x10 files, warping, cache."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipa_edge.adapt.flow import warp_torch
from pipa_edge.data.flow import CachedFlow, DISFlow, PrecomputedFlow, build_flow_provider, fb_consistency, \
    read_int16_x10, resize_flow, warp_np, write_int16_x10
from pipa_edge.errors import DataError

DX, DY = 3, 2


def _pair(h=96, w=128, seed=0):
    """Frame t sees the texture shifted by (DX, DY) w.r.t. frame t-k: flow t → t-k is (+DX, +DY)."""
    import cv2

    rng = np.random.default_rng(seed)
    tex = cv2.GaussianBlur((rng.random((h + 20, w + 20, 3)) * 255).astype(np.uint8), (0, 0), 1.5)
    prev = np.ascontiguousarray(tex[5:5 + h, 5:5 + w])
    cur = np.ascontiguousarray(tex[5 + DY:5 + DY + h, 5 + DX:5 + DX + w])
    return cur, prev


def test_dis_known_shift_and_occluded_border():
    cur, prev = _pair()
    flow, valid = DISFlow("medium")(cur, prev)
    inner = np.s_[8:-8, 8:-8]
    assert abs(float(np.median(flow[..., 0][inner])) - DX) < 0.25
    assert abs(float(np.median(flow[..., 1][inner])) - DY) < 0.25
    # the right/bottom border of frame t has no counterpart in frame t-k: masked
    assert not valid[:, -DX:].any() and not valid[-DY:, :].any()
    assert valid[inner].mean() > 0.9
    # the correspondence is right: warping t-k with the flow reproduces t where valid
    warped = warp_np(prev.astype(np.float32), flow)
    err = np.abs(warped - cur.astype(np.float32)).mean(axis=-1)
    assert float(err[valid].mean()) < 4.0


def test_fb_consistency_masks_inconsistent_pixels():
    h, w = 20, 30
    fwd = np.zeros((h, w, 2), np.float32)
    fwd[..., 0] = 2.0
    bwd = np.zeros((h, w, 2), np.float32)
    bwd[..., 0] = -2.0
    bwd[5:10, 10:20, 0] = 3.0  # an occluder: backward flow disagrees there
    valid = fb_consistency(fwd, bwd)
    assert valid[0, 0] and not valid[:, -2:].any()  # out of frame on the right
    assert not valid[6, 9] and valid[15, 9]  # (6, 9) lands on (6, 11), inside the disagreeing block


def test_int16_x10_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    flow = (rng.standard_normal((12, 16, 2)) * 20).astype(np.float32)
    p = write_int16_x10(tmp_path / "a_int16_x10.npy", flow)
    raw = np.load(p)
    assert raw.dtype == np.int16 and raw.shape == (12, 16, 2)
    back = read_int16_x10(p)
    assert np.abs(back - flow).max() <= 0.1 + 1e-6  # 0.1 px quantisation (truncation as in DA-VSN)
    prov = PrecomputedFlow(tmp_path)
    f2, v2 = prov(np.zeros((24, 32, 3), np.uint8), None, key_t="a")
    assert f2.shape == (24, 32, 2) and np.allclose(f2[..., 0].mean(), 2 * back[..., 0].mean(), atol=0.2)
    with pytest.raises(DataError, match="b_int16_x10.npy"):
        prov(np.zeros((24, 32, 3), np.uint8), None, key_t="b")
    np.save(tmp_path / "bad_int16_x10.npy", np.zeros((4, 4), np.int16))
    with pytest.raises(DataError, match="shape"):
        read_int16_x10(tmp_path / "bad_int16_x10.npy")


def test_torch_warp_matches_numpy_and_resize_scales_vectors():
    rng = np.random.default_rng(2)
    img = rng.random((10, 14, 3)).astype(np.float32)
    flow = np.zeros((10, 14, 2), np.float32)
    flow[..., 0], flow[..., 1] = 1.0, 2.0
    ref = warp_np(img, flow)
    t = warp_torch(torch.from_numpy(img).permute(2, 0, 1)[None], torch.from_numpy(flow).permute(2, 0, 1)[None])
    assert np.allclose(t[0].permute(1, 2, 0).numpy()[:8, :13], ref[:8, :13], atol=1e-5)
    assert np.allclose(ref[0, 0], img[2, 1])
    half = resize_flow(flow, (5, 7))
    assert half.shape == (5, 7, 2) and np.allclose(half[..., 0], 0.5) and np.allclose(half[..., 1], 1.0)


def test_cached_flow_is_keyed_by_frame_paths(tmp_path):
    cur, prev = _pair(48, 64)
    calls = []

    class Counting(DISFlow):
        def __call__(self, *a, **k):
            calls.append(1)
            return super().__call__(*a, **k)

    prov = CachedFlow(Counting("fast"), tmp_path)
    f1, v1 = prov(cur, prev, "t.png", "p.png")
    f2, v2 = prov(cur, prev, "t.png", "p.png")
    assert len(calls) == 1 and np.allclose(f1, f2, atol=0.05) and (v1 == v2).all()
    prov(cur, prev, "t.png", "other.png")
    assert len(calls) == 2
    assert build_flow_provider("dis", cache_dir=str(tmp_path)).name.startswith("cached-dis")
    with pytest.raises(DataError):
        build_flow_provider("precomputed")
