"""Background jobs: a persistent queue in the workspace's store.sqlite, detached job
processes, workers with slots (one per GPU), cancel, and recovery of lost jobs.

    submit(path, overrides)  -> job ids (an experiment file expanded into jobs)
    list_jobs(), get(job_id), cancel(job_id)
    Worker(slots, once).run()  claims and runs jobs (see worker.py)
    workers.alive_workers(), workers.ensure_local_worker()  (the app starts a worker itself)
    runners.get_runner("local" | "ray", ...)  where jobs run (Ray only imported for "ray")
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ecgcore.jobs.queue import (
    ACTIVE,
    ENDED,
    STATES,
    cancel,
    claim,
    get,
    job_log_path,
    list_jobs,
    public,
    reap_stale,
    submit_specs,
)

__all__ = ["ACTIVE", "ENDED", "STATES", "cancel", "claim", "get", "job_log_path", "list_jobs",
           "public", "reap_stale", "submit", "submit_specs"]


def submit(path: Path | str, overrides: Sequence[str] = (), max_attempts: int = 2) -> list[str]:
    """Expand an experiment file into jobs (pretraining first); returns the job ids."""
    from ecgcore.experiments import plan_experiment

    return submit_specs(plan_experiment(path, overrides), max_attempts=max_attempts)
