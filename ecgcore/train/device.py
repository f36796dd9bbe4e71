"""Where to train: CUDA, then Apple's MPS, then the CPU — one code path for all three.

Only two things differ by device: mixed precision (autocast, with gradient scaling for
fp16; asked for explicitly with TrainConfig.precision) runs on CUDA only (on CPU it would be bfloat16 and slower than float32 on most CPUs; MPS
autocast support varies by torch version), and data reaches a CUDA device from pinned
memory with `non_blocking` copies.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch

from ecgcore.errors import EcgcoreError


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


AVAILABLE: dict[str, Callable[[], bool]] = {
    "cuda": lambda: torch.cuda.is_available(),  # looked up at call time (tests monkeypatch it)
    "mps": lambda: _mps_available(),
    "cpu": lambda: True,
}
AUTO_ORDER: tuple[str, ...] = ("cuda", "mps", "cpu")


def select_device(preference: str = "auto") -> torch.device:
    """"auto": the first available of cuda, mps, cpu; a named device must be available."""
    if preference == "auto":
        return torch.device(next(name for name in AUTO_ORDER if AVAILABLE[name]()))
    if preference not in AVAILABLE:
        raise EcgcoreError(f"unknown device {preference!r}; choose auto, {', '.join(AUTO_ORDER)}")
    if not AVAILABLE[preference]():
        raise EcgcoreError(f"device {preference!r} was asked for but is not available on this machine")
    return torch.device(preference)


AUTOCAST_DTYPES: dict[str, torch.dtype] = {"fp16": torch.float16, "bf16": torch.bfloat16}


def effective_precision(device: torch.device, precision: str) -> str:
    """What a run computes in: autocast precisions only on CUDA, float32 elsewhere."""
    return precision if precision in AUTOCAST_DTYPES and device.type == "cuda" else "float32"


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """Autocast at `precision` on CUDA; a no-op context for float32 and off CUDA."""
    effective = effective_precision(device, precision)
    if effective == "float32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=AUTOCAST_DTYPES[effective])


def pinned_for(device: torch.device, tensors: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    """`tensors` in page-locked memory when they are bound for CUDA (so `to_device` copies
    them without blocking), unchanged otherwise. The training loop's prefetch thread calls
    it, so the pinning copy happens off the main thread while the model trains."""
    if device.type != "cuda":
        return tensors
    return tuple(t if t.device.type != "cpu" or t.is_pinned() else t.pin_memory() for t in tensors)


def to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A batch on `device`: a CPU tensor bound for CUDA pinned (unless `pinned_for` did it
    already) and copied `non_blocking`; otherwise `tensor.to(device)`, which is the tensor
    itself when it is there already (any CPU batch on the CPU, a device-resident batch)."""
    if device.type == "cuda" and tensor.device.type == "cpu":
        return (tensor if tensor.is_pinned() else tensor.pin_memory()).to(device, non_blocking=True)
    return tensor.to(device)
