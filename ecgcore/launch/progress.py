"""One row per job for the Jobs page: state, progress, epoch, best validation AUC, time left.

Pure: it reads a job as `ecgcore.jobs.list_jobs` returns it (progress is the latest
`{"epoch", "step", "n_steps", "metrics"}` the job process wrote, metrics being the last
finished epoch's history row) and, when given, the run's history rows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

JOB_COLUMNS: tuple[str, ...] = ("job_id", "run", "state", "progress", "epoch", "best val AUC",
                                "time left (s)", "attempts", "run_id", "error")


def total_epochs(job: dict[str, Any]) -> int:
    """Epochs the job's run trains at most (0 for runs that do not train, e.g. source_only)."""
    config = (job.get("spec") or {}).get("config") or job.get("config") or {}
    if config.get("strategy") == "source_only":
        return 0
    return int((config.get("train") or {}).get("epochs") or 0)


def _finite(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def best_val_auc(job: dict[str, Any], history: Sequence[dict[str, Any]] = ()) -> float | None:
    """The best validation macro AUC so far: the history's, else the latest epoch's."""
    values = [v for v in (_finite(row.get("val_macro_auc")) for row in history) if v is not None]
    if not values:
        metrics = (job.get("progress") or {}).get("metrics") or {}
        latest = _finite(metrics.get("val_macro_auc"))
        values = [latest] if latest is not None else []
    return max(values) if values else None


def fraction_done(job: dict[str, Any]) -> float:
    """0..1: finished epochs plus the share of the current epoch's steps."""
    if job["state"] == "done":
        return 1.0
    progress = job.get("progress") or {}
    epochs = total_epochs(job)
    if job["state"] not in ("running", "cancelling") or not epochs or progress.get("epoch") is None:
        return 0.0
    steps = progress.get("n_steps") or 0
    within = (progress.get("step") or 0) / steps if steps else 0.0
    return min(1.0, (int(progress["epoch"]) + within) / epochs)


def time_left(job: dict[str, Any], now: float) -> float | None:
    """Seconds until the job's last epoch ends at the current pace (an upper bound: early
    stopping may end it sooner); None when nothing runs yet or the pace is unknown."""
    if job["state"] not in ("running", "cancelling"):
        return None
    done = fraction_done(job)
    epochs = total_epochs(job)
    metrics = (job.get("progress") or {}).get("metrics") or {}
    per_epoch = _finite(metrics.get("seconds"))
    if per_epoch is not None and epochs:
        return max(0.0, (1.0 - done) * epochs * per_epoch)
    started = job.get("started")
    if done <= 0 or not started:
        return None
    return max(0.0, (now - float(started)) * (1.0 - done) / done)


def job_row(job: dict[str, Any], now: float, history: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    """A job as one table row (JOB_COLUMNS)."""
    progress = job.get("progress") or {}
    epochs = total_epochs(job)
    epoch = progress.get("epoch")
    state = "cancelling" if job["state"] == "cancelling" or job.get("cancelling") else job["state"]
    left = time_left(job, now)
    return {
        "job_id": job["job_id"], "run": job.get("label") or "", "state": state,
        "progress": fraction_done(job),
        "epoch": f"{int(epoch) + 1}/{epochs}" if epoch is not None and epochs else "",
        "best val AUC": best_val_auc(job, history),
        "time left (s)": None if left is None else round(left),
        "attempts": int(job.get("attempts") or 0), "run_id": job.get("run_id") or "",
        "error": job.get("error") or "",
    }
