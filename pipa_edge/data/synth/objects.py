"""Objects of the street (cars, people, trees, poles, signs) drawn with OpenCV polygons.

Each primitive is drawn into the image (colour, possibly fogged/shaded) and, with the same
integer vertices, into the label (class index) — image-only details (windows, lights, plates)
pass ``cls=None``. Vertices use 3 fractional bits (``shift``) for sub-pixel placement.
"""

from __future__ import annotations

import cv2
import numpy as np

from pipa_edge.data.synth.render import C, View, _fog
from pipa_edge.data.synth.world import Obj, World

SHIFT = 3
_S = float(1 << SHIFT)
NEAR = 1.2
_GROUND = np.zeros(256, bool)
_GROUND[[C["road"], C["sidewalk"], C["terrain"]]] = True


class Painter:
    def __init__(self, img: np.ndarray, lab: np.ndarray, view: View, world: World):
        self.img, self.lab, self.v, self.w = img, lab, view, world
        self.lit = world.light["sunny"]
        self.sun = world.light["sun_side"]

    def proj(self, X, Y, Z) -> np.ndarray:
        """World-relative points (lateral from the street axis, up, ahead of the camera) → pixels."""
        v = self.v
        X, Y, Z = (np.asarray(a, np.float64) for a in (X, Y, Z))
        Z = np.maximum(Z, NEAR * 0.5)
        u = v.cx + v.f * (X - v.x) / Z
        r = v.cy + v.f * (v.h - Y) / Z
        return np.clip(np.stack([u, r], -1) * _S, -2e6, 2e6).astype(np.int32)

    def colour(self, col, Z, shade: float = 1.0) -> tuple:
        c = _fog(np.asarray(col, np.float32)[None] * shade, np.asarray([Z], np.float32), self.w)[0]
        return tuple(float(a) for a in c)

    def poly(self, pts: np.ndarray, col: tuple, cls: int | None) -> None:
        cv2.fillPoly(self.img, [pts], col, cv2.LINE_8, SHIFT)
        if cls is not None:
            cv2.fillPoly(self.lab, [pts], int(cls), cv2.LINE_8, SHIFT)

    def ellipse(self, cx, cy, Z, rx, ry, col: tuple, cls: int | None) -> None:
        """Ellipse centred at world (cx, cy) at depth Z with world radii rx, ry."""
        c = self.proj([cx], [cy], [Z])[0]
        ax = (max(int(self.v.f * rx / Z * _S), 1), max(int(self.v.f * ry / Z * _S), 1))
        cv2.ellipse(self.img, (int(c[0]), int(c[1])), ax, 0, 0, 360, col, -1, cv2.LINE_8, SHIFT)
        if cls is not None:
            cv2.ellipse(self.lab, (int(c[0]), int(c[1])), ax, 0, 0, 360, int(cls), -1, cv2.LINE_8, SHIFT)

    def quad(self, x0, x1, y0, y1, Z, col, cls) -> None:
        """Axis-aligned rectangle facing the camera at depth Z."""
        self.poly(self.proj([x0, x1, x1, x0], [y0, y0, y1, y1], [Z] * 4), col, cls)

    def shadow(self, xs, zs, strength: float = 0.55) -> None:
        """Darken a ground footprint (image only) — cast shadow of an object in a sunny scene."""
        pts = self.proj(xs, np.zeros(len(xs)), zs)
        H, W = self.lab.shape
        x0, y0 = np.maximum(pts.min(0) >> SHIFT, 0)
        x1, y1 = np.minimum((pts.max(0) >> SHIFT) + 2, (W, H))
        if x1 <= x0 or y1 <= y0:
            return
        m = np.zeros((y1 - y0, x1 - x0), np.uint8)
        cv2.fillPoly(m, [pts - np.array([x0, y0], np.int32) * int(_S)], 1, cv2.LINE_8, SHIFT)
        ground = m.astype(bool) & _GROUND[self.lab[y0:y1, x0:x1]]
        self.img[y0:y1, x0:x1][ground] *= strength


