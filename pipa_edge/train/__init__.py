"""Training and evaluation.

* :func:`train` (``pipa_edge.train.trainer``) — the twin of ``pipa-edge train``; config
  :class:`TrainConfig` (``pipa_edge.train.config``), method plug-ins in ``pipa_edge.train.method``.
* :func:`evaluate_checkpoint` (``pipa_edge.train.eval_api``) — the twin of ``pipa-edge eval``;
  :func:`evaluate` (``pipa_edge.train.evaluate``) scores an in-memory model.
* ``pipa_edge.train.metrics`` — confusion matrices of tensors (``ConfusionMeter``); IoU and the mIoU
  conventions are in ``pipa_edge.metrics`` (shared with export and the benches).
"""

_LAZY = {
    "train": "pipa_edge.train.trainer",
    "TrainResult": "pipa_edge.train.trainer",
    "TrainConfig": "pipa_edge.train.config",
    "load_train_config": "pipa_edge.train.config",
    "evaluate": "pipa_edge.train.evaluate",
    "evaluate_checkpoint": "pipa_edge.train.eval_api",
}

__all__ = list(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'pipa_edge.train' has no attribute '{name}'")
