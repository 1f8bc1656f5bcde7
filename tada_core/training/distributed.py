"""DistributedDataParallel plumbing: one process per device, launched by ``torchrun``.

``torchrun --nproc_per_node=N -m tada_core train …`` sets RANK / WORLD_SIZE / LOCAL_RANK; the
training loop then joins the process group (NCCL on CUDA, gloo on CPU), wraps the model in
DDP, splits the source and target streams across ranks, all-reduces metrics, and lets only
rank 0 write checkpoints and logs. Without those variables everything is a no-op.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup(device: str) -> tuple[DistContext, str]:
    """Join the process group when launched by torchrun; returns the context and this rank's device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext(), device
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device.startswith("cuda"):
        torch.cuda.set_device(local_rank)
        device = f"cuda:{local_rank}"
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.startswith("cuda") else "gloo")
    return DistContext(rank, world, local_rank), device


def all_reduce_sum(values: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """Sum ``values`` over ranks (a copy on CPU; no-op for a single process)."""
    if not ctx.enabled:
        return values
    backend_device = "cuda" if dist.get_backend() == "nccl" else "cpu"
    reduced = values.detach().to(backend_device, torch.float64).clone()
    dist.all_reduce(reduced)
    return reduced.cpu()


def barrier(ctx: DistContext) -> None:
    if ctx.enabled:
        dist.barrier()


def broadcast_flag(flag: bool, ctx: DistContext) -> bool:
    """Rank 0's ``flag`` on every rank (so that a stop request stops all ranks at the same step)."""
    if not ctx.enabled:
        return flag
    value = all_reduce_sum(torch.tensor([1.0 if (flag and ctx.is_main) else 0.0]), ctx)
    return bool(value.item() > 0)


def gather_cat(values: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """Every rank's ``values`` concatenated along dim 0, in rank order, on every rank (CPU)."""
    if not ctx.enabled:
        return values
    gathered: list[torch.Tensor | None] = [None] * ctx.world
    dist.all_gather_object(gathered, values.detach().cpu())
    return torch.cat([g for g in gathered if g is not None])
