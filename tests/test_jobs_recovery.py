"""Recovery beyond a lost job process: the worker itself is SIGKILLed mid-job (its job
goes on, the next worker adopts it, nothing runs twice), and a job resumed from its
checkpoint after a SIGKILL ends with the same test metrics as an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from test_jobs import ROOT, SMOKE, TINY, _cli, _env, _wait_for_progress
from test_jobs_workers import stop_workers_and_jobs

from ecgcore import jobs
from ecgcore.jobs import queue
from ecgcore.jobs import worker_status as workers
from ecgcore.runs import RunStore


def _worker(ws: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "ecgcore", "worker", *args], cwd=ROOT, env=_env(ws),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_sigkilled_worker_leaves_its_job_running_and_the_next_worker_adopts_it(demo_ws: Path) -> None:
    """SIGKILL of the worker during its first job: the job process keeps running and
    beating; a new one-slot worker adopts it (so the second job stays queued: the slot is
    taken) and sees it end in its first attempt; the store is consistent. The job trains far
    longer than the test waits and is cancelled once adopted: a job that could end on its own
    raced the new worker's start on a loaded machine (it ended first, nothing was adopted)."""
    two = [*TINY, "--set", "grid.strategy=[\"scratch\"]", "--set", "grid.seed=[0, 1]",
           "--set", "train.epochs=5000", "--set", "train.early_stopping_patience=10000"]
    ids = json.loads(_cli(demo_ws, "submit", SMOKE, *two, "--json").stdout)
    assert len(ids) == 2
    first = _worker(demo_ws, "--slots", "1")
    second = None
    try:
        job = _wait_for_progress(ids[0])
        os.kill(first.pid, signal.SIGKILL)
        first.communicate(timeout=30)
        killed = time.time()
        assert queue.pid_alive(job["pid"]) and jobs.get(ids[0])["state"] == "running"
        assert [w["pid"] for w in workers.alive_workers()] == [], "the dead worker is not listed"

        second = _worker(demo_ws, "--once", "--slots", "1")  # at once: the job must not end first
        new_id = workers.worker_id(second.pid)
        deadline = time.time() + 60
        while jobs.get(ids[0])["worker"] != new_id and time.time() < deadline:
            time.sleep(0.1)
        adopted = jobs.get(ids[0])
        assert adopted["worker"] == new_id and adopted["state"] == "running", adopted
        time.sleep(1.5)  # three worker loops (the second job must stay queued), a job heartbeat
        assert jobs.get(ids[0])["heartbeat"] >= killed, "the job beats on without its worker"
        assert jobs.get(ids[1])["state"] == "queued", "the adopted job holds the only slot"
        assert jobs.cancel(ids[1]) == "cancelled"
        assert jobs.cancel(ids[0]) == "cancelling", "the adopted job is still running"
        _, err = second.communicate(timeout=240)
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.kill()
        stop_workers_and_jobs()
    assert second.returncode == 0, err
    assert f"{ids[0]}: adopted pid {job['pid']}" in err
    ended = jobs.get(ids[0])
    assert ended["state"] == "cancelled" and ended["attempts"] == 1, ended
    assert ended["pid"] == job["pid"], "the job process that outlived its worker ended the job"
    store = RunStore(demo_ws)
    assert store.status(ended["run_id"]) == "cancelled"
    assert len(store.list()) == 1, "no other run folder"


def _single_run(ws: Path, kill_after_first_epoch: bool) -> tuple[dict, dict]:
    """One scratch job (2 epochs) through a one-slot worker; optionally SIGKILL its job
    process once epoch 0 is checkpointed. Returns (job, run results)."""
    spec = [*TINY, "--set", "grid.strategy=[\"scratch\"]", "--set", "train.epochs=2",
            "--set", "train.early_stopping_patience=50"]
    [job_id] = json.loads(_cli(ws, "submit", SMOKE, *spec, "--max-attempts", "2", "--json").stdout)
    worker = _worker(ws, "--once", "--slots", "1")
    try:
        if kill_after_first_epoch:
            deadline = time.time() + 120
            job = jobs.get(job_id)
            while not (job["progress"] or {}).get("metrics") and time.time() < deadline:
                time.sleep(0.05)
                job = jobs.get(job_id)
            assert job["progress"]["metrics"]["epoch"] == 0, job
            os.kill(job["pid"], signal.SIGKILL)
        _, err = worker.communicate(timeout=240)
    finally:
        if worker.poll() is None:
            worker.kill()
    assert worker.returncode == 0, err
    job = jobs.get(job_id)
    assert job["state"] == "done", job
    return job, RunStore(ws).get(job["run_id"]).results()


def test_resumed_run_ends_like_an_uninterrupted_one(tmp_path: Path, monkeypatch) -> None:
    """Same seed, same data: SIGKILL after epoch 0 -> requeue -> resume from last.pt gives
    the same test metrics and predictions as a run that was never interrupted."""
    from ecgcore.data.synthetic import write_demo_data

    results = {}
    for name, kill in (("resumed", True), ("straight", False)):
        ws = tmp_path / name
        monkeypatch.setenv("ECGCORE_HOME", str(ws))
        write_demo_data(ws / "datasets", scale=0.12)
        job, results[name] = _single_run(ws, kill)
        assert job["attempts"] == (2 if kill else 1)
        notes = results[name]["training_notes"]
        assert any("resumed from" in note for note in notes) == kill, notes
        results[name + "_pred"] = np.load(ws / "runs" / job["run_id"] / "predictions.npz")
    resumed, straight = results["resumed"], results["straight"]
    assert np.isclose(resumed["test"]["macro_auc"], straight["test"]["macro_auc"], rtol=0, atol=1e-9)
    a, b = results["resumed_pred"], results["straight_pred"]
    assert sorted(a.files) == sorted(b.files)
    for key in a.files:
        if a[key].dtype.kind == "f":
            assert np.allclose(a[key], b[key], rtol=0, atol=1e-6), key
        else:
            assert np.array_equal(a[key], b[key]), key


def test_hung_job_process_is_killed_before_its_job_is_requeued(demo_ws: Path) -> None:
    """A stale heartbeat with the process still there (hung): the process group is killed,
    then the job requeued, so two attempts never run at once."""
    [job_id, *_] = jobs.submit(SMOKE, [a for a in TINY if a != "--set"])
    assert [j["job_id"] for j in queue.claim(1)] == [job_id]
    hung = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        queue.set_pid(job_id, hung.pid)
        assert queue.reap_stale(now=time.time() + 5) == [], "a fresh heartbeat is alive"
        assert queue.reap_stale(now=time.time() + queue.STALE_SECONDS + 1) == [(job_id, "queued")]
        assert hung.wait(timeout=10) == -signal.SIGKILL
    finally:
        if hung.poll() is None:
            hung.kill()
    error = jobs.get(job_id)["error"]
    assert "no heartbeat" in error and f"hung process {hung.pid} was killed" in error and "requeued" in error
