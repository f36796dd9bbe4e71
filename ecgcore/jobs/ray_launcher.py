"""The Ray launcher: each job runs as a Ray task on whichever node has its CPUs/GPUs.

    python -m ecgcore worker --runner ray --address HEAD_IP:6379

The dispatcher (this process, a Ray driver on the head node) claims queued jobs from the
job table like a local worker and submits one task per job with `num_cpus` / `num_gpus`
from the job's device (`task_resources`); it keeps at most as many tasks in flight as the
cluster can run at once, so a claimed job never waits in Ray's own queue without a
heartbeat. The task starts `python -m ecgcore job-run JOB --claim FILE` on its node: the
same job process as locally (progress, checkpoints, resume, the run folder), except that
it never opens the index. It reads its job from the claim file and reports through files
in the job's folder (`job_files`); the dispatcher, the index's one writer, copies the
reports into the job table and indexes the run folders. The task enforces cancellation
on its node (SIGTERM after the grace period, then SIGKILL), where the process is.

Requirements of a cluster: every node sees the workspace folders ($ECGCORE_HOME: runs/,
datasets/, cache/, jobs/) at the same path (a shared file system) and has this package
importable (installed, or the dispatcher's checkout, which it passes on PYTHONPATH); the
index (store.sqlite, `$ECGCORE_INDEX`) is on the head node's local disk. If the
dispatcher dies, Ray stops its tasks but their job processes (own sessions) run on; the
next dispatcher relays their reports, and one that dies meanwhile is requeued or failed by
the stale-heartbeat rule like any lost job.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import ray

from ecgcore import workspace
from ecgcore.cpu import THREADS_ENV
from ecgcore.jobs import queue
from ecgcore.jobs.gpu_admission import Assignment, first_free
from ecgcore.jobs.job_files import AttemptFiles, Relay
from ecgcore.jobs.job_types import payload_of
from ecgcore.jobs.worker_loop import (
    CANCEL_GRACE_SECONDS,
    KILL_GRACE_SECONDS,
    signal_group,
)
from ecgcore.package_paths import child_cwd, child_env, source_root

POLL_SECONDS = 0.5


def task_resources(device: str, cpus_per_job: float, cluster_gpus: float,
                   gpus_per_job: float | None = None) -> dict[str, float]:
    """Ray resources of one job: its CPUs, and a GPU when its device is "cuda" (or "auto"
    on a cluster that has GPUs); "cpu" and "mps" jobs take none."""
    wants_gpu = device == "cuda" or (device == "auto" and cluster_gpus > 0)
    return {"num_cpus": float(cpus_per_job),
            "num_gpus": float(gpus_per_job if gpus_per_job is not None else 1) if wants_gpu else 0.0}


def run_job_task(job_id: str, attempt: int, home: str, threads: int | None,
                 cancel_grace: float = CANCEL_GRACE_SECONDS, kill_grace: float = KILL_GRACE_SECONDS) -> int:
    """Body of the Ray task: the job process on this node; returns its exit code. Opens no
    index: the claim and cancel files say what to run and when to stop."""
    os.environ["ECGCORE_HOME"] = home
    files = AttemptFiles(job_id, attempt)
    env = child_env()
    if threads:  # CPU jobs: torch threads = the CPUs Ray gave the task (GPU jobs keep torch's own)
        env.update({THREADS_ENV: str(threads), "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)})
    with open(queue.job_log_path(job_id), "a") as log:
        process = subprocess.Popen([sys.executable, "-m", "ecgcore", "job-run", job_id, "--claim", str(files.claim)],
                                   cwd=child_cwd(), stdin=subprocess.DEVNULL, stdout=log,
                                   stderr=subprocess.STDOUT, env=env, start_new_session=True)
    cancelled: float | None = None  # when this task first saw the cancel file
    term_sent: float | None = None
    killed = False
    while (code := process.poll()) is None:
        time.sleep(POLL_SECONDS)
        if cancelled is None:
            cancelled = time.time() if files.cancel.exists() else None
            continue
        now = time.time()
        if term_sent is None and now - cancelled > cancel_grace:
            term_sent = now
            signal_group(process.pid, signal.SIGTERM)
        elif term_sent is not None and not killed and now - term_sent > kill_grace:
            killed = True
            signal_group(process.pid, signal.SIGKILL)
    return code


class RayHandle:
    """A job's Ray task as the worker loop sees it."""

    def __init__(self, job_id: str, attempt: int, ref: Any) -> None:
        self.job_id, self.attempt, self.ref = job_id, attempt, ref
        self.pid: int | None = None
        self._last_beat = time.monotonic()

    def poll(self) -> int | None:
        if self.ref is None:
            # The task is gone but its job process (own session) may run on: watch the job
            # until this attempt ends (a lost one is requeued or failed by the stale-heartbeat rule).
            job = queue.get(self.job_id)
            return None if job["state"] in ("running", "cancelling") and job["attempts"] == self.attempt else 0
        ready, _ = ray.wait([self.ref], timeout=0)
        if ready:
            try:
                return int(ray.get(self.ref))
            except ray.exceptions.RayError:
                self.ref = None
                return self.poll()
        if self.pid is None and time.monotonic() - self._last_beat >= 1.0:
            # Not started on a node yet (Ray is placing it): keep the claimed job from looking lost.
            self._last_beat = time.monotonic()
            self.pid = queue.get(self.job_id)["pid"]
            if self.pid is None:
                queue.beat(self.job_id)
        return None

    def signal(self, sig: int) -> None:
        """Cancellation is enforced by the task on its node (see `run_job_task`); when the
        task is gone, a job process on this host is signalled directly."""
        if self.ref is not None:
            return
        job = queue.get(self.job_id)
        if job["pid"] and job["host"] == queue.host_name():
            signal_group(job["pid"], sig)


