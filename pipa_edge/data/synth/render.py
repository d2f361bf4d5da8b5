"""Rendering of one frame: sky, ground, far backdrop, facades, fences, then objects far→near.

Everything is a pinhole projection of the :mod:`~pipa_edge.data.synth.world` street. The label
and the image are written by the same geometry in the same order (painter's algorithm), so the
label is exact for every pixel; the style only changes colours/textures of the image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipa_edge.data.classes import SYNTH11
from pipa_edge.data.synth.styles import texture_bank
from pipa_edge.data.synth.world import World

C = {n: SYNTH11.index(n) for n in SYNTH11.names}
TEX = 256


@dataclass
class View:
    """Camera of one frame: focal ``f`` and principal point ``cx``/``cy`` (horizon) in pixels."""

    H: int
    W: int
    f: float
    cx: float
    cy: float
    h: float  # camera height (m)
    x: float  # camera lateral position (m)
    z: float  # camera position along the street (m, wraps with the period)
    t: float  # frame index (drives walking animation)


def view_at(world: World, t: float, H: int, W: int) -> View:
    """Camera of frame ``t``: moves ``v_ego`` m/frame; sway and yaw wobble loop with the street."""
    c = world.cam
    loop = world.period / max(c["v_ego"], 1e-6)  # frames for one period: everything periodic in it
    ph = 2 * np.pi * t / loop
    f = c["f"] * W
    yaw = c["yaw"] + 0.012 * np.sin(2 * ph + 1.0)
    x = c["x"] + c["sway"] * np.sin(ph)
    cy = c["horizon"] * H + 0.6 * np.sin(4 * ph)
    return View(H, W, f, W / 2 + f * np.tan(yaw), cy, c["height"], x, (c["v_ego"] * t) % world.period, t)


def _fog(col: np.ndarray, Z, world: World) -> np.ndarray:
    """Blend towards the horizon colour with distance (``Z`` broadcastable against ``col[..., 0]``)."""
    a = 1.0 - np.exp(-world.photo["haze"] * np.asarray(Z, np.float32))
    return col * (1 - a)[..., None] + world.colours["sky"] * a[..., None]


def _tex(name: str, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    t = texture_bank()[name]
    return t[(a.astype(np.int64)) % TEX, (b.astype(np.int64)) % TEX]


def _sky(world: World, H: int, W: int) -> np.ndarray:
    """Sky of a world (gradient + clouds), made once per world and size: it is at infinity."""
    cache = world.__dict__.setdefault("_sky", {})
    if (H, W) not in cache:
        rows = np.arange(H, dtype=np.float32)[:, None]
        a = np.clip(rows / max(world.cam["horizon"] * H, 1.0), 0, 1)[..., None]
        img = np.broadcast_to(world.colours["sky_top"] * (1 - a) + world.colours["sky"] * a, (H, W, 3))
        if world.photo["clouds"] > 0:
            yy, xx = np.mgrid[0:H, 0:W]
            c = _tex("coarse", yy * 2.0, xx * 0.9) + 0.35 * _tex("mid", yy * 3.0, xx * 2.0)
            amt = np.clip((c - 1.2 + 1.6 * world.photo["clouds"]) * 0.5, 0, 0.85)[..., None]
            img = img * (1 - amt) + np.float32(235) * amt
        cache[(H, W)] = np.ascontiguousarray(img, np.float32)
    return cache[(H, W)]


def draw_sky(img, lab, view: View, world: World) -> None:
    img[:] = _sky(world, view.H, view.W)
    lab[:] = C["sky"]


def draw_ground(img, lab, view: View, world: World) -> None:
    H, W = view.H, view.W
    r0 = int(np.floor(view.cy)) + 1
    if r0 >= H:
        return
    v = np.arange(r0, H, dtype=np.float32) + 0.5
    Z = (view.f * view.h / (v - view.cy))[:, None]  # (h, 1)
    u = np.arange(W, dtype=np.float32)[None, :] + 0.5
    X = view.x + (u - view.cx) * Z / view.f  # (h, W)
    zw = np.broadcast_to((view.z + Z) % world.period, X.shape)
    ax = np.abs(X)
    right = X >= 0
    s_out = np.where(right, world.sides[1].sidewalk_out, world.sides[-1].sidewalk_out)
    R = world.road_half
    g = np.full(X.shape, C["terrain"], np.uint8)
    g[ax < s_out] = C["sidewalk"]
    g[ax < R] = C["road"]
    lab[r0:] = g
    cols = np.stack([world.colours["terrain"], world.colours["sidewalk"], world.colours["road"]])
    which = np.where(ax < R, 2, np.where(ax < s_out, 1, 0))
    col = cols[which]  # (h, W, 3)
    curb = (ax >= R) & (ax < R + 0.25)
    col[curb] = world.colours["curb"]
    # road markings (image only): dashed centre line, solid edge lines, one zebra crossing
    inner = R - 2.2 if world.parking else R - 0.3
    mark = ((np.abs(X) < 0.07) & ((zw % 9.0) < 3.5)) | (np.abs(ax - inner) < 0.07)
    zc = world.photo.get("crosswalk", -1.0)
    if zc >= 0:
        mark |= (ax < R - 0.3) & (((zw - zc) % world.period) < 3.0) & ((X % 1.0) < 0.5)
    col[mark & (ax < R)] = world.colours["marking"]
    if world.style.textured:
        k = np.where(which == 2, 0.10, np.where(which == 1, 0.06, 0.18)).astype(np.float32)
        grain = k * _tex("fine", zw * 40, X * 40) + 0.12 * _tex("coarse", zw * 4, X * 4)
        grain += np.where(which == 0, 0.15 * _tex("leaf", zw * 12, X * 12), 0)
        tiles = (which == 1) & (((zw % 0.6) < 0.05) | ((X % 0.6) < 0.05))
        grain = grain - 0.18 * tiles
        col *= (1 + grain)[..., None]
        if world.light["sunny"]:
            ss = world.light["sun_side"]
            side = world.sides[ss]
            hb = side.facades.height[side.facades.slot((zw + world.light["shadow_dz"] * 10) % world.period)]
            shadow = (ss * X > side.building_x - hb * world.light["shadow_k"]) & (hb > 0)
            col[shadow] *= 0.5
    img[r0:] = _fog(col, np.broadcast_to(Z, X.shape), world)


def draw_backdrop(img, lab, view: View, world: World) -> None:
    edges, heights, kinds, cols = world.backdrop
    Zb = world.zmax
    u = np.arange(view.W, dtype=np.float32) + 0.5
    Xb = view.x + (u - view.cx) * Zb / view.f
    i = np.clip(np.searchsorted(edges, Xb) - 1, 0, len(kinds) - 1)
    hb = heights[i] + np.where(kinds[i] == 2, 1.5 * _tex("leaf", np.zeros_like(Xb), Xb * 3), 0)
    v_top = view.cy - view.f * (hb - view.h) / Zb
    v_bot = view.cy + view.f * view.h / Zb
    rows = np.arange(view.H, dtype=np.float32)[:, None] + 0.5
    m = (kinds[i] > 0)[None, :] & (rows >= v_top[None, :]) & (rows < v_bot)
    cls = np.where(kinds[i] == 1, C["building"], C["vegetation"]).astype(np.uint8)
    lab[m] = np.broadcast_to(cls[None, :], m.shape)[m]
    col = _fog(cols[i], np.full(view.W, Zb, np.float32), world)
    img[m] = np.broadcast_to(col[None], (view.H, view.W, 3))[m]


def draw_planes(img, lab, view: View, world: World, kind: str) -> None:
    """Facades (``kind='building'``) or fences (``'fence'``): vertical planes along the street."""
    rows = np.arange(view.H, dtype=np.float32)[:, None] + 0.5
    u = np.arange(view.W, dtype=np.float32) + 0.5
    for sg, side in world.sides.items():
        fac = side.facades if kind == "building" else side.fence
        if fac is None:
            continue
        Xp = sg * (side.building_x if kind == "building" else side.sidewalk_out) - view.x
        du = u - view.cx
        with np.errstate(divide="ignore", invalid="ignore"):
            Z = view.f * Xp / du
        valid = (Z > 0.5) & (Z < world.zmax) & np.isfinite(Z)
        cols_idx = np.nonzero(valid)[0]
        if cols_idx.size == 0:
            continue
        Z = Z[cols_idx]
        zw = (view.z + Z) % world.period
        slot = fac.slot(zw)
        hb = fac.height[slot]
        keep = hb > 0
        cols_idx, Z, zw, slot, hb = cols_idx[keep], Z[keep], zw[keep], slot[keep], hb[keep]
        if cols_idx.size == 0:
            continue
        v_top = view.cy - view.f * (hb - view.h) / Z
        v_bot = view.cy + view.f * view.h / Z
        m = (rows >= v_top) & (rows < v_bot)  # (H, n)
        y = view.h - (rows - view.cy) * Z / view.f  # height above road of each pixel
        zloc = zw - fac.starts[slot]
        col = np.broadcast_to(fac.colour[slot][None], (view.H, cols_idx.size, 3)).copy()
        if kind == "building":
            sp, fl = fac.win_spacing[slot], fac.floor[slot]
            win = (((zloc % sp) / sp > 0.25) & ((zloc % sp) / sp < 0.75) & ((y % fl) / fl > 0.3)
                   & ((y % fl) / fl < 0.8) & (y > fl) & (y < hb - 0.6) & (zloc > 0.8))
            wcol = np.broadcast_to(fac.window[slot][None], col.shape)
            if world.style.textured:  # each window pane its own reflection
                refl = 1 + 0.35 * _tex("fine", np.floor(y / fl) * 37, np.floor(zloc / sp) * 11 + slot * 5)
                wcol = wcol * refl[..., None]
            col[win] = wcol[win]
        else:
            plank = np.broadcast_to(((zloc % 0.15) < 0.03)[None], m.shape) if world.style.textured else \
                (np.abs(y - 0.7 * hb) < 0.05)
            col[plank] *= 0.7
        if world.style.textured:
            grain = 0.07 * _tex("fine", y * 25, zw * 25) + 0.12 * _tex("coarse", y * 3, zw * 3)
            col *= (1 + grain - 0.25 * np.clip(1.0 - y, 0, 1))[..., None]
        shade = 0.9 if sg < 0 else 0.8  # fixed sim-style light
        if world.light["sunny"]:
            shade = 0.6 if sg == world.light["sun_side"] else 1.1
        col = _fog(col * shade, np.broadcast_to(Z[None], m.shape), world)
        sub_lab = lab[:, cols_idx]
        sub_lab[m] = C[kind]
        lab[:, cols_idx] = sub_lab
        sub = img[:, cols_idx]
        sub[m] = col[m]
        img[:, cols_idx] = sub
