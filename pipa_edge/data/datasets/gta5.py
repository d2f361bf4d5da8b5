"""GTA5 (Playing for Data) in its released layout: ``images/*.png`` + ``labels/*.png``.

Labels are palette PNGs whose indices are Cityscapes label ids; they are mapped to Cityscapes
trainIds with the official table. ``split`` ``train``/``all`` uses every image; any other split
needs ``root/<split>.txt`` listing file names or stems, one a line (e.g. made from ``split.mat``).
A handful of GTA5 frames have an image and label of different sizes: the label is resized
(nearest) to the image.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from pipa_edge.data.classes import CLASS_SETS, ClassSet
from pipa_edge.data.datasets.base import SegDataset, compose_lut, list_images, paired_records, require_dir, \
    select_split
from pipa_edge.data.datasets.cityscapes import LABEL_ID_LUT
from pipa_edge.errors import DataError


class GTA5Dataset(SegDataset):
    fix_label_size = True  # some released frames have image and label of different sizes

    def __init__(self, root: str | Path, split: str = "train", labels: bool = True,
                 classes: ClassSet | None = None, resize: Sequence[int] | None = None,
                 limit: int | None = None):
        root = Path(root)
        require_dir(root, "GTA5 root")
        img_dir = require_dir(root / "images", "GTA5 images folder")
        images = list_images(img_dir)
        images = select_split(images, root, split, "GTA5")
        if not images:
            raise DataError(f"{img_dir}: no images found")
        lab_dir = root / "labels"
        records = paired_records(images, lab_dir if labels else None)
        native = CLASS_SETS["cityscapes19"]
        lut, cls = compose_lut(LABEL_ID_LUT, native, classes)
        super().__init__(root, records, cls, lut, labels=labels, resize=resize, limit=limit)
        self.split = split
