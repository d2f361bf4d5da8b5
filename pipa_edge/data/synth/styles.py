"""Domain styles of the synthetic generator: layout statistics and appearance of *sim* and *real*.

Both domains follow the same semantic layout rules (road in the middle, sidewalks, facades,
cars on lanes, people on sidewalks, ...). They differ in what a simulator and a camera differ
in: object statistics (sizes, counts, building heights, camera focal length/height/pitch) and
appearance (flat colours and crisp edges vs textures, sun and cast shadows, haze, colour
cast, vignetting, blur and sensor noise). Labels never depend on the style's appearance.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np


@dataclass(frozen=True)
class DomainStyle:
    name: str
    # camera
    focal: tuple[float, float]  # focal length as a fraction of the image width
    cam_height: tuple[float, float]  # metres above the road
    horizon: tuple[float, float]  # horizon row as a fraction of the image height
    # layout statistics (densities are per 100 m of street)
    road_half: tuple[float, float]
    sidewalk: tuple[float, float]
    terrain_prob: float
    terrain_width: tuple[float, float]
    building_height: tuple[float, float]
    building_len: tuple[float, float]
    building_gap: float  # probability that a facade slot is empty
    fence_prob: float
    car_density: float  # per lane
    parked_density: float  # per side, when the street has parking strips
    car_scale: tuple[float, float]
    person_density: float  # per side
    person_height: tuple[float, float]
    tree_density: float  # per side with terrain
    tree_scale: tuple[float, float]
    pole_spacing: tuple[float, float]
    sign_density: float
    # appearance
    palette: dict = field(default_factory=dict)  # role -> (n, 3) RGB base colours
    textured: bool = False
    sun_prob: float = 0.0  # probability of a sunny scene (cast shadows, lit/shaded facades)
    haze: tuple[float, float] = (0.0, 0.0)  # fog density: 1/metres
    saturation: tuple[float, float] = (1.0, 1.0)
    exposure: tuple[float, float] = (1.0, 1.0)
    gamma: tuple[float, float] = (1.0, 1.0)
    white_balance: float = 0.0  # std of per-channel gain
    vignette: tuple[float, float] = (0.0, 0.0)
    blur: tuple[float, float] = (0.0, 0.0)  # gaussian sigma in pixels at 256 rows
    noise: tuple[float, float] = (0.0, 0.0)  # sensor noise std (0-255 scale)
    jitter: float = 0.0  # per-instance colour jitter


def _c(*rows) -> np.ndarray:
    return np.asarray(rows, np.float32)


SIM_PALETTE = {
    "road": _c((96, 92, 104), (110, 104, 116), (84, 84, 96)),
    "marking": _c((235, 235, 235), (240, 220, 60)),
    "sidewalk": _c((190, 180, 190), (170, 170, 180), (200, 190, 170)),
    "curb": _c((215, 210, 215)),
    "building": _c((200, 160, 120), (170, 120, 90), (150, 150, 160), (220, 200, 160), (120, 110, 140),
                   (190, 90, 70), (230, 225, 210)),
    "window": _c((60, 90, 140), (50, 70, 110), (80, 120, 170)),
    "fence": _c((170, 120, 70), (140, 140, 140), (200, 200, 190)),
    "pole": _c((110, 110, 120), (80, 80, 90), (150, 150, 150)),
    "sign": _c((220, 30, 30), (30, 70, 200), (240, 200, 20), (250, 250, 250)),
    "vegetation": _c((60, 160, 50), (40, 130, 40), (90, 170, 60)),
    "trunk": _c((110, 70, 40)),
    "terrain": _c((130, 200, 90), (160, 190, 90), (110, 180, 80), (140, 170, 100)),
    "sky": _c((110, 170, 240), (130, 190, 245), (90, 150, 230), (160, 190, 225), (180, 205, 235)),
    "backdrop": _c((160, 160, 190), (140, 150, 180)),
    "car": _c((220, 30, 30), (30, 60, 210), (240, 210, 30), (30, 170, 60), (240, 240, 240), (40, 40, 40),
              (250, 120, 20), (140, 40, 180), (150, 150, 155), (90, 90, 95)),
    "glass": _c((40, 60, 90)),
    "cloth": _c((220, 40, 40), (40, 80, 220), (40, 180, 80), (240, 200, 40), (230, 230, 230), (30, 30, 30),
                (160, 60, 200)),
    "skin": _c((230, 180, 140), (190, 130, 90), (120, 80, 50)),
}

REAL_PALETTE = {
    "road": _c((78, 77, 78), (88, 86, 84), (70, 71, 73), (100, 98, 95)),
    "marking": _c((200, 200, 195), (210, 190, 110)),
    "sidewalk": _c((165, 160, 155), (150, 146, 142), (180, 170, 155)),
    "curb": _c((175, 172, 168)),
    "building": _c((150, 135, 118), (120, 95, 80), (118, 118, 120), (170, 160, 140), (96, 90, 92),
                   (140, 80, 60), (185, 178, 165)),
    "window": _c((45, 55, 65), (70, 82, 95), (30, 35, 40)),
    "fence": _c((120, 95, 70), (105, 105, 100), (150, 148, 140)),
    "pole": _c((95, 95, 98), (70, 72, 75), (120, 118, 112)),
    "sign": _c((185, 40, 40), (40, 70, 150), (200, 170, 40), (215, 215, 210)),
    "vegetation": _c((65, 100, 45), (52, 85, 38), (85, 110, 55), (75, 95, 48)),
    "trunk": _c((70, 55, 45)),
    "terrain": _c((110, 145, 70), (125, 140, 80), (100, 135, 62)),
    "sky": _c((150, 180, 220), (175, 195, 220), (200, 208, 215), (130, 165, 210)),
    "backdrop": _c((150, 155, 165), (130, 135, 145)),
    "car": _c((180, 180, 182), (40, 40, 42), (225, 225, 222), (120, 122, 125), (120, 30, 30), (30, 45, 80),
              (80, 85, 70), (150, 140, 120)),
    "glass": _c((25, 30, 35)),
    "cloth": _c((40, 40, 45), (70, 70, 90), (110, 100, 85), (150, 150, 150), (120, 40, 40), (60, 75, 60),
                (200, 195, 185)),
    "skin": _c((205, 160, 130), (160, 115, 85), (100, 70, 50)),
}

SIM = DomainStyle(
    name="sim", focal=(0.50, 0.56), cam_height=(1.5, 1.8), horizon=(0.42, 0.50),
    road_half=(3.5, 7.5), sidewalk=(2.0, 4.0), terrain_prob=0.5, terrain_width=(1.5, 4.0),
    building_height=(9.0, 32.0), building_len=(10.0, 28.0), building_gap=0.15, fence_prob=0.45,
    car_density=2.5, parked_density=4.0, car_scale=(0.95, 1.1), person_density=9.0, person_height=(1.65, 1.9),
    tree_density=5.0, tree_scale=(0.8, 1.1), pole_spacing=(18.0, 28.0), sign_density=4.0,
    palette=SIM_PALETTE, textured=False, sun_prob=0.0, haze=(0.0, 0.002), jitter=8.0, saturation=(0.9, 1.1),
    exposure=(0.85, 1.15), gamma=(0.9, 1.1), white_balance=0.03,
)

REAL = DomainStyle(
    name="real", focal=(0.58, 0.66), cam_height=(1.25, 1.5), horizon=(0.36, 0.46),
    road_half=(3.5, 7.5), sidewalk=(1.5, 3.5), terrain_prob=0.6, terrain_width=(1.5, 5.0),
    building_height=(6.0, 20.0), building_len=(8.0, 22.0), building_gap=0.3, fence_prob=0.5,
    car_density=4.0, parked_density=9.0, car_scale=(0.9, 1.25), person_density=4.0, person_height=(1.55, 1.85),
    tree_density=9.0, tree_scale=(0.9, 1.5), pole_spacing=(14.0, 24.0), sign_density=3.0,
    palette=REAL_PALETTE, textured=True, sun_prob=0.6, haze=(0.003, 0.010), saturation=(0.7, 1.0),
    exposure=(0.8, 1.1), gamma=(0.9, 1.15), white_balance=0.035, vignette=(0.15, 0.4), blur=(0.5, 1.1),
    noise=(1.5, 4.5), jitter=14.0,
)

STYLES = {"sim": SIM, "real": REAL}


def get_style(domain: str) -> DomainStyle:
    try:
        return STYLES[domain]
    except KeyError:
        raise ValueError(f"unknown synthetic domain '{domain}' (known: {', '.join(STYLES)})") from None


def pick_colour(rng: np.random.Generator, style: DomainStyle, role: str) -> np.ndarray:
    """A base colour for ``role`` with per-instance jitter (RGB float32, 0-255)."""
    pal = style.palette[role]
    c = pal[rng.integers(len(pal))] + rng.normal(0.0, style.jitter, 3).astype(np.float32)
    return np.clip(c, 0, 255).astype(np.float32)


@lru_cache(maxsize=2)
def texture_bank(size: int = 256, seed: int = 7) -> dict:
    """Tileable noise textures (float32, zero mean, unit-ish std), made once per process.

    ``fine`` (grain), ``mid`` (blotches), ``coarse`` (stains/patches), ``leaf`` (clumpy foliage).
    Made by filtering white noise in the Fourier domain, so they tile seamlessly.
    """
    rng = np.random.default_rng(seed)
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.fftfreq(size)[None, :]
    r = np.sqrt(fx * fx + fy * fy) + 1e-6
    out = {}
    for name, (lo, hi, power) in {"fine": (0.15, 0.5, 0.0), "mid": (0.03, 0.2, 1.0), "coarse": (0.004, 0.05, 1.5),
                                  "leaf": (0.03, 0.15, 0.5)}.items():
        spec = np.fft.fft2(rng.normal(size=(size, size)))
        filt = ((r >= lo) & (r <= hi)) / r ** power
        tex = np.real(np.fft.ifft2(spec * filt)).astype(np.float32)
        tex -= tex.mean()
        tex /= tex.std() + 1e-6
        out[name] = tex
    return out
