"""Dataset description used by training/eval configs: ``{type, root, split, classes, ...}``."""

from __future__ import annotations

from typing import Literal, Optional

from pipa_edge.config import StrictModel

DatasetType = Literal["gta5", "cityscapes", "synthia", "camvid", "folder", "synth", "collected",
                      "cityscapes_seq", "viper", "synthia_seq", "video", "camvid_seq", "frames"]


class DatasetConfig(StrictModel):
    type: DatasetType
    root: str
    split: str = "train"
    classes: Optional[str] = None  # class-set name; default depends on type
    id_map: Optional[str] = None  # YAML {raw_id: class_name|index} for 'folder'
    labels: bool = True  # load labels (False for unlabelled target images)
    limit: Optional[int] = None  # first N samples (sorted), for quick runs
    resize: Optional[tuple[int, int]] = None  # (H, W) applied at load, before augmentation
    # video (pipa_edge.data.datasets.pairs): items become frame pairs (t, t-k), k = pair_offset
    pair_offset: Optional[int] = None
    flow: Literal["none", "dis", "precomputed"] = "none"  # pairs: flow t → t-k (none: the adapter computes DIS)
    flow_root: Optional[str] = None  # dis: cache folder (optional); precomputed: folder of *_int16_x10.npy
