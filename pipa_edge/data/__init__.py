"""Datasets, class sets, transforms and the embedded synthetic sim→real generator."""

from pipa_edge.data.classes import CLASS_SETS, IGNORE_INDEX, ClassSet, get_class_set

# Loaders/transforms pull in torch and OpenCV: exported lazily so `import pipa_edge.data.classes` stays cheap.
_LAZY = {
    "build_dataset": "pipa_edge.data.build",
    "build_train_dataset": "pipa_edge.data.build",
    "build_eval_dataset": "pipa_edge.data.build",
    "AugmentedDataset": "pipa_edge.data.build",
    "worker_init_fn": "pipa_edge.data.build",
    "TransformConfig": "pipa_edge.data.transforms",
    "TrainTransform": "pipa_edge.data.transforms",
    "EvalTransform": "pipa_edge.data.transforms",
    "CamVidDataset": "pipa_edge.data.datasets",
    "CityscapesDataset": "pipa_edge.data.datasets",
    "FolderDataset": "pipa_edge.data.datasets",
    "GTA5Dataset": "pipa_edge.data.datasets",
    "SynthiaDataset": "pipa_edge.data.datasets",
}

__all__ = ["CLASS_SETS", "IGNORE_INDEX", "ClassSet", "get_class_set", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'pipa_edge.data' has no attribute '{name}'")
