"""Frames for the parity gate, INT8 calibration and the accuracy gate.

From a folder (``images/`` + optional ``labels/`` as read by :class:`FolderDataset`, or a flat
folder of images), else from the embedded synthetic generator
(:class:`pipa_edge.data.synth.SceneStream`). Frames are resized to the model input size.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipa_edge.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


@dataclass
class FrameSet:
    frames: np.ndarray  # (N, H, W, 3) uint8 RGB
    labels: np.ndarray | None  # (N, H, W) uint8 class indices (255 = ignore) or None
    source: str  # what they came from, for reports

    @property
    def sha12(self) -> str:
        h = hashlib.sha256(self.frames.tobytes())
        return h.hexdigest()[:12]


def _evenly(items: list, n: int) -> list:
    if n >= len(items):
        return items
    idx = np.linspace(0, len(items) - 1, n).round().astype(int)
    return [items[i] for i in idx]


def from_folder(folder: str | Path, n: int, size: tuple[int, int], classes=None, labels: bool = False) -> FrameSet:
    import cv2

    from pipa_edge.data.datasets.base import read_image, resize_pair

    root = Path(folder)
    if not root.is_dir():
        raise DataError(f"{root}: frames folder not found")
    h, w = size
    if (root / "images").is_dir() and classes is not None:
        from pipa_edge.data.datasets.folder import FolderDataset

        ds = FolderDataset(root, classes, labels=labels)
        if labels and not ds.has_labels:
            raise DataError(f"{root}: no labels/ folder beside images/ (the accuracy gate needs labels)")
        items = [ds[i] for i in _evenly(list(range(len(ds))), n)]
        pairs = [resize_pair(it["image"], it.get("label"), (h, w)) for it in items]
        frames = np.stack([p[0] for p in pairs])
        labs = np.stack([p[1] for p in pairs]) if labels else None
        return FrameSet(frames, labs, f"{root} ({len(frames)} frames)")
    if labels:
        raise DataError(f"{root}: a labelled folder needs images/ and labels/ subfolders")
    img_dir = root / "images" if (root / "images").is_dir() else root
    paths = sorted(p for p in img_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise DataError(f"{img_dir}: no images found ({', '.join(IMAGE_SUFFIXES)})")
    frames = np.stack([cv2.resize(read_image(p), (w, h), interpolation=cv2.INTER_AREA) for p in _evenly(paths, n)])
    return FrameSet(frames, None, f"{img_dir} ({len(frames)} frames)")


def from_synth(n: int, size: tuple[int, int], seed: int = 0, classes=None) -> FrameSet:
    try:
        from pipa_edge.data.synth import SceneStream
    except ImportError as e:
        raise DataError(f"no frames folder given and the synthetic generator is unavailable ({e}); "
                        "pass a folder of images") from None
    stream = iter(SceneStream(size[0], size[1], seed=seed))
    frames, labs = [], []
    for _ in range(n):
        img, lab = next(stream)
        frames.append(np.asarray(img, np.uint8))
        labs.append(np.asarray(lab, np.uint8))
    labels = np.stack(labs)
    if classes is not None:
        from pipa_edge.data.classes import SYNTH11

        if classes.name != SYNTH11.name:  # map synth classes to the model's by name
            labels = SYNTH11.mapping_to(classes)[labels]
    return FrameSet(np.stack(frames), labels, f"synthetic SceneStream seed={seed} ({n} frames)")


def load_frames(folder: str | Path | None, n: int, size: tuple[int, int], classes=None, labels: bool = False,
                seed: int = 0) -> FrameSet:
    if folder:
        return from_folder(folder, n, size, classes=classes, labels=labels)
    return from_synth(n, size, seed=seed, classes=classes)
