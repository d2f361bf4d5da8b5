"""BatchNorm running statistics around auxiliary forwards.

The student runs extra forwards in training mode besides the main one (the two patch-contrast
views, the temporal frame pairs). In training mode every BatchNorm layer normalises with the batch's
statistics *and* moves its running mean/variance toward them, so those extra batches (target-only
crops at another scale) also shape the running statistics that evaluation, export and — with
``teacher.ema_buffers`` — the EMA teacher's pseudo-labels use. :func:`bn_running_stats` lets a
forward normalise with its batch statistics but leaves the running statistics (and
``num_batches_tracked``) exactly as they were. Gradients are unaffected: they never flow through
the running statistics.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
from torch import nn


@contextmanager
def bn_running_stats(module: nn.Module, update: bool = True) -> Iterator[None]:
    """``update=False``: restore every BatchNorm buffer of ``module`` after the block."""
    if update:
        yield
        return
    saved = [(m, {k: b.detach().clone() for k, b in m.named_buffers(recurse=False) if b is not None})
             for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    try:
        yield
    finally:
        with torch.no_grad():
            for m, bufs in saved:
                for k, v in bufs.items():
                    getattr(m, k).copy_(v)
