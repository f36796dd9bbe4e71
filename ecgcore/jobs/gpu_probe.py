"""How much memory each GPU has free right now, asked of `nvidia-smi` (the worker never
creates a CUDA context of its own: it would take ~0.5 GB of every GPU it touched).

    nvidia_smi_probe() -> {0: GpuMemory(free=…, total=…), 1: …}   or None when there is no answer

nvidia-smi numbers GPUs in PCI bus order; job processes are started with
CUDA_DEVICE_ORDER=PCI_BUS_ID (`local_launcher.job_env`), so the CUDA_VISIBLE_DEVICES index
a slot gives names the same GPU on a machine with mixed GPU models too.
Tests and other callers pass any `GpuProbe` (a function with the same answer) instead.
"""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)

QUERY: tuple[str, ...] = ("nvidia-smi", "--query-gpu=index,memory.free,memory.total",
                          "--format=csv,noheader,nounits")
PROBE_TIMEOUT_SECONDS = 10.0
MIB = 1024**2  # nvidia-smi's "nounits" memory is in MiB


@dataclass(frozen=True)
class GpuMemory:
    """One GPU's memory in bytes, as the driver sees it (every process's allocations counted)."""

    free: int
    total: int


#: A free-memory probe: GPU index -> its memory, or None when it cannot tell.
GpuProbe = Callable[[], dict[int, GpuMemory] | None]


def parse_nvidia_smi(text: str) -> dict[int, GpuMemory] | None:
    """The GPUs of QUERY's output ("0, 80000, 81559" per line, MiB); None when a line does not
    read as three integers (e.g. "[N/A]" on a GPU that does not report memory)."""
    gpus: dict[int, GpuMemory] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        fields = [field.strip() for field in line.split(",")]
        try:
            index, free, total = (int(field) for field in fields)
        except ValueError:
            return None
        gpus[index] = GpuMemory(free=free * MIB, total=total * MIB)
    return gpus or None


def nvidia_smi_probe() -> dict[int, GpuMemory] | None:
    """Each GPU's free and total memory from nvidia-smi; None when nvidia-smi is missing,
    fails, hangs past PROBE_TIMEOUT_SECONDS or answers something else."""
    try:
        done = subprocess.run(QUERY, capture_output=True, text=True, timeout=PROBE_TIMEOUT_SECONDS, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.debug(f"nvidia-smi: {type(exc).__name__}: {exc}")
        return None
    if done.returncode != 0:
        log.debug(f"nvidia-smi exited with {done.returncode}: {done.stderr.strip()}")
        return None
    return parse_nvidia_smi(done.stdout)
