"""The launcher registry, the file protocol through which a job process on a cluster node
reports without opening the index (`job_files`), and the Ray launcher end to end against a
local Ray on 127.0.0.1: the smoke grid runs as Ray tasks whose job processes never open
store.sqlite (it lives elsewhere, on the "head node's disk"), and progress, cancel and
resume still work."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from test_jobs import ROOT, SMOKE, TINY, _cli, _env, _overrides

from ecgcore import jobs
from ecgcore.errors import EcgcoreError
from ecgcore.jobs import queue
from ecgcore.jobs import worker_status as workers
from ecgcore.jobs.job_files import AttemptFiles, FileLedger, Relay
from ecgcore.jobs.launchers import LAUNCHERS, get_launcher
from ecgcore.jobs.local_launcher import LocalLauncher
from ecgcore.jobs.payload import RunJob
from ecgcore.runs import RunStore


def test_launcher_registry_and_ray_only_imported_by_its_launcher(workspace: Path) -> None:
    assert sorted(LAUNCHERS) == ["local", "ray"]
    local = get_launcher("local", slots=2, n_gpus=0)
    assert isinstance(local, LocalLauncher) and local.capacity() == 2 and local.runner == "local"
    with pytest.raises(EcgcoreError, match="unknown job launcher 'slurm'"):
        get_launcher("slurm")
    code = ("import sys\nimport ecgcore.cli, ecgcore.jobs.launchers, ecgcore.jobs.worker_loop, "
            "ecgcore.jobs.worker_status, ecgcore.jobs.job_process, ecgcore.jobs.job_files\n"
            "print('ray' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_task_resources_follow_the_device() -> None:
    from ecgcore.jobs.ray_launcher import task_resources

    assert task_resources("cpu", 2, cluster_gpus=4) == {"num_cpus": 2.0, "num_gpus": 0.0}
    assert task_resources("cuda", 1, cluster_gpus=0) == {"num_cpus": 1.0, "num_gpus": 1.0}
    assert task_resources("auto", 1, cluster_gpus=2) == {"num_cpus": 1.0, "num_gpus": 1.0}
    assert task_resources("auto", 1, cluster_gpus=0) == {"num_cpus": 1.0, "num_gpus": 0.0}
    assert task_resources("auto", 1, 8, gpus_per_job=0.5)["num_gpus"] == 0.5
    run = RunJob(run_kind="target", config={"train": {}}, hash="h")
    assert run.device == "auto"
    assert RunJob(run_kind="target", config={"train": {"device": "cuda"}}, hash="h").device == "cuda"


def test_a_forbidden_index_is_never_opened(workspace: Path) -> None:
    """After `forbid_index` a process opens no SQLite file (the run store included) but
    still writes, fails and finds run folders through `UnindexedRunStore`."""
    code = """
import sqlite3, sys
from ecgcore import workspace
from ecgcore.runs import RunStore
from ecgcore.runs.store import UnindexedRunStore
workspace.forbid_index("a test")
sqlite3.connect(":memory:").close()
try:
    RunStore()
except workspace.IndexForbidden as exc:
    print("refused:", exc)
