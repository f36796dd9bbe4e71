"""Where jobs run, by name: `local` (child processes on this machine, the default) or `ray`
(one Ray task per job on a cluster). A launcher starts the jobs a `worker_loop.Worker`
claims; the job table in the index stays the one source of truth for both, so `jobs`,
`cancel`, `logs` and the app treat Ray jobs exactly like local ones. Ray is imported only
when the `ray` launcher is asked for.

    Worker(get_launcher("local", slots=2), once=True).run()
    Worker(get_launcher("ray", address="10.0.0.5:6379")).run()
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ecgcore.errors import EcgcoreError
from ecgcore.jobs.local_launcher import LocalLauncher
from ecgcore.jobs.worker_loop import Launcher


def _ray(**options: Any) -> Launcher:
    from ecgcore.jobs.ray_launcher import RayLauncher  # imports ray

    return RayLauncher(**options)


#: Each launcher's factory with its options (local: slots, n_gpus, runs_per_gpu, gpu_probe;
#: ray: address, slots, cpus_per_job, gpus_per_job).
LAUNCHERS: dict[str, Callable[..., Launcher]] = {"local": LocalLauncher, "ray": _ray}


def get_launcher(name: str = "local", **options: Any) -> Launcher:
    """The launcher `name`, made with its options."""
    if name not in LAUNCHERS:
        raise EcgcoreError(f"unknown job launcher {name!r}; choose one of {', '.join(LAUNCHERS)}")
    return LAUNCHERS[name](**options)
