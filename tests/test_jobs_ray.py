"""JobRunner registry and the Ray runner end to end against a local Ray on 127.0.0.1: the
same grid runs as Ray tasks and lands in the same job table (`jobs --json`)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_jobs import ROOT, SMOKE, TINY, _cli, _env, _overrides

from ecgcore.errors import EcgcoreError
from ecgcore.jobs import queue
from ecgcore.jobs import worker_status as workers
from ecgcore.jobs.launchers import LocalRunner, get_runner


def test_runner_registry_and_ray_only_imported_by_its_runner(workspace: Path) -> None:
    assert isinstance(get_runner("local", slots=2), LocalRunner)
    with pytest.raises(EcgcoreError, match="unknown job runner 'slurm'"):
        get_runner("slurm")
    code = ("import sys\nimport ecgcore.cli, ecgcore.jobs.launchers, ecgcore.jobs.worker_loop, ecgcore.jobs.worker_status\n"
            "print('ray' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_task_resources_follow_the_device() -> None:
    from ecgcore.jobs.ray_launcher import task_resources

    cpu = {"train": {"device": "cpu"}}
    assert task_resources(cpu, 2, cluster_gpus=4) == {"num_cpus": 2.0, "num_gpus": 0.0}
    assert task_resources({"train": {"device": "cuda"}}, 1, cluster_gpus=0) == {"num_cpus": 1.0, "num_gpus": 1.0}
    assert task_resources({"train": {}}, 1, cluster_gpus=2) == {"num_cpus": 1.0, "num_gpus": 1.0}
    assert task_resources({}, 1, cluster_gpus=0) == {"num_cpus": 1.0, "num_gpus": 0.0}
    assert task_resources({"train": {"device": "auto"}}, 1, 8, gpus_per_job=0.5)["num_gpus"] == 0.5


def test_ray_runner_runs_a_grid_into_the_job_table(demo_ws: Path) -> None:
    """A local Ray (2 CPUs, 127.0.0.1) owned by this test; `worker --runner ray --address`
    joins it and runs the smoke grid (pretraining, scratch, then the fine-tune that waits
    for its pretraining) as Ray tasks; state, progress and runs are in the job table."""
    import ray

    ray.init(include_dashboard=False, num_cpus=2, _node_ip_address="127.0.0.1", log_to_driver=False)
    try:
        address = ray.get_runtime_context().gcs_address
        runner = get_runner("local")
        ids = runner.submit(SMOKE, _overrides(TINY))
        dispatcher = subprocess.Popen(
            [sys.executable, "-m", "ecgcore", "worker", "--runner", "ray", "--address", address, "--once"],
            cwd=ROOT, env=_env(demo_ws), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.time() + 30
            while not workers.alive_workers() and time.time() < deadline:
                time.sleep(0.2)
            [row] = workers.alive_workers()
            assert row["runner"] == "ray" and row["slots"] == 2 and row["pid"] == dispatcher.pid
            _, err = dispatcher.communicate(timeout=240)
        finally:
            if dispatcher.poll() is None:
                dispatcher.kill()
        assert dispatcher.returncode == 0, err
        assert f"Ray at {address}" in err
    finally:
        ray.shutdown()
    listed = {j["job_id"]: j for j in json.loads(_cli(demo_ws, "jobs", "--json").stdout)}
    pre, scratch, finetune = (listed[i] for i in ids)
    for job in (pre, scratch, finetune):
        assert job["state"] == "done" and job["error"] is None and job["attempts"] == 1, \
            (job["error"], err, runner.logs(job["job_id"]))
        assert job["progress"]["metrics"] and job["run_id"] and job["host"] == queue.host_name()
        assert runner.status(job["job_id"])["state"] == "done"
        assert "torch threads" in runner.logs(job["job_id"])
    assert finetune["started"] >= pre["finished"], "the fine-tune waited for its pretraining"
    assert "done: " + finetune["run_id"] in runner.logs(finetune["job_id"])
    assert workers.alive_workers() == [], "the dispatcher removed its row"
