"""Which free slot each queued job may start in, so that jobs sharing a GPU fit in its memory.

With `worker --runs-per-gpu N` each GPU has N slots, and a slot being free does not mean
its GPU has room: `GpuAdmission.assign` starts a job on a free slot's GPU only when the
job's need (`gpu_memory.memory_need`) fits in what that GPU has free (`gpu_probe`)
minus what the jobs this worker started recently will still allocate. Those have not
allocated yet when the probe answers, so each start is *promised* to its GPU until the job
reports its first training step (its model, optimizer state and first batch are then
on the GPU, and the probe sees them), its attempt ends, or PROMISE_SECONDS pass.

Rules, in the queue's order (oldest first):
- a job that fits goes to the free slot whose GPU has the most memory left;
- a job that fits nowhere stays queued (not claimed: nothing is lost or failed) with the
  reason as its note on the Jobs page, and the next job is tried: a small job may pass a
  big one that waits, so the big one waits until enough memory frees at once (when the
  queue holds a steady stream of small jobs it may wait long);
- a job that needs more than a GPU's total memory could never fit: it starts alone, on a
  GPU where nothing else of this worker runs (logged), and else waits for one;
- jobs that compute on the CPU, and every job when the probe has no answer (no
  nvidia-smi), start as slots free, as without memory checks.
The worker is the ledger's only writer; workers sharing GPUs see each other's jobs
only through the probe.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ecgcore.errors import EcgcoreError
from ecgcore.jobs import queue
from ecgcore.jobs.gpu_memory import (
    GPU_DEVICES,
    MemoryNeed,
    finished_runs,
    format_bytes,
    memory_need,
)
from ecgcore.jobs.gpu_probe import GpuMemory, GpuProbe
from ecgcore.jobs.job_types import payload_of

log = logging.getLogger(__name__)

#: A started job's promise lapses after this long even without a training step to show
#: (a run that prepares a large dataset first may take minutes before it allocates).
PROMISE_SECONDS = 300.0
#: How long the finished runs read for memory needs are reused before being read again.
RUNS_REFRESH_SECONDS = 30.0


@dataclass(frozen=True)
class Start:
    """Start `job` in `slot`; `device` is what the jobs table records ("cuda:0", "cpu", "ray")."""

    job: dict[str, Any]
    slot: int
    device: str


@dataclass
class Assignment:
    """A launcher's answer for the queued jobs: which start where, and why the others wait."""

    starts: list[Start] = field(default_factory=list)
    held: dict[str, str] = field(default_factory=dict)  # job_id -> why it waits


@dataclass
class _Promise:
    job_id: str
    attempt: int
    gpu: int
    bytes: int
    since: float


def job_device(job: dict[str, Any]) -> str:
    """The device a job asks for ("auto", "cuda", "cpu", "mps")."""
    return payload_of(job["spec"]).device


def device_label(job: dict[str, Any], gpu: int | None) -> str:
    """What the jobs table records for a job started in a local slot on `gpu` (None: a CPU
    slot): "cuda:N" (the machine's GPU N) for a job that trains on a GPU, else "cpu" (or
    "mps" for a job that asks for Apple's GPU)."""
    asked = job_device(job)
    if gpu is not None and asked in GPU_DEVICES:
        return f"cuda:{gpu}"
    return "mps" if asked == "mps" else "cpu"


def first_free(jobs: Sequence[dict[str, Any]], free: Sequence[int],
               label: Callable[[dict[str, Any], int], str]) -> Assignment:
    """The queue's order onto the free slots, no questions asked (CPU slots, Ray)."""
    return Assignment([Start(job, slot, label(job, slot)) for job, slot in zip(jobs, free)])


