"""Frames for the parity gate, INT8 calibration and the accuracy gate.

From a folder (``images/`` + optional ``labels/`` as read by :class:`FolderDataset`, or a flat
folder of images read by :mod:`pipa_edge.data.frame_files`), else from the embedded synthetic
generator (:class:`pipa_edge.data.synth.SceneStream`). Frames are resized to the model input size.
Torch-free unless a labelled folder is read (the device route of ``pipa-edge export`` uses it).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipa_edge.data.frame_files import evenly_spaced, image_dir, list_frames, read_resized
from pipa_edge.errors import DataError


@dataclass
class FrameSet:
    frames: np.ndarray  # (N, H, W, 3) uint8 RGB
    labels: np.ndarray | None  # (N, H, W) uint8 class indices (255 = ignore) or None
    source: str  # what they came from, for reports

    @property
    def sha12(self) -> str:
        h = hashlib.sha256(self.frames.tobytes())
        return h.hexdigest()[:12]


def from_folder(folder: str | Path, n: int, size: tuple[int, int], classes=None, labels: bool = False) -> FrameSet:
    """An evenly spaced subset of ``n`` frames of ``folder`` (:mod:`pipa_edge.data.frame_files`);
    with ``classes`` and an ``images/`` subfolder through :class:`FolderDataset` (labels too)."""
    root = Path(folder)
    if not root.is_dir():
        raise DataError(f"{root}: frames folder not found")
    if (root / "images").is_dir() and classes is not None:
        return _from_dataset(root, n, size, classes, labels)
    if labels:
        raise DataError(f"{root}: a labelled folder needs images/ and labels/ subfolders")
    paths = list_frames(root)
    frames = read_resized([paths[i] for i in evenly_spaced(len(paths), n)], size)
    return FrameSet(frames, None, f"{image_dir(root)} ({len(frames)} frames)")


def _from_dataset(root: Path, n: int, size: tuple[int, int], classes, labels: bool) -> FrameSet:
    from pipa_edge.data.datasets.base import resize_pair
    from pipa_edge.data.datasets.folder import FolderDataset

    ds = FolderDataset(root, classes, labels=labels)
    if labels and not ds.has_labels:
        raise DataError(f"{root}: no labels/ folder beside images/ (the accuracy gate needs labels)")
    items = [ds[i] for i in evenly_spaced(len(ds), n)]
    pairs = [resize_pair(it["image"], it.get("label"), size) for it in items]
    frames = np.stack([p[0] for p in pairs])
    labs = np.stack([p[1] for p in pairs]) if labels else None
    return FrameSet(frames, labs, f"{root} ({len(frames)} frames)")


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
    """``n`` frames of ``folder`` (see :func:`from_folder`), else ``n`` synthetic frames of ``seed``."""
    if folder:
        return from_folder(folder, n, size, classes=classes, labels=labels)
    return from_synth(n, size, seed=seed, classes=classes)