@dataclass
class RayLauncher:
    """Starts jobs as Ray tasks against `address` (a running cluster, e.g. "HEAD_IP:6379"
    or "auto"; None: a local one). `gpus_per_job` below 1 lets Ray put several jobs on one
    GPU (`worker --runner ray --runs-per-gpu N` asks for 1 / N); Ray counts the shares,
    not memory."""

    address: str | None = None
    slots: int | None = None
    cpus_per_job: float = 1.0
    gpus_per_job: float | None = None
    runner: str = "ray"

    def __post_init__(self) -> None:
        if not ray.is_initialized():
            root = source_root()  # a checkout travels to Ray's workers on PYTHONPATH; an install needs nothing
            ray.init(address=self.address, log_to_driver=False, include_dashboard=False,
                     runtime_env={"env_vars": {"PYTHONPATH": str(root)}} if root is not None else None)
        resources = ray.cluster_resources()
        self.cluster_cpus = float(resources.get("CPU", 0))
        self.cluster_gpus = float(resources.get("GPU", 0))
        fits = int(self.cluster_cpus // self.cpus_per_job) if self.cpus_per_job > 0 else 1
        self._capacity = max(1, self.slots or fits)
        self._task = ray.remote(run_job_task)
        self._relay = Relay()

    def capacity(self) -> int:
        return self._capacity

    def describe(self) -> str:
        gpus = f", {self.gpus_per_job:g} GPU per GPU job" if self.gpus_per_job is not None else ""
        return (f"Ray at {ray.get_runtime_context().gcs_address}: {self.cluster_cpus:g} CPUs, "
                f"{self.cluster_gpus:g} GPUs, {self.cpus_per_job:g} CPU(s) per job{gpus}")

    def assign(self, jobs: Sequence[dict[str, Any]], free: Sequence[int]) -> Assignment:
        """The queue's order: Ray places each task on a node with its resources."""
        return first_free(jobs, free, lambda job, slot: "ray")

    def sync(self) -> None:
        """Copy the job processes' reports into the index (this process is its one writer)."""
        self._relay.sync()

    def start(self, job: dict[str, Any], slot: int) -> RayHandle:
        device = payload_of(job["spec"]).device
        needs = task_resources(device, self.cpus_per_job, self.cluster_gpus, self.gpus_per_job)
        threads = None if needs["num_gpus"] else max(1, int(needs["num_cpus"]))
        files = self._relay.claim(job)
        ref = self._task.options(**needs, name=f"ecgcore-{job['job_id']}", max_retries=0).remote(
            job["job_id"], files.attempt, str(workspace.home()), threads)
        return RayHandle(job["job_id"], files.attempt, ref)
