"""Background jobs end to end on tiny synthetic data: submit -> worker -> done; the
queue's dependency, reuse, cancel and claim rules; a SIGKILLed job process is noticed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from ecgcore import jobs
from ecgcore.jobs import queue
from ecgcore.jobs.local_launcher import slot_devices
from ecgcore.runs import RunStore

ROOT = Path(__file__).resolve().parents[1]
SMOKE = str(ROOT / "experiments" / "smoke.toml")
TINY = ["--set", "train.epochs=1", "--set", "pretrain.epochs=1", "--set", "source.train_fraction=0.5",
        "--set", "grid.train_fraction=[1.0]"]
PUBLIC_STATES = {"queued", "waiting", "running", "done", "failed", "cancelled"}


def _overrides(args: list[str]) -> list[str]:
    return [a for a in args if a != "--set"]


def _env(ws: Path) -> dict[str, str]:
    return {**os.environ, "ECGCORE_HOME": str(ws)}


def _cli(ws: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ecgcore", *args], check=False, capture_output=True, text=True,
                          cwd=ROOT, env=_env(ws), timeout=timeout)


def test_slot_devices_one_gpu_per_slot() -> None:
    assert slot_devices(None, 0) == [None]
    assert slot_devices(3, 0) == [None, None, None]
    assert slot_devices(None, 2) == ["0", "1"]
    assert slot_devices(3, 2) == ["0", "1", "0"]
    assert slot_devices(1, 4) == ["0"]


def test_queue_rules_dependency_reuse_cancel_claim(demo_ws: Path) -> None:
    ids = jobs.submit(SMOKE, _overrides(TINY))
    assert len(ids) == 3
    by_id = {j["job_id"]: j for j in jobs.list_jobs()}
    pre, scratch, finetune = (by_id[i] for i in ids)
    assert pre["kind"] == "pretrain" and pre["state"] == "queued"
    assert scratch["state"] == "queued" and scratch["depends_on"] is None
    assert finetune["state"] == "waiting" and finetune["depends_on"] == pre["job_id"]

    assert jobs.submit(SMOKE, _overrides(TINY)) == ids, "active jobs are reused, not duplicated"
    assert len(jobs.list_jobs()) == 3

    # Claims from several threads at once: every job is claimed exactly once, and the
    # waiting job is not claimable while its pretraining is not done.
    claimed: list[str] = []
    lock = threading.Lock()

    def grab() -> None:
        for job in queue.claim(2, host="test-host"):
            with lock:
                claimed.append(job["job_id"])

    threads = [threading.Thread(target=grab) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(claimed) == sorted([pre["job_id"], scratch["job_id"]])
    assert jobs.get(pre["job_id"])["attempts"] == 1

    # Cancelling a running job asks it to stop; a waiting job is cancelled at once.
    assert jobs.cancel(scratch["job_id"]) == "cancelling"
    assert queue.public(jobs.get(scratch["job_id"]))["state"] == "running"
    assert jobs.cancel(finetune["job_id"]) == "cancelled"
    assert jobs.get(finetune["job_id"])["error"] == "cancelled by the user"

    # A failed dependency fails the job that waits for it, with the reason.
    again = jobs.submit(SMOKE, _overrides(TINY))
    assert again[0] == pre["job_id"] and again[2] != finetune["job_id"]
    assert jobs.get(again[2])["state"] == "waiting"
    queue.end(pre["job_id"], "failed", "RuntimeError: boom")
    assert queue.pending_count() == 0
    assert "boom" in jobs.get(again[2])["error"] and jobs.get(again[2])["state"] == "failed"


def test_stale_heartbeat_requeues_then_fails(demo_ws: Path) -> None:
    ids = jobs.submit(SMOKE, _overrides(TINY), max_attempts=2)
    [job] = queue.claim(1, host="elsewhere")
    assert queue.reap_stale(host="here") == [], "a fresh heartbeat is alive"
    later = time.time() + queue.STALE_SECONDS + 1
    assert queue.reap_stale(host="here", now=later) == [(job["job_id"], "queued")]
    assert "requeued" in jobs.get(job["job_id"])["error"]
    [again] = queue.claim(1, host="elsewhere")
    assert again["job_id"] == job["job_id"] == ids[0] and again["attempts"] == 2
    later = time.time() + queue.STALE_SECONDS + 1
    assert queue.reap_stale(host="here", now=later) == [(job["job_id"], "failed")]
    assert "no heartbeat" in jobs.get(job["job_id"])["error"]


def test_submit_worker_kill_resume_done_then_resubmit_reuses(demo_ws: Path) -> None:
    """submit -> worker (2 slots) -> the pretraining's process is SIGKILLed after its first
    epoch -> requeued, resumed in the same run folder from last.pt -> every job done, the
    fine-tune after its pretraining; a second submit reuses the finished runs."""
    slow = [*TINY, "--set", "pretrain.epochs=3", "--set", "train.early_stopping_patience=50"]
    sub = _cli(demo_ws, "submit", SMOKE, *slow, "--max-attempts", "2", "--json")
    assert sub.returncode == 0, sub.stderr
    ids = json.loads(sub.stdout)
    queued = _cli(demo_ws, "jobs", "--json")
    assert [j["state"] for j in json.loads(queued.stdout)] == ["queued", "queued", "waiting"]

    worker = subprocess.Popen([sys.executable, "-m", "ecgcore", "worker", "--once", "--slots", "2"],
                              cwd=ROOT, env=_env(demo_ws), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 60
        job = jobs.get(ids[0])
        while not (job["progress"] or {}).get("metrics") and time.time() < deadline:
            time.sleep(0.1)
            job = jobs.get(ids[0])
        assert job["state"] == "running" and job["progress"]["metrics"]["epoch"] == 0
        first_run = job["run_id"]
        os.kill(job["pid"], signal.SIGKILL)
        _, err = worker.communicate(timeout=120)
    finally:
        if worker.poll() is None:
            worker.kill()
    assert worker.returncode == 0, err

    listed = json.loads(_cli(demo_ws, "jobs", "--json").stdout)
    assert [j["job_id"] for j in listed] == ids
    for job in listed:
        assert {"job_id", "state", "pid", "attempts", "run_id", "error"} <= set(job)
        assert job["state"] in PUBLIC_STATES
        assert job["state"] == "done" and job["error"] is None and job["progress"]["metrics"]
    pre, finetune = listed[0], listed[2]
    assert [j["attempts"] for j in listed] == [2, 1, 1]
    assert pre["run_id"] == first_run, "the second attempt continued the first one's run"
    assert finetune["started"] >= pre["finished"], "the fine-tune waited for its pretraining"
    store = RunStore(demo_ws)
    assert all(store.status(j["run_id"]) == "done" for j in listed)
    assert "resumed by a new attempt" in (demo_ws / "runs" / first_run / "log.txt").read_text()
    notes = store.get(first_run).results()["training_notes"]
    assert any("resumed from" in note for note in notes), notes

    again = json.loads(_cli(demo_ws, "submit", SMOKE, *slow, "--json").stdout)
    assert set(again).isdisjoint(ids)
    relisted = {j["job_id"]: j for j in json.loads(_cli(demo_ws, "jobs", "--json").stdout)}
    assert [relisted[i]["run_id"] for i in again] == [j["run_id"] for j in listed]
    assert all(relisted[i]["state"] == "done" and relisted[i]["attempts"] == 0 for i in again)

    logs = _cli(demo_ws, "logs", ids[2])
    assert logs.returncode == 0 and "done: " + finetune["run_id"] in logs.stdout
    assert "== run log" in logs.stdout and "test macro AUC" in logs.stdout
    assert _cli(demo_ws, "cancel", "job-nope").returncode == 2


def _wait_for_progress(job_id: str, timeout: float = 60) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        job = jobs.get(job_id)  # the workspace fixture set ECGCORE_HOME to this workspace
        if job["state"] == "running" and job["pid"] and (job["progress"] or {}).get("step"):
            return job
        time.sleep(0.2)
    raise AssertionError(f"{job_id} never reported progress: {jobs.get(job_id)}")


def test_sigkill_and_cancel_of_running_jobs(demo_ws: Path) -> None:
    """SIGKILL of the pretraining's process is noticed (dead pid) and the job fails with
    the reason, so does the fine-tune waiting for it; the scratch job is then cancelled
    mid-run: it stops at its next step and its run is kept, marked cancelled."""
    slow = [*TINY, "--set", "pretrain.epochs=30", "--set", "train.epochs=30",
            "--set", "train.early_stopping_patience=50"]
    ids = json.loads(_cli(demo_ws, "submit", SMOKE, *slow, "--max-attempts", "1", "--json").stdout)
    worker = subprocess.Popen([sys.executable, "-m", "ecgcore", "worker", "--once", "--slots", "1"],
                              cwd=ROOT, env=_env(demo_ws), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        pid = _wait_for_progress(ids[0])["pid"]
        os.kill(pid, signal.SIGKILL)
        _wait_for_progress(ids[1])
        asked = time.time()
        assert _cli(demo_ws, "cancel", ids[1]).stdout.strip() == f"{ids[1]}: cancelling"
        while jobs.get(ids[1])["state"] != "cancelled" and time.time() - asked < 30:
            time.sleep(0.1)
        stopped = time.time() - asked
        _, err = worker.communicate(timeout=60)
    finally:
        if worker.poll() is None:
            worker.kill()
    assert worker.returncode == 0, err
    assert stopped < 5, f"cancel took {stopped:.1f} s"
    listed = {j["job_id"]: j for j in json.loads(_cli(demo_ws, "jobs", "--json").stdout)}
    pre, scratch, finetune = (listed[i] for i in ids)
    assert pre["state"] == "failed" and pre["pid"] is None
    assert str(pid) in pre["error"], pre["error"]
    assert finetune["state"] == "failed" and ids[0] in finetune["error"]
    assert scratch["state"] == "cancelled" and "cancelled by the user" in scratch["error"]
    store = RunStore(demo_ws)
    assert store.status(pre["run_id"]) == "failed", "the killed job's run is not left running"
    assert store.status(scratch["run_id"]) == "cancelled"
    for run_id in (pre["run_id"], scratch["run_id"]):
        assert (demo_ws / "runs" / run_id / "log.txt").exists(), "partial folders are kept"


def test_four_writers_and_a_reader_never_see_a_locked_database(demo_ws: Path) -> None:
    """Four processes write heartbeats (short BEGIN IMMEDIATE transactions) while this
    process reads the table: no "database is locked", every write lands."""
    ids = jobs.submit(SMOKE, _overrides(TINY))
    claimed = queue.claim(2, host="test-host")
    code = ("import sys\nfrom ecgcore.jobs import queue\n"
            "for i in range(60):\n    queue.beat(sys.argv[1], {'step': i + 1})\n")
    writers = [subprocess.Popen([sys.executable, "-c", code, claimed[k % 2]["job_id"]], cwd=ROOT,
                                env=_env(demo_ws), stderr=subprocess.PIPE, text=True) for k in range(4)]
    reads = 0
    while any(w.poll() is None for w in writers):
        assert len(jobs.list_jobs()) == len(ids)
        reads += 1
    errors = [w.stderr.read() for w in writers]
    assert all(w.returncode == 0 for w in writers), errors
    assert reads > 0 and all(jobs.get(j["job_id"])["progress"] == {"step": 60} for j in claimed)
