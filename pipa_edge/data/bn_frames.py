"""Frames for on-device BN re-estimation: a folder of images, a collection folder, or a video file.

Torch-free (numpy + OpenCV). Frames come out as RGB ``uint8 (H, W, 3)`` resized to the model input
with ``cv2.INTER_LINEAR``, as the runtime pipeline does before ``backend.infer``. With more frames
than ``limit``, an evenly spaced subset is used (the whole span of a video or a collection).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from pipa_edge.data.frame_files import evenly_spaced, image_dir, image_files, read_rgb
from pipa_edge.errors import DataError

VIDEO_EXT = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v")


@dataclass
class FrameSource:
    """``count`` frames described by ``kind``/``path``; iterate with :meth:`frames`."""

    kind: str  # "folder" | "collection" | "video"
    path: Path
    count: int
    total: int  # frames available before the subset
    _read: Callable[[], Iterator[np.ndarray]] = field(repr=False, default=None)  # type: ignore[assignment]
    sha12: str | None = None  # sha256 of the model-input frames in order (set after a full pass)
    read: int = 0  # frames actually read in the last full pass (a vanished collection file is skipped)

    def describe(self) -> str:
        sub = "" if self.count == self.total else f" (evenly spaced subset of {self.total})"
        return f"{self.kind} {self.path}: {self.count} frame(s){sub}"

    def frames(self, size: tuple[int, int]) -> Iterator[np.ndarray]:
        """Model-input frames; :attr:`sha12` is set when the iteration completes."""
        import cv2

        h, w = size
        digest = hashlib.sha256()
        n = 0
        for img in self._read():
            n += 1
            if img.shape[:2] != (h, w):
                img = cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR)
            img = np.ascontiguousarray(img)
            digest.update(img.tobytes())
            yield img
        self.sha12, self.read = digest.hexdigest()[:12], n


def _images(paths: list[Path]) -> Callable[[], Iterator[np.ndarray]]:
    # a file evicted since the listing (a collection being written by `run --collect`) is skipped
    return lambda: (read_rgb(p) for p in paths if p.is_file())


def collection_images(root: Path) -> list[Path]:
    """The live images of a ``run --collect`` folder, oldest first (its manifest; torch-free)."""
    from pipa_edge.data.collection import read_manifest, replay

    records, _, _ = read_manifest(root)
    out = []
    for rec in replay(records).values():
        f = (rec.get("files") or {}).get("image")
        if f and (root / f["path"]).is_file():
            out.append(root / f["path"])
    return out


def _video(path: Path, limit: int | None) -> FrameSource:
    import cv2

    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise DataError(f"{path}: OpenCV cannot open this video")
    n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    cap.release()
    if n <= 0:
        raise DataError(f"{path}: the video reports no frames")
    keep = set(evenly_spaced(n, limit))

    def read() -> Iterator[np.ndarray]:
        cap = cv2.VideoCapture(str(path))
        try:
            i = 0
            while i <= max(keep):
                ok, bgr = cap.read()
                if not ok:
                    break
                if i in keep:
                    yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
                i += 1
        finally:
            cap.release()

    return FrameSource("video", path, len(keep), n, read)


def open_frames(spec: str | Path, limit: int | None = None) -> FrameSource:
    """``spec``: a folder of images (or a folder with ``images/``), a collection folder (has a
    ``manifest.jsonl``), or a video file. Raises :class:`DataError` (one line) otherwise."""
    from pipa_edge.data.collection import MANIFEST

    p = Path(spec)
    if p.is_file():
        if p.suffix.lower() not in VIDEO_EXT:
            raise DataError(f"--frames {p}: not a video ({', '.join(VIDEO_EXT)}) nor a folder")
        return _video(p, limit)
    if not p.is_dir():
        raise DataError(f"--frames {p}: no such folder or video file")
    if (p / MANIFEST).is_file():
        kind, paths = "collection", collection_images(p)
    else:
        kind, paths = "folder", image_files(image_dir(p))
    idx = evenly_spaced(len(paths), limit)
    return FrameSource(kind, p, len(idx), len(paths), _images([paths[i] for i in idx]))
