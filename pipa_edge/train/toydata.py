"""Tiny on-disk ``folder`` datasets for tests and smoke runs (``images/`` + ``labels/`` PNGs).

Each image is a few axis-aligned blocks; a block of class ``c`` is painted with class ``c``'s
palette colour plus noise, so the mapping colour → class is learnable in a handful of steps.
Everything is drawn from ``np.random.default_rng(seed)``: the same call writes the same files.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from pipa_edge.data.classes import ClassSet


def make_folder_dataset(root: str | Path, classes: ClassSet, n: int = 8, size: tuple[int, int] = (32, 32),
                        seed: int = 0, blocks: int = 3, ignore_border: bool = True, dark: float = 1.0) -> Path:
    """Write ``n`` image/label pairs under ``root/images`` and ``root/labels``; returns ``root``.

    ``dark`` scales image brightness (a cheap "domain shift"); with ``ignore_border`` the outer
    pixel ring is labelled with the ignore index.
    """
    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "labels").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    h, w = size
    pal = np.asarray(classes.palette, np.float32)
    for i in range(n):
        label = np.full((h, w), int(rng.integers(classes.num_classes)), np.uint8)
        for _ in range(blocks):
            y0, x0 = int(rng.integers(0, h - 4)), int(rng.integers(0, w - 4))
            y1, x1 = int(rng.integers(y0 + 4, h + 1)), int(rng.integers(x0 + 4, w + 1))
            label[y0:y1, x0:x1] = int(rng.integers(classes.num_classes))
        img = pal[label] + rng.normal(0, 12, (h, w, 3))
        img = np.clip(img * dark, 0, 255).astype(np.uint8)
        if ignore_border:
            label[0, :] = label[-1, :] = classes.ignore_index
            label[:, 0] = label[:, -1] = classes.ignore_index
        cv2.imwrite(str(root / "images" / f"{i:04d}.png"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
        cv2.imwrite(str(root / "labels" / f"{i:04d}.png"), label)
    return root
