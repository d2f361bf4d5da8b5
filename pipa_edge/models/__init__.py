"""Compact segmenters (the plain, exportable model)."""

from pipa_edge.models.segmenter import IMAGENET_MEAN, IMAGENET_STD, SegOutput, Segmenter
from pipa_edge.models.io import load_segmenter, save_segmenter
from pipa_edge.models.zoo import ARCHS, build_segmenter, load_weights

__all__ = ["ARCHS", "IMAGENET_MEAN", "IMAGENET_STD", "SegOutput", "Segmenter", "build_segmenter", "load_segmenter", "load_weights",
           "save_segmenter"]
