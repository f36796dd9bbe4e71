"""The worker: claims jobs and runs each in its own process (a new session), one per slot.

Each loop: notice lost jobs (stale heartbeat, dead pid), collect finished children,
enforce cancellation (SIGTERM after a grace period, then SIGKILL), claim jobs for the
free slots. With GPUs, one slot per GPU and CUDA_VISIBLE_DEVICES set per job.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ecgcore.jobs import queue

CANCEL_GRACE_SECONDS = 5.0
KILL_GRACE_SECONDS = 5.0
POLL_SECONDS = 0.5


def slot_devices(slots: int | None, n_gpus: int) -> list[str | None]:
    """The CUDA_VISIBLE_DEVICES value of each slot: one GPU per slot when there are GPUs
    (default: as many slots as GPUs; more slots share GPUs round-robin), None on CPU."""
    if n_gpus <= 0:
        return [None] * max(1, slots or 1)
    count = slots if slots else n_gpus
    return [str(i % n_gpus) for i in range(max(1, count))]


def gpu_count() -> int:
    """GPUs this machine can use (0 without CUDA); CUDA_VISIBLE_DEVICES="" means none."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) == "":
        return 0
    try:
        import torch

        return int(torch.cuda.device_count()) if torch.cuda.is_available() else 0
    except ImportError:
        return 0


@dataclass
class _Child:
    job_id: str
    process: subprocess.Popen
    slot: int
    term_sent: float | None = None
    kill_sent: float | None = None


@dataclass
class Worker:
    """Run queued jobs with `slots` processes at a time; `once`: stop when nothing is left."""

    slots: int | None = None
    once: bool = False
    n_gpus: int | None = None
    say: Callable[[str], None] = print
    cancel_grace: float = CANCEL_GRACE_SECONDS
    kill_grace: float = KILL_GRACE_SECONDS
    children: dict[int, _Child] = field(default_factory=dict)  # slot -> child

    def __post_init__(self) -> None:
        self.devices = slot_devices(self.slots, gpu_count() if self.n_gpus is None else self.n_gpus)
        self.host = queue.host_name()

    def run(self) -> int:
        """The loop; returns 0 when `once` and the queue is empty (SIGINT/SIGTERM also end it)."""
        self.say(f"worker {os.getpid()} on {self.host}: {len(self.devices)} slot(s), "
                 f"devices {[d or 'cpu' for d in self.devices]}")
        while True:
            self.step()
            if self.once and not self.children and queue.pending_count() == 0:
                self.say("queue empty; worker stops")
                return 0
            time.sleep(POLL_SECONDS)

    def step(self) -> None:
        for job_id, state in queue.reap_stale(self.host):
            self.say(f"{job_id}: lost -> {state}")
        self._collect()
        self._enforce_cancel()
        free = [slot for slot in range(len(self.devices)) if slot not in self.children]
        for slot, job in zip(free, queue.claim(len(free), self.host)):
            self._start(slot, job)

    def _start(self, slot: int, job: dict[str, Any]) -> None:
        env = dict(os.environ)
        if self.devices[slot] is not None:
            env["CUDA_VISIBLE_DEVICES"] = self.devices[slot]
        with open(queue.job_log_path(job["job_id"]), "a") as log:  # the child keeps its own copy
            process = subprocess.Popen([sys.executable, "-m", "ecgcore", "job-run", job["job_id"]],
                                       stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                       env=env, start_new_session=True)
        queue.set_pid(job["job_id"], process.pid)
        self.children[slot] = _Child(job["job_id"], process, slot)
        self.say(f"{job['job_id']}: started pid {process.pid} in slot {slot} ({job.get('label')})")

    def _collect(self) -> None:
        """Children that exited: a job still marked running never said how it ended."""
        for slot, child in list(self.children.items()):
            code = child.process.poll()
            if code is None:
                continue
            del self.children[slot]
            reason = f"job process {child.process.pid} exited with code {code} without finishing the job"
            for job_id, state in queue.reap_stale(self.host, reason=reason, only=[child.job_id]):
                self.say(f"{job_id}: {reason} -> {state}")
            self.say(f"{child.job_id}: {queue.get(child.job_id)['state']}")

    def _enforce_cancel(self) -> None:
        """SIGTERM a cancelled job that has not stopped within the grace period, then SIGKILL."""
        now = time.time()
        for child in self.children.values():
            job = queue.get(child.job_id)
            if job["state"] != "cancelling" or job["cancel_requested"] is None:
                continue
            waited = now - job["cancel_requested"]
            if child.term_sent is None and waited > self.cancel_grace:
                child.term_sent = now
                _signal_group(child.process.pid, signal.SIGTERM)
                self.say(f"{child.job_id}: still running {waited:.0f} s after cancel; SIGTERM")
            elif child.term_sent is not None and child.kill_sent is None and now - child.term_sent > self.kill_grace:
                child.kill_sent = now
                _signal_group(child.process.pid, signal.SIGKILL)
                self.say(f"{child.job_id}: SIGKILL")


def _signal_group(pid: int, sig: int) -> None:
    """Signal the job's whole session (it runs in its own process group)."""
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
