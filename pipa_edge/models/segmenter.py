"""The plain segmenter: the one model that is trained, exported and deployed.

A :class:`Segmenter` maps a normalised image batch ``(B, 3, H, W) float`` to logits
``(B, K, H, W)`` at input resolution. For training it also exposes its decoder features
(``forward_features``), on which training-only projection heads (pixel/patch/temporal contrast)
are built by :mod:`pipa_edge.adapt`. Nothing training-only is ever registered on it, so the
exported graph has exactly the deployed parameters.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from pipa_edge.data.classes import ClassSet

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class SegOutput(NamedTuple):
    features: torch.Tensor  # (B, C, h, w) decoder features at the output stride
    logits_low: torch.Tensor  # (B, K, h, w) logits at the output stride


class Segmenter(nn.Module):
    """Base class. Subclasses implement :meth:`forward_features`.

    Attributes set by subclasses: ``arch`` (registry name), ``feature_dim`` (C of the decoder
    features), ``output_stride`` (input size / feature size).
    """

    arch: str = "base"
    feature_dim: int = 0
    output_stride: int = 4

    def __init__(self, classes: ClassSet, mean=IMAGENET_MEAN, std=IMAGENET_STD):
        super().__init__()
        self.classes = classes
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)

    @property
    def num_classes(self) -> int:
        return self.classes.num_classes

    def forward_features(self, x: torch.Tensor) -> SegOutput:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits at input resolution (bilinear, ``align_corners=False``, explicit size)."""
        out = self.forward_features(x)
        return F.interpolate(out.logits_low, size=x.shape[-2:], mode="bilinear", align_corners=False)

    def normalize(self, img_uint8_nchw: torch.Tensor) -> torch.Tensor:
        """``uint8``/``[0,255]`` NCHW RGB → normalised float, with this model's mean/std."""
        mean = torch.tensor(self.mean, device=img_uint8_nchw.device).view(1, 3, 1, 1) * 255.0
        std = torch.tensor(self.std, device=img_uint8_nchw.device).view(1, 3, 1, 1) * 255.0
        return (img_uint8_nchw.float() - mean) / std

    def describe(self) -> dict:
        """What a checkpoint/sidecar needs to rebuild and use this model."""
        return {"arch": self.arch, "classes": self.classes.to_dict(), "mean": list(self.mean), "std": list(self.std),
                "feature_dim": self.feature_dim, "output_stride": self.output_stride}