store = UnindexedRunStore()
folder = store.create({"kind": "target", "seed": 1}, kind="target")
store.fail(folder.run_id, "boom")
print(store.status(folder.run_id), store.find_done("nothing"))
"""
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=_env(workspace), capture_output=True, check=False,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("refused: refused to open ") and "store.sqlite: a test" in lines[0]
    assert lines[1] == "failed None"
    assert not (workspace / "store.sqlite").exists(), "nothing opened the index"
    [run_id] = [p.name for p in (workspace / "runs").iterdir()]
    assert RunStore(workspace).index_run(run_id) == "failed", "the index learns the folder afterwards"
    assert RunStore(workspace).list()["status"].tolist() == ["failed"]


def test_file_reports_reach_the_index_through_the_relay(workspace: Path) -> None:
    """A job process's side (`FileLedger`) and the dispatcher's (`Relay`): the claim gives
    the job, heartbeats bring progress, pid and host (a report seen before refreshes
    nothing), a cancel request reaches the job, and its end is recorded before the job is
    told it may exit."""
    payload = RunJob(run_kind="target", config={"train": {"epochs": 1}}, hash="abc123", run_label="a run")
    [job_id] = jobs.submit_payloads([payload])
    [job] = queue.claim(1, host="head")
    relay = Relay()
    files = relay.claim(job)
    assert files == AttemptFiles(job_id, 1) and files.claim == queue.jobs_dir() / job_id / "claim-1.json"
    ledger = FileLedger(job_id, files.claim)
    assert ledger.job()["spec"] == payload.to_payload() and ledger.job()["attempts"] == 1

    assert ledger.beat({"step": 3}, None) == "running"
    relay.sync()
    seen = jobs.get(job_id)
    assert seen["progress"] == {"step": 3} and seen["pid"] == os.getpid() and seen["host"] == queue.host_name()
    time.sleep(0.05)
    relay.sync()
    assert jobs.get(job_id)["heartbeat"] == seen["heartbeat"], "an old report is no heartbeat"

    assert jobs.cancel(job_id) == "cancelling"
    relay.sync()
    assert files.cancel.exists() and ledger.beat({"step": 4}, None) == "cancelling"

    ending = threading.Thread(target=ledger.end, args=("cancelled", "cancelled by the user (test)", None))
    ending.start()
    time.sleep(0.3)
    assert ending.is_alive(), "the job process waits until its end is recorded"
    relay.sync()
    ending.join(timeout=5)
    assert not ending.is_alive() and files.ack.exists()
    ended = jobs.get(job_id)
    assert ended["state"] == "cancelled" and ended["error"] == "cancelled by the user (test)"
    assert ended["progress"] == {"step": 4}
    with pytest.raises(EcgcoreError, match="is not job"):
        FileLedger("job-other", files.claim)


def _wait(condition, timeout: float, what: str):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def _running_with(job_id: str, key: str) -> dict | None:
    job = jobs.get(job_id)
    return job if job["state"] == "running" and job["pid"] and (job["progress"] or {}).get(key) else None


def test_ray_jobs_report_progress_cancel_and_resume_without_opening_the_index(
        demo_ws: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A local Ray (2 CPUs, 127.0.0.1) owned by this test; `worker --runner ray --address`
    joins it and runs the smoke grid as Ray tasks. The index is outside the workspace
    ($ECGCORE_INDEX, known to this test and the dispatcher only, as on a head node), so a
    job process that opened "the" index would create $ECGCORE_HOME/store.sqlite, and each
    job process also refuses every SQLite file (`forbid_index`). While they run: progress
    reaches the job table; the scratch job is cancelled mid-run; the pretraining's process
    is SIGKILLed after an epoch and its second attempt resumes the same run, and the
    fine-tune then finds it. The dispatcher indexes every run folder."""
    import ray

    ray.init(include_dashboard=False, num_cpus=2, _node_ip_address="127.0.0.1", log_to_driver=False)
    monkeypatch.setenv("ECGCORE_INDEX", str(tmp_path / "head-disk" / "store.sqlite"))  # after Ray started
    # Runs long enough that each is still running when the test acts on it: the scratch job
    # when the test sees its first step and its cancel arrives (60 epochs of ~0.1 s), the
    # pretraining when its process is killed after its first epoch (30 epochs of ~0.3 s). With
    # 6 and 4 epochs they could end first (done, never cancelled or resumed) on a busy machine.
    slow = [*TINY, "--set", "pretrain.epochs=30", "--set", "pretrain.early_stopping_patience=500",
            "--set", "train.epochs=60",
            "--set", "train.early_stopping_patience=500"]
    try:
        address = ray.get_runtime_context().gcs_address
        ids = jobs.submit(SMOKE, _overrides(slow), max_attempts=2)
        started = time.time()
        dispatcher = subprocess.Popen(
            [sys.executable, "-m", "ecgcore", "worker", "--runner", "ray", "--address", address, "--once"],
            cwd=ROOT, env=_env(demo_ws), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            [row] = _wait(workers.alive_workers, 60, "the dispatcher's row")
            assert row["runner"] == "ray" and row["slots"] == 2 and row["pid"] == dispatcher.pid

            scratch = _wait(lambda: _running_with(ids[1], "step"), 120, "the scratch job's progress")
            assert scratch["host"] == queue.host_name()
            asked = time.time()
            assert _cli(demo_ws, "cancel", ids[1]).stdout.strip() == f"{ids[1]}: cancelling"

            pre = _wait(lambda: _running_with(ids[0], "metrics"), 120, "the pretraining's first epoch")
            first_run = pre["run_id"]
            os.kill(pre["pid"], signal.SIGKILL)

            _wait(lambda: jobs.get(ids[1])["state"] == "cancelled", 30, "the cancel")
            stopped = time.time() - asked
            _, err = dispatcher.communicate(timeout=300)
        finally:
            if dispatcher.poll() is None:
                dispatcher.kill()
        seconds = time.time() - started
        assert dispatcher.returncode == 0, err
        assert f"Ray at {address}" in err
    finally:
        ray.shutdown()
    print(f"\nRay grid (pretraining killed once, scratch cancelled): {seconds:.0f} s; cancel took {stopped:.1f} s")

    assert not (demo_ws / "store.sqlite").exists(), "no process opened an index in the shared workspace"
    assert stopped < 15, f"cancel took {stopped:.1f} s"
    listed = {j["job_id"]: j for j in json.loads(_cli(demo_ws, "jobs", "--json").stdout)}
    pre, scratch, finetune = (listed[i] for i in ids)
    logs = {i: _cli(demo_ws, "logs", i).stdout for i in ids}
    assert pre["state"] == "done" and pre["attempts"] == 2 and pre["error"] is None, (pre, logs[ids[0]], err)
    assert pre["run_id"] == first_run, "the second attempt continued the first one's run"
    assert scratch["state"] == "cancelled" and "cancelled by the user" in scratch["error"], scratch
    assert finetune["state"] == "done" and finetune["attempts"] == 1, (finetune, logs[ids[2]])
    assert finetune["started"] >= pre["finished"], "the fine-tune waited for its pretraining"
    assert all(job["host"] == queue.host_name() for job in listed.values())
    # Progress relayed from the nodes (the waits above saw it live): the fine-tune's last epoch,
    # the cancelled job's steps. (The resumed pretraining may have had no epoch left to train.)
    assert finetune["progress"]["metrics"]["epoch"] == 59 and scratch["progress"]["step"], (finetune, scratch)
    for job in listed.values():
        assert "torch threads" in logs[job["job_id"]]
    assert "done: " + finetune["run_id"] in logs[ids[2]] and "== run log" in logs[ids[2]]

    store = RunStore(demo_ws)
    assert store.get(first_run).log_path.read_text().count("resumed by a new attempt") == 1
    assert any("resumed from" in note for note in store.get(first_run).results()["training_notes"])
    indexed = dict(zip(store.list()["run_id"], store.list()["status"]))
    assert indexed == {pre["run_id"]: "done", scratch["run_id"]: "cancelled", finetune["run_id"]: "done"}
    assert sorted(p.name for p in (demo_ws / "runs").iterdir()) == sorted(indexed), "one folder per run"
    assert workers.alive_workers() == [], "the dispatcher removed its row"


def test_a_bad_claim_file_is_refused_before_the_index_is_forbidden(workspace: Path, tmp_path: Path) -> None:
    """`job-run JOB --claim FILE` with a claim that is not there fails with its reason and
    leaves the process able to open SQLite (forbidding is for good: an in-process caller, such
    as the CLI fuzz test, must not lose its index to a bad argument)."""
    code = f"""
import sqlite3
from ecgcore.cli import main
code = main(["job-run", "job-x", "--claim", {str(tmp_path / "jobs" / "job-x" / "1" / "claim.json")!r}])
sqlite3.connect({str(tmp_path / "after.sqlite")!r}).close()
print("exit", code)
"""
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=_env(workspace), capture_output=True,
                          check=False, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "exit 2" and "not a claim file" in done.stderr
