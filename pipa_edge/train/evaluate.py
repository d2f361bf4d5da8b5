"""Evaluation: whole-image or sliding-window inference, confusion matrix, mIoU, reports.

Used by periodic validation in the trainer and by ``pipa-edge eval`` (:mod:`pipa_edge.train.eval_api`).
Images are scored at the resolution the dataset delivers (``DatasetConfig.resize`` /
``--imgsz`` resize image and label together, label nearest-neighbour); logits are resized to the
label size if they differ. Metric conventions: :mod:`pipa_edge.metrics`.
"""

from __future__ import annotations

import math
from contextlib import nullcontext

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from pipa_edge.log import progress
from pipa_edge.metrics import summarize
from pipa_edge.models.segmenter import Segmenter
from pipa_edge.train.config import EvalConfig
from pipa_edge.train.metrics import ConfusionMeter


def _windows(size: int, crop: int, stride: int) -> list[tuple[int, int]]:
    """mmseg slide grid along one axis: windows clipped to the image, last one flush with the end."""
    crop = min(crop, size)
    n = max(size - crop + stride - 1, 0) // stride + 1
    out = []
    for i in range(n):
        a = min(i * stride, size - crop)
        out.append((a, a + crop))
    return sorted(set(out))


def slide_logits(model: Segmenter, x: torch.Tensor, crop: tuple[int, int], stride: tuple[int, int] | None = None
                 ) -> torch.Tensor:
    """Average of the logits of overlapping ``crop`` windows (mmseg ``slide_inference``).

    ``x`` is the normalised batch ``(B, 3, H, W)``; returns ``(B, K, H, W)`` float32 logits. A window
    that covers the whole image gives exactly ``model(x)``.
    """
    _, _, h, w = x.shape
    ch, cw = int(crop[0]), int(crop[1])
    if stride is None:
        stride = (max(1, math.ceil(ch * 2 / 3)), max(1, math.ceil(cw * 2 / 3)))
    sh, sw = int(stride[0]), int(stride[1])
    ys, xs = _windows(h, ch, sh), _windows(w, cw, sw)
    if len(ys) == 1 and len(xs) == 1:
        return model(x).float()
    out = None
    count = torch.zeros((1, 1, h, w), device=x.device, dtype=torch.float32)
    for y0, y1 in ys:
        for x0, x1 in xs:
            logits = model(x[:, :, y0:y1, x0:x1]).float()
            if out is None:
                out = torch.zeros((x.shape[0], logits.shape[1], h, w), device=x.device, dtype=torch.float32)
            out[:, :, y0:y1, x0:x1] += logits
            count[:, :, y0:y1, x0:x1] += 1
    return out / count


def predict_logits(model: Segmenter, image_u8: torch.Tensor, cfg: EvalConfig) -> torch.Tensor:
    """uint8 ``(B, 3, H, W)`` on the model's device → float logits ``(B, K, H, W)``."""
    x = model.normalize(image_u8)
    if cfg.mode == "slide":
        return slide_logits(model, x, cfg.crop, cfg.stride)
    return model(x).float()


def label_lut(dataset_classes, model_classes) -> torch.Tensor | None:
    """``(256,)`` LUT mapping the dataset's class indices to the model's by name, or None if equal."""
    if dataset_classes is None or tuple(dataset_classes.names) == tuple(model_classes.names):
        return None
    return torch.from_numpy(dataset_classes.mapping_to(model_classes).astype(np.int64))


@torch.no_grad()
def evaluate(model: Segmenter, dataset, cfg: EvalConfig | None = None, device: torch.device | str = "cpu",
             num_workers: int = 0, amp: bool = False, desc: str = "eval", show_progress: bool = True) -> dict:
    """Score ``model`` on a dataset of ``{"image": uint8 (3,H,W), "label": int64 (H,W)}`` items.

    Returns :func:`pipa_edge.metrics.summarize` plus ``images``; the model is left in the mode
    it had (it runs in eval mode).
    """
    cfg = cfg or EvalConfig()
    device = torch.device(device)
    classes = model.classes
    lut = label_lut(getattr(getattr(dataset, "dataset", dataset), "classes", None), classes)
    meter = ConfusionMeter(classes.num_classes, classes.ignore_index)
    was_training = model.training
    model.eval()
    loader = DataLoader(dataset, batch_size=cfg.batch_size, shuffle=False, num_workers=num_workers)
    autocast = torch.autocast("cuda", dtype=torch.float16) if (amp and device.type == "cuda") else nullcontext()
    n = 0
    try:
        with progress(desc, total=len(dataset), disable=not show_progress) as bar:
            for batch in loader:
                if "label" not in batch:
                    raise ValueError(f"{desc}: the dataset has no labels to score against")
                img = batch["image"].to(device)
                lab = batch["label"].to(device)
                if lut is not None:
                    lab = lut.to(device)[lab.clamp(0, 255)]
                with autocast:
                    logits = predict_logits(model, img, cfg)
                if logits.shape[-2:] != lab.shape[-2:]:
                    logits = F.interpolate(logits, size=lab.shape[-2:], mode="bilinear", align_corners=False)
                meter.update(logits.argmax(1), lab)
                n += img.shape[0]
                bar.advance(img.shape[0])
    finally:
        model.train(was_training)
    summary = summarize(meter.matrix(), classes.names, cfg.miou_convention)
    summary["images"] = n
    summary["mode"] = cfg.mode
    return summary


