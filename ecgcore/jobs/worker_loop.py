"""The worker: claims jobs and runs each in its own process (a new session), one per slot.

Each loop: beat in the `workers` table, notice lost jobs (stale heartbeat, dead pid),
adopt orphaned jobs, collect finished children, enforce cancellation (SIGTERM after a
grace period, then SIGKILL), claim jobs for the free slots. With GPUs, one slot per GPU
and CUDA_VISIBLE_DEVICES set per job; on CPU each job may use max(1, cores // slots) torch
threads (ECGCORE_TORCH_THREADS, read by the job process), so N jobs do not thrash C cores;
within that share the run takes only the cores other programs leave free
(`ecgcore.cpu`, chosen at the start and after every epoch).

How a job is started is the launcher's business: `LocalLauncher` (a child process on this
machine) here, `ecgcore.jobs.ray_launcher.RayLauncher` (a Ray task) for a cluster; claiming,
cancelling and recovery are the same for both.

When the worker itself dies (SIGKILL, a crash, a reboot of the app's machine excepted)
its job processes are not touched: they run in their own sessions, keep their heartbeat
and record how they end themselves. The next worker on the same host adopts them (they
count against its slots, it enforces their cancellation, and if one of them then dies
the dead-pid rule requeues or fails it like any lost job). If the machine itself went
down, their heartbeats stop and after `queue.STALE_SECONDS` they are requeued (resuming
from their last checkpoint) or failed, and their unfinished runs are marked; finished
runs are never touched. SIGTERM/SIGINT stop the worker the same way (its row is removed).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from ecgcore.jobs import queue, worker_status
from ecgcore.cpu import THREADS_ENV, cpu_cores

log = logging.getLogger(__name__)

CANCEL_GRACE_SECONDS = 5.0
KILL_GRACE_SECONDS = 5.0
POLL_SECONDS = 0.5
BEAT_SECONDS = 1.0


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


class Handle(Protocol):
    """A started job as its launcher sees it."""

    pid: int | None

    def poll(self) -> int | None: ...  # the exit code once it ended, else None

    def signal(self, sig: int) -> None: ...


class Launcher(Protocol):
    runner: str

    def capacity(self) -> int: ...  # jobs at a time

    def start(self, job: dict[str, Any], slot: int) -> Handle: ...

    def describe(self) -> str: ...


class _ProcessHandle:
    """A job process this worker started (its own session: signals go to the group)."""

    def __init__(self, process: subprocess.Popen) -> None:
        self.process, self.pid = process, process.pid

    def poll(self) -> int | None:
        return self.process.poll()

    def signal(self, sig: int) -> None:
        signal_group(self.pid, sig)


class _AdoptedHandle:
    """A job process a dead worker left running: known by its pid only."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def poll(self) -> int | None:
        return None if queue.pid_alive(self.pid) else -1

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

    def start(self, job: dict[str, Any], slot: int) -> Handle:
        env = {**os.environ, **job_env(self.devices[slot], len(self.devices), self.cores)}
        with open(queue.job_log_path(job["job_id"]), "a") as log:  # the child keeps its own copy
            process = subprocess.Popen([sys.executable, "-m", "ecgcore", "job-run", job["job_id"]],
                                       stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                       env=env, start_new_session=True)
        queue.set_pid(job["job_id"], process.pid)
        return _ProcessHandle(process)


@dataclass
class _Child:
    job_id: str
    handle: Handle
    slot: int
    attempt: int
    adopted: bool = False
    term_sent: float | None = None
    kill_sent: float | None = None


