"""One frame = world + camera at frame ``t`` → ``(image uint8 RGB, label uint8)``; camera effects.

The *real* style ends with a camera model applied to the image only: per-class surface grain,
exposure, white balance, saturation, gamma, vignetting, optics blur and sensor noise.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from pipa_edge.data.synth.objects import Painter, draw_objects, object_layers
from pipa_edge.data.synth.render import C, TEX, draw_backdrop, draw_ground, draw_planes, draw_sky, view_at
from pipa_edge.data.synth.styles import texture_bank
from pipa_edge.data.synth.world import World

# screen-space surface grain of the real style, per class (ground/facades have world-anchored texture)
_GRAIN = {"building": 0.03, "fence": 0.08, "pole": 0.06, "traffic sign": 0.04, "vegetation": 0.2, "person": 0.08,
          "car": 0.05, "sky": 0.015}


@lru_cache(maxsize=4)
def _screen(H: int, W: int) -> tuple:
    bank = texture_bank()
    reps = (-(-H // TEX), -(-W // TEX))
    fine = np.tile(bank["fine"], reps)[:H, :W]
    leaf = np.tile(bank["leaf"], reps)[:H, :W]
    amp = np.zeros(256, np.float32)
    for n, a in _GRAIN.items():
        amp[C[n]] = a
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    r2 = ((yy - H / 2) / (H / 2)) ** 2 * 0.5 + ((xx - W / 2) / (W / 2)) ** 2 * 0.5
    return fine, leaf, amp, r2.astype(np.float32)


def colour_grade(img: np.ndarray, ph: dict) -> np.ndarray:
    """Per-scene exposure, white balance, saturation and gamma (pointwise: flat stays flat)."""
    img *= ph["exposure"] * ph["wb"]
    grey = img.mean(axis=2, keepdims=True)
    img = grey + ph["saturation"] * (img - grey)
    np.clip(img, 0, 255, out=img)
    return 255.0 * (img / 255.0) ** ph["gamma"]


def camera_effects(img: np.ndarray, lab: np.ndarray, world: World, rng: np.random.Generator) -> np.ndarray:
    """Real-style camera model on a float image (in place where possible); returns float32 0-255."""
    ph = world.photo
    H, W = lab.shape
    fine, leaf, amp, r2 = _screen(H, W)
    tex = np.where(lab == C["vegetation"], leaf, fine)
    img *= (1 + amp[lab] * tex)[..., None]
    img = colour_grade(img, ph)
    img *= (1 - ph["vignette"] * r2)[..., None]
    sigma = ph["blur"] * H / 256.0
    if sigma > 0.2:
        img = cv2.GaussianBlur(img, (0, 0), sigma)
    if ph["noise"] > 0:
        img += rng.standard_normal(img.shape, dtype=np.float32) * np.float32(ph["noise"])
    return img


def render_frame(world: World, t: float, H: int, W: int, rng: np.random.Generator | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Render frame ``t`` of ``world`` at ``H×W``: ``(image (H, W, 3) uint8 RGB, label (H, W) uint8)``."""
    view = view_at(world, t, H, W)
    img = np.empty((H, W, 3), np.float32)
    lab = np.empty((H, W), np.uint8)
    draw_sky(img, lab, view, world)
    draw_ground(img, lab, view, world)
    draw_backdrop(img, lab, view, world)
    far, mid, near = object_layers(view, world)
    P = Painter(img, lab, view, world)
    draw_objects(P, far)
    draw_planes(img, lab, view, world, "building")
    draw_objects(P, mid)
    draw_planes(img, lab, view, world, "fence")
    draw_objects(P, near)
    if world.style.textured:
        img = camera_effects(img, lab, world, rng if rng is not None else np.random.default_rng(0))
    else:
        img = colour_grade(img, world.photo)
    out = np.clip(img + 0.5, 0, 255).astype(np.uint8)
    return out, lab
