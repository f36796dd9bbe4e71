"""`JobRunner`: where jobs run — this machine (`local`, the default) or a Ray cluster (`ray`).

Every runner shares the job table in store.sqlite as the one source of truth: `submit`
adds jobs to it, `status` / `cancel` / `logs` read and write it, so `jobs --json` and the
app show Ray jobs exactly like local ones. What differs is `serve`, the loop that claims
queued jobs and starts them: local child processes (`worker.LocalLauncher`) or Ray tasks
with the job's CPU/GPU needs (`ray_runner.RayLauncher`). Ray is imported only when the
`ray` runner is asked for.

    get_runner("local", slots=2).serve(once=True)
    get_runner("ray", address="10.0.0.5:6379").serve()
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

from ecgcore.errors import EcgcoreError
from ecgcore.jobs import queue


class JobRunner:
    """submit / status / cancel / logs on the shared job table, and `serve` to run jobs."""

    name: ClassVar[str] = ""

    def submit(self, path: Path | str, overrides: Sequence[str] = (), max_attempts: int = 2) -> list[str]:
        """Expand an experiment file into queued jobs (pretraining first); their ids."""
        from ecgcore.jobs import submit

        return submit(path, overrides, max_attempts=max_attempts)

    def status(self, job_id: str) -> dict[str, Any]:
        """The job as `jobs --json` shows it (state, progress, pid, host, attempts, run_id, error)."""
        return queue.public(queue.get(job_id))

    def cancel(self, job_id: str) -> str:
        return queue.cancel(job_id)

    def logs(self, job_id: str) -> str:
        return job_logs(job_id)

    def launcher(self) -> Any:
        """The `worker.Launcher` that starts this runner's jobs."""
        raise EcgcoreError(f"runner {self.name!r} cannot start jobs")

    def serve(self, once: bool = False) -> int:
        """Claim and run queued jobs until stopped (or, with `once`, until none is left)."""
        from ecgcore.jobs.worker_loop import Worker

        return Worker(once=once, launcher=self.launcher()).run()


class LocalRunner(JobRunner):
    """Jobs as processes on this machine, `slots` at a time (one per GPU by default)."""

    name = "local"

    def __init__(self, slots: int | None = None, n_gpus: int | None = None) -> None:
        self.slots, self.n_gpus = slots, n_gpus

    def launcher(self) -> Any:
        from ecgcore.jobs.worker_loop import LocalLauncher

        return LocalLauncher(self.slots, self.n_gpus)


def _ray_runner(**options: Any) -> JobRunner:
    from ecgcore.jobs.ray_launcher import RayRunner  # imports ray

    return RayRunner(**options)


RUNNERS: dict[str, Callable[..., JobRunner]] = {"local": LocalRunner, "ray": _ray_runner}


def get_runner(name: str = "local", **options: Any) -> JobRunner:
    """A runner by name with its options (local: slots, n_gpus; ray: address, slots,
    cpus_per_job, gpus_per_job)."""
    if name not in RUNNERS:
        raise EcgcoreError(f"unknown job runner {name!r}; choose one of {', '.join(RUNNERS)}")
    return RUNNERS[name](**options)


def job_logs(job_id: str) -> str:
    """The job's own output followed by its run's log.txt (what `logs JOB` prints)."""
    from ecgcore.runs import RunStore

    job = queue.get(job_id)
    parts: list[str] = []
    path = queue.job_log_path(job["job_id"])
    if path.exists():
        parts += [f"== job output ({path})\n", path.read_text()]
    if job["run_id"]:
        log = RunStore().get(job["run_id"]).log_path
        if log.exists():
            parts += [f"== run log ({log})\n", log.read_text()]
    return "".join(parts)