@dataclass
class Worker:
    """Run queued jobs with `slots` at a time; `once`: stop when nothing is left."""

    slots: int | None = None
    once: bool = False
    n_gpus: int | None = None
    cancel_grace: float = CANCEL_GRACE_SECONDS
    kill_grace: float = KILL_GRACE_SECONDS
    launcher: Launcher | None = None
    children: dict[int, _Child] = field(default_factory=dict)  # slot -> child

    def __post_init__(self) -> None:
        if self.launcher is None:
            self.launcher = LocalLauncher(self.slots, self.n_gpus)
        self.host = queue.host_name()
        self.worker_id = worker_status.worker_id()
        self._last_beat = 0.0

    @property
    def devices(self) -> list[str | None]:
        return getattr(self.launcher, "devices", [None] * self.launcher.capacity())

    def run(self) -> int:
        """The loop; returns 0 when `once` and the queue is empty, or on SIGTERM/SIGINT."""
        log.info(f"worker {os.getpid()} on {self.host} ({self.launcher.runner}): "
                 f"{self.launcher.capacity()} slot(s), {self.launcher.describe()}")
        worker_status.register(self.launcher.capacity(), runner=self.launcher.runner)
        self._last_beat = time.monotonic()
        previous = _stop_on_sigterm()
        try:
            while True:
                self.step()
                if self.once and not self.children and queue.pending_count() == 0:
                    log.info("queue empty; worker stops")
                    return 0
                time.sleep(POLL_SECONDS)
        except KeyboardInterrupt:
            log.info("worker stopped; its running jobs go on and the next worker adopts them")
            return 0
        finally:
            worker_status.unregister()
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)

    def step(self) -> None:
        if time.monotonic() - self._last_beat >= BEAT_SECONDS:
            self._last_beat = time.monotonic()
            worker_status.beat()
        for job_id, state in queue.reap_stale(self.host):
            log.info(f"{job_id}: lost -> {state}")
        self._adopt()
        self._collect()
        self._enforce_cancel()
        free = [slot for slot in range(self.launcher.capacity()) if slot not in self.children]
        for slot, job in zip(free, queue.claim(len(free), self.host, self.worker_id)):
            handle = self.launcher.start(job, slot)
            self.children[slot] = _Child(job["job_id"], handle, slot, job["attempts"])
            log.info(f"{job['job_id']}: started (pid {handle.pid}) in slot {slot} ({job.get('label')})")

    def _adopt(self) -> None:
        """Job processes of a dead worker on this host become this worker's children (in
        extra slots when the free ones are taken, so nothing new starts until they end)."""
        live = [w["worker_id"] for w in worker_status.alive_workers()]
        for job in queue.adopt_orphans(self.host, self.worker_id, live):
            slot = next(s for s in range(len(self.children) + 1 + self.launcher.capacity())
                        if s not in self.children)
            self.children[slot] = _Child(job["job_id"], _AdoptedHandle(job["pid"]), slot, job["attempts"],
                                         adopted=True)
            log.info(f"{job['job_id']}: adopted pid {job['pid']} (its worker is gone; slot {slot})")

    def _collect(self) -> None:
        """Children that exited: a job still marked running never said how it ended."""
        for slot, child in list(self.children.items()):
            code = child.handle.poll()
            if code is None:
                continue
            del self.children[slot]
            reason = (f"adopted job process {child.handle.pid} ended without finishing the job" if child.adopted
                      else f"job process {child.handle.pid} exited with code {code} without finishing the job")
            for job_id, state in queue.reap_stale(self.host, reason=reason, only=[child.job_id],
                                                  attempt=child.attempt):
                log.info(f"{job_id}: {reason} -> {state}")
            log.info(f"{child.job_id}: {queue.get(child.job_id)['state']}")

    def _enforce_cancel(self) -> None:
        """SIGTERM a cancelled job that has not stopped within the grace period, then SIGKILL."""
        now = time.time()
        for child in self.children.values():
            job = queue.get(child.job_id)
            if job["state"] != "cancelling" or job["cancel_requested"] is None or job["attempts"] != child.attempt:
                continue
            waited = now - job["cancel_requested"]
            if child.term_sent is None and waited > self.cancel_grace:
                child.term_sent = now
                child.handle.signal(signal.SIGTERM)
                log.info(f"{child.job_id}: still running {waited:.0f} s after cancel; SIGTERM")
            elif child.term_sent is not None and child.kill_sent is None and now - child.term_sent > self.kill_grace:
                child.kill_sent = now
                child.handle.signal(signal.SIGKILL)
                log.info(f"{child.job_id}: SIGKILL")


def _stop_on_sigterm() -> Any:
    """SIGTERM ends the loop like Ctrl-C (so the worker's row is removed); main thread only."""
    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    try:
        return signal.signal(signal.SIGTERM, stop)
    except ValueError:  # not the main thread
        return None


def signal_group(pid: int, sig: int) -> None:
    """Signal the job's whole session (it runs in its own process group)."""
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
