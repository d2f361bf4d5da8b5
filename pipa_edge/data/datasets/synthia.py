"""SYNTHIA-RAND-CITYSCAPES in its released layout: ``RGB/*.png`` + ``GT/LABELS/*.png``.

Labels are 16-bit PNGs whose first channel holds the SYNTHIA class id (the second holds instance
ids). OpenCV returns channels in BGR order, so the class is ``img[:, :, 2]`` (DAFormer/MIC read
``[:, :, -1]``). Ids map to Cityscapes trainIds with the standard table of DAFormer/MIC
(:data:`SYNTHIA_ID_TO_TRAIN_ID`). Labels are indices of Cityscapes-19 by default (terrain, truck
and train never occur); ask ``classes: synthia16`` to get the 16-class indices.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from pipa_edge.data.classes import CLASS_SETS, ClassSet
from pipa_edge.data.datasets.base import SegDataset, compose_lut, list_images, paired_records, require_dir, \
    select_split, table_lut
from pipa_edge.errors import DataError

# SYNTHIA id → Cityscapes trainId (DAFormer tools/convert_datasets/synthia.py, from SYNTHIA's README)
SYNTHIA_ID_TO_TRAIN_ID: dict[int, int] = {
    3: 0, 4: 1, 2: 2, 21: 3, 5: 4, 7: 5, 15: 6, 9: 7, 6: 8, 16: 9, 1: 10, 10: 11, 17: 12, 8: 13,
    18: 14, 19: 15, 20: 16, 12: 17, 11: 18,
}
SYNTHIA_LABEL_CHANNEL = 2  # cv2 BGR order: index 2 is the PNG's first channel


class SynthiaDataset(SegDataset):
    def __init__(self, root: str | Path, split: str = "train", labels: bool = True,
                 classes: ClassSet | None = None, resize: Sequence[int] | None = None,
                 limit: int | None = None):
        root = Path(root)
        require_dir(root, "SYNTHIA root")
        img_dir = require_dir(root / "RGB", "SYNTHIA RGB folder")
        images = list_images(img_dir)
        images = select_split(images, root, split, "SYNTHIA")
        if not images:
            raise DataError(f"{img_dir}: no images found")
        lab_dir = root / "GT" / "LABELS"
        records = paired_records(images, lab_dir if labels else None)
        native = CLASS_SETS["cityscapes19"]
        lut, cls = compose_lut(table_lut(SYNTHIA_ID_TO_TRAIN_ID), native, classes)
        super().__init__(root, records, cls, lut, labels=labels, resize=resize, limit=limit,
                         label_channel=SYNTHIA_LABEL_CHANNEL)
        self.split = split
