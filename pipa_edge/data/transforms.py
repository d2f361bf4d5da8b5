"""Training and evaluation transforms that keep image and label aligned.

A transform is called as ``t(sample, rng)`` on a dataset item
``{"image": uint8 (H, W, 3) RGB, "label": uint8 (H, W) (optional), "name": str}`` and returns
``{"image": torch.uint8 (3, H, W), "label": torch.int64 (H, W) (if present), "name": str}``.
Images stay uint8; normalisation happens on the device inside the model. Every random choice is
drawn from ``rng`` (a :class:`numpy.random.Generator`), so a seed fixes the result.

Training pipeline (mmseg/DAFormer order): optional resize to ``base_size`` → random scale in
``scale_range`` (aspect kept) → random crop ``crop_size`` (with mmseg's ``cat_max_ratio`` re-crop)
→ pad (image 0, label 255) → horizontal flip → photometric jitter (brightness, contrast,
saturation, hue; applied in random order, torchvision ``ColorJitter`` semantics) → gamma →
Gaussian blur → Gaussian noise. The photometric steps change the image only (never the label);
each is off by default and draws from ``rng`` only when enabled, so a config without them gives
the same crops as before. (Video pair transforms apply the colour jitter only.)
"""

from __future__ import annotations

from typing import Optional

import cv2
import numpy as np
import torch
from pydantic import Field, field_validator, model_validator

from pipa_edge.config import StrictModel
from pipa_edge.data.classes import IGNORE_INDEX
from pipa_edge.data.datasets.base import LABEL_INTERP


class TransformConfig(StrictModel):
    crop_size: tuple[int, int] = (512, 512)  # (H, W)
    scale_range: tuple[float, float] = (0.5, 2.0)  # relative to base_size (or the image size)
    base_size: Optional[tuple[int, int]] = None  # (H, W) resize before random scaling
    hflip: float = Field(0.5, ge=0.0, le=1.0)  # probability of a horizontal flip
    brightness: float = Field(0.0, ge=0.0)  # factor drawn from [1-b, 1+b]
    contrast: float = Field(0.0, ge=0.0)
    saturation: float = Field(0.0, ge=0.0)
    hue: float = Field(0.0, ge=0.0, le=0.5)  # shift drawn from [-h, h] (fraction of the hue circle)
    jitter_prob: float = Field(1.0, ge=0.0, le=1.0)  # probability that jitter is applied at all
    gamma: float = Field(0.0, ge=0.0, lt=1.0)  # x' = 255 (x/255)^g, g drawn from [1-gamma, 1+gamma]
    gamma_prob: float = Field(0.5, ge=0.0, le=1.0)
    blur_prob: float = Field(0.0, ge=0.0, le=1.0)  # probability of a Gaussian blur
    blur_sigma: tuple[float, float] = (0.15, 1.15)  # sigma (pixels) drawn from this range (DACS)
    noise_std: float = Field(0.0, ge=0.0)  # additive Gaussian noise, std drawn from [0, noise_std] grey levels
    noise_prob: float = Field(0.5, ge=0.0, le=1.0)
    cat_max_ratio: float = Field(1.0, gt=0.0, le=1.0)  # <1: re-crop (10 tries) while one class dominates

    @field_validator("crop_size", "base_size")
    @classmethod
    def _positive(cls, v):
        if v is not None and (v[0] <= 0 or v[1] <= 0):
            raise ValueError("sizes must be positive (H, W)")
        return v

    @model_validator(mode="after")
    def _scale_ok(self):
        lo, hi = self.scale_range
        if not 0 < lo <= hi:
            raise ValueError("scale_range must be (low, high) with 0 < low <= high")
        if not 0 < self.blur_sigma[0] <= self.blur_sigma[1]:
            raise ValueError("blur_sigma must be (low, high) with 0 < low <= high")
        return self

    @property
    def jitter_enabled(self) -> bool:
        return self.jitter_prob > 0 and any(v > 0 for v in (self.brightness, self.contrast, self.saturation, self.hue))


def to_tensors(image: np.ndarray, label: np.ndarray | None, name: str) -> dict:
    out = {"image": torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))), "name": name}
    if label is not None:
        out["label"] = torch.from_numpy(label.astype(np.int64))
    return out


def _resize(image: np.ndarray, label: np.ndarray | None, h: int, w: int):
    if image.shape[:2] != (h, w):
        shrink = h * w < image.shape[0] * image.shape[1]
        image = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
        if label is not None:
            label = cv2.resize(label, (w, h), interpolation=LABEL_INTERP)
    return image, label


