"""One job in its own process (`python -m ecgcore job-run JOB_ID`): run its spec through
the engine, write heartbeat and progress about once a second, stop when cancelled.

Cancelling raises `JobCancelled` (a KeyboardInterrupt, which the engine's `execute`
turns into a run marked "cancelled" with its partial folder kept) from the trainer's
`should_stop` hook, or from SIGTERM sent by the worker after the grace period.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from typing import Any

from ecgcore.errors import EcgcoreError
from ecgcore.jobs import queue

BEAT_SECONDS = 1.0


class JobCancelled(KeyboardInterrupt):
    """Raised inside the job process when its job was cancelled."""


class JobCallback:
    """Trainer callback: heartbeat + progress at most once a second (from the steps and a
    background pulse); `should_stop` raises JobCancelled once the job is "cancelling"."""

    def __init__(self, job_id: str, beat_seconds: float = BEAT_SECONDS) -> None:
        self.job_id = job_id
        self.beat_seconds = beat_seconds
        self.progress: dict[str, Any] = {"epoch": None, "step": None, "n_steps": None, "metrics": None}
        self.run_id: str | None = None
        self._last = 0.0
        self._state = "running"
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def beat(self, force: bool = False) -> None:
        with self._lock:
            now = time.monotonic()
            if force or now - self._last >= self.beat_seconds:
                self._last = now
                self._state = queue.beat(self.job_id, dict(self.progress), self.run_id)

    def start_pulse(self) -> None:
        """Beat from a background thread too, so a long data preparation or evaluation
        (no trainer steps) does not look like a dead job."""
        def pulse() -> None:
            while not self._stop.wait(self.beat_seconds):
                self.beat()

        threading.Thread(target=pulse, name=f"heartbeat-{self.job_id}", daemon=True).start()

    def stop_pulse(self) -> None:
        self._stop.set()

    def on_step(self, epoch: int, step: int, n_steps: int) -> None:
        self.progress.update(epoch=epoch, step=step, n_steps=n_steps)  # step counts from 1
        self.beat()

    def on_epoch_end(self, row: dict[str, Any]) -> None:
        self.progress["metrics"] = row
        self.beat(force=True)

    def should_stop(self) -> bool:
        if self._state == "cancelling":
            raise JobCancelled("cancelled by the user")
        return False

    def on_run(self, run_id: str) -> None:
        """The engine names the job's run as soon as it is known: beat with it at once."""
        self.run_id = run_id
        self.beat(force=True)


def resumable_folder(store: Any, job: dict[str, Any]) -> Any:
    """The run folder of a lost earlier attempt, when it has a `checkpoints/last.pt` to
    resume from (a finished run is never touched)."""
    run_id = job.get("run_id")
    if not run_id or job["attempts"] <= 1:
        return None
    try:
        if store.status(run_id) == "done":
            return None
        folder = store.get(run_id)
    except EcgcoreError:
        return None
    return folder if (folder.path / "checkpoints" / "last.pt").is_file() else None


def apply_thread_share() -> int | None:
    """Use the torch thread count the worker gave this job (its share of the CPU cores,
    see `worker.job_env`); returns it, or None when the worker gave none (CUDA jobs)."""
    from ecgcore.jobs.worker_loop import THREADS_ENV

    value = os.environ.get(THREADS_ENV, "").strip()
    if not value:
        return None
    import torch

    threads = max(1, int(value))
    torch.set_num_threads(threads)
    return threads


def _on_sigterm(signum: int, frame: Any) -> None:
    raise JobCancelled("stopped by SIGTERM")


def run_job(job_id: str) -> int:
    """Run the job's spec; record done (with the run id), failed or cancelled. Exit code 0
    when done, 1 when failed, 3 when cancelled."""
    signal.signal(signal.SIGTERM, _on_sigterm)
    job = queue.get(job_id)
    payload = job["spec"]
    callback = JobCallback(job_id)
    callback.beat(force=True)  # before the engine's imports (seconds on a loaded machine)
    callback.start_pulse()
    try:
        threads = apply_thread_share()
        print(f"job {job_id} attempt {job['attempts']}: {payload.get('label')}"
              + (f" ({threads} torch threads)" if threads else ""), flush=True)
        from ecgcore.experiments.run_plan import RunSpec
        from ecgcore.experiments.execute import execute
        from ecgcore.runs import RunStore

        spec = RunSpec(kind=payload["kind"], config=payload["config"], hash=payload["hash"],
                       depends_on=payload.get("depends_on"))
        if callback._state == "cancelling":
            raise JobCancelled("cancelled before it started")
        store = RunStore()
        folder = resumable_folder(store, job)
        if folder is not None:
            callback.run_id = folder.run_id
        run_id = execute(spec, store, [callback], folder=folder, on_run=callback.on_run)
    except JobCancelled as exc:
        callback.stop_pulse()
        print(f"cancelled: {exc}", flush=True)
        queue.end(job_id, "cancelled", f"cancelled by the user ({exc})", callback.run_id)
        return 3
    except Exception as exc:  # noqa: BLE001 -- the job records the reason; the worker goes on
        callback.stop_pulse()
        print(f"failed: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        queue.end(job_id, "failed", f"{type(exc).__name__}: {exc}", callback.run_id)
        return 1
    callback.stop_pulse()
    queue.end(job_id, "done", None, run_id)
    print(f"done: {run_id}", flush=True)
    return 0