def draw_car(P: Painter, o: Obj, Z: float) -> None:
    p = o.p
    w, L, hb, ht = p["w"], p["len"], p["hb"], p["ht"]
    x0, x1 = o.x - w / 2, o.x + w / 2
    if P.lit:
        off = -P.sun * 0.6
        P.shadow([x0 - 0.1, x1 + 0.1 + off, x1 + 0.1 + off, x0 - 0.1], [Z - 0.2, Z - 0.2, Z + L + 0.2, Z + L + 0.2])
    col = p["colour"]
    sh_side = (1.05 if np.sign(o.x - P.v.x) != P.sun else 0.6) if P.lit else 0.8
    sh_back = 0.85 if P.lit else 0.92
    dark = P.colour((20, 20, 22), Z)
    # undercarriage and wheels
    P.quad(x0 + 0.1, x1 - 0.1, 0.0, 0.35, Z + 0.3, dark, C["car"])
    side_x = x0 if P.v.x < x0 else (x1 if P.v.x > x1 else None)
    if side_x is not None:
        P.poly(P.proj([side_x] * 4, [0.25, 0.25, hb, hb], [Z, Z + L, Z + L, Z]), P.colour(col, Z, sh_side), C["car"])
        for zw in (Z + 0.75, Z + L - 0.75):
            c = P.proj([side_x], [0.32], [zw])[0]
            ax = (max(int(P.v.f * 0.32 * abs(side_x - P.v.x) / (zw * zw) * _S), 1),
                  max(int(P.v.f * 0.32 / zw * _S), 1))
            cv2.ellipse(P.img, (int(c[0]), int(c[1])), ax, 0, 0, 360, dark, -1, cv2.LINE_8, SHIFT)
            cv2.ellipse(P.lab, (int(c[0]), int(c[1])), ax, 0, 0, 360, C["car"], -1, cv2.LINE_8, SHIFT)
    # top of the body (visible from the camera height), then the near face
    P.poly(P.proj([x0, x1, x1, x0], [hb] * 4, [Z, Z, Z + L, Z + L]), P.colour(col, Z, 1.1), C["car"])
    P.quad(x0, x1, 0.25, hb, Z, P.colour(col, Z, sh_back), C["car"])
    # lights and plate (image only)
    lamp = (200, 30, 30) if p["facing"] > 0 else (240, 235, 200)
    P.quad(x0 + 0.08, x0 + 0.38, hb - 0.22, hb - 0.08, Z - 0.01, P.colour(lamp, Z), None)
    P.quad(x1 - 0.38, x1 - 0.08, hb - 0.22, hb - 0.08, Z - 0.01, P.colour(lamp, Z), None)
    P.quad(o.x - 0.26, o.x + 0.26, 0.4, 0.52, Z - 0.01, P.colour((225, 225, 215), Z), None)
    # cabin: a frustum on the body
    a0, a1 = (Z + 0.3 * L, Z + 0.45 * L) if p["facing"] > 0 else (Z + 0.22 * L, Z + 0.38 * L)
    b1 = Z + 0.85 * L
    cx0, cx1 = x0 + 0.08, x1 - 0.08
    tx0, tx1 = x0 + 0.2, x1 - 0.2
    glass = P.colour(p["glass"], Z)
    if side_x is not None:
        sx_b, sx_t = (cx0, tx0) if side_x == x0 else (cx1, tx1)
        P.poly(P.proj([sx_b, sx_b, sx_t, sx_t], [hb, hb, ht, ht], [a0, b1, b1 - 0.1 * L, a1]),
               P.colour(col, Z, sh_side), C["car"])
        P.poly(P.proj([sx_b, sx_b, sx_t, sx_t], [hb + 0.08, hb + 0.08, ht - 0.06, ht - 0.06],
                      [a0 + 0.15, b1 - 0.15, b1 - 0.1 * L - 0.1, a1 + 0.15]), glass, None)
    if P.v.h > ht:
        P.poly(P.proj([tx0, tx1, tx1, tx0], [ht] * 4, [a1, a1, b1 - 0.1 * L, b1 - 0.1 * L]), P.colour(col, Z, 1.1),
               C["car"])
    P.poly(P.proj([cx0, cx1, tx1, tx0], [hb, hb, ht, ht], [a0, a0, a1, a1]), P.colour(col, Z, sh_back), C["car"])
    P.poly(P.proj([cx0 + 0.08, cx1 - 0.08, tx1 - 0.06, tx0 + 0.06], [hb + 0.06, hb + 0.06, ht - 0.05, ht - 0.05],
                  [a0 + 0.01, a0 + 0.01, a1 - 0.01, a1 - 0.01]), glass, None)


