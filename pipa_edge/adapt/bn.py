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

from torch import nn


@contextmanager
def bn_running_stats(module: nn.Module, update: bool = True) -> Iterator[None]:
    """``update=False``: every BatchNorm of ``module`` updates stand-in copies of its buffers inside
    the block; the original buffer tensors are put back afterwards, never written to. (Copying the
    old values back in place instead would bump the version of tensors the block's autograd graph
    saved, and the later ``backward()`` would fail.)"""
    if update:
        yield
        return
    saved = []
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            orig = {k: b for k, b in m._buffers.items() if b is not None}
            saved.append((m, orig))
            for k, b in orig.items():
                m._buffers[k] = b.clone()
    try:
        yield
    finally:
        for m, orig in saved:
            m._buffers.update(orig)
