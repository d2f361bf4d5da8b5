"""Shared machinery of the file-based segmentation datasets.

A dataset is a sorted list of :class:`Record` (image path, optional label path, name) plus a
lookup table (LUT) that turns the raw label values on disk into class indices of the requested
:class:`~pipa_edge.data.classes.ClassSet` (``255`` = ignore). Items are plain dicts::

    {"image": uint8 (H, W, 3) RGB, "label": uint8 (H, W) (only when labels exist), "name": str}

Reading uses OpenCV (``IMREAD_UNCHANGED`` + ``COLOR_BGR2RGB``); palette PNGs (GTA5 labels) are read
through Pillow because OpenCV expands the palette to colours. Labels are always resized with
nearest-neighbour interpolation (``INTER_NEAREST_EXACT``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import cv2
import numpy as np
from torch.utils.data import Dataset

from pipa_edge.data.classes import IGNORE_INDEX, ClassSet
from pipa_edge.errors import DataError

# OpenCV's own thread pool does not survive fork(): a DataLoader worker forked after the parent ran a
# threaded cv2 call can hang in its first cv2.resize. Parallelism comes from DataLoader workers instead
# (as Ultralytics and detectron2 do).
cv2.setNumThreads(0)

# Nearest-neighbour with pixel-centre alignment (same grid as the bilinear image resize); plain
# INTER_NEAREST samples with a half-pixel offset and shifts labels against the image.
LABEL_INTERP = getattr(cv2, "INTER_NEAREST_EXACT", cv2.INTER_NEAREST)

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


@dataclass(frozen=True)
class Record:
    image: Path
    label: Path | None
    name: str


def require_dir(path: Path, what: str) -> Path:
    """``path`` if it is a folder, else a :class:`DataError` naming it."""
    if not path.is_dir():
        kind = "is not a folder" if path.exists() else "not found"
        raise DataError(f"{path}: {what} {kind}")
    return path


def list_images(folder: Path, suffix: str = "") -> list[Path]:
    """Image files directly in ``folder`` (sorted); with ``suffix`` only names ending with it."""
    if suffix:
        return sorted(p for p in folder.iterdir() if p.is_file() and p.name.endswith(suffix))
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTS)


def select_split(images: list[Path], root: Path, split: str, what: str) -> list[Path]:
    """For datasets without split folders: ``train``/``all`` = every image, else the stems listed in
    ``root/<split>.txt`` (file names or stems, one a line)."""
    if split in ("train", "all"):
        return images
    list_file = root / f"{split}.txt"
    if not list_file.is_file():
        raise DataError(f"{list_file}: {what} split '{split}' needs this list file (or use split 'train'/'all')")
    wanted = {Path(line.strip()).stem for line in list_file.read_text().splitlines() if line.strip()}
    return [p for p in images if p.stem in wanted]


def paired_records(images: Sequence[Path], lab_dir: Path | None) -> list[Record]:
    """One record per image, label ``lab_dir/<stem>.png`` (``lab_dir`` absent → image-only).

    A labelled folder with a missing label file is a :class:`DataError` naming that file.
    """
    has_labels = lab_dir is not None and lab_dir.is_dir()
    records = []
    for p in images:
        lab = lab_dir / (p.stem + ".png") if has_labels else None
        if lab is not None and not lab.is_file():
            raise DataError(f"{lab}: label missing for image {p.name}")
        records.append(Record(p, lab, p.stem))
    return records


def _png_color_type(path: Path) -> int:
    """PNG IHDR colour type (3 = palette) or -1 for non-PNG files."""
    with open(path, "rb") as f:
        head = f.read(26)
    if len(head) < 26 or head[:8] != b"\x89PNG\r\n\x1a\n":
        return -1
    return head[25]


def read_image(path: Path) -> np.ndarray:
    """``(H, W, 3) uint8`` RGB. Grey images are replicated, alpha dropped, 16-bit scaled to 8."""
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise DataError(f"{path}: cannot read image (missing or corrupt)")
    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    elif img.dtype != np.uint8:
        raise DataError(f"{path}: unsupported image dtype {img.dtype}")
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    if img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def read_label_raw(path: Path, channel: int | None = None) -> np.ndarray:
    """Raw label values ``(H, W)`` (uint8 or uint16) as stored on disk.

    Palette PNGs give their palette indices. Multi-channel files need ``channel`` (index in
    OpenCV's BGR order, e.g. ``2`` for SYNTHIA's class channel).
    """
    if _png_color_type(path) == 3:
        from PIL import Image

        try:
            with Image.open(path) as im:
                return np.asarray(im, dtype=np.uint8)
        except OSError:
            raise DataError(f"{path}: cannot read label (corrupt palette PNG)") from None
    lab = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if lab is None:
        raise DataError(f"{path}: cannot read label (missing or corrupt)")
    if lab.ndim == 3:
        if channel is None:
            raise DataError(f"{path}: label has {lab.shape[2]} channels; expected a single-channel "
                            "or palette PNG of class ids")
        lab = lab[:, :, channel]
    return np.ascontiguousarray(lab)


def apply_lut(raw: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """Map raw values through ``lut`` (uint8, length 256); values beyond it become ignore."""
    if raw.dtype == np.uint8:
        return lut[raw]
    out = lut[np.minimum(raw, 255).astype(np.intp)]
    out[raw > 255] = IGNORE_INDEX
    return out


def identity_lut(num_classes: int) -> np.ndarray:
    """Values ``0..num_classes-1`` kept, everything else → ignore."""
    lut = np.full(256, IGNORE_INDEX, np.uint8)
    lut[:num_classes] = np.arange(num_classes, dtype=np.uint8)
    return lut


def table_lut(table: dict[int, int]) -> np.ndarray:
    """LUT from a ``{raw_id: index}`` table; unlisted ids → ignore."""
    lut = np.full(256, IGNORE_INDEX, np.uint8)
    for raw, idx in table.items():
        if 0 <= raw < 256 and idx >= 0:
            lut[raw] = idx
    return lut


def resize_pair(image: np.ndarray, label: np.ndarray | None, size_hw: Sequence[int]
                ) -> tuple[np.ndarray, np.ndarray | None]:
    """Resize to ``(H, W)``: image bilinear (area when shrinking), label nearest-neighbour."""
    h, w = int(size_hw[0]), int(size_hw[1])
    if image.shape[:2] != (h, w):
        shrink = h * w < image.shape[0] * image.shape[1]
        image = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    if label is not None and label.shape[:2] != (h, w):
        label = cv2.resize(label, (w, h), interpolation=LABEL_INTERP)
    return image, label


class SegDataset(Dataset):
    """A list of records read from disk, labels mapped through one LUT.

    Parameters
    ----------
    records: the samples, sorted; ``record.label`` is ``None`` when the sample has no label.
    classes: the class set of the returned label indices.
    raw_lut: raw value on disk → index in ``classes`` (uint8 LUT of length 256).
    labels: return labels (only for records that have one).
    resize: ``(H, W)`` applied at load time.
    label_channel: for multi-channel label files, which channel (OpenCV BGR order) holds the id.
    """

    fix_label_size = False  # resize a label whose size differs from its image (else DataError)

    def __init__(self, root: Path, records: Sequence[Record], classes: ClassSet, raw_lut: np.ndarray,
                 labels: bool = True, resize: Sequence[int] | None = None, limit: int | None = None,
                 label_channel: int | None = None,
                 label_reader: Callable[[Path], np.ndarray] | None = None):
        self.root = Path(root)
        if not records:
            raise DataError(f"{self.root}: no images found")
        self.records = list(records)[:limit] if limit is not None else list(records)
        self.classes = classes
        self.lut = np.asarray(raw_lut, np.uint8)
        self.labels = labels
        self.resize = tuple(resize) if resize is not None else None
        self.label_channel = label_channel
        self._label_reader = label_reader

    @property
    def has_labels(self) -> bool:
        return self.labels and any(r.label is not None for r in self.records)

    def __len__(self) -> int:
        return len(self.records)

    def read_label(self, rec: Record) -> np.ndarray:
        raw = (self._label_reader(rec.label) if self._label_reader is not None
               else read_label_raw(rec.label, self.label_channel))
        return apply_lut(raw, self.lut)

    def __getitem__(self, i: int) -> dict:
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} samples")
        rec = self.records[i]
        image = read_image(rec.image)
        label = self.read_label(rec) if self.labels and rec.label is not None else None
        if label is not None and label.shape[:2] != image.shape[:2]:
            if not self.fix_label_size:
                raise DataError(f"{rec.label}: label size {label.shape[1]}x{label.shape[0]} differs from its "
                                f"image {image.shape[1]}x{image.shape[0]} ({rec.image.name})")
            # a few GTA5 frames as released: bring the label to the image grid
            label = cv2.resize(label, (image.shape[1], image.shape[0]), interpolation=LABEL_INTERP)
        if self.resize is not None:
            image, label = resize_pair(image, label, self.resize)
        out = {"image": image, "name": rec.name}
        if label is not None:
            out["label"] = label
        return out

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(root={str(self.root)!r}, n={len(self)}, classes={self.classes.name}, "
                f"labels={self.has_labels})")


def compose_lut(raw_to_native: np.ndarray, native: ClassSet, target: ClassSet | None) -> tuple[np.ndarray, ClassSet]:
    """Chain a raw→native LUT with the by-name mapping native→target (if a different set is asked)."""
    if target is None or target == native or target.names == native.names:
        return raw_to_native, native if target is None else target
    to_target = native.mapping_to(target)
    lut = raw_to_native.copy()
    valid = lut != IGNORE_INDEX
    lut[valid] = to_target[lut[valid]]
    lut[~valid] = target.ignore_index
    return lut, target