def draw_person(P: Painter, o: Obj, Z: float) -> None:
    p = o.p
    h = p["h"]
    loop = P.w.period / max(P.w.cam["v_ego"], 1e-6)
    ph = p["phase"] + 2 * np.pi * p["steps"] * P.v.t / loop
    x = o.x + p["sway"] * np.sin(p["phase"] + 2 * np.pi * P.v.t / loop)
    k = h / 1.75
    if P.lit:
        off = -P.sun * 0.5 * h * P.w.light["shadow_k"]
        P.shadow([x - 0.2, x + 0.2, x + 0.2 + off, x - 0.2 + off], [Z - 0.15, Z - 0.15, Z + 0.15, Z + 0.15], 0.65)
    legs, shirt, skin = P.colour(p["legs"], Z), P.colour(p["shirt"], Z), P.colour(p["skin"], Z)
    hip, sho = 0.5 * h, 0.82 * h
    st = 0.14 * k * np.sin(ph)
    for sgn in (-1, 1):  # legs
        fx = x + sgn * 0.07 * k + sgn * st
        P.poly(P.proj([x + sgn * 0.02 * k, x + sgn * 0.15 * k, fx + 0.06 * k, fx - 0.06 * k], [hip, hip, 0, 0],
                      [Z] * 4), legs, C["person"])
    for sgn in (-1, 1):  # arms, swinging against the legs
        hx = x + sgn * 0.24 * k - sgn * 0.5 * st
        P.poly(P.proj([x + sgn * 0.17 * k, x + sgn * 0.25 * k, hx + 0.04 * k, hx - 0.04 * k],
                      [sho, sho, hip + 0.02, hip + 0.02], [Z] * 4), shirt, C["person"])
    P.poly(P.proj([x - 0.19 * k, x + 0.19 * k, x + 0.16 * k, x - 0.16 * k], [sho + 0.02, sho + 0.02, hip - 0.04,
                                                                               hip - 0.04], [Z] * 4), shirt,
           C["person"])
    P.quad(x - 0.04 * k, x + 0.04 * k, sho, sho + 0.06 * k, Z, skin, C["person"])
    P.ellipse(x, 0.915 * h, Z, 0.085 * k, 0.11 * k, skin, C["person"])


def draw_tree(P: Painter, o: Obj, Z: float) -> None:
    p = o.p
    if P.lit:
        off = -P.sun * p["trunk"] * P.w.light["shadow_k"]
        P.shadow([o.x - p["r"], o.x + p["r"], o.x + p["r"] + off, o.x - p["r"] + off],
                 [Z - p["r"] * 0.6, Z - p["r"] * 0.6, Z + p["r"] * 0.6, Z + p["r"] * 0.6], 0.6)
    tw = 0.12 + 0.05 * p["r"]
    P.quad(o.x - tw, o.x + tw, 0.0, p["trunk"] + p["r"] * 0.5, Z, P.colour(p["bark"], Z), C["vegetation"])
    cy = p["trunk"] + p["r"]
    P.ellipse(o.x, cy, Z, p["r"], p["r"] * 0.9, P.colour(p["colour"], Z, 0.9), C["vegetation"])
    for i, (dx, dy, rr) in enumerate(p["blobs"]):
        shade = 0.75 + 0.4 * (dy + 0.6) if P.w.style.textured else 1.0
        P.ellipse(o.x + dx * p["r"], cy + dy * p["r"], Z, rr * p["r"], rr * p["r"] * 0.85,
                  P.colour(p["colour"], Z, shade), C["vegetation"])


