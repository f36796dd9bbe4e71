"""Multi-process training under `torchrun`, and nothing at all otherwise.

When `WORLD_SIZE > 1` (torchrun sets it with RANK, LOCAL_RANK, MASTER_ADDR/PORT), `fit`
joins the process group (gloo on CPU, nccl on CUDA), wraps the model in
DistributedDataParallel, gives each process every world_size-th training row, averages
the training loss over processes, and lets only rank 0 write checkpoints. Evaluation
is run whole by every process (validation sets are small), so every process takes the
same early-stopping decision without talking. With WORLD_SIZE unset or 1, `Context` is
a single process and none of torch.distributed is touched.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel


@dataclass(frozen=True)
class Context:
    world_size: int = 1
    rank: int = 0
    local_rank: int = 0

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def context_from_env() -> Context:
    """What torchrun says about this process (a single process when it says nothing)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Context()
    return Context(world, int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0")))


def device_for(ctx: Context, device: torch.device) -> torch.device:
    """Each process on its own GPU under torchrun; other devices are shared."""
    if ctx.active and device.type == "cuda":
        torch.cuda.set_device(ctx.local_rank)
        return torch.device("cuda", ctx.local_rank)
    return device


def start(ctx: Context, device: torch.device) -> bool:
    """Join the process group unless already joined; True when this call joined it
    (so the same call site leaves it again)."""
    if not ctx.active or dist.is_initialized():
        return False
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo",
                            rank=ctx.rank, world_size=ctx.world_size)
    return True


def stop(joined: bool) -> None:
    if joined and dist.is_initialized():
        dist.destroy_process_group()


def wrap(ctx: Context, model: nn.Module, device: torch.device) -> nn.Module:
    """The module the training step calls: DDP over `model` under torchrun, else `model`.

    Re-wrapped whenever the set of trainable parameters changes (DDP registers the
    parameters that need gradients when it is built).
    """
    if not ctx.active:
        return model
    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids, broadcast_buffers=True)


def mean_over_processes(ctx: Context, value: float, device: torch.device) -> float:
    """The mean of a number over processes (the value itself in a single process)."""
    if not ctx.active:
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return float(tensor.item()) / ctx.world_size


def sync_buffers(ctx: Context, model: nn.Module) -> None:
    """Copy rank 0's buffers (batch-norm statistics) to every process. DDP broadcasts them
    at the start of each forward, so after the last training step they differ by rank;
    evaluating and saving a model needs them equal."""
    if ctx.active:
        for buffer in model.buffers():
            dist.broadcast(buffer, src=0)


def barrier(ctx: Context) -> None:
    if ctx.active:
        dist.barrier()
