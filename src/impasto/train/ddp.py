"""Data-parallel training with ``torch.distributed`` when launched by ``torchrun``.

``torchrun --nproc-per-node N -m impasto train run ...`` (or ``--nnodes M --rdzv-endpoint
HOST:PORT`` across machines) sets ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK``; each process then
trains on its shard of every batch (the sampler shards the data), gradients are averaged by DDP,
and only rank 0 writes checkpoints and logs. gloo on the CPU, NCCL on GPUs. A plain ``impasto
train run`` is a world of one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = ["World", "setup", "teardown", "all_sum", "wrap"]


@dataclass(frozen=True)
class World:
    """This process's place: ``rank`` of ``size``, its ``device``, and the backend in use."""

    rank: int
    size: int
    device: torch.device
    backend: str | None

    @property
    def main(self) -> bool:
        """Rank 0: the one process that writes files and reports progress."""
        return self.rank == 0


def setup(device: torch.device) -> World:
    """Join the process group when launched by torchrun (``WORLD_SIZE`` > 1)."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World(0, 1, device, None)
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
        backend = "nccl"
    else:
        backend = "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend)
    return World(dist.get_rank(), dist.get_world_size(), device, backend)


def teardown(world: World, finished: bool = True) -> None:
    """Leave the process group. After a run that ended normally every process first waits for
    the others: one that destroyed its group while another was still leaving made that one
    abort at exit now and then (gloo, "terminate called without an active exception": 2-3 of
    15 two-process runs). After an error no barrier (the others may never reach it)."""
    if world.size > 1 and dist.is_initialized():
        if finished:
            dist.barrier()
        dist.destroy_process_group()


def all_sum(world: World, values: list[float]) -> list[float]:
    """Sum ``values`` over all processes (float64)."""
    if world.size == 1:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=world.device)
    dist.all_reduce(t)
    return t.tolist()


def wrap(model: torch.nn.Module, world: World) -> torch.nn.Module:
    """The model in DistributedDataParallel when several processes train it."""
    if world.size == 1:
        return model
    ids = [world.device.index] if world.device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)
