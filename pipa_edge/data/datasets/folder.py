"""A generic ``images/`` + ``labels/`` folder, with an optional id-mapping YAML.

Layout: ``root/images/*`` and (optional) ``root/labels/<stem>.png``; ``root/<split>/images`` is
used instead when it exists. Labels are single-channel (or palette) PNGs. Without ``id_map`` the
values are already indices of the requested class set (values ≥ its size → ignore). With
``id_map``, a YAML mapping ``{raw_id: class name or index}`` says what each raw value means;
unlisted values are ignored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import yaml

from pipa_edge.data.classes import IGNORE_INDEX, ClassSet
from pipa_edge.data.datasets.base import SegDataset, identity_lut, list_images, paired_records
from pipa_edge.errors import ConfigError, DataError


def load_id_map(path: str | Path, classes: ClassSet) -> np.ndarray:
    """``{raw_id: name|index}`` YAML → uint8 LUT of length 256 (unlisted → ignore)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: id map file not found")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError:
        raise ConfigError(f"{path}: invalid YAML") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: id map must be a mapping {{raw_id: class name or index}}")
    lut = np.full(256, IGNORE_INDEX, np.uint8)
    for raw, cls in data.items():
        try:
            raw_i = int(raw)
        except (TypeError, ValueError):
            raise ConfigError(f"{path}: key '{raw}': raw id must be an integer 0..255") from None
        if not 0 <= raw_i <= 255:
            raise ConfigError(f"{path}: key '{raw}': raw id must be in 0..255")
        if isinstance(cls, bool):
            raise ConfigError(f"{path}: key '{raw}': '{cls}' is not a class name or index")
        if isinstance(cls, int):
            if cls == classes.ignore_index:
                continue
            if not 0 <= cls < classes.num_classes:
                raise ConfigError(f"{path}: key '{raw}': index {cls} outside class set {classes.name} "
                                  f"(0..{classes.num_classes - 1})")
            lut[raw_i] = cls
        elif isinstance(cls, str):
            if cls in ("ignore", "void"):
                continue
            try:
                lut[raw_i] = classes.index(cls)
            except KeyError:
                raise ConfigError(f"{path}: key '{raw}': class set {classes.name} has no class '{cls}'") from None
        elif cls is None:
            continue
        else:
            raise ConfigError(f"{path}: key '{raw}': '{cls}' is not a class name or index")
    return lut


class FolderDataset(SegDataset):
    def __init__(self, root: str | Path, classes: ClassSet, split: str | None = None, labels: bool = True,
                 id_map: str | Path | None = None, resize: Sequence[int] | None = None,
                 limit: int | None = None):
        root = Path(root)
        if not root.is_dir():
            raise DataError(f"{root}: dataset folder not found")
        base = root / split if split and (root / split / "images").is_dir() else root
        img_dir = base / "images"
        if not img_dir.is_dir():
            raise DataError(f"{img_dir}: images folder not found")
        images = list_images(img_dir)
        if not images:
            raise DataError(f"{img_dir}: no images found")
        lab_dir = base / "labels"
        records = paired_records(images, lab_dir if labels else None)
        lut = load_id_map(id_map, classes) if id_map else identity_lut(classes.num_classes)
        super().__init__(root, records, classes, lut, labels=labels, resize=resize, limit=limit)
        self.split = split
