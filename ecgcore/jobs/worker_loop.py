"""The worker: claims jobs and has its launcher start each, one per slot.

Each loop: beat in the `workers` table, let the launcher bring in what its job processes
reported, notice lost jobs (stale heartbeat, dead pid), adopt orphaned jobs, collect
finished children, enforce cancellation (SIGTERM after a grace period, then SIGKILL),
claim jobs for the free slots. The launcher says which queued job starts in which free
slot (`Launcher.assign`): in the queue's order, except that a local launcher with GPUs
holds back a job whose memory need does not fit its GPU yet (`gpu_admission`) and lets
the next one start; the worker writes why a held job waits as its note (`queue.note_held`).

How a job is started is the launcher's business (`ecgcore.jobs.launchers`):
`local_launcher.LocalLauncher` (a child process on this machine, in its own session) or
`ray_launcher.RayLauncher` (a Ray task on a cluster node); claiming, cancelling and
recovery are the same for both. On CPU each job's run takes, within its share of the
cores, only the cores other programs leave free (`ecgcore.cpu`).

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
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ecgcore.jobs import queue, worker_status

if TYPE_CHECKING:
    from ecgcore.jobs.gpu_admission import Assignment

log = logging.getLogger(__name__)

CANCEL_GRACE_SECONDS = 5.0
KILL_GRACE_SECONDS = 5.0
POLL_SECONDS = 0.5
BEAT_SECONDS = 1.0
#: Queued jobs (oldest first) a loop offers its launcher for the free slots: the ones
#: further back wait their turn even when the first ones are held for GPU memory.
QUEUED_CONSIDERED = 100


class Handle(Protocol):
    """A started job as its launcher sees it."""

    pid: int | None

    def poll(self) -> int | None: ...  # the exit code once it ended, else None

    def signal(self, sig: int) -> None: ...


class Launcher(Protocol):
    """Starts claimed jobs somewhere (`ecgcore.jobs.launchers` names them)."""

    runner: str  # its name in the `workers` table ("local", "ray")

    def capacity(self) -> int: ...  # jobs at a time

    def assign(self, jobs: Sequence[dict[str, Any]], free: Sequence[int]) -> Assignment: ...
    # which queued jobs start in which free slots, on which device; why the others wait

    def start(self, job: dict[str, Any], slot: int) -> Handle: ...

    def sync(self) -> None: ...  # bring what its job processes reported into the index

    def describe(self) -> str: ...


class _AdoptedHandle:
    """A job process a dead worker left running: known by its pid only."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def poll(self) -> int | None:
        return None if queue.pid_alive(self.pid) else -1

    def signal(self, sig: int) -> None:
        signal_group(self.pid, sig)


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
    """Run queued jobs through `launcher`, as many at a time as it has slots; `once`: stop
    when nothing is left."""

    launcher: Launcher
    once: bool = False
    cancel_grace: float = CANCEL_GRACE_SECONDS
    kill_grace: float = KILL_GRACE_SECONDS
    children: dict[int, _Child] = field(default_factory=dict)  # slot -> child

    def __post_init__(self) -> None:
        self.host = queue.host_name()
        self.worker_id = worker_status.worker_id()
        self._last_beat = 0.0
        self._notes: dict[str, str] = {}  # job_id -> the note written on a held job

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
        self.launcher.sync()
        for job_id, state in queue.reap_stale(self.host):
            log.info(f"{job_id}: lost -> {state}")
        self._adopt()
        self._collect()
        self._enforce_cancel()
        self._start_jobs()

    def _start_jobs(self) -> None:
        """Claim and start the jobs the launcher assigns to the free slots; note why the
        others it holds back wait."""
        free = [slot for slot in range(self.launcher.capacity()) if slot not in self.children]
        if not free:
            return
        assignment = self.launcher.assign(queue.queued_jobs(QUEUED_CONSIDERED), free)
        self._note(assignment.held)
        for start in assignment.starts:
            job = queue.claim_job(start.job["job_id"], self.host, self.worker_id, device=start.device)
            if job is None:  # another worker took it, or it was cancelled meanwhile
                continue
            handle = self.launcher.start(job, start.slot)
            self.children[start.slot] = _Child(job["job_id"], handle, start.slot, job["attempts"])
            log.info(f"{job['job_id']}: started (pid {handle.pid}) in slot {start.slot} on {start.device} "
                     f"({job.get('label')})")

    def _note(self, held: dict[str, str]) -> None:
        """Write each held job's reason when it changed, and clear the notes of jobs no longer held."""
        changes: dict[str, str | None] = {job_id: why for job_id, why in held.items() if self._notes.get(job_id) != why}
        changes.update({job_id: None for job_id in self._notes if job_id not in held})
        for job_id, why in held.items():
            if job_id not in self._notes:
                log.info(f"{job_id}: {why}")
        queue.note_held(changes)
        self._notes = dict(held)

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