class GpuAdmission:
    """The memory check of one worker's GPU slots (`slot_gpus[slot]` is the slot's GPU)."""

    def __init__(self, slot_gpus: Sequence[int], probe: GpuProbe,
                 need_of: Callable[[dict[str, Any]], MemoryNeed] | None = None,
                 clock: Callable[[], float] = time.monotonic, promise_seconds: float = PROMISE_SECONDS) -> None:
        self.slot_gpus = list(slot_gpus)
        self.probe = probe
        self.need_of = need_of or self._measured_or_estimated
        self.clock = clock
        self.promise_seconds = promise_seconds
        self.promises: list[_Promise] = []
        self._planned: dict[str, tuple[int, int]] = {}  # job_id -> (gpu, bytes) of this round's starts
        self._runs: tuple[float, list[Any]] | None = None
        self._warned = False

    def _measured_or_estimated(self, job: dict[str, Any]) -> MemoryNeed:
        now = self.clock()
        if self._runs is None or now - self._runs[0] > RUNS_REFRESH_SECONDS:
            self._runs = (now, finished_runs())
        return memory_need(job, self._runs[1])

    def promised(self, gpu: int) -> int:
        """Bytes this worker's recent starts on `gpu` will still allocate."""
        return sum(p.bytes for p in self.promises if p.gpu == gpu)

    def assign(self, jobs: Sequence[dict[str, Any]], free: Sequence[int]) -> Assignment:
        """Which of `jobs` (queued, oldest first) start in which of the `free` slots now."""
        self._planned = {}
        if not jobs or not free:
            return Assignment()
        memory = self.probe()
        if memory is None:
            if not self._warned:
                log.warning("no free-memory answer from nvidia-smi: jobs start as slots free, without a memory check")
                self._warned = True
            return first_free(jobs, free, lambda job, slot: device_label(job, self.slot_gpus[slot]))
        self._expire()
        available = {gpu: m.free - self.promised(gpu) for gpu, m in memory.items()}
        busy = {self.slot_gpus[s] for s in range(len(self.slot_gpus)) if s not in free}
        busy |= {p.gpu for p in self.promises}
        open_slots = list(free)
        answer = Assignment()
        for job in jobs:
            if not open_slots:
                break
            need = self.need_of(job)
            slot, bytes_, why = self._place(job["job_id"], need, open_slots, memory, available, busy)
            if slot is None:
                answer.held[job["job_id"]] = why
                continue
            gpu = self.slot_gpus[slot]
            open_slots.remove(slot)
            if bytes_:
                available[gpu] = available.get(gpu, 0) - bytes_
                busy.add(gpu)
                self._planned[job["job_id"]] = (gpu, bytes_)
            answer.starts.append(Start(job, slot, device_label(job, gpu)))
        return answer

    def _place(self, job_id: str, need: MemoryNeed, open_slots: list[int], memory: dict[int, GpuMemory],
               available: dict[int, int], busy: set[int]) -> tuple[int | None, int, str]:
        """(slot, bytes promised, "") for a job that may start, (None, 0, why) for one that waits."""
        if need.bytes == 0:
            return open_slots[0], 0, ""
        unknown = [s for s in open_slots if self.slot_gpus[s] not in memory]
        if unknown:  # a GPU the probe does not list: nothing to check against
            return unknown[0], 0, ""
        fits = [s for s in open_slots if need.on(memory[self.slot_gpus[s]].total) <= available[self.slot_gpus[s]]]
        if fits:
            slot = max(fits, key=lambda s: (available[self.slot_gpus[s]], -s))
            return slot, need.on(memory[self.slot_gpus[slot]].total), ""
        gpus = sorted({self.slot_gpus[s] for s in open_slots})
        if all(need.on(memory[g].total) > memory[g].total for g in gpus):
            alone = [s for s in open_slots if self.slot_gpus[s] not in busy]
            if alone:
                gpu = self.slot_gpus[alone[0]]
                log.warning(f"{job_id}: needs {format_bytes(need.on(memory[gpu].total))}, more than GPU {gpu}'s "
                            f"{format_bytes(memory[gpu].total)} in all ({need.basis}); it starts alone on that GPU")
                return alone[0], need.on(memory[gpu].total), ""
            return None, 0, (f"waits for a GPU of its own: needs {format_bytes(need.bytes)}, more than a GPU "
                             f"has in all ({need.basis})")
        best = max(gpus, key=lambda g: available[g])
        return None, 0, (f"waits for GPU memory: needs {format_bytes(need.on(memory[best].total))}, "
                         f"{format_bytes(max(0, available[best]))} free on GPU {best} ({need.basis})")

    def started(self, job: dict[str, Any]) -> None:
        """`job` (claimed, as the queue returns it) was started as `assign` planned: its
        need is promised to its GPU."""
        planned = self._planned.pop(job["job_id"], None)
        if planned is not None:
            gpu, bytes_ = planned
            self.promises.append(_Promise(job["job_id"], int(job["attempts"]), gpu, bytes_, self.clock()))

    def _expire(self) -> None:
        """Drop the promises of jobs that have allocated (a training step reported), ended,
        or were started more than `promise_seconds` ago."""
        now = self.clock()
        kept: list[_Promise] = []
        for promise in self.promises:
            if now - promise.since > self.promise_seconds:
                continue
            try:
                job = queue.get(promise.job_id)
            except EcgcoreError:
                continue
            if job["state"] not in ("running", "cancelling") or int(job["attempts"]) != promise.attempt:
                continue
            if (job.get("progress") or {}).get("step") is not None:
                continue
            kept.append(promise)
        self.promises = kept
