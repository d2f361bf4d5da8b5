"""Process-group setup for ``torchrun`` (DDP) and device choice.

``torchrun --nproc_per_node N -m pipa_edge.cli.main train cfg.yaml`` sets ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``; :func:`setup` then joins the
group with ``nccl`` on CUDA or ``gloo`` on CPU. Without those variables it is a single process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from pipa_edge.errors import ConfigError


@dataclass
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    owns_group: bool = False  # this call initialised the group (and should destroy it)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1


def pick_device(name: str, local_rank: int = 0) -> torch.device:
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("key 'device': 'cuda' asked but no CUDA device is available (use device=auto or cpu)")
        return torch.device("cuda", local_rank % max(torch.cuda.device_count(), 1))
    if torch.cuda.is_available():
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    return torch.device("cpu")


def setup(device_name: str) -> DistInfo:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(device_name, local_rank)
    if world <= 1:
        return DistInfo(0, 1, 0, device, False)
    owns = False
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend=backend, rank=rank, world_size=world)
        owns = True
    return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank, device, owns)


def barrier(info: DistInfo) -> None:
    if info.distributed:
        dist.barrier()


def teardown(info: DistInfo) -> None:
    if info.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def broadcast_buffers(info: DistInfo, module: torch.nn.Module) -> None:
    """Copy rank 0's buffers (BN running stats, which each rank updates from its own shard) to all ranks."""
    if info.distributed:
        for b in module.buffers():
            dist.broadcast(b.data, src=0)


def weights_fingerprint(module: torch.nn.Module) -> torch.Tensor:
    """A float64 vector (one entry per tensor) summarising parameters and buffers, for sync checks."""
    vals = [t.detach().double().sum() + (t.detach().double() ** 2).sum()
            for t in list(module.parameters()) + list(module.buffers()) if t.is_floating_point()]
    return torch.stack(vals).cpu() if vals else torch.zeros(1, dtype=torch.float64)


def ranks_in_sync(info: DistInfo, module: torch.nn.Module) -> bool:
    """True when every rank holds the same weights (compared by fingerprint; True for 1 process)."""
    if not info.distributed:
        return True
    fp = weights_fingerprint(module)
    if info.device.type == "cuda":
        fp = fp.to(info.device)
    gathered = [torch.zeros_like(fp) for _ in range(info.world)]
    dist.all_gather(gathered, fp)
    return all(torch.equal(gathered[0], g) for g in gathered[1:])
