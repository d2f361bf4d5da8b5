"""Sequences: one street driven through with ego-motion, moving cars and walking people.

The camera moves ``v_ego`` metres per frame, sways and wobbles a little; cars in the ego lane
keep their distance, oncoming cars close in at twice the ego speed, parked cars and street
furniture pass by. A world whose period is ``loop * v_ego`` repeats exactly after ``loop`` frames,
which :class:`~pipa_edge.data.synth.stream.SceneStream` uses for a seamless endless video.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

from pipa_edge.data.synth.frame import render_frame
from pipa_edge.data.synth.styles import get_style
from pipa_edge.data.synth.world import World, sample_world

DOMAIN_CODE = {"sim": 0, "real": 1, "sim_seq": 2, "real_seq": 3, "stream_sim": 4, "stream_real": 5}


def frame_rng(seed: int, split: str, index: int, frame: int = 0) -> np.random.Generator:
    """Independent generator for one (split, item, frame): order/parallelism never changes output."""
    return np.random.default_rng([int(seed), DOMAIN_CODE[split], int(index), int(frame)])


def loop_world(domain: str, loop_frames: int, seed: int, split: str, index: int = 0, v_ego: float = 0.6,
               min_period: float = 60.0) -> World:
    """A street that repeats after exactly ``loop_frames`` frames (period = loop_frames × speed)."""
    loop_frames = max(int(loop_frames), 1)
    v = max(float(v_ego), min_period / loop_frames)
    period = v * loop_frames
    return sample_world(frame_rng(seed, split, index, 10**6), get_style(domain), period=period, v_ego=v)


def sequence_world(domain: str, seed: int, split: str, index: int) -> World:
    """World of one dataset sequence: random speed 0.3–0.8 m/frame (~8–20 m/s at 25 fps)."""
    rng = frame_rng(seed, split, index, 10**6 + 1)
    v = float(rng.uniform(0.3, 0.8))
    return sample_world(frame_rng(seed, split, index, 10**6), get_style(domain), period=90.0, v_ego=v)


def render_sequence(world: World, length: int, H: int, W: int, seed: int, split: str, index: int
                    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Frames ``0..length-1`` of ``world`` (camera noise drawn per frame)."""
    for t in range(length):
        yield render_frame(world, t, H, W, frame_rng(seed, split, index, t))