def draw_pole(P: Painter, o: Obj, Z: float) -> None:
    p = o.p
    w = p["w"] / 2
    col = P.colour(p["colour"], Z)
    P.quad(o.x - w, o.x + w, 0.0, p["h"], Z, col, C["pole"])
    if p["arm"]:
        inward = -np.sign(o.x) * 1.6
        xa = sorted([o.x, o.x + inward])
        P.quad(xa[0], xa[1], p["h"] - 0.12, p["h"], Z, col, C["pole"])
        xl = o.x + inward
        P.quad(xl - 0.3, xl + 0.3, p["h"] - 0.28, p["h"] - 0.06, Z, P.colour((200, 200, 190), Z), C["pole"])


def draw_sign(P: Painter, o: Obj, Z: float) -> None:
    p = o.p
    s, h = p["size"] / 2, p["h"]
    P.quad(o.x - 0.04, o.x + 0.04, 0.0, h, Z, P.colour(p["pole"], Z), C["pole"])
    col, white = P.colour(p["colour"], Z), P.colour((235, 235, 230), Z)
    cy = h + s
    cls = C["traffic sign"]
    if p["shape"] == 0:
        P.ellipse(o.x, cy, Z, s, s, col, cls)
        P.ellipse(o.x, cy, Z, s * 0.7, s * 0.7, white, None)
    elif p["shape"] == 1:
        P.poly(P.proj([o.x - s, o.x + s, o.x], [cy - s * 0.8, cy - s * 0.8, cy + s], [Z] * 3), col, cls)
        P.poly(P.proj([o.x - s * 0.55, o.x + s * 0.55, o.x], [cy - s * 0.55, cy - s * 0.55, cy + s * 0.45], [Z] * 3),
               white, None)
    elif p["shape"] == 2:
        P.quad(o.x - s * 1.3, o.x + s * 1.3, cy - s * 0.8, cy + s * 0.8, Z, col, cls)
        P.quad(o.x - s * 1.0, o.x + s * 1.0, cy - s * 0.15, cy + s * 0.15, Z, white, None)
    else:
        P.poly(P.proj([o.x - s, o.x, o.x + s, o.x], [cy, cy - s, cy, cy + s], [Z] * 4), col, cls)
        P.poly(P.proj([o.x - s * 0.6, o.x, o.x + s * 0.6, o.x], [cy, cy - s * 0.6, cy, cy + s * 0.6], [Z] * 4),
               white, None)


DRAW = {"car": draw_car, "person": draw_person, "tree": draw_tree, "pole": draw_pole, "sign": draw_sign}


def object_layers(view: View, world: World) -> tuple[list, list, list]:
    """Visible objects as ``(Z, obj)`` split into layers (behind facades, behind fences, front), far→near."""
    far, mid, near = [], [], []
    for o in world.objects:
        Z = (o.z + o.vz * view.t - view.z) % world.period
        beside = o.kind == "car" and abs(o.x - view.x) > o.p["w"] / 2 + 0.5
        if beside and Z > world.period - o.p["len"]:  # partly beside/behind the camera: its side is
            Z -= world.period  # still in view at the image edge (vertices are clamped to NEAR/2)
        if Z < (NEAR - o.p["len"] if beside else NEAR) or Z > world.zmax:
            continue
        side = world.sides[1 if o.x >= 0 else -1]
        ax = abs(o.x)
        if ax > side.building_x:
            far.append((Z, o))
        elif side.fence is not None and ax > side.sidewalk_out:
            mid.append((Z, o))
        else:
            near.append((Z, o))
    key = lambda zo: -zo[0]  # noqa: E731
    return sorted(far, key=key), sorted(mid, key=key), sorted(near, key=key)


def draw_objects(P: Painter, items: list) -> None:
    for Z, o in items:
        DRAW[o.kind](P, o, Z)
