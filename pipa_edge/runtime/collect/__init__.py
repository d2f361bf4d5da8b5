"""On-device pseudo-label collection: select frames, store them atomically (read back as a dataset by
:class:`pipa_edge.data.datasets.collected.CollectedDataset`).

Heavy modules are imported on first use so ``import pipa_edge.runtime.collect`` stays cheap.
"""

from __future__ import annotations

from pipa_edge.runtime.collect.config import CollectConfig, load_collect_config

__all__ = ["CollectConfig", "load_collect_config", "Collector", "collection_stats",
           "verify_collection", "prune_collection"]


def __getattr__(name: str):
    if name == "Collector":
        from pipa_edge.runtime.collect.collector import Collector
        return Collector
    if name in ("collection_stats", "verify_collection", "prune_collection"):
        from pipa_edge.runtime.collect import ops
        return getattr(ops, name)
    raise AttributeError(name)
