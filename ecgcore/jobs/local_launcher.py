"""The local launcher: each job is `python -m ecgcore job-run JOB` on this machine, in its
own session, one per slot. With GPUs, `runs_per_gpu` slots per GPU (default 1) and
CUDA_VISIBLE_DEVICES set per job; several jobs share a GPU only where their memory needs
fit (`gpu_admission`, checked with nvidia-smi). On CPU each job may use
max(1, cores // slots) torch threads (ECGCORE_TORCH_THREADS, read by the job process), so
N jobs do not thrash C cores. Its job processes write the job table in store.sqlite
themselves (one machine: WAL on its local disk is safe).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ecgcore.cpu import THREADS_ENV, cpu_cores
from ecgcore.errors import EcgcoreError
from ecgcore.jobs import queue
from ecgcore.jobs.gpu_admission import (
    Assignment,
    GpuAdmission,
    device_label,
    first_free,
)
from ecgcore.jobs.gpu_probe import GpuProbe, nvidia_smi_probe
from ecgcore.jobs.worker_loop import Handle, signal_group

log = logging.getLogger(__name__)


def slot_devices(slots: int | None, n_gpus: int, runs_per_gpu: int = 1) -> list[str | None]:
    """The CUDA_VISIBLE_DEVICES value of each slot, None on CPU. With GPUs: `slots` in all
    when given, else `runs_per_gpu` per GPU; slots take the GPUs round-robin (slot 0 on
    GPU 0, slot 1 on GPU 1, …), so the first jobs spread over the GPUs."""
    if n_gpus <= 0:
        return [None] * max(1, slots or 1)
    count = slots if slots else n_gpus * max(1, runs_per_gpu)
    return [str(i % n_gpus) for i in range(max(1, count))]


def threads_per_job(slots: int, cores: int) -> int:
    """Torch threads for each of `slots` CPU jobs sharing `cores` cores."""
    return max(1, cores // max(1, slots))


def job_env(device: str | None, slots: int, cores: int) -> dict[str, str]:
    """Environment of one job process: its GPU (CUDA jobs keep torch's own thread count),
    or its share of the CPU cores (torch, OpenMP and MKL threads). GPUs are numbered in
    PCI bus order, as nvidia-smi numbers them (`gpu_probe`): CUDA's default order puts the
    fastest first, which on a machine with mixed GPUs would check one GPU's free memory
    and start the job on another."""
    if device is not None:
        return {"CUDA_VISIBLE_DEVICES": device, "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
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
    """`python -m ecgcore job-run JOB` on this machine, one per slot: `slots` in all, or
    (with GPUs) `runs_per_gpu` per GPU, each job started only where its GPU memory need
    fits what `gpu_probe` says is free (None: no memory check). `n_gpus` and `gpu_probe`
    default to this machine's (tests pass fakes)."""

    slots: int | None = None
    n_gpus: int | None = None
    runs_per_gpu: int = 1
    gpu_probe: GpuProbe | None = nvidia_smi_probe
    runner: str = "local"

    def __post_init__(self) -> None:
        if self.runs_per_gpu < 1:
            raise EcgcoreError(f"--runs-per-gpu must be at least 1 (jobs sharing one GPU), got {self.runs_per_gpu}")
        if self.slots is not None and self.runs_per_gpu != 1:
            raise EcgcoreError("give --slots (jobs at a time in all) or --runs-per-gpu (jobs per GPU), not both")
        gpus = gpu_count() if self.n_gpus is None else self.n_gpus
        self.gpus = max(0, gpus)
        self.devices = slot_devices(self.slots, self.gpus, self.runs_per_gpu)
        self.cores = cpu_cores()
        if not self.gpus and self.runs_per_gpu > 1:
            log.info(f"no GPU here: --runs-per-gpu {self.runs_per_gpu} has no effect "
                     f"({len(self.devices)} CPU slot(s))")
        self.admission = (GpuAdmission([int(d) for d in self.devices if d is not None], self.gpu_probe)
                          if self.gpus and self.gpu_probe is not None else None)

    def capacity(self) -> int:
        return len(self.devices)

    def describe(self) -> str:
        if not self.gpus:
            return f"devices {[d or 'cpu' for d in self.devices]}, {self.cores} cores"
        shares = (f"{self.gpus} GPU{'s' if self.gpus != 1 else ''} x {self.runs_per_gpu} "
                  f"run{'s' if self.runs_per_gpu != 1 else ''} each" if self.slots is None
                  else f"{self.slots} slot(s) on {self.gpus} GPU(s)")
        check = "memory-checked with nvidia-smi" if self.admission is not None else "no memory check"
        return f"{shares} ({check}), devices {list(self.devices)}, {self.cores} cores"

    def sync(self) -> None:
        """Nothing to bring in: its job processes write the index themselves."""

    def slot_gpu(self, slot: int) -> int | None:
        device = self.devices[slot]
        return None if device is None else int(device)

    def assign(self, jobs: Sequence[dict[str, Any]], free: Sequence[int]) -> Assignment:
        """Which queued jobs start in which free slots: the queue's order on CPU, by GPU
        memory with GPUs (`gpu_admission`)."""
        if self.admission is None:
            return first_free(jobs, free, lambda job, slot: device_label(job, self.slot_gpu(slot)))
        return self.admission.assign(jobs, free)

    def start(self, job: dict[str, Any], slot: int) -> Handle:
        env = {**os.environ, **job_env(self.devices[slot], len(self.devices), self.cores)}
        handle = self._spawn(job, env)
        if handle.pid is not None:
            queue.set_pid(job["job_id"], handle.pid)
        if self.admission is not None:
            self.admission.started(job)
        return handle

    def _spawn(self, job: dict[str, Any], env: dict[str, str]) -> Handle:
        """The job process, in its own session, its output appended to the job's log."""
        with open(queue.job_log_path(job["job_id"]), "a") as output:  # the child keeps its own copy
            process = subprocess.Popen([sys.executable, "-m", "ecgcore", "job-run", job["job_id"]],
                                       stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
                                       env=env, start_new_session=True)
        return _ProcessHandle(process)
