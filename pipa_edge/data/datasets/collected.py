"""A collection folder is a dataset: ``CollectedDataset(root)`` yields the data contract's items.

Items are ``{"image": uint8 (H, W, 3) RGB, "label": uint8 (H, W) (255 = ignore), "name": str}``
(no ``"label"`` with ``labels=False``: the folder then serves as unlabelled target images). The
class set comes from the collection's ``meta.json``; asking for another set maps labels by name.
Only live manifest entries are listed, so files of an interrupted write are never read (folder
format: :mod:`pipa_edge.data.collection`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from pipa_edge.data.classes import ClassSet, get_class_set
from pipa_edge.data.collection import read_manifest, read_meta, replay
from pipa_edge.data.datasets.base import Record, SegDataset, compose_lut, identity_lut, require_dir


class CollectedDataset(SegDataset):
    def __init__(self, root: str | Path, labels: bool = True, classes: ClassSet | str | None = None,
                 resize: Sequence[int] | None = None, limit: int | None = None):
        root = require_dir(Path(root), "collection folder")
        native = ClassSet.from_dict(read_meta(root)["classes"])
        if isinstance(classes, str):
            classes = get_class_set(classes)
        lut, cs = compose_lut(identity_lut(native.num_classes), native, classes)
        records, _, _ = read_manifest(root)
        recs = []
        for name, rec in sorted(replay(records).items()):
            files = rec.get("files") or {}
            if "image" not in files:
                continue
            lab = files.get("label")
            recs.append(Record(root / files["image"]["path"], root / lab["path"] if lab else None, name))
        super().__init__(root, recs, cs, lut, labels=labels, resize=resize, limit=limit)
        self.native_classes = native
