"""One job in its own process (`python -m ecgcore job-run JOB`): run its payload's
`perform` (`ecgcore.jobs.payload`), write heartbeat and progress about once a second,
stop when cancelled.

Where the job's state goes is its ledger's business: `IndexLedger` writes the job table
in store.sqlite (a local worker's job), `job_files.FileLedger` writes report files in the
workspace's jobs/ folder that the dispatcher copies into the index (a job on a cluster
node, started with `--claim FILE`, which never opens the index).

Cancelling raises `JobCancelled` (a KeyboardInterrupt, which the engine's `execute`
turns into a run marked "cancelled" with its partial folder kept) from the job's
`check_cancelled` (the trainer asks at every step), or from SIGTERM sent by the worker
after the grace period.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any, Protocol

from ecgcore.jobs import queue
from ecgcore.jobs.job_types import payload_of

log = logging.getLogger(__name__)

BEAT_SECONDS = 1.0


class JobCancelled(KeyboardInterrupt):
    """Raised inside the job process when its job was cancelled."""


class Ledger(Protocol):
    """Where a job process reads its job and writes how it goes."""

    #: Whether the job may write the workspace index itself (see `JobContext.indexed`).
    indexed: bool

    def job(self) -> dict[str, Any]: ...  # the claimed job, as `queue.get` returns it

    def beat(self, progress: dict[str, Any], run_id: str | None) -> str: ...  # -> the job's state

    def end(self, state: str, error: str | None, run_id: str | None) -> None: ...


class IndexLedger:
    """The job table in store.sqlite (a job process on the index's own machine)."""

    indexed = True

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id

    def job(self) -> dict[str, Any]:
        return queue.get(self.job_id)

    def beat(self, progress: dict[str, Any], run_id: str | None) -> str:
        return queue.beat(self.job_id, progress, run_id)

    def end(self, state: str, error: str | None, run_id: str | None) -> None:
        queue.end(self.job_id, state, error, run_id)


class JobProcessContext:
    """The `payload.JobContext` of this process: heartbeat + progress at most once a
    second (from the job's reports and a background pulse), the cancel request, the run
    the job works on, and the job's last word (after which nothing more is written)."""

    def __init__(self, job: dict[str, Any], ledger: Ledger, beat_seconds: float = BEAT_SECONDS) -> None:
        self.job_id: str = job["job_id"]
        self.ledger = ledger
        self.beat_seconds = beat_seconds
        self.progress: dict[str, Any] = {}
        self.run_id: str | None = None
        self._attempt = int(job["attempts"])
        self._resume_run_id = job.get("run_id") if self._attempt > 1 else None
        self._last = 0.0
        self._state = "running"
        self._ended = False
        self._lock = threading.Lock()
        self._stop = threading.Event()

    @property
    def attempt(self) -> int:
        return self._attempt

    @property
    def resume_run_id(self) -> str | None:
        return self._resume_run_id

    @property
    def indexed(self) -> bool:
        return self.ledger.indexed

    @property
    def cancel_requested(self) -> bool:
        return self._state == "cancelling"

    def beat(self, force: bool = False) -> None:
        with self._lock:
            now = time.monotonic()
            if not self._ended and (force or now - self._last >= self.beat_seconds):
                self._last = now
                self._state = self.ledger.beat(dict(self.progress), self.run_id)

    def report(self, progress: dict[str, Any], force: bool = False) -> None:
        with self._lock:
            self.progress.update(progress)
        self.beat(force)

    def check_cancelled(self) -> None:
        if self.cancel_requested:
            raise JobCancelled("cancelled by the user")

    def on_run(self, run_id: str) -> None:
        """The engine names the job's run as soon as it is known: beat with it at once."""
        self.run_id = run_id
        self.beat(force=True)

    def start_pulse(self) -> None:
        """Beat from a background thread too, so a long data preparation or evaluation
        (no trainer steps) does not look like a dead job."""
        def pulse() -> None:
            while not self._stop.wait(self.beat_seconds):
                self.beat()

        threading.Thread(target=pulse, name=f"heartbeat-{self.job_id}", daemon=True).start()

    def end(self, state: str, error: str | None, run_id: str | None) -> None:
        """The job's last word (done, failed or cancelled); no beat is written after it."""
        self._stop.set()
        with self._lock:
            self._ended = True
            self.ledger.end(state, error, run_id)


def apply_thread_share() -> int | None:
    """Use the torch thread count the worker gave this job (its share of the CPU cores,
    see `local_launcher.job_env`); returns it, or None when the worker gave none (CUDA jobs)."""
    from ecgcore.cpu import THREADS_ENV

    value = os.environ.get(THREADS_ENV, "").strip()
    if not value:
        return None
    import torch

    threads = max(1, int(value))
    torch.set_num_threads(threads)
    return threads


def _on_sigterm(signum: int, frame: Any) -> None:
    raise JobCancelled("stopped by SIGTERM")


def run_job(job_id: str, claim: Path | None = None) -> int:
    """Run the job's payload; record done (with the run id), failed or cancelled. Exit
    code 0 when done, 1 when failed, 3 when cancelled. With `claim` (a job on a cluster
    node) the job is read from that file and reported beside it, and this process may
    open no SQLite database."""
    signal.signal(signal.SIGTERM, _on_sigterm)
    ledger: Ledger
    if claim is None:
        ledger = IndexLedger(job_id)
    else:
        from ecgcore import workspace
        from ecgcore.jobs.job_files import FileLedger

        ledger = FileLedger(job_id, claim)
        ledger.job()  # a bad claim is refused before the process gives up the index for good
        workspace.forbid_index("a job process on a cluster node reports through files in jobs/; "
                               "the dispatcher owns the index")
    job = ledger.job()
    context = JobProcessContext(job, ledger)
    context.beat(force=True)  # before the engine's imports (seconds on a loaded machine)
    context.start_pulse()
    try:
        threads = apply_thread_share()
        payload = payload_of(job["spec"])
        log.info("job %s attempt %s: %s%s", job_id, job["attempts"], payload.label,
                 f" ({threads} torch threads)" if threads else "")
        if context.cancel_requested:
            raise JobCancelled("cancelled before it started")
        run_id = payload.perform(context)
    except JobCancelled as exc:
        log.info("cancelled: %s", exc)
        context.end("cancelled", f"cancelled by the user ({exc})", context.run_id)
        return 3
    except Exception as exc:  # noqa: BLE001 -- the job records the reason; the worker goes on
        log.error("failed: %s: %s", type(exc).__name__, exc)
        context.end("failed", f"{type(exc).__name__}: {exc}", context.run_id)
        return 1
    context.end("done", None, run_id)
    log.info("done%s", f": {run_id}" if run_id else "")
    return 0
