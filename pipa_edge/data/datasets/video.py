"""Frames of video files decoded with OpenCV, as a sequence dataset (unlabelled).

``root`` is one video file (``.mp4``, ``.avi``, ``.mov``, ``.mkv``, ``.webm``) or a folder of them
(one sequence per file). Items ``{"image": uint8 (H, W, 3) RGB, "name": "<video stem>/<frame:06d>"}``.
Reading frame ``i`` right after frame ``i-1`` (or ``i-k`` then ``i``) decodes sequentially; other
orders seek. The capture is opened lazily per process (DataLoader workers each open their own).
Training reads frames in random order, and an H.264 seek decodes from the previous key frame, so
short clips are decoded once, sequentially, into memory (resized) when their frames fit in
``cache_mb`` (per process; 0 = never cache). ``start`` drops the first frames (e.g. train on the
head of a clip and score on its tail).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from pipa_edge.data.classes import ClassSet
from pipa_edge.data.datasets.base import resize_pair
from pipa_edge.errors import DataError

VIDEO_EXTS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")


def count_frames(path: Path) -> int:
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise DataError(f"{path}: cannot open video")
    n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    if n <= 0:  # containers without a frame count: decode through
        n = 0
        while cap.grab():
            n += 1
    cap.release()
    return n


class VideoDataset:
    def __init__(self, root: str | Path, classes: ClassSet, resize: Sequence[int] | None = None,
                 limit: int | None = None, start: int = 0, cache_mb: float = 512.0):
        self.root = Path(root)
        if self.root.is_file():
            files = [self.root]
        elif self.root.is_dir():
            files = sorted(p for p in self.root.iterdir() if p.suffix.lower() in VIDEO_EXTS)
        else:
            raise DataError(f"{self.root}: video file or folder not found")
        if not files:
            raise DataError(f"{self.root}: no video files ({', '.join(VIDEO_EXTS)})")
        self.classes, self.has_labels, self.labels = classes, False, False
        self.resize = tuple(resize) if resize is not None else None
        self.index: list[tuple[int, int]] = []  # (file, frame)
        self.files = files
        for fi, f in enumerate(files):
            self.index += [(fi, k) for k in range(count_frames(f))]
        self.index = self.index[max(0, int(start)):]
        if limit is not None:
            self.index = self.index[:limit]
        if not self.index:
            raise DataError(f"{self.root}: no decodable frames")
        self._cap = None  # (file index, capture, next frame position)
        self.cache_mb = float(cache_mb)
        self._cache: dict[tuple[int, int], np.ndarray] = {}
        self._cached_files: set[int] = set()

    def __getstate__(self):
        d = dict(self.__dict__)
        d["_cap"], d["_cache"], d["_cached_files"] = None, {}, set()  # each worker decodes its own
        return d

    def __len__(self) -> int:
        return len(self.index)

    def _read(self, fi: int, k: int) -> np.ndarray:
        if self._cap is None or self._cap[0] != fi:
            if self._cap is not None:
                self._cap[1].release()
            self._cap = [fi, cv2.VideoCapture(str(self.files[fi])), 0]
        cap = self._cap[1]
        if self._cap[2] != k:
            cap.set(cv2.CAP_PROP_POS_FRAMES, k)
        ok, frame = cap.read()
        if not ok or frame is None:
            raise DataError(f"{self.files[fi]}: cannot decode frame {k}")
        self._cap[2] = k + 1
        return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)

    def __getitem__(self, i: int) -> dict:
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} frames")
        fi, k = self.index[i]
        if self.cache_mb > 0 and fi not in self._cached_files:
            self._fill_cache(fi)
        img = self._cache.get((fi, k))
        if img is None:
            img = self._load(fi, k)
        return {"image": img, "name": f"{self.files[fi].stem}/{k:06d}"}

    def _load(self, fi: int, k: int) -> np.ndarray:
        img = self._read(fi, k)
        if self.resize is not None:
            img, _ = resize_pair(img, None, self.resize)
        return img

    def _fill_cache(self, fi: int) -> None:
        """Decode the frames of file ``fi`` in this dataset sequentially into memory, if they fit."""
        self._cached_files.add(fi)
        wanted = sorted(k for f, k in self.index if f == fi)
        want = set(wanted)
        first = self._load(fi, wanted[0])
        if len(wanted) * first.nbytes / 1e6 > self.cache_mb - sum(a.nbytes for a in self._cache.values()) / 1e6:
            return  # too long for the budget: keep decoding on demand
        self._cache[(fi, wanted[0])] = first
        for k in range(wanted[0] + 1, wanted[-1] + 1):  # sequential reads: no seek
            img = self._load(fi, k)
            if k in want:
                self._cache[(fi, k)] = img

    def sequences(self) -> dict[str, list[int]]:
        out: dict[str, list[int]] = {}
        for i, (fi, _) in enumerate(self.index):
            out.setdefault(self.files[fi].stem, []).append(i)
        return out

    def key(self, i: int) -> str:
        fi, k = self.index[i]
        return f"{self.files[fi]}#{k}"
