"""An endless synthetic driving video for the runtime's ``test://`` source and the demo.

``SceneStream`` renders a seamless loop of ``loop_frames`` frames (ego-motion, moving cars,
walking people) lazily, the first time each frame is asked for, and then cycles through the
cache, so after the first loop it yields frames at memory speed (thousands per second).
Call :meth:`SceneStream.prerender` to pay the one-off cost up front (about 40–80 ms a frame at
256×512 on one core).
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

from pipa_edge.data.classes import SYNTH11, ClassSet
from pipa_edge.data.synth.frame import render_frame
from pipa_edge.data.synth.sequences import frame_rng, loop_world
from pipa_edge.data.synth.styles import STYLES

DOMAIN_ALIASES = {"synth": "sim", "synthetic": "sim"}  # the runtime's test:// says domain=synth


class SceneStream:
    """Endless iterator of ``(frame_rgb uint8 (H, W, 3), label uint8 (H, W))``.

    Deterministic from ``seed``; ``domain`` is ``"real"`` (camera-like) or ``"sim"`` (flat colours;
    ``"synth"`` is accepted for it).
    Frame ``loop_frames`` equals frame 0, so cycling the cache has no visible seam.
    Yielded arrays are copies: callers may draw on them.
    """

    classes: ClassSet = SYNTH11

    def __init__(self, height: int = 256, width: int = 512, seed: int = 0, domain: str = "real",
                 loop_frames: int = 120):
        domain = DOMAIN_ALIASES.get(domain, domain)
        if domain not in STYLES:
            raise ValueError(f"SceneStream: unknown domain '{domain}' (known: {', '.join(STYLES)})")
        if height < 16 or width < 16 or loop_frames < 1:
            raise ValueError(f"SceneStream: bad size {height}x{width} or loop_frames {loop_frames}")
        self.height, self.width, self.seed, self.domain = int(height), int(width), int(seed), domain
        self.loop_frames = int(loop_frames)
        self.split = f"stream_{domain}"
        self.world = loop_world(domain, self.loop_frames, self.seed, self.split)
        self._cache: list = [None] * self.loop_frames
        self._i = 0

    def __len__(self) -> int:  # the loop length; iteration itself never ends
        return self.loop_frames

    def frame(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        """Frame ``t`` (any integer; wraps at ``loop_frames``), rendered on first use and cached."""
        k = int(t) % self.loop_frames
        item = self._cache[k]
        if item is None:
            item = render_frame(self.world, k, self.height, self.width, frame_rng(self.seed, self.split, 0, k))
            self._cache[k] = item
        return item

    def prerender(self) -> "SceneStream":
        for k in range(self.loop_frames):
            self.frame(k)
        return self

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        return self

    def __next__(self) -> tuple[np.ndarray, np.ndarray]:
        img, lab = self.frame(self._i)
        self._i = (self._i + 1) % self.loop_frames
        return img.copy(), lab.copy()
