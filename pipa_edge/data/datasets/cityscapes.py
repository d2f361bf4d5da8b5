"""Cityscapes in its official layout, and the official label id → trainId table.

``leftImg8bit/<split>/<city>/<base>_leftImg8bit.png`` with labels
``gtFine/<split>/<city>/<base>_gtFine_labelTrainIds.png`` (made by cityscapesScripts) or, when that
file is absent, ``<base>_gtFine_labelIds.png`` mapped on the fly with :data:`LABEL_ID_TO_TRAIN_ID`.
Without ``gtFine/<split>`` the dataset is image-only (e.g. the unlabelled target split).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from pipa_edge.data.classes import CLASS_SETS, ClassSet
from pipa_edge.data.datasets.base import Record, SegDataset, apply_lut, compose_lut, identity_lut, \
    list_images, read_label_raw, require_dir, table_lut
from pipa_edge.errors import DataError

CITYSCAPES19 = CLASS_SETS["cityscapes19"]

# cityscapesScripts labels.py: id → trainId (255 = ignore); ids 0-6, 9, 10, 14-16, 18, 29, 30 ignored
LABEL_ID_TO_TRAIN_ID: dict[int, int] = {
    7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11, 25: 12,
    26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18,
}
LABEL_ID_LUT = table_lut(LABEL_ID_TO_TRAIN_ID)


def label_ids_to_train_ids(label_ids: np.ndarray) -> np.ndarray:
    """Cityscapes ``labelIds`` array → ``trainIds`` (uint8, 255 ignore)."""
    return apply_lut(label_ids, LABEL_ID_LUT)


def find_gtfine_label(gt_dir: Path, base: str) -> tuple[Path | None, bool]:
    """The gtFine label of frame ``base``: ``*_labelTrainIds.png`` if present, else ``*_labelIds.png``
    (mapped on the fly; second value True), else ``(None, False)``."""
    train_ids = gt_dir / f"{base}_gtFine_labelTrainIds.png"
    if train_ids.is_file():
        return train_ids, False
    label_ids = gt_dir / f"{base}_gtFine_labelIds.png"
    if label_ids.is_file():
        return label_ids, True
    return None, False


class CityscapesDataset(SegDataset):
    IMG_SUFFIX = "_leftImg8bit.png"

    def __init__(self, root: str | Path, split: str = "train", labels: bool = True,
                 classes: ClassSet | None = None, resize: Sequence[int] | None = None,
                 limit: int | None = None):
        root = Path(root)
        require_dir(root, "Cityscapes root")
        img_root = require_dir(root / "leftImg8bit" / split, f"Cityscapes split '{split}'")
        gt_root = root / "gtFine" / split
        have_gt = gt_root.is_dir()
        records = []
        self._uses_label_ids: set[str] = set()
        for city in sorted(p for p in img_root.iterdir() if p.is_dir()):
            for p in list_images(city, self.IMG_SUFFIX):
                base = p.name[: -len(self.IMG_SUFFIX)]
                lab = None
                if have_gt:
                    lab, is_label_ids = find_gtfine_label(gt_root / city.name, base)
                    if is_label_ids:
                        self._uses_label_ids.add(base)
                    elif lab is None and labels:
                        label_ids = gt_root / city.name / f"{base}_gtFine_labelIds.png"
                        raise DataError(f"{label_ids}: label missing for image {p.name} "
                                        "(neither labelTrainIds nor labelIds)")
                records.append(Record(p, lab, base))
        if not records:
            raise DataError(f"{img_root}: no *{self.IMG_SUFFIX} images found in its city folders")
        self._train_lut, cls = compose_lut(identity_lut(CITYSCAPES19.num_classes), CITYSCAPES19, classes)
        self._id_lut, _ = compose_lut(LABEL_ID_LUT, CITYSCAPES19, classes)
        super().__init__(root, records, cls, self._train_lut, labels=labels, resize=resize, limit=limit)
        self.split = split

    def read_label(self, rec: Record) -> np.ndarray:
        lut = self._id_lut if rec.name in self._uses_label_ids else self._train_lut
        return apply_lut(read_label_raw(rec.label), lut)

