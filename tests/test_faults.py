"""Faults under load (issue 8, item 2), with real OS-level faults and no mocked engine:

- a full disk during a checkpoint write: RLIMIT_FSIZE is lowered on the running job
  process (`prlimit`), so its next `last.pt` write fails with EFBIG, as a full disk fails
  with ENOSPC. The job ends failed with a reason naming the file; the previous
  checkpoint and every finished run stay intact and verify; no temp file is left.
- three workers and a dozen tiny jobs while job processes and workers are SIGKILLed at
  seeded random moments (new workers replace killed ones): every job ends done or failed
  with a reason, every finished run verifies against its checksums.json, no job has two
  finished runs, and no finished run is touched after it finished.

Marked `faults`: `python -m pytest -m faults` runs just these.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import resource
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from contextlib import closing
from pathlib import Path

import pytest
import torch
from test_jobs import ROOT, SMOKE, _cli, _env
from test_jobs_workers import stop_workers_and_jobs

from ecgcore import jobs
from ecgcore.data.synthetic import write_demo_data
from ecgcore.jobs import queue
from ecgcore.runs import RunStore

pytestmark = pytest.mark.faults

#: Tiny scratch jobs on the demo target (small_cnn; one job per seed).
TINY = ["--set", 'grid.strategy=["scratch"]', "--set", "grid.train_fraction=[1.0]",
        "--set", "target.min_positives=5", "--set", "train.early_stopping_patience=50"]
#: The 'disk' is full past this many bytes per file: above the store, its WAL (truncated
#: first) and the logs; below small_cnn's last.pt (about 2 MB with its Adam moments).
FULL_DISK_BYTES = 1_000_000


@pytest.fixture()
def fault_ws(workspace: Path) -> Path:
    write_demo_data(workspace / "datasets", scale=0.05)
    yield workspace
    stop_workers_and_jobs()


def _submit(ws: Path, seeds: list[int], epochs: int, max_attempts: int) -> list[str]:
    done = _cli(ws, "submit", SMOKE, *TINY, "--set", f"train.epochs={epochs}", "--set", f"grid.seed={seeds}",
                "--max-attempts", str(max_attempts), "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _worker(ws: Path, log: Path) -> subprocess.Popen:
    with open(log, "a") as out:
        return subprocess.Popen([sys.executable, "-m", "ecgcore", "worker", "--slots", "1"], cwd=ROOT,
                                env=_env(ws), stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def _wait(condition, timeout: float, what: str, poll: float = 0.05):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def _job_if(job_id: str, test) -> dict | None:
    job = jobs.get(job_id)
    return job if test(job) else None


def _truncate_wal(ws: Path) -> None:
    """Checkpoint the store's WAL and truncate it to 0 bytes, so the jobs' few small
    writes stay far below FULL_DISK_BYTES."""
    def truncated() -> bool:
        with closing(sqlite3.connect(ws / "store.sqlite", timeout=30)) as conn:
            busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        return busy == 0

    _wait(truncated, 30, "the store's WAL to be truncated", poll=0.1)


def _hidden_files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob(".*"))


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _stop(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_full_disk_during_a_checkpoint_write(fault_ws: Path, tmp_path: Path) -> None:
    [first] = _submit(fault_ws, [0], epochs=1, max_attempts=2)  # finishes before the disk fills
    [second] = _submit(fault_ws, [1], epochs=4, max_attempts=2)
    worker = _worker(fault_ws, tmp_path / "worker.log")
    try:
        _wait(lambda: jobs.get(first)["state"] == "done", 300, "the first job to finish")
        job = _wait(lambda: _job_if(second, lambda j: (j["progress"] or {}).get("metrics")), 300,
                    "the second job's first checkpoint")
        _truncate_wal(fault_ws)
        resource.prlimit(job["pid"], resource.RLIMIT_FSIZE, (FULL_DISK_BYTES, FULL_DISK_BYTES))
        ended = _wait(lambda: _job_if(second, lambda j: j["state"] in queue.ENDED), 300, "the second job to end")
    finally:
        _stop([worker])
    assert ended["state"] == "failed" and ended["attempts"] == 1, ended
    checkpoints = fault_ws / "runs" / ended["run_id"] / "checkpoints"
    assert f"{checkpoints / 'last.pt'}: could not be written (File too large" in ended["error"], ended["error"]

    store = RunStore(fault_ws)
    run = store.get(ended["run_id"])
    assert store.status(run.run_id) == "failed" and "File too large" in run.results()["error"]
    saved = torch.load(checkpoints / "last.pt", map_location="cpu", weights_only=True)
    epochs_written = len(run.history())
    assert 1 <= epochs_written < 4 and saved["next_epoch"] == epochs_written, \
        "last.pt still holds the last epoch that was written completely"
    assert _hidden_files(run.path) == [], "no partial temp file left behind"
    assert not run.manifest_path.exists() and not run.model_path.exists(), "nothing looks complete"

    finished = store.get(jobs.get(first)["run_id"])
    assert finished.verify() == [] and finished.manifest_path.is_file()
    assert store.verify_all() == {finished.run_id: [], run.run_id: []}
    check = _cli(fault_ws, "verify")
    assert check.returncode == 0, check.stdout + check.stderr


def test_kills_under_load_lose_no_run(fault_ws: Path, tmp_path: Path) -> None:
    n_jobs, n_kills = 12, 8
    ids = _submit(fault_ws, list(range(n_jobs)), epochs=2, max_attempts=4)
    assert len(ids) == n_jobs
    rng = random.Random(8)
    started = time.time()
    logs = tmp_path / "workers.log"
    workers = [_worker(fault_ws, logs) for _ in range(3)]
    everything = list(workers)
    kills: Counter[str] = Counter()
    first_seen: dict[str, str] = {}  # finished run -> SHA-256 of its checksums.json when first seen

    def note_finished() -> list[dict]:
        listed = jobs.list_jobs()
        for job in listed:
            manifest = fault_ws / "runs" / str(job["run_id"]) / "checksums.json"
            if job["state"] == "done" and job["run_id"] not in first_seen and manifest.is_file():
                first_seen[job["run_id"]] = _sha(manifest)
        return listed

    try:
        while sum(kills.values()) < n_kills:
            time.sleep(rng.uniform(1.0, 4.0))
            listed = note_finished()
            if all(j["state"] in queue.ENDED for j in listed):
                break
            running = [j for j in listed if j["state"] == "running" and j["pid"] and queue.pid_alive(j["pid"])]
            if running and rng.random() < 0.6:
                os.kill(rng.choice(running)["pid"], signal.SIGKILL)
                kills["job process"] += 1
            else:
                victim = rng.choice(workers)
                victim.kill()
                victim.wait()
                workers.remove(victim)
                workers.append(_worker(fault_ws, logs))
                everything.append(workers[-1])
                kills["worker"] += 1
        _wait(lambda: all(j["state"] in queue.ENDED for j in note_finished()), 600,
              "every job to end", poll=0.5)
    finally:
        _stop(everything)
    seconds = time.time() - started

    listed = {j["job_id"]: j for j in jobs.list_jobs()}
    states = Counter(j["state"] for j in listed.values())
    store = RunStore(fault_ws)
    report = store.verify_all()
    done_runs = [listed[i]["run_id"] for i in ids if listed[i]["state"] == "done"]
    lost = [r for r in done_runs if r is None or report.get(r) != [] or store.status(r) != "done"]
    touched = [r for r, sha in first_seen.items() if _sha(fault_ws / "runs" / r / "checksums.json") != sha]
    runs = store.list()
    print(f"\nfaults under load: {n_jobs} jobs, {sum(kills.values())} kills injected ({dict(kills)}), "
          f"{states['done']} done, {states['failed']} failed, runs lost {len(lost)}, "
          f"finished runs touched {len(touched)}, {len(runs)} run folders, {seconds:.0f} s")
    assert sum(kills.values()) >= 4, "too few faults were injected to mean anything"
    assert set(states) <= {"done", "failed"}, states
    assert all(j["error"] for j in listed.values() if j["state"] == "failed"), "every failure has a reason"
    assert lost == [] and touched == []
    assert all(problems == [] for problems in report.values()), report
    assert len(set(done_runs)) == len(done_runs), "each finished job has its own run"
    done = runs[runs["status"] == "done"]
    assert done["config_hash"].is_unique, "no job finished two runs"
    assert set(done["run_id"]) == set(done_runs), "every finished run belongs to a finished job"
    assert not runs["status"].isin(["running", "incomplete"]).any(), runs[["run_id", "status"]]
    assert len(runs) <= sum(j["attempts"] for j in listed.values()), "at most one run folder per attempt"
