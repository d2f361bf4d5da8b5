"""What a training run is built from: seeding, the source/target/val datasets of a
:class:`~pipa_edge.train.config.TrainConfig`, and the segmenter wrapped in its method."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch

from pipa_edge.errors import ConfigError, ModelFileError
from pipa_edge.train.config import TrainConfig

TARGET_SEED_OFFSET = 7_777_777  # target augmentations draw from a different seed than source ones


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def _val_name(cfg, i: int, n: int) -> str:
    base = f"{cfg.type}_{Path(cfg.root).name}_{cfg.split}".replace("/", "_")
    return base if n == 1 else f"{i}_{base}"


def in_model_classes(d, classes: str):
    """Datasets without an explicit class set deliver labels in the model's classes (mapped by name)."""
    return d.model_copy(update={"classes": classes}) if d.classes is None else d


def build_datasets(cfg: TrainConfig):
    from pipa_edge.data.build import AugmentedDataset, build_dataset, build_eval_dataset
    from pipa_edge.data.classes import get_class_set
    from pipa_edge.data.transforms import TrainTransform

    model_classes = get_class_set(cfg.model.classes)
    src_base = build_dataset(in_model_classes(cfg.source, cfg.model.classes))
    if not getattr(src_base, "has_labels", True) or not cfg.source.labels:
        raise ConfigError(f"source dataset {cfg.source.root}: key 'source.labels': source images need labels")
    if tuple(src_base.classes.names) != tuple(model_classes.names):
        raise ConfigError(f"source dataset {cfg.source.root}: key 'source.classes': '{src_base.classes.name}' "
                          f"differs from model.classes '{model_classes.name}'")
    source = AugmentedDataset(src_base, TrainTransform(cfg.transform), cfg.seed)
    target = None
    if cfg.target is not None:
        tcfg = in_model_classes(cfg.target, cfg.model.classes).model_copy(update={"labels": False})
        tgt_base = build_dataset(tcfg)
        tgt_tf = TrainTransform(cfg.target_transform or cfg.transform)
        if getattr(tgt_base, "yields_pairs", False):  # video: same crop/flip/jitter for frames t and t-k (+ flow)
            from pipa_edge.data.datasets.pairs import PairTrainTransform
            tgt_tf = PairTrainTransform(tgt_tf.cfg)
        target = AugmentedDataset(tgt_base, tgt_tf, cfg.seed + TARGET_SEED_OFFSET)
    vals = cfg.val_list
    val = {_val_name(v, i, len(vals)): build_eval_dataset(in_model_classes(v, cfg.model.classes))
           for i, v in enumerate(vals)}
    return source, target, val


def build_model_and_method(cfg: TrainConfig, device: torch.device):
    from pipa_edge.data.classes import get_class_set
    from pipa_edge.models.io import read_checkpoint
    from pipa_edge.models.zoo import build_segmenter
    from pipa_edge.train.method import build_method

    classes = get_class_set(cfg.model.classes)
    seg = build_segmenter(cfg.model.arch, classes, weights=cfg.model.weights)
    if cfg.init_from:
        ck = read_checkpoint(cfg.init_from)
        meta = ck["segmenter"].get("meta", {})
        if meta.get("arch") != cfg.model.arch:
            raise ModelFileError(f"{cfg.init_from}: init_from holds arch '{meta.get('arch')}', config says "
                                 f"'{cfg.model.arch}' (key 'model.arch')")
        names = tuple(meta.get("classes", {}).get("names", ()))
        if names != tuple(classes.names):
            raise ModelFileError(f"{cfg.init_from}: init_from classes differ from model.classes '{classes.name}'")
        seg.load_state_dict(ck["segmenter"]["state_dict"], strict=True)
    method = build_method(cfg.method, seg.to(device), cfg.adapt)
    return method.to(device)
