"""What the Jobs page does to one job besides cancelling it: read its log, retry it."""

from __future__ import annotations

from typing import Any

from ecgcore.errors import EcgcoreError
from ecgcore.experiments.run_plan import RunSpec

RETRYABLE: tuple[str, ...] = ("failed", "cancelled")
LOG_TAIL_CHARS = 20_000


def spec_of(job: dict[str, Any]) -> RunSpec:
    """The RunSpec a job was submitted with (its queue payload)."""
    payload = job["spec"]
    return RunSpec(kind=payload["kind"], config=payload["config"], hash=payload["hash"],
                   depends_on=payload.get("depends_on"))


def retry_job(job_id: str, max_attempts: int = 2) -> list[str]:
    """Resubmit a failed or cancelled job's spec as a new job; returns the new job ids.

    When its pretraining has no finished run (it failed too), the pretraining is
    resubmitted first, so the retry does not wait on a dead dependency. A run that has
    meanwhile finished elsewhere is reused, as for any submission."""
    from ecgcore import jobs
    from ecgcore.runs import RunStore

    job = jobs.get(job_id)
    if job["state"] not in RETRYABLE:
        raise EcgcoreError(f"job {job_id} is {job['state']}; only {' or '.join(RETRYABLE)} jobs are retried")
    spec = spec_of(job)
    specs = [spec]
    if spec.depends_on and RunStore().find_done(spec.depends_on, kind="pretrain") is None:
        parents = [j for j in jobs.list_jobs() if j["config_hash"] == spec.depends_on]
        if not parents:
            raise EcgcoreError(f"job {job_id} needs pretraining {spec.depends_on}, which no job "
                               "and no finished run provides; submit the experiment again")
        specs.insert(0, spec_of(parents[-1]))
    return jobs.submit_specs(specs, max_attempts=max_attempts)


def job_log(job: dict[str, Any], tail: int = LOG_TAIL_CHARS) -> str:
    """The job process's output, then its run's log.txt (the last `tail` characters of each)."""
    from ecgcore.jobs import job_log_path
    from ecgcore.runs import RunStore

    parts: list[str] = []
    path = job_log_path(job["job_id"])
    if path.exists():
        parts.append(f"== job output ({path})\n{path.read_text(errors='replace')[-tail:]}")
    if job.get("run_id"):
        try:
            log = RunStore().get(job["run_id"]).log_path
        except EcgcoreError:
            log = None
        if log is not None and log.exists():
            parts.append(f"== run log ({log})\n{log.read_text(errors='replace')[-tail:]}")
    return "\n".join(parts) if parts else "(no output yet)"
