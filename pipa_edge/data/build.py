"""Build datasets from a :class:`~pipa_edge.data.config.DatasetConfig` and wrap them with transforms.

``build_dataset(cfg)`` returns a ``torch.utils.data.Dataset`` whose items are
``{"image": uint8 (H, W, 3) RGB, "label": uint8 (H, W) (if any), "name": str}`` and which has
``classes`` (a :class:`ClassSet`) and ``root``. :class:`AugmentedDataset` applies a transform with a
per-item generator seeded by ``(seed, epoch, index)``, so a batch is the same whatever the number
of DataLoader workers or their order.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
from torch.utils.data import Dataset

from pipa_edge.config import validate
from pipa_edge.data.classes import ClassSet, get_class_set
from pipa_edge.data.config import DatasetConfig
from pipa_edge.data.datasets.base import resize_pair
from pipa_edge.data.transforms import EvalTransform, TrainTransform, TransformConfig
from pipa_edge.errors import ConfigError, DataError

LATER_TYPES = ("cityscapes_seq", "viper", "synthia_seq", "video")


class DatasetView(Dataset):
    """``limit``/``resize`` applied to a dataset built elsewhere (keeps ``classes`` and ``root``)."""

    def __init__(self, dataset, limit: int | None = None, resize: Sequence[int] | None = None):
        self.dataset = dataset
        self.classes: ClassSet = dataset.classes
        self.root: Path = Path(getattr(dataset, "root", "."))
        n = len(dataset)
        self._n = min(n, limit) if limit is not None else n
        self.resize = tuple(resize) if resize is not None else None

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, i: int) -> dict:
        if not 0 <= i < self._n:
            raise IndexError(f"index {i} out of range for {self._n} samples")
        item = dict(self.dataset[i])
        if self.resize is not None:
            item["image"], lab = resize_pair(item["image"], item.get("label"), self.resize)
            if lab is not None:
                item["label"] = lab
        return item


def _requested_classes(cfg: DatasetConfig) -> ClassSet | None:
    return get_class_set(cfg.classes) if cfg.classes else None


def _build_pairs(cfg: DatasetConfig) -> Dataset:
    """A :class:`~pipa_edge.data.datasets.pairs.PairDataset` over the dataset without ``pair_offset``
    (flow per ``flow``/``flow_root``)."""
    from pipa_edge.data.datasets.pairs import PairDataset
    from pipa_edge.data.flow import build_flow_provider

    base = build_dataset(cfg.model_copy(update={"pair_offset": None}))
    provider = None
    if cfg.flow == "dis":
        provider = build_flow_provider("dis", cache_dir=cfg.flow_root)
    elif cfg.flow == "precomputed":
        provider = build_flow_provider("precomputed", root=cfg.flow_root)
    return PairDataset(base, int(cfg.pair_offset), provider)


def build_dataset(cfg: DatasetConfig | Mapping[str, Any]) -> Dataset:
    """Dispatch on ``cfg.type``; a dict is validated into a :class:`DatasetConfig` first."""
    if not isinstance(cfg, DatasetConfig):
        cfg = validate(DatasetConfig, cfg, where="dataset")
    if cfg.limit is not None and cfg.limit <= 0:
        raise ConfigError(f"dataset {cfg.root}: key 'limit': must be a positive number of samples")
    if cfg.fold is not None:  # one part of a sequence-aware k-fold split (pipa_edge.data.folds)
        from pipa_edge.data.folds import apply_fold
        return apply_fold(build_dataset(cfg.model_copy(update={"fold": None})), cfg)
    if getattr(cfg, "pair_offset", None) is not None:  # video: frame pairs (t, t-k)
        return _build_pairs(cfg)
    classes = _requested_classes(cfg)
    root = Path(cfg.root).expanduser()
    common = dict(labels=cfg.labels, resize=cfg.resize, limit=cfg.limit)
    t = cfg.type
    if t == "camvid":
        from pipa_edge.data.datasets.camvid import CamVidDataset
        return CamVidDataset(root, cfg.split, classes=classes, **common)
    if t == "folder":
        from pipa_edge.data.datasets.folder import FolderDataset
        if classes is None:
            raise ConfigError(f"dataset {root}: key 'classes': a 'folder' dataset needs a class-set name")
        return FolderDataset(root, classes, split=cfg.split, id_map=cfg.id_map, **common)
    if t == "cityscapes":
        from pipa_edge.data.datasets.cityscapes import CityscapesDataset
        return CityscapesDataset(root, cfg.split, classes=classes, **common)
    if t == "gta5":
        from pipa_edge.data.datasets.gta5 import GTA5Dataset
        return GTA5Dataset(root, cfg.split, classes=classes, **common)
    if t == "synthia":
        from pipa_edge.data.datasets.synthia import SynthiaDataset
        return SynthiaDataset(root, cfg.split, classes=classes, **common)
    if t == "synth":
        from pipa_edge.data.synth.dataset import SynthDataset
        ds = SynthDataset(root, cfg.split, labels=cfg.labels, classes=classes)
        if len(ds) == 0:
            raise DataError(f"{root}: no images found")
        if cfg.limit is not None or cfg.resize is not None:
            ds = DatasetView(ds, cfg.limit, cfg.resize)
        return ds
    if t == "collected":  # a folder written by `pipa-edge run SOURCE --collect DIR` (pseudo-labels)
        from pipa_edge.data.datasets.collected import CollectedDataset
        return CollectedDataset(root, classes=classes, **common)
    if t in LATER_TYPES + ("camvid_seq", "frames"):  # video sequences (single frames)
        from pipa_edge.data.datasets.sequences import build_sequence_dataset
        return build_sequence_dataset(cfg, classes)
    raise ConfigError(f"dataset {root}: key 'type': unknown dataset type '{t}'")  # pragma: no cover


class AugmentedDataset(Dataset):
    """``transform(dataset[i], rng)`` with ``rng = np.random.default_rng([seed, epoch, i])``.

    Call :meth:`set_epoch` before each epoch. With ``persistent_workers=True`` the workers keep
    their copy of this object, so the epoch change only reaches them when the DataLoader is
    re-created (or use non-persistent workers, the default).
    """

    def __init__(self, dataset, transform: Callable[[dict, np.random.Generator], dict], seed: int = 0):
        self.dataset = dataset
        self.transform = transform
        self.seed = int(seed)
        self.epoch = 0
        self.classes: ClassSet = dataset.classes
        self.root: Path = Path(getattr(dataset, "root", "."))

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.dataset)

    def rng(self, i: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.epoch, int(i)])

    def __getitem__(self, i: int) -> dict:
        if i < 0:
            i += len(self)
        return self.transform(self.dataset[i], self.rng(i))


def worker_init_fn(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: no OpenCV thread pool and one torch thread per worker (the
    workers are the parallelism; no oversubscription). Randomness does not depend on it:
    :class:`AugmentedDataset` seeds every item itself.
    """
    import cv2
    import torch

    cv2.setNumThreads(0)
    torch.set_num_threads(1)


def build_train_dataset(cfg: DatasetConfig | Mapping[str, Any], transform: TransformConfig | None = None,
                        seed: int = 0) -> AugmentedDataset:
    """``build_dataset`` + :class:`TrainTransform`."""
    return AugmentedDataset(build_dataset(cfg), TrainTransform(transform or TransformConfig()), seed)


def build_eval_dataset(cfg: DatasetConfig | Mapping[str, Any], resize: Sequence[int] | None = None,
                       resize_label: bool = True) -> AugmentedDataset:
    """``build_dataset`` + :class:`EvalTransform` (deterministic; the seed is unused)."""
    size = (int(resize[0]), int(resize[1])) if resize is not None else None
    return AugmentedDataset(build_dataset(cfg), EvalTransform(size, resize_label=resize_label), 0)