def upsample_prediction(out: np.ndarray, kind: str, hw: tuple[int, int]) -> torch.Tensor:
    """A backend's output ``(B,K,h,w)`` scores or ``(B,h,w)`` labels → ``(B,H,W)`` int64 labels at ``hw``.

    Logits are resized bilinearly (``align_corners=False``) as :meth:`Segmenter.forward` does, then
    argmax. Probabilities are resized as log-probabilities: ``log p = logits - logsumexp`` and the
    logsumexp term is the same for every class at a pixel, so the argmax equals that of the resized
    logits — the exported model at model resolution scores what the ``.pt`` scores. Labels: nearest.
    """
    t = torch.from_numpy(np.ascontiguousarray(out))
    if kind == "labels":
        lab = t.long()
        if tuple(lab.shape[-2:]) != tuple(hw):
            lab = F.interpolate(lab[:, None].float(), size=tuple(hw), mode="nearest")[:, 0].long()
        return lab
    x = t.float()
    if kind == "probs":
        x = torch.log(x.clamp_min(1e-30))
    if tuple(x.shape[-2:]) != tuple(hw):
        x = F.interpolate(x, size=tuple(hw), mode="bilinear", align_corners=False)
    return x.argmax(1)


@torch.no_grad()
def evaluate_backend(backend, dataset, cfg: EvalConfig | None = None, num_workers: int = 0, desc: str = "eval",
                     show_progress: bool = True) -> dict:
    """Score an inference backend (an exported ONNX/engine/OpenVINO model) like :func:`evaluate`.

    Each image is resized to the backend's input size (``meta.input_size``, the deployed size) when it
    differs, run through ``backend.infer`` and its output resized back to the label size
    (:func:`upsample_prediction`). Whole-image inference only.
    """
    import cv2

    from pipa_edge.errors import ConfigError

    cfg = cfg or EvalConfig()
    if cfg.mode != "whole":
        raise ConfigError(f"{desc}: --mode {cfg.mode}: exported models are scored whole-image (--mode whole)")
    meta = backend.meta
    classes = meta.classes
    lut = label_lut(getattr(getattr(dataset, "dataset", dataset), "classes", None), classes)
    meter = ConfusionMeter(classes.num_classes, classes.ignore_index)
    mh, mw = meta.input_size
    n = 0
    loader = DataLoader(dataset, batch_size=1, shuffle=False, num_workers=num_workers)
    with progress(desc, total=len(dataset), disable=not show_progress) as bar:
        for batch in loader:
            if "label" not in batch:
                raise ValueError(f"{desc}: the dataset has no labels to score against")
            lab = batch["label"]
            if lut is not None:
                lab = lut[lab.clamp(0, 255)]
            frames = batch["image"].permute(0, 2, 3, 1).numpy()
            if frames.shape[1:3] != (mh, mw):
                frames = np.stack([cv2.resize(f, (mw, mh), interpolation=cv2.INTER_LINEAR) for f in frames])
            out = backend.infer(np.ascontiguousarray(frames, dtype=np.uint8))
            meter.update(upsample_prediction(out, meta.output, tuple(lab.shape[-2:])), lab)
            n += frames.shape[0]
            bar.advance(frames.shape[0])
    summary = summarize(meter.matrix(), classes.names, cfg.miou_convention)
    summary["images"] = n
    summary["mode"] = "whole"
    return summary


def plot_iou_bars(summary: dict, path, title: str = "", palette=None) -> None:
    """Horizontal bar chart of per-class IoU (%) with the mIoU line; classes not in the GT marked n/a."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    names = summary["class_names"]
    ious = [summary["per_class_iou"][n] for n in names]
    in_gt = set(summary["classes_in_gt"])
    vals = [100.0 * v if (v is not None and n in in_gt) else 0.0 for n, v in zip(names, ious)]
    colors = [tuple(c / 255 for c in palette[i]) if palette is not None else "tab:blue" for i in range(len(names))]
    fig, ax = plt.subplots(figsize=(7, 0.32 * len(names) + 1.4))
    y = np.arange(len(names))
    ax.barh(y, vals, color=colors, edgecolor="black", linewidth=0.5)
    for i, (n, v) in enumerate(zip(names, vals)):
        ax.text(v + 1, i, f"{v:.1f}" if n in in_gt else "n/a (not in GT)", va="center", fontsize=8)
    if summary.get("miou") is not None:
        m = 100 * summary["miou"]
        ax.axvline(m, color="red", linestyle="--", linewidth=1)
        ax.text(m, -0.9, f" mIoU {m:.1f}", color="red", fontsize=8, va="bottom")
    ax.set_yticks(y, names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 110)
    ax.set_xlabel("IoU (%)")
    ax.set_title(title or "per-class IoU", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
