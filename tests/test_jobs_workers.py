"""Worker registration and the app's automatic local worker: two sessions asking at once
start one worker, it outlives the process that started it, its row goes when it stops;
each CPU job gets its share of the cores as torch threads."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ecgcore.cpu import THREADS_ENV
from ecgcore.jobs import queue
from ecgcore.jobs import worker_status as workers
from ecgcore.jobs.local_launcher import job_env, threads_per_job

ROOT = Path(__file__).resolve().parents[1]


def stop_workers_and_jobs() -> None:
    """Kill every worker of this workspace and every job process it started (each runs in
    its own session, so its process group is its pid)."""
    pids = [w["pid"] for w in workers.alive_workers()]
    pids += [j["pid"] for j in queue.list_jobs() if j["pid"] and j["state"] in queue.ACTIVE]
    for pid in pids:
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    for process in workers._spawned:
        process.poll()


@pytest.fixture()
def auto_ws(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv(workers.AUTO_ENV, "1")
    try:
        yield workspace
    finally:
        stop_workers_and_jobs()


def _wait(condition, timeout: float = 30, what: str = "condition") -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_threads_per_job_share_the_cores() -> None:
    assert threads_per_job(1, 8) == 8
    assert threads_per_job(2, 8) == 4
    assert threads_per_job(3, 8) == 2
    assert threads_per_job(4, 2) == 1, "never fewer than one thread"
    assert job_env(None, 2, 8) == {THREADS_ENV: "4", "OMP_NUM_THREADS": "4", "MKL_NUM_THREADS": "4"}
    assert job_env("1", 2, 8) == {"CUDA_VISIBLE_DEVICES": "1", "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}, \
        "CUDA jobs keep torch's own threads; GPUs numbered as nvidia-smi numbers them"


def test_job_process_uses_its_thread_share(workspace: Path) -> None:
    code = ("from ecgcore.jobs.job_process import apply_thread_share\nimport torch\n"
            "print(apply_thread_share(), torch.get_num_threads())")
    env = {**os.environ, THREADS_ENV: "1", "OMP_NUM_THREADS": "2"}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["1", "1"]
    env.pop(THREADS_ENV)
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["None", "2"]


def test_alive_workers_by_heartbeat_and_pid(workspace: Path) -> None:
    row = workers.register(3, runner="local")
    assert row["pid"] == os.getpid() and row["slots"] == 3 and row["host"] == queue.host_name()
    assert [w["worker_id"] for w in workers.alive_workers()] == [row["worker_id"]]
    assert workers.alive_workers(now=time.time() + queue.STALE_SECONDS + 1) == [], "stale heartbeat"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    workers.register(1, pid=int(dead.stdout))
    assert [w["pid"] for w in workers.alive_workers()] == [os.getpid()], "a dead pid is not alive"
    workers.unregister()
    assert workers.alive_workers() == []
    assert workers.ensure_local_worker() is None, "ECGCORE_AUTO_WORKER=0 starts nothing"
    assert "ECGCORE_AUTO_WORKER=0" in workers.local_worker_status()


def test_two_sessions_at_once_start_one_detached_worker(auto_ws: Path) -> None:
    """Two processes call ensure_local_worker at the same moment and exit: one worker runs,
    both got its row, it survives them, registers itself, and leaves when stopped."""
    code = "from ecgcore.jobs.worker_status import ensure_local_worker\nprint(ensure_local_worker()['pid'])"
    callers = [subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True)
               for _ in range(2)]
    pids = {int(c.communicate(timeout=60)[0]) for c in callers}
    assert len(pids) == 1, f"two workers started: {pids}"
    [pid] = pids
    assert all(c.returncode == 0 for c in callers)
    assert queue.pid_alive(pid), "the worker outlives the process that started it"
    assert os.getpgid(pid) == pid, "the worker leads its own session"
    log = workers.worker_log_path()
    _wait(lambda: f"worker {pid} on" in log.read_text(), what="the worker's first line")
    [row] = workers.alive_workers()
    assert row["pid"] == pid and row["runner"] == "local" and row["slots"] == 1
    assert workers.ensure_local_worker()["pid"] == pid, "a live worker is reused"
    assert f"pid {pid}" in workers.local_worker_status()

    os.kill(pid, signal.SIGTERM)
    _wait(lambda: not queue.pid_alive(pid), what="the worker to stop")
    assert workers.alive_workers() == [], "a stopped worker removes its row"


def test_app_sidebar_shows_the_worker(auto_ws: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The app's sidebar line: a live worker is named (no new one started); with the
    automatic start off and none alive it says so."""
    from streamlit.testing.v1 import AppTest

    workers.register(2)  # this process plays a live worker, beating as a worker does
    done = threading.Event()

    def beat() -> None:
        while not done.wait(0.5):
            workers.beat()

    beating = threading.Thread(target=beat)
    beating.start()
    try:
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
        captions = [c.value for c in at.sidebar.caption]
        assert f"Jobs: local worker pid {os.getpid()} on {queue.host_name()}, 2 slots" in " ".join(captions)
        assert [w["pid"] for w in workers.alive_workers()] == [os.getpid()], "no second worker"
    finally:
        done.set()
        beating.join()
    workers.unregister()
    monkeypatch.setenv(workers.AUTO_ENV, "0")
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    assert any("automatic start is off" in c.value for c in at.sidebar.caption)
    assert workers.alive_workers() == []
