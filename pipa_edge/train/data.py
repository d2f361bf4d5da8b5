"""Resumable, shardable batch streams for training.

The order of samples is a pure function of ``(seed, stream, epoch)``; augmentation randomness is
a pure function of ``(seed, epoch, index)`` (``AugmentedDataset``). So the batch at global
iteration ``it`` is fully determined by ``it``: ``epoch = it // iters_per_epoch`` and
``position = it % iters_per_epoch``. A resumed run rebuilds the stream at its iteration and sees
exactly the batches the uninterrupted run would have seen, whatever ``num_workers`` is.

Under DDP each rank takes every ``world``-th index of the epoch's permutation (padded by wrapping,
like ``DistributedSampler``), so the ranks see disjoint samples of the same epoch.
"""

from __future__ import annotations

from typing import Callable, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

from pipa_edge.errors import ConfigError


def epoch_order(n: int, seed: int, epoch: int, stream: int = 0) -> np.ndarray:
    """The permutation of ``range(n)`` used in ``epoch`` (deterministic)."""
    return np.random.default_rng([int(seed), int(stream), int(epoch)]).permutation(n)


def shard(order: np.ndarray, rank: int, world: int) -> np.ndarray:
    """Rank ``rank``'s share of an epoch order (padded by wrapping so every rank has as many)."""
    if world <= 1:
        return order
    per = -(-len(order) // world)
    padded = np.resize(order, per * world)  # repeats from the start when n % world != 0
    return padded[rank::world]


class ShardSampler(Sampler[int]):
    """Indices of one epoch for one rank, starting at ``start`` (a sample position)."""

    def __init__(self, n: int, seed: int, epoch: int, rank: int = 0, world: int = 1, start: int = 0,
                 stream: int = 0, order: np.ndarray | None = None):
        order = epoch_order(n, seed, epoch, stream) if order is None else np.asarray(order)
        self.indices = shard(order, rank, world)[start:].tolist()

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


class BatchStream:
    """An endless stream of batches from an ``AugmentedDataset``, resumable at any iteration."""

    def __init__(self, dataset, batch_size: int, seed: int, rank: int = 0, world: int = 1,
                 num_workers: int = 0, stream: int = 0, name: str = "source", pin_memory: bool = False,
                 order_fn: Callable[[int], np.ndarray] | None = None):
        """``order_fn(epoch)``: the epoch's sample order (``len(dataset)`` indices, repeats allowed,
        a pure function of the epoch, e.g. :meth:`RareClassSampler.epoch_indices`); default: a
        seeded permutation."""
        self.dataset, self.batch_size = dataset, int(batch_size)
        self.order_fn = order_fn
        self.seed, self.rank, self.world, self.stream = int(seed), int(rank), int(world), int(stream)
        self.num_workers, self.pin_memory = int(num_workers), pin_memory
        n = len(dataset)
        per_rank = -(-n // self.world)
        self.iters_per_epoch = per_rank // self.batch_size
        if self.iters_per_epoch == 0:
            raise ConfigError(f"{name}: {n} samples are fewer than batch_size {batch_size} × {world} process(es) "
                              f"(key 'batch_size')")

    def position(self, it: int) -> tuple[int, int]:
        """``(epoch, batch position in the epoch)`` of global iteration ``it``."""
        return it // self.iters_per_epoch, it % self.iters_per_epoch

    def _loader(self, epoch: int, start_batch: int) -> DataLoader:
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)
        order = self.order_fn(epoch) if self.order_fn is not None else None
        sampler = ShardSampler(len(self.dataset), self.seed, epoch, self.rank, self.world,
                               start_batch * self.batch_size, self.stream, order)
        # a private generator: creating the loader must not consume the global torch RNG
        gen = torch.Generator().manual_seed(int(self.seed) * 1000003 + epoch * 101 + self.stream)
        return DataLoader(self.dataset, batch_size=self.batch_size, sampler=sampler, drop_last=True,
                          num_workers=self.num_workers, generator=gen, pin_memory=self.pin_memory,
                          persistent_workers=False)

    def batches(self, start_it: int = 0) -> Iterator[dict]:
        """Batches for iterations ``start_it, start_it + 1, ...`` forever."""
        epoch, pos = self.position(start_it)
        while True:
            for batch in self._loader(epoch, pos):
                yield batch
            epoch, pos = epoch + 1, 0


def strip_names(batch: dict) -> dict:
    """Drop the list of sample names (not tensors) before moving a batch to the device."""
    return {k: v for k, v in batch.items() if isinstance(v, torch.Tensor)}


def to_device(batch: dict, device: torch.device) -> dict:
    nb = device.type == "cuda"
    return {k: (to_device(v, device) if isinstance(v, dict) else
                v.to(device, non_blocking=nb) if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}
