"""One row per job for the Jobs page: state, progress, epoch, best validation AUC, time left, GPU.

Pure: it reads a job as `ecgcore.jobs.list_jobs` returns it (its payload typed by
`ecgcore.jobs.job_types.payload_of`) (progress is the latest
`{"epoch", "step", "n_steps", "metrics"}` the job process wrote, metrics being the last
finished epoch's history row) and, when given, the run's history rows. `job_row` gives the
raw values; `jobs_table` is what the page shows: the running jobs first, then the queue in the
order it will run, then finished jobs newest first; the columns people watch first; every gap
as "—". `job_state` is the one state every part of the page shows. A job's device ("cuda:0",
"cpu", "ray") is what its worker recorded when it started it; a queued job that a worker holds
back for GPU memory carries the worker's reason as its progress `{"held": sentence}`
(`held_reason`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd

from ecgcore.jobs.job_types import payload_of
from ecgcore.jobs.payload import RunJob
from ecgcore.views.display import MISSING, format_number

JOB_COLUMNS: tuple[str, ...] = ("job_id", "run", "state", "progress", "epoch", "best val AUC",
                                "time left (s)", "device", "held", "attempts", "run_id", "error")
#: The GPU cell of a queued job that a worker holds back until its GPU memory need fits.
HELD_FOR_MEMORY = "waits for memory"


def run_config(job: dict[str, Any]) -> dict[str, Any]:
    """The run config of a run job (as `list_jobs` or `jobs --json` gives it); {} for a job
    of another type (a download)."""
    if not job.get("spec"):
        return job.get("config") or {}
    payload = payload_of(job["spec"])
    return payload.config if isinstance(payload, RunJob) else {}


def total_epochs(job: dict[str, Any]) -> int:
    """Epochs the job's run trains at most (0 for runs that do not train, e.g. source_only,
    and for jobs that are no runs)."""
    config = run_config(job)
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
    """0..1: for a run, finished epochs plus the share of the current epoch's steps; for a job
    of another type (a download), the `fraction` it reports."""
    if job["state"] == "done":
        return 1.0
    progress = job.get("progress") or {}
    if job.get("spec") and not isinstance(payload_of(job["spec"]), RunJob):
        reported = _finite(progress.get("fraction"))
        running = job["state"] in ("running", "cancelling")
        return min(1.0, max(0.0, reported)) if running and reported is not None else 0.0
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


def held_reason(job: dict[str, Any]) -> str | None:
    """Why a worker holds this queued job back (e.g. "waits for GPU memory: needs 3.10 GiB,
    1.20 GiB free on GPU 0 (…)"), None when it is not held."""
    if job["state"] != "queued":
        return None
    held = (job.get("progress") or {}).get("held")
    return str(held) if held else None


def device_cell(job: dict[str, Any]) -> str:
    """The GPU column: where a started job runs ("cuda:0", "cpu", "ray"), HELD_FOR_MEMORY for a
    queued job held back for GPU memory, "" otherwise (a queued job's device of an earlier
    attempt is not where it will run)."""
    if job["state"] == "queued":
        return HELD_FOR_MEMORY if held_reason(job) else ""
    return str(job.get("device") or "")


def job_row(job: dict[str, Any], now: float, history: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    """A job as one table row (JOB_COLUMNS)."""
    progress = job.get("progress") or {}
    epochs = total_epochs(job)
    epoch = progress.get("epoch")
    state = job_state(job)
    left = time_left(job, now)
    return {
        "job_id": job["job_id"], "run": job.get("label") or "", "state": state,
        "progress": fraction_done(job),
        "epoch": f"{int(epoch) + 1}/{epochs}" if epoch is not None and epochs else "",
        "best val AUC": best_val_auc(job, history),
        "time left (s)": None if left is None else round(left),
        "device": device_cell(job), "held": held_reason(job) or "",
        "attempts": int(job.get("attempts") or 0), "run_id": job.get("run_id") or "",
        "error": job.get("error") or "",
    }


def job_state(job: dict[str, Any]) -> str:
    """The state the page shows for a job, everywhere (table, picker, counts): the queue's state,
    or "cancelling" for a running job asked to stop."""
    return "cancelling" if job["state"] == "cancelling" or job.get("cancelling") else str(job["state"])


#: Where a state sorts in the Jobs table (finished states after these, newest first).
_ACTIVE_ORDER: dict[str, int] = {"running": 0, "cancelling": 0, "queued": 1, "waiting": 2}
#: The Jobs table's columns, in the order shown: what people watch first, so that a 1400 px
#: window shows progress, best validation AUC and time left without scrolling sideways.
TABLE_COLUMNS: tuple[str, ...] = ("state", "run", "progress", "epoch", "best val AUC", "time left", "GPU",
                                  "attempts", "job_id", "run_id", "error")


def queue_order(jobs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Running jobs first, then queued and waiting ones in the order a worker takes them
    (oldest first), then finished ones, the most recently finished first."""
    active = [j for j in jobs if job_state(j) in _ACTIVE_ORDER]
    ended = [j for j in jobs if job_state(j) not in _ACTIVE_ORDER]
    active.sort(key=lambda j: (_ACTIVE_ORDER[job_state(j)], float(j.get("created") or 0), str(j["job_id"])))
    ended.sort(key=lambda j: (float(j.get("finished") or j.get("created") or 0), str(j["job_id"])), reverse=True)
    return active + ended


def jobs_table(jobs: Sequence[dict[str, Any]], now: float,
               history_of: Callable[[dict[str, Any]], Sequence[dict[str, Any]]] = lambda job: ()) -> pd.DataFrame:
    """The Jobs page's table (TABLE_COLUMNS) in `queue_order`: numbers as text, gaps as "—"."""
    from ecgcore.views.launch.estimate import format_seconds

    rows = []
    for job in queue_order(jobs):
        row = job_row(job, now, history_of(job))
        left = row["time left (s)"]
        rows.append({
            "state": row["state"], "run": row["run"] or MISSING, "progress": row["progress"],
            "epoch": row["epoch"] or MISSING, "best val AUC": format_number(row["best val AUC"]),
            "time left": MISSING if left is None else format_seconds(left), "GPU": row["device"] or MISSING,
            "attempts": row["attempts"],
            "job_id": row["job_id"], "run_id": row["run_id"] or MISSING, "error": row["error"],
        })
    return pd.DataFrame(rows, columns=list(TABLE_COLUMNS))


def job_choice(job: dict[str, Any]) -> str:
    """How the job picker names a job: its id and run, no state (a state in a picker's label goes
    stale between refreshes, and a bound picker would write it into the URL)."""
    return f"{job['job_id']} · {job.get('label') or job.get('kind') or ''}".rstrip(" ·")