def _crop_box(shape: tuple[int, int], crop: tuple[int, int], rng: np.random.Generator) -> tuple[int, int]:
    h, w = shape
    ch, cw = crop
    y = int(rng.integers(0, max(h - ch, 0) + 1))
    x = int(rng.integers(0, max(w - cw, 0) + 1))
    return y, x


def random_crop(image: np.ndarray, label: np.ndarray | None, crop: tuple[int, int], rng: np.random.Generator,
                cat_max_ratio: float = 1.0, ignore_index: int = IGNORE_INDEX):
    """Crop ``crop`` (H, W) at a random place; with ``cat_max_ratio < 1`` retry (up to 10 times,
    as mmseg) while one class covers more than that fraction of the crop's labelled pixels."""
    ch, cw = crop
    y, x = _crop_box(image.shape[:2], crop, rng)
    if cat_max_ratio < 1.0 and label is not None:
        for _ in range(10):
            sub = label[y:y + ch, x:x + cw]
            cnt = np.bincount(sub.ravel(), minlength=256)
            cnt[ignore_index] = 0
            cnt = cnt[cnt > 0]
            if len(cnt) > 1 and cnt.max() / cnt.sum() < cat_max_ratio:
                break
            y, x = _crop_box(image.shape[:2], crop, rng)
    image = image[y:y + ch, x:x + cw]
    if label is not None:
        label = label[y:y + ch, x:x + cw]
    return image, label


def pad_to(image: np.ndarray, label: np.ndarray | None, size: tuple[int, int], ignore_index: int = IGNORE_INDEX):
    """Pad bottom/right to at least ``size`` (H, W): image with 0, label with ``ignore_index``."""
    h, w = image.shape[:2]
    ph, pw = max(size[0] - h, 0), max(size[1] - w, 0)
    if ph or pw:
        image = cv2.copyMakeBorder(image, 0, ph, 0, pw, cv2.BORDER_CONSTANT, value=(0, 0, 0))
        if label is not None:
            label = cv2.copyMakeBorder(label, 0, ph, 0, pw, cv2.BORDER_CONSTANT, value=int(ignore_index))
    return image, label


def _lut_u8(img: np.ndarray, scale: float, offset: float) -> np.ndarray:
    lut = np.clip(np.rint(np.arange(256, dtype=np.float32) * scale + offset), 0, 255).astype(np.uint8)
    return cv2.LUT(img, lut)


def _shift_hue(img: np.ndarray, shift: float) -> np.ndarray:
    # 8-bit HSV (hue in 1/256 turns): ~10x faster than float HSV; within a few grey levels of
    # torchvision's adjust_hue (mean difference < 1 level)
    hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV_FULL)
    lut = ((np.arange(256) + int(round(shift * 256))) % 256).astype(np.uint8)
    hsv[..., 0] = cv2.LUT(hsv[..., 0], lut)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB_FULL)


def color_jitter(image: np.ndarray, cfg: TransformConfig, rng: np.random.Generator) -> np.ndarray:
    """Brightness/contrast/saturation/hue with factors drawn from ``rng``, in a random order.

    torchvision ``ColorJitter`` semantics on uint8 (each step rounds and saturates to 0..255):
    brightness ``x·f``; contrast ``x·f + mean(grey)·(1-f)``; saturation ``x·f + grey(x)·(1-f)``;
    hue: rotate the HSV hue by ``f`` of a full turn.
    """
    ops = []
    if cfg.brightness > 0:
        ops.append(("b", float(rng.uniform(max(0.0, 1 - cfg.brightness), 1 + cfg.brightness))))
    if cfg.contrast > 0:
        ops.append(("c", float(rng.uniform(max(0.0, 1 - cfg.contrast), 1 + cfg.contrast))))
    if cfg.saturation > 0:
        ops.append(("s", float(rng.uniform(max(0.0, 1 - cfg.saturation), 1 + cfg.saturation))))
    if cfg.hue > 0:
        ops.append(("h", float(rng.uniform(-cfg.hue, cfg.hue))))
    img = np.ascontiguousarray(image)
    for k in rng.permutation(len(ops)):
        img = adjust_colour(img, *ops[k])
    return img


