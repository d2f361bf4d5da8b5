"""The one reader of frame folders (torch-free: numpy + OpenCV), shared by the export's parity /
calibration frames (:mod:`pipa_edge.export.frames`) and on-device BN re-estimation
(:mod:`pipa_edge.data.bn_frames`).

A frames folder is a flat folder of images or a folder with ``images/`` (an images/ + labels/
dataset, a ``pipa-edge run --collect`` folder); hidden files (``.name.tmp`` of a write in progress)
are not frames. A subset of ``limit`` frames is evenly spaced over the whole folder.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipa_edge.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


def image_dir(root: Path) -> Path:
    """``root/images`` when there is one, else ``root``."""
    return root / "images" if (root / "images").is_dir() else root


def image_files(folder: Path) -> list[Path]:
    """The images of ``folder`` (not ``images/``: see :func:`list_frames`), sorted by name."""
    return sorted(q for q in folder.iterdir() if q.suffix.lower() in IMAGE_SUFFIXES and not q.name.startswith("."))


def list_frames(root: str | Path) -> list[Path]:
    """The frames of a frames folder; :class:`DataError` when it is missing or holds no image."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: frames folder not found")
    paths = image_files(image_dir(root))
    if not paths:
        raise DataError(f"{image_dir(root)}: no images found ({', '.join(IMAGE_SUFFIXES)})")
    return paths


def evenly_spaced(n: int, limit: int | None) -> list[int]:
    """Indices of at most ``limit`` of ``n`` items, evenly spaced from the first to the last."""
    if limit is None or n <= limit:
        return list(range(n))
    return sorted({int(round(v)) for v in np.linspace(0, n - 1, limit)})


def read_rgb(path: Path) -> np.ndarray:
    """``(H, W, 3) uint8`` RGB; :class:`DataError` naming the file when OpenCV cannot read it."""
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise DataError(f"{path}: not a readable image")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def read_resized(paths: list[Path], size: tuple[int, int]) -> np.ndarray:
    """``(N, H, W, 3) uint8`` RGB: each image resized to ``size`` (H, W) with ``INTER_AREA``."""
    import cv2

    h, w = size
    return np.stack([cv2.resize(read_rgb(p), (w, h), interpolation=cv2.INTER_AREA) for p in paths])
