"""Scene layout: a straight street that repeats every ``period`` metres (so loops are seamless).

World coordinates: ``x`` lateral (metres, + = right), ``y`` up from the road, ``z`` along the
street (metres, in ``[0, period)``, wrapping). The street is symmetric in its *rules*:

    | facades | [terrain strip with trees, fence in front] | sidewalk | road | sidewalk | ... |

with parking strips on wide roads, cars on lanes (ego lane moves with the camera, the left lane
comes towards it, parked cars stand still), people on sidewalks, poles and signs at the curb,
a far backdrop of blocks/tree lines at the end of the visible range. Every draw decision is made
here from one ``numpy`` Generator; rendering adds none, so labels are a pure function of this.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pipa_edge.data.synth.styles import DomainStyle, pick_colour


@dataclass
class Obj:
    kind: str  # car | person | tree | pole | sign
    x: float
    z: float  # world position at frame 0 (base centre; for cars: the face nearest the camera)
    vz: float = 0.0  # metres per frame along z
    p: dict = field(default_factory=dict)


@dataclass
class Facades:
    """Facade slots of one side: slot ``i`` covers ``[starts[i], starts[i+1])`` (last → period)."""

    starts: np.ndarray
    height: np.ndarray  # 0 where the slot is a gap
    colour: np.ndarray  # (n, 3)
    window: np.ndarray  # (n, 3)
    win_spacing: np.ndarray
    floor: np.ndarray

    def slot(self, zw: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.starts, zw, side="right") - 1


@dataclass
class Side:
    sign: int
    sidewalk_out: float  # |x| of the sidewalk's outer edge
    building_x: float  # |x| of the facade plane
    terrain: bool
    facades: Facades
    fence: Facades | None  # same slot structure; height 0 = no fence


@dataclass
class World:
    style: DomainStyle
    period: float
    zmax: float
    road_half: float
    parking: bool
    sides: dict  # sign -> Side
    objects: list
    backdrop: tuple  # (edges (n+1,), heights (n,), kind (n,) 0 none/1 building/2 vegetation, colours (n, 3))
    cam: dict  # f (fraction of width), height, horizon (fraction), x, yaw, sway, v_ego (m/frame)
    light: dict  # sunny, sun_side, shadow_k, shadow_dz
    photo: dict  # appearance parameters of this scene
    colours: dict  # role -> colour for the scene-wide surfaces


def _u(rng: np.random.Generator, lo_hi) -> float:
    lo, hi = lo_hi
    return float(rng.uniform(lo, hi))


def _slots(rng, period: float, slot: float, density: float) -> np.ndarray:
    """Positions along ``[0, period)``: at most one per ``slot`` metres, ``density`` per 100 m."""
    n = int(period // slot)
    if n <= 0:
        return np.zeros(0)
    keep = rng.random(n) < min(1.0, density * slot / 100.0)
    pos = (np.arange(n) + 0.15 + 0.7 * rng.random(n)) * slot
    return pos[keep]


def _facades(rng, style: DomainStyle, period: float, gap: float, hrange, lrange, roles=("building", "window"),
             min_len: float = 4.0) -> Facades:
    starts, height, colour, window, spacing, floor = [], [], [], [], [], []
    z = 0.0
    while z < period - 1e-6:
        length = _u(rng, lrange)
        if period - (z + length) < min_len:  # absorb a short remainder so the seam is clean
            length = period - z
        starts.append(z)
        height.append(0.0 if rng.random() < gap else _u(rng, hrange))
        colour.append(pick_colour(rng, style, roles[0]))
        window.append(pick_colour(rng, style, roles[1]))
        spacing.append(_u(rng, (2.2, 4.0)))
        floor.append(_u(rng, (2.8, 3.6)))
        z += length
    a = lambda v: np.asarray(v, np.float32)  # noqa: E731
    return Facades(a(starts), a(height), a(colour), a(window), a(spacing), a(floor))


def _photo(rng, s: DomainStyle) -> dict:
    return {"exposure": _u(rng, s.exposure), "gamma": _u(rng, s.gamma), "saturation": _u(rng, s.saturation),
            "wb": (1.0 + rng.normal(0, s.white_balance, 3)).astype(np.float32), "vignette": _u(rng, s.vignette),
            "blur": _u(rng, s.blur), "noise": _u(rng, s.noise), "haze": _u(rng, s.haze),
            "clouds": float(rng.uniform(0.0, 0.6)) if s.textured else 0.0,
            "crosswalk": float(rng.uniform(0.0, 1.0)) if rng.random() < 0.4 else -1.0}


def sample_world(rng: np.random.Generator, style: DomainStyle, period: float = 90.0, v_ego: float = 0.5,
                 zmax: float = 80.0) -> World:
    """Sample one street of ``style``; ``v_ego`` (m/frame) sets the speed of moving objects too."""
    s = style
    R = _u(rng, s.road_half)
    parking = R >= 5.5
    inner = R - 2.2 if parking else R
    cam = {"f": _u(rng, s.focal), "height": _u(rng, s.cam_height), "horizon": _u(rng, s.horizon),
           "x": inner / 2 + float(rng.uniform(-0.4, 0.4)), "yaw": float(rng.uniform(-0.06, 0.06)),
           "sway": float(rng.uniform(0.0, 0.25)), "v_ego": float(v_ego)}
    sunny = rng.random() < s.sun_prob
    light = {"sunny": bool(sunny), "sun_side": int(rng.choice([-1, 1])), "shadow_k": _u(rng, (0.35, 1.1)),
             "shadow_dz": _u(rng, (-0.5, 0.5))}
    colours = {r: pick_colour(rng, s, r) for r in ("road", "sidewalk", "curb", "terrain", "marking", "sky")}
    colours["sky_top"] = np.clip(colours["sky"] * np.float32(rng.uniform(0.7, 0.9)), 0, 255)
    sides, objects = {}, []
    for sg in (-1, 1):
        sw = _u(rng, s.sidewalk)
        terrain = rng.random() < s.terrain_prob
        tw = _u(rng, s.terrain_width) if terrain else 0.0
        fac = _facades(rng, s, period, s.building_gap, s.building_height, s.building_len)
        fence = None
        if terrain and rng.random() < s.fence_prob:
            fence = _facades(rng, s, period, 0.4, (0.9, 1.8), (10.0, 35.0), roles=("fence", "fence"))
        side = Side(sg, R + sw, R + sw + tw, terrain, fac, fence)
        sides[sg] = side
        _street_furniture(rng, s, period, side, R, objects)
    _traffic(rng, s, period, R, inner, parking, v_ego, objects)
    backdrop = _backdrop(rng, s, zmax)
    photo = _photo(rng, s)
    if photo["crosswalk"] >= 0:
        photo["crosswalk"] *= period
    return World(s, float(period), float(min(zmax, period)), R, parking, sides, objects, backdrop, cam, light,
                 photo, colours)


def _street_furniture(rng, s: DomainStyle, period: float, side: Side, R: float, out: list) -> None:
    sg = side.sign
    # people walk along the sidewalk (standing still in the world, swaying/walking in place)
    for z in _slots(rng, period, 1.6, s.person_density):
        x = sg * float(rng.uniform(R + 0.6, side.sidewalk_out - 0.3))
        out.append(Obj("person", x, float(z), 0.0, {
            "h": _u(rng, s.person_height), "shirt": pick_colour(rng, s, "cloth"), "legs": pick_colour(rng, s, "cloth"),
            "skin": pick_colour(rng, s, "skin"), "phase": float(rng.uniform(0, 2 * np.pi)),
            "steps": int(rng.integers(2, 6)), "sway": float(rng.uniform(0.0, 0.5))}))
    # poles (street lamps) at the curb, signs between them
    z = float(rng.uniform(0, 10))
    while z < period - 3:
        out.append(Obj("pole", sg * (R + 0.35), z, 0.0, {
            "h": _u(rng, (5.0, 8.5)), "w": _u(rng, (0.14, 0.26)), "arm": bool(rng.random() < 0.7),
            "colour": pick_colour(rng, s, "pole")}))
        z += _u(rng, s.pole_spacing)
    for z in _slots(rng, period, 12.0, s.sign_density):
        out.append(Obj("sign", sg * (R + 0.45), float(z) + 4.0, 0.0, {
            "h": _u(rng, (2.0, 2.8)), "size": _u(rng, (0.5, 0.8)), "shape": int(rng.integers(0, 4)),
            "colour": pick_colour(rng, s, "sign"), "pole": pick_colour(rng, s, "pole")}))
    # trees on the terrain strip, or in tree pits at the outer sidewalk edge
    lo, hi = (side.sidewalk_out + 0.8, side.building_x - 0.5) if side.terrain else \
        (side.sidewalk_out - 0.8, side.sidewalk_out - 0.6)
    dens = s.tree_density if side.terrain else s.tree_density * 0.35
    for z in _slots(rng, period, 5.0, dens):
        out.append(_tree(rng, s, sg * float(rng.uniform(lo, max(lo, hi))), float(z)))
    # trees on empty lots behind the facade line
    f = side.facades
    ends = np.append(f.starts[1:], period)
    for z0, z1, hgt in zip(f.starts, ends, f.height):
        if hgt == 0 and rng.random() < 0.8:
            for z in rng.uniform(z0, z1, int(rng.integers(1, 4))):
                out.append(_tree(rng, s, sg * (side.building_x + float(rng.uniform(1.5, 8.0))), float(z), 1.4))


def _tree(rng, s: DomainStyle, x: float, z: float, scale: float = 1.0) -> Obj:
    k = _u(rng, s.tree_scale) * scale
    n = int(rng.integers(3, 7))
    blobs = np.stack([rng.uniform(-0.6, 0.6, n), rng.uniform(-0.5, 0.5, n), rng.uniform(0.5, 0.9, n)], 1) * k
    return Obj("tree", x, z, 0.0, {"trunk": 2.2 * k, "r": 1.6 * k, "blobs": blobs.astype(np.float32),
                                   "colour": pick_colour(rng, s, "vegetation"), "bark": pick_colour(rng, s, "trunk")})


def _car(rng, s: DomainStyle, x: float, z: float, vz: float, facing: int) -> Obj:
    k = _u(rng, s.car_scale)
    return Obj("car", x, z, vz, {
        "w": 1.75 * k, "len": _u(rng, (3.9, 4.8)) * k, "hb": 0.95 * k, "ht": _u(rng, (1.35, 1.55)) * k,
        "colour": pick_colour(rng, s, "car"), "glass": pick_colour(rng, s, "glass"), "facing": facing})


def _traffic(rng, s: DomainStyle, period: float, R: float, inner: float, parking: bool, v_ego: float,
             out: list) -> None:
    # ego lane: same speed as the camera (constant gap), ahead only; oncoming lane: towards the camera
    for z in _slots(rng, period, 9.0, s.car_density):
        if 9.0 < z < period - 8.0:
            out.append(_car(rng, s, inner / 2 + float(rng.uniform(-0.3, 0.3)), float(z), v_ego, +1))
    for z in _slots(rng, period, 9.0, s.car_density):
        out.append(_car(rng, s, -inner / 2 + float(rng.uniform(-0.3, 0.3)), float(z), -v_ego, -1))
    if parking:
        for sg in (-1, 1):
            for z in _slots(rng, period, 6.0, s.parked_density):
                out.append(_car(rng, s, sg * (R - 1.05), float(z), 0.0, int(rng.choice([-1, 1]))))


def _backdrop(rng, s: DomainStyle, zmax: float) -> tuple:
    edges, heights, kinds, cols = [-1.6 * zmax], [], [], []
    while edges[-1] < 1.6 * zmax:
        edges.append(edges[-1] + float(rng.uniform(4.0, 22.0)))
        kind = int(rng.choice([0, 1, 2], p=[0.15, 0.5, 0.35]))
        kinds.append(kind)
        heights.append(float(rng.uniform(8.0, 35.0)) if kind == 1 else float(rng.uniform(4.0, 12.0)))
        cols.append(pick_colour(rng, s, "backdrop" if kind == 1 else "vegetation"))
    return (np.asarray(edges, np.float32), np.asarray(heights, np.float32), np.asarray(kinds, np.int64),
            np.asarray(cols, np.float32))
