"""Compact segmenters: SegFormer (MiT-B0/B1) and CNNs (DeepLabV3+ ResNet-18, LR-ASPP MobileNetV3).

Built offline (``encoder_weights=None``); pretrained weights come only from a local file
(:func:`load_weights`). Asking for a hub download fails with a message saying so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch
from torch import nn

from pipa_edge.data.classes import ClassSet
from pipa_edge.errors import ConfigError, ModelFileError
from pipa_edge.models.segmenter import SegOutput, Segmenter


class SmpSegmenter(Segmenter):
    """Wraps a segmentation-models-pytorch encoder/decoder; the 1×1 classifier runs at stride 4."""

    def __init__(self, arch: str, smp_model: nn.Module, classes: ClassSet, **kw):
        super().__init__(classes, **kw)
        self.arch = arch
        self.encoder = smp_model.encoder
        self.decoder = smp_model.decoder
        head = smp_model.segmentation_head
        self.classifier = head[0] if isinstance(head, nn.Sequential) else head
        self.feature_dim = int(self.classifier.in_channels)
        self.output_stride = 4

    def forward_features(self, x: torch.Tensor) -> SegOutput:
        feats = self.decoder(self.encoder(x))
        return SegOutput(feats, self.classifier(feats))


class LRASPPSegmenter(Segmenter):
    """torchvision LR-ASPP MobileNetV3-Large (stride 8 features after the LR-ASPP head)."""

    def __init__(self, classes: ClassSet, **kw):
        super().__init__(classes, **kw)
        from torchvision.models.segmentation import lraspp_mobilenet_v3_large

        net = lraspp_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=classes.num_classes)
        self.arch = "lraspp-mbv3"
        self.backbone = net.backbone
        head = net.classifier
        self.cbr, self.scale = head.cbr, head.scale
        self.low_classifier, self.high_classifier = head.low_classifier, head.high_classifier
        self.feature_dim = int(head.cbr[0].out_channels)
        self.output_stride = 8

    def forward_features(self, x: torch.Tensor) -> SegOutput:
        f = self.backbone(x)
        low, high = f["low"], f["high"]
        y = self.cbr(high) * self.scale(high)
        y = nn.functional.interpolate(y, size=low.shape[-2:], mode="bilinear", align_corners=False)
        return SegOutput(y, self.low_classifier(low) + self.high_classifier(y))


def _smp(arch: str, cls_name: str, encoder: str) -> Callable[[ClassSet], Segmenter]:
    def build(classes: ClassSet, **kw) -> Segmenter:
        import segmentation_models_pytorch as smp

        model = getattr(smp, cls_name)(encoder_name=encoder, encoder_weights=None, classes=classes.num_classes)
        return SmpSegmenter(arch, model, classes, **kw)

    return build


ARCHS: dict[str, Callable[..., Segmenter]] = {
    "segformer-b0": _smp("segformer-b0", "Segformer", "mit_b0"),
    "segformer-b1": _smp("segformer-b1", "Segformer", "mit_b1"),
    "segformer-b2": _smp("segformer-b2", "Segformer", "mit_b2"),
    "deeplabv3plus-r18": _smp("deeplabv3plus-r18", "DeepLabV3Plus", "resnet18"),
    "deeplabv3plus-mbv2": _smp("deeplabv3plus-mbv2", "DeepLabV3Plus", "mobilenet_v2"),
    "lraspp-mbv3": lambda classes, **kw: LRASPPSegmenter(classes, **kw),
}


def build_segmenter(arch: str, classes: ClassSet, weights: str | Path | None = None, **kw) -> Segmenter:
    """Build ``arch`` for ``classes``; optionally initialise from a local weights file."""
    if arch not in ARCHS:
        raise ConfigError(f"unknown model arch '{arch}' (known: {', '.join(ARCHS)})")
    model = ARCHS[arch](classes, **kw)
    if weights:
        load_weights(model, weights)
    return model


def _state_dict_of(obj) -> dict:
    if isinstance(obj, dict):
        for key in ("model", "state_dict", "segmenter"):
            if key in obj and isinstance(obj[key], dict):
                return _state_dict_of(obj[key])
        if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            return obj
    raise ModelFileError("weights file holds no state dict (expected a tensor dict, or one under "
                         "'model'/'state_dict')")


def load_weights(model: nn.Module, path: str | Path, strict_shapes: bool = True) -> dict:
    """Load a local weights file into ``model`` (whole model, or encoder-only) and report.

    Keys are matched as-is, then with an ``encoder.``/``backbone.`` prefix (ImageNet encoder files).
    Shapes are checked key by key: a mismatch is an error naming the key and both shapes.
    Returns ``{"loaded": n, "missing": [...], "unexpected": [...]}``.
    """
    text = str(path)
    if text.startswith(("http://", "https://", "hf://", "hub:")) or text in ("imagenet", "pretrained"):
        raise ModelFileError(f"weights '{text}': downloading weights is not supported (offline); "
                             "pass the path of a local weights file")
    p = Path(path)
    if not p.is_file():
        raise ModelFileError(f"{p}: weights file not found")
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling/zip error is a bad file
        raise ModelFileError(f"{p}: cannot read weights ({type(e).__name__}: {str(e).splitlines()[0][:120]})") from None
    try:
        sd = _state_dict_of(obj)
    except ModelFileError as e:
        raise ModelFileError(f"{p}: {e}") from None
    own = model.state_dict()
    best = {}
    for prefix in ("", "encoder.", "backbone."):
        cand = {prefix + k: v for k, v in sd.items() if prefix + k in own}
        if len(cand) > len(best):
            best = cand
    if not best:
        raise ModelFileError(f"{p}: no parameter name matches this model ({type(model).__name__})")
    for k, v in best.items():
        if own[k].shape != v.shape and strict_shapes:
            raise ModelFileError(f"{p}: shape mismatch at '{k}': file {tuple(v.shape)} vs model {tuple(own[k].shape)}")
    model.load_state_dict(best, strict=False)
    return {"loaded": len(best), "missing": sorted(set(own) - set(best)), "unexpected": len(sd) - len(best)}
