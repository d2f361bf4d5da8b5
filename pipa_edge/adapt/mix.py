"""Image-level adaptation: ClassMix/DACS mixing, strong photometric augmentation, FDA style.

Images here are float ``(B, 3, H, W)`` in ``[0, 255]`` RGB (``segmenter.normalize`` accepts them).

ClassMix (DACS): for pair ``b`` pick half of the classes present in the source label ``y_s``
(rounded up, at random), ``M = isin(y_s, chosen)`` ``(B, 1, H, W)``, then::

    x_mix = M * x_s + (1 - M) * x_t
    y_mix = M * y_s + (1 - M) * y_pseudo
    w_mix = M * 1   + (1 - M) * w_pseudo        (source ignore pixels keep weight 1, CE ignores them)

FDA (Yang & Soatto 2020): replace the low-frequency amplitude (a centred window of side
``beta * min(H, W)``) of a source image's spectrum by a target image's amplitude, keeping the
source phase: day images take on the dusk brightness/colour cast while keeping their labels.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F


def classmix_masks(src_label: torch.Tensor, ignore_index: int, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """``(B, 1, H, W)`` float masks: 1 where the source pixel's class is one of the chosen half."""
    masks = []
    for y in src_label:
        classes = torch.unique(y)
        classes = classes[classes != ignore_index]
        n = classes.numel()
        if n == 0:
            masks.append(torch.zeros_like(y, dtype=torch.float32))
            continue
        perm = torch.randperm(n, generator=generator, device="cpu")[: (n + 1) // 2].to(classes.device)
        masks.append(torch.isin(y, classes[perm]).float())
    return torch.stack(masks).unsqueeze(1)


def mix(mask: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``mask * a + (1 - mask) * b`` for images ``(B,C,H,W)`` or maps ``(B,H,W)`` (mask ``(B,1,H,W)``)."""
    if a.dim() == 3:
        m = mask[:, 0]
        if a.dtype in (torch.int64, torch.int32, torch.uint8, torch.bool):
            return torch.where(m > 0.5, a, b)
        return m * a + (1 - m) * b
    return mask * a + (1 - mask) * b


def _gray(x: torch.Tensor) -> torch.Tensor:
    return (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])


def _hue_shift(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Rotate hue by ``shift`` (fraction of a turn, ``(B,)``) with the YIQ rotation (x in [0,1])."""
    yiq = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]], device=x.device)
    rgb = torch.linalg.inv(yiq)
    th = shift * 2 * math.pi
    c, s = torch.cos(th), torch.sin(th)
    b = x.shape[0]
    rot = torch.zeros(b, 3, 3, device=x.device)
    rot[:, 0, 0] = 1
    rot[:, 1, 1], rot[:, 1, 2], rot[:, 2, 1], rot[:, 2, 2] = c, -s, s, c
    m = rgb.unsqueeze(0) @ rot @ yiq.unsqueeze(0)  # (B,3,3)
    return torch.einsum("bij,bjhw->bihw", m, x)


def color_jitter(img: torch.Tensor, strength: float, p: float, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Per-image random brightness/contrast/saturation (factor in [1-s, 1+s]) and hue (±s/4 turn)."""
    if strength <= 0 or p <= 0:
        return img
    b, dev = img.shape[0], img.device
    r = lambda: torch.rand(b, generator=generator).to(dev)  # noqa: E731
    apply = (r() < p).float().view(b, 1, 1, 1)
    x = img / 255.0
    f = (1 + (2 * r() - 1) * strength).view(b, 1, 1, 1)
    y = x * f
    f = (1 + (2 * r() - 1) * strength).view(b, 1, 1, 1)
    y = (y - _gray(y).mean(dim=(2, 3), keepdim=True)) * f + _gray(y).mean(dim=(2, 3), keepdim=True)
    f = (1 + (2 * r() - 1) * strength).view(b, 1, 1, 1)
    y = (y - _gray(y)) * f + _gray(y)
    y = _hue_shift(y.clamp(0, 1), (2 * r() - 1) * strength / 4)
    y = y.clamp(0, 1) * 255.0
    return apply * y + (1 - apply) * img


def gaussian_blur(img: torch.Tensor, p: float, sigma: tuple[float, float] = (0.15, 1.15),
                  generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Per-image Gaussian blur with probability ``p`` (DACS: sigma uniform in ``sigma``)."""
    if p <= 0:
        return img
    out = img.clone()
    for i in range(img.shape[0]):
        if float(torch.rand(1, generator=generator)) >= p:
            continue
        s = sigma[0] + (sigma[1] - sigma[0]) * float(torch.rand(1, generator=generator))
        k = max(3, int(2 * math.ceil(3 * s) + 1))
        ax = torch.arange(k, device=img.device, dtype=img.dtype) - k // 2
        g = torch.exp(-(ax ** 2) / (2 * s * s))
        g = g / g.sum()
        x = img[i:i + 1]
        x = F.conv2d(F.pad(x, (k // 2, k // 2, 0, 0), mode="reflect"), g.view(1, 1, 1, k).repeat(3, 1, 1, 1), groups=3)
        x = F.conv2d(F.pad(x, (0, 0, k // 2, k // 2), mode="reflect"), g.view(1, 1, k, 1).repeat(3, 1, 1, 1), groups=3)
        out[i] = x[0]
    return out


def strong_augment(img: torch.Tensor, jitter: float, jitter_p: float, blur_p: float,
                   generator: Optional[torch.Generator] = None) -> torch.Tensor:
    return gaussian_blur(color_jitter(img, jitter, jitter_p, generator), blur_p, generator=generator)


def fda_source_to_target(src: torch.Tensor, tgt: torch.Tensor, beta: float = 0.01) -> torch.Tensor:
    """FDA: source images with the low-frequency amplitude of the target images (same batch size;
    the target batch is resized to the source size first). ``[0,255]`` float in and out."""
    if tgt.shape[-2:] != src.shape[-2:]:
        tgt = F.interpolate(tgt, size=src.shape[-2:], mode="bilinear", align_corners=False)
    fs = torch.fft.fft2(src.float(), dim=(-2, -1))
    ft = torch.fft.fft2(tgt.float(), dim=(-2, -1))
    amp_s, pha_s, amp_t = fs.abs(), fs.angle(), ft.abs()
    h, w = src.shape[-2:]
    bw = max(1, int(math.floor(min(h, w) * beta)))
    # low frequencies sit at the four corners of an unshifted spectrum
    for ys in (slice(0, bw), slice(h - bw, h)):
        for xs in (slice(0, bw), slice(w - bw, w)):
            amp_s[..., ys, xs] = amp_t[..., ys, xs]
    out = torch.fft.ifft2(torch.polar(amp_s, pha_s), dim=(-2, -1)).real
    return out.clamp(0, 255)