def adjust_colour(img: np.ndarray, op: str, f: float) -> np.ndarray:
    """One jitter step on uint8 RGB: ``op`` in ``b``/``c``/``s``/``h`` (brightness, contrast,
    saturation factor; hue shift in turns)."""
    if op == "b":
        return _lut_u8(img, f, 0.0)
    if op == "c":
        mean = float(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).mean())
        return _lut_u8(img, f, mean * (1.0 - f))
    if op == "s":
        grey = cv2.cvtColor(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
        return cv2.addWeighted(img, f, grey, 1.0 - f, 0.0)
    if op == "h":
        return _shift_hue(img, f)
    raise ValueError(f"unknown colour op {op!r}")


def photometric(image: np.ndarray, cfg: TransformConfig, rng: np.random.Generator) -> np.ndarray:
    """Image-only steps after the geometry: colour jitter (``jitter_prob``), gamma (``gamma_prob``),
    Gaussian blur (``blur_prob``), Gaussian noise (``noise_prob``). uint8 RGB in and out; every
    random number comes from ``rng``; a disabled step draws nothing."""
    if cfg.jitter_enabled and rng.random() < cfg.jitter_prob:
        image = color_jitter(image, cfg, rng)
    if cfg.gamma > 0 and rng.random() < cfg.gamma_prob:
        g = float(rng.uniform(1.0 - cfg.gamma, 1.0 + cfg.gamma))
        lut = np.clip(np.rint(255.0 * (np.arange(256) / 255.0) ** g), 0, 255).astype(np.uint8)
        image = cv2.LUT(np.ascontiguousarray(image), lut)
    if cfg.blur_prob > 0 and rng.random() < cfg.blur_prob:
        sigma = float(rng.uniform(*cfg.blur_sigma))
        k = 2 * int(np.ceil(3 * sigma)) + 1
        image = cv2.GaussianBlur(np.ascontiguousarray(image), (k, k), sigmaX=sigma, sigmaY=sigma,
                                 borderType=cv2.BORDER_REFLECT_101)
    if cfg.noise_std > 0 and rng.random() < cfg.noise_prob:
        std = float(rng.uniform(0.0, cfg.noise_std))
        noise = rng.standard_normal(image.shape, dtype=np.float32) * std
        image = np.clip(image.astype(np.float32) + noise, 0, 255).round().astype(np.uint8)
    return image


class TrainTransform:
    """Random scale → crop (+cat_max_ratio) → pad → flip → photometric → tensors. See module docstring."""

    def __init__(self, cfg: TransformConfig | None = None):
        self.cfg = cfg or TransformConfig()

    def __call__(self, sample: dict, rng: np.random.Generator) -> dict:
        cfg = self.cfg
        image, label = sample["image"], sample.get("label")
        if label is not None and label.shape[:2] != image.shape[:2]:
            raise ValueError(f"{sample.get('name')}: image {image.shape[:2]} and label {label.shape[:2]} differ")
        bh, bw = cfg.base_size if cfg.base_size is not None else image.shape[:2]
        s = float(rng.uniform(*cfg.scale_range))
        h, w = max(1, int(round(bh * s))), max(1, int(round(bw * s)))
        image, label = _resize(image, label, h, w)
        crop = (int(cfg.crop_size[0]), int(cfg.crop_size[1]))
        image, label = random_crop(image, label, crop, rng, cfg.cat_max_ratio)
        image, label = pad_to(image, label, crop)
        if rng.random() < cfg.hflip:
            image = image[:, ::-1]
            if label is not None:
                label = label[:, ::-1]
        image = photometric(image, cfg, rng)
        return to_tensors(image, label, sample.get("name", ""))

    def __repr__(self) -> str:
        return f"TrainTransform({self.cfg!r})"


class EvalTransform:
    """Optional resize to ``(H, W)`` (image bilinear/area, label nearest), then tensors.

    With ``resize_label=False`` the label keeps its full resolution (score at native size).
    """

    def __init__(self, resize: tuple[int, int] | None = None, resize_label: bool = True):
        self.resize = tuple(int(v) for v in resize) if resize is not None else None
        self.resize_label = resize_label

    def __call__(self, sample: dict, rng: np.random.Generator | None = None) -> dict:
        image, label = sample["image"], sample.get("label")
        if self.resize is not None:
            h, w = self.resize
            image, lab = _resize(image, label if self.resize_label else None, h, w)
            if self.resize_label:
                label = lab
        return to_tensors(image, label, sample.get("name", ""))

    def __repr__(self) -> str:
        return f"EvalTransform(resize={self.resize}, resize_label={self.resize_label})"
