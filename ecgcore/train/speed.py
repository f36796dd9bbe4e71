"""How fast a fit ran and with which speed settings: what results.json's "speed" says.

A reader comparing runs must know whether two numbers came from the same arithmetic
(precision), whether the GPU was kept busy (where the training rows lived, the measured
training samples/s) and how much device memory a run needed (the job worker uses that to
decide how many runs share a GPU: `ecgcore.jobs.gpu_memory`). The settings themselves
(`TrainConfig.SPEED_SETTINGS`) are not part of the run's hash; this is where they are kept.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

if TYPE_CHECKING:
    from ecgcore.train.epoch import Setup

log = logging.getLogger(__name__)


@dataclass
class Throughput:
    """Training samples and the seconds spent training them (the epochs' training steps
    only: validation, checkpoints and the optimizer's set-up are not counted)."""

    samples: int = 0
    seconds: float = 0.0

    def add(self, samples: int, seconds: float) -> None:
        self.samples += samples
        self.seconds += seconds

    @property
    def samples_per_second(self) -> float | None:
        return self.samples / self.seconds if self.seconds > 0 else None


def reset_peak_memory(device: torch.device) -> None:
    """Start counting the peak of allocated memory afresh (CUDA only)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_bytes(device: torch.device) -> int | None:
    """The most memory torch's allocator held for tensors on `device` since the last
    reset; None off CUDA (host memory is the OS's business)."""
    if device.type != "cuda":
        return None
    return int(torch.cuda.max_memory_allocated(device))


def compiled(net: nn.Module, enabled: bool) -> nn.Module:
    """`torch.compile(net)` when asked for (the parameters stay the model's own, so the
    optimizer and the saved weights are unchanged), else `net`."""
    if not enabled:
        return net
    log.info("training through torch.compile (the first steps compile the model)")
    return torch.compile(net)


def compiled_random(eager: bool) -> bool:
    """Make compiled code draw its random numbers (dropout masks) from torch's generator as
    eager code does (`eager=True`), so a compiled fit is the same run as an eager one up
    to floating-point order; inductor's own generator would give other masks. Returns the
    setting it replaced."""
    import torch._inductor.config as inductor_config

    before = bool(inductor_config.fallback_random)
    inductor_config.fallback_random = eager
    return before


def speed_facts(setup: Setup, throughput: Throughput) -> dict[str, Any]:
    """results.json's "speed": where the training rows lived and why, the speed settings
    as they took effect, the precision computed in, the peak device memory and the
    measured training samples/s."""
    config = setup.config
    rate = throughput.samples_per_second
    return {"data_placement": setup.placement.where, "placement_reason": setup.placement.reason,
            "cudnn_benchmark": bool(config.cudnn_benchmark and setup.device.type == "cuda"),
            "compile": config.compile, "precision": setup.precision,
            "peak_gpu_memory_bytes": peak_memory_bytes(setup.device),
            "samples_per_second": None if rate is None else round(rate, 3)}

