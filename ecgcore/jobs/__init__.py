"""Background jobs: a persistent queue in the workspace's index (store.sqlite), detached
job processes, workers with slots (one per GPU), cancel, and recovery of lost jobs.

    submit(path, overrides)        -> job ids (an experiment file expanded into run jobs)
    submit_payloads([payload, …])  -> job ids (any job type, see `payload`)
    list_jobs(), get(job_id), cancel(job_id), log_files(job)
    payload.JobPayload, payload.job_type, job_types.payload_of   what a job does, typed
    worker_loop.Worker(launchers.get_launcher("local" | "ray", …)).run()   claims and runs jobs
    worker_status.alive_workers(), worker_status.ensure_local_worker()   (the app starts a worker)
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
    log_files,
    public,
    reap_stale,
    submit_payloads,
    submit_specs,
)

__all__ = ["ACTIVE", "ENDED", "STATES", "cancel", "claim", "get", "job_log_path", "list_jobs", "log_files",
           "public", "reap_stale", "submit", "submit_payloads", "submit_specs"]


def submit(path: Path | str, overrides: Sequence[str] = (), max_attempts: int = 2) -> list[str]:
    """Expand an experiment file into jobs (pretraining first); returns the job ids."""
    from ecgcore.experiments import plan_experiment

    return submit_specs(plan_experiment(path, overrides), max_attempts=max_attempts)
