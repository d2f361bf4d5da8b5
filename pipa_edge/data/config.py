"""Dataset description used by training/eval configs: ``{type, root, split, classes, ...}``."""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field, model_validator

from pipa_edge.config import StrictModel

DatasetType = Literal["gta5", "cityscapes", "synthia", "camvid", "folder", "synth", "collected",
                      "cityscapes_seq", "viper", "synthia_seq", "video", "camvid_seq", "frames"]


class FoldConfig(StrictModel):
    """One part of a k-fold split of a dataset's frames (:mod:`pipa_edge.data.folds`): the frames of
    each sequence (name prefix before the first ``_``) are cut into ``k`` contiguous blocks in name
    order; ``heldout`` is block ``index`` of every sequence, ``train`` the other blocks."""

    k: int = Field(2, ge=2)
    index: int = Field(0, ge=0)
    part: Literal["train", "heldout"] = "heldout"

    @model_validator(mode="after")
    def _index_ok(self) -> "FoldConfig":
        if self.index >= self.k:
            raise ValueError(f"index must be < k ({self.k})")
        return self


class DatasetConfig(StrictModel):
    type: DatasetType
    root: str
    split: str = "train"
    classes: Optional[str] = None  # class-set name; default depends on type
    id_map: Optional[str] = None  # YAML {raw_id: class_name|index} for 'folder'
    labels: bool = True  # load labels (False for unlabelled target images)
    limit: Optional[int] = None  # first N samples (sorted), for quick runs
    resize: Optional[tuple[int, int]] = None  # (H, W) applied at load, before augmentation
    fold: Optional[FoldConfig] = None  # one part of a k-fold split (after `limit`); held-out protocols
    # video (pipa_edge.data.datasets.pairs): items become frame pairs (t, t-k), k = pair_offset
    pair_offset: Optional[int] = None
    flow: Literal["none", "dis", "precomputed"] = "none"  # pairs: flow t → t-k (none: the adapter computes DIS)
    flow_root: Optional[str] = None  # dis: cache folder (optional); precomputed: folder of *_int16_x10.npy
