"""Re-estimate BatchNorm running statistics with the final weights ("precise BN" / AdaBN).

During training the running statistics are an exponential average over training batches: crops
of the training size, from weights that kept changing. The deployed model sees whole frames of
the evaluation size. :func:`recompute_bn_stats` replaces every BN layer's ``running_mean`` /
``running_var`` by the plain average, over ``K`` batches, of the batch statistics that the *final*
weights produce on the given images (no-grad forwards with only the BN layers in training mode,
so dropout / drop-path are off as at inference; nothing else changes):

    running_mean = 1/K Σ_k mean_k(x),   running_var = 1/K Σ_k var_k(x)   (unbiased per batch)

which is PyTorch's cumulative average (``momentum=None``). Fed with unlabelled target images it is
AdaBN (Li et al., 2016); fed with the training images it is precise BN (Wu & Johnson, 2021).
``TrainConfig.precise_bn`` runs it at the end of training, before the final evaluation and
``final.pt``; ``bench/bn_scale.py`` applies it to saved checkpoints.
"""

from __future__ import annotations

from typing import Iterable

import torch
from torch import nn

from pipa_edge.batching import near_equal_batches as precise_bn_batches

__all__ = ["bn_layers", "recompute_bn_stats", "precise_bn_batches", "precise_bn_images", "ImageSizeMismatch"]


def bn_layers(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """The BatchNorm layers (any dimension, SyncBatchNorm included) that track running statistics."""
    return [m for m in model.modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]


@torch.no_grad()
def recompute_bn_stats(model, batches: Iterable[torch.Tensor], normalize: bool = True) -> int:
    """Set ``model``'s BN running statistics to the average batch statistics over ``batches``.

    ``batches``: NCHW tensors — uint8 / [0, 255] images passed through ``model.normalize`` when
    ``normalize`` (a :class:`~pipa_edge.models.segmenter.Segmenter`), else fed as they are. Batches
    of one image are skipped (a single image's statistics are too noisy for the spatially small
    deep layers). Returns the number of batches used; with none, the statistics are left as they
    were. Every module's mode and each BN layer's momentum are restored.
    """
    bns = bn_layers(model)
    if not bns:
        return 0
    saved = [(b.running_mean.clone(), b.running_var.clone(), b.num_batches_tracked.clone(), b.momentum) for b in bns]
    for b in bns:
        b.reset_running_stats()
        b.momentum = None  # cumulative moving average = plain mean over the batches
    modes = [(m, m.training) for m in model.modules()]
    model.eval()  # dropout / drop-path off: the features the deployed model computes ...
    for b in bns:
        b.train()  # ... normalised with this batch's statistics, which the layer accumulates
    used = 0
    try:
        for x in batches:
            if x.shape[0] < 2:
                continue
            model(model.normalize(x) if normalize else x)
            used += 1
    finally:
        for m, mode in modes:
            m.training = mode
        for b, (mean, var, n, momentum) in zip(bns, saved):
            b.momentum = momentum
            if not used:
                b.running_mean.copy_(mean)
                b.running_var.copy_(var)
                b.num_batches_tracked.copy_(n)
    return used


class ImageSizeMismatch(ValueError):
    """Whole images of different sizes cannot be batched (callers name the key / flag to set)."""

    def __init__(self, shapes):
        self.shapes = sorted(shapes)
        super().__init__(f"images differ in size {self.shapes}")


def precise_bn_images(dataset, num_images: int, batch_size: int, device, seed: int = 0):
    """Batches (uint8 NCHW on ``device``) of ``min(num_images, len(dataset))`` items of an
    eval-transformed dataset: a seeded random subset when the dataset is larger, every chosen image
    used, in near-equal batches of at most ``batch_size`` (:func:`precise_bn_batches`). Raises
    :class:`ImageSizeMismatch` when the images do not all have one size.
    """
    n = len(dataset)
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(n, generator=g)[:min(num_images, n)].tolist()
    shapes: set = set()
    start = 0
    for size in precise_bn_batches(len(idx), batch_size):
        imgs = [torch.as_tensor(dataset[j]["image"]) for j in idx[start:start + size]]
        start += size
        shapes.update(tuple(t.shape) for t in imgs)
        if len(shapes) > 1:
            raise ImageSizeMismatch(shapes)
        yield torch.stack(imgs).to(device)
