"""What the Jobs page does to one job besides cancelling it: read its log, retry it."""

from __future__ import annotations

from typing import Any

from ecgcore.errors import EcgcoreError
from ecgcore.jobs.job_types import payload_of

RETRYABLE: tuple[str, ...] = ("failed", "cancelled")
LOG_TAIL_CHARS = 20_000


def retry_job(job_id: str, max_attempts: int = 2) -> list[str]:
    """Resubmit a failed or cancelled job's payload as a new job; returns the new job ids.

    When the job it depends on (a fine-tune's pretraining) has no finished run (it failed
    too), that job is resubmitted first, so the retry does not wait on a dead dependency.
    A run that has meanwhile finished elsewhere is reused, as for any submission."""
    from ecgcore import jobs
    from ecgcore.runs import RunStore

    job = jobs.get(job_id)
    if job["state"] not in RETRYABLE:
        raise EcgcoreError(f"job {job_id} is {job['state']}; only {' or '.join(RETRYABLE)} jobs are retried")
    payload = payload_of(job["spec"])
    payloads = [payload]
    if payload.depends_on and RunStore().find_done(payload.depends_on) is None:
        parents = [j for j in jobs.list_jobs() if j["config_hash"] == payload.depends_on]
        if not parents:
            raise EcgcoreError(f"job {job_id} needs pretraining {payload.depends_on}, which no job "
                               "and no finished run provides; submit the experiment again")
        payloads.insert(0, payload_of(parents[-1]["spec"]))
    return jobs.submit_payloads(payloads, max_attempts=max_attempts)


def job_log(job: dict[str, Any], tail: int = LOG_TAIL_CHARS) -> str:
    """The job process's output, then its run's log.txt (the last `tail` characters of each)."""
    from ecgcore.jobs import log_files

    parts = [f"== {title} ({path})\n{path.read_text(errors='replace')[-tail:]}" for title, path in log_files(job)]
    return "\n".join(parts) if parts else "(no output yet)"
