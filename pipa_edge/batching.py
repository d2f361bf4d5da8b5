"""Torch-free batch sizing shared by train-side precise BN and export-side ONNX BN adaptation."""

from __future__ import annotations

__all__ = ["near_equal_batches"]


def near_equal_batches(n: int, batch_size: int) -> list[int]:
    """Sizes of the batches that cover ``n`` items with at most ``batch_size`` each: as few batches
    as that allows, of near-equal sizes (e.g. 31 at 8 → 8, 8, 8, 7), so no item is dropped and no
    batch is much smaller than the others (each batch counts once in the average)."""
    if n <= 0:
        return []
    k = -(-n // batch_size)
    return [n // k + (1 if i < n % k else 0) for i in range(k)]
