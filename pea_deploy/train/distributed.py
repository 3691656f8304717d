"""Distributed training on PyTorch's own engine: torchrun sets the environment, torch.distributed
(gloo on CPU, nccl on CUDA) and DistributedDataParallel do the work; nothing here reimplements them.

The recipe's `batch_size` is the global batch: each of N ranks takes batch_size / N samples of every
step, drawn by DistributedSampler from the same per-epoch permutation, so N ranks see exactly the
samples one process would see with the same batch, and the LR needs no scaling.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from ..errors import ConfigError


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def context_from_env() -> DistContext:
    """The rank layout torchrun (or any launcher setting RANK/WORLD_SIZE/LOCAL_RANK) gives this process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext()
    return DistContext(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0")))


def init_process_group(ctx: DistContext, device: torch.device) -> DistContext:
    """Join the process group: nccl for CUDA, gloo for CPU. Returns the context with its backend."""
    if not ctx.enabled:
        return ctx
    backend = "nccl" if device.type == "cuda" else "gloo"
    if not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend=backend)
    return DistContext(ctx.rank, ctx.world_size, ctx.local_rank, backend)


def local_batch_size(global_batch: int, ctx: DistContext) -> int:
    if global_batch % ctx.world_size:
        raise ConfigError(f"data.batch_size {global_batch} (the global batch) must be divisible by the "
                          f"{ctx.world_size} processes")
    return global_batch // ctx.world_size


def epoch_indices(n: int, seed: int, epoch: int, ctx: DistContext, global_batch: int) -> torch.Tensor:
    """This rank's sample indices for one epoch, in step order, from torch's DistributedSampler
    (per-epoch seeding via set_epoch). Rank r's step i holds global-batch positions
    i*B + r, i*B + r + N, ...: across ranks, step i covers the same samples as one process's step i."""
    from torch.utils.data import DistributedSampler

    usable = (n // global_batch) * global_batch  # whole global batches only, as drop_last does
    sampler = DistributedSampler(range(n), num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True,
                                 seed=seed, drop_last=True)
    sampler.set_epoch(epoch)
    return torch.tensor(list(iter(sampler)), dtype=torch.long)[: usable // ctx.world_size]


def wrap_model(model: nn.Module, ctx: DistContext, device: torch.device) -> nn.Module:
    """DistributedDataParallel around `model` when distributed; the model itself otherwise."""
    if not ctx.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def same_on_all_ranks(values: list[float], ctx: DistContext) -> bool:
    """True when every rank holds exactly `values` (used to prove the alpha schedule is in step)."""
    if not ctx.enabled:
        return True
    mine = torch.tensor(values, dtype=torch.float64)
    gathered = [torch.empty_like(mine) for _ in range(ctx.world_size)]
    dist.all_gather(gathered, mine if ctx.backend == "gloo" else mine.cuda())
    return all(torch.equal(g.cpu(), mine) for g in gathered)


def barrier(ctx: DistContext) -> None:
    if ctx.enabled:
        dist.barrier()


def shutdown(ctx: DistContext) -> None:
    if ctx.enabled and dist.is_initialized():
        dist.destroy_process_group()
