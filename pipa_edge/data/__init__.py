"""Datasets, class sets, transforms and the embedded synthetic sim→real generator."""

from pipa_edge.data.classes import CLASS_SETS, IGNORE_INDEX, ClassSet, get_class_set

__all__ = ["CLASS_SETS", "IGNORE_INDEX", "ClassSet", "get_class_set"]
