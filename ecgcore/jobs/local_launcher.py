"""The local launcher: each job is `python -m ecgcore job-run JOB` on this machine, in its
own session, one per slot. With GPUs, one slot per GPU and CUDA_VISIBLE_DEVICES set per
job; on CPU each job may use max(1, cores // slots) torch threads (ECGCORE_TORCH_THREADS,
read by the job process), so N jobs do not thrash C cores. Its job processes write the
job table in store.sqlite themselves (one machine: WAL on its local disk is safe).
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

from ecgcore.cpu import THREADS_ENV, cpu_cores
from ecgcore.jobs import queue
from ecgcore.jobs.worker_loop import Handle, signal_group


def slot_devices(slots: int | None, n_gpus: int) -> list[str | None]:
    """The CUDA_VISIBLE_DEVICES value of each slot: one GPU per slot when there are GPUs
    (default: as many slots as GPUs; more slots share GPUs round-robin), None on CPU."""
    if n_gpus <= 0:
        return [None] * max(1, slots or 1)
    count = slots if slots else n_gpus
    return [str(i % n_gpus) for i in range(max(1, count))]


def threads_per_job(slots: int, cores: int) -> int:
    """Torch threads for each of `slots` CPU jobs sharing `cores` cores."""
    return max(1, cores // max(1, slots))


def job_env(device: str | None, slots: int, cores: int) -> dict[str, str]:
    """Environment of one job process: its GPU (CUDA jobs keep torch's own thread count),
    or its share of the CPU cores (torch, OpenMP and MKL threads)."""
    if device is not None:
        return {"CUDA_VISIBLE_DEVICES": device}
    n = str(threads_per_job(slots, cores))
    return {THREADS_ENV: n, "OMP_NUM_THREADS": n, "MKL_NUM_THREADS": n}


def gpu_count() -> int:
    """GPUs this machine can use (0 without CUDA); CUDA_VISIBLE_DEVICES="" means none."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) == "":
        return 0
    try:
        import torch

        return int(torch.cuda.device_count()) if torch.cuda.is_available() else 0
    except ImportError:
        return 0


class _ProcessHandle:
    """A job process this worker started (its own session: signals go to the group)."""

    def __init__(self, process: subprocess.Popen) -> None:
        self.process, self.pid = process, process.pid

    def poll(self) -> int | None:
        return self.process.poll()

    def signal(self, sig: int) -> None:
        signal_group(self.pid, sig)


@dataclass
class LocalLauncher:
    """`python -m ecgcore job-run JOB` on this machine, one per slot."""

    slots: int | None = None
    n_gpus: int | None = None
    runner: str = "local"

    def __post_init__(self) -> None:
        self.devices = slot_devices(self.slots, gpu_count() if self.n_gpus is None else self.n_gpus)
        self.cores = cpu_cores()

    def capacity(self) -> int:
        return len(self.devices)

    def describe(self) -> str:
        return f"devices {[d or 'cpu' for d in self.devices]}, {self.cores} cores"

    def sync(self) -> None:
        """Nothing to bring in: its job processes write the index themselves."""

    def start(self, job: dict[str, Any], slot: int) -> Handle:
        env = {**os.environ, **job_env(self.devices[slot], len(self.devices), self.cores)}
        with open(queue.job_log_path(job["job_id"]), "a") as log:  # the child keeps its own copy
            process = subprocess.Popen([sys.executable, "-m", "ecgcore", "job-run", job["job_id"]],
                                       stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                       env=env, start_new_session=True)
        queue.set_pid(job["job_id"], process.pid)
        return _ProcessHandle(process)
