"""Which workers are alive, and starting a local one when none is (the app does this).

Every worker (the local `python -m ecgcore worker` and the Ray dispatcher) keeps one row
in the `workers` table of the index (store.sqlite): pid, host, heartbeat, slots, started,
runner (the launcher's name), log.
A worker is alive when its heartbeat is younger than `queue.STALE_SECONDS` and, on this
host, its pid still exists; rows of dead workers on this host are pruned when read.

`ensure_local_worker()` lets `streamlit run app.py` be all a user runs: when no worker is
alive on this host it starts one detached (a new session, output to
`$ECGCORE_HOME/workers/<host>.log`), so it and its jobs outlive the Streamlit process.
A file lock makes two sessions that ask at once start one worker, and the parent writes
the new worker's row itself before releasing the lock (the worker takes it over when it
starts), so the second session sees it at once.

`ECGCORE_AUTO_WORKER=0` turns the starting off (the test suite sets it; a page that calls
`ensure_local_worker` then gets None instead of a new process).
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path
from typing import Any

from ecgcore import workspace
from ecgcore.jobs import queue
from ecgcore.package_paths import child_env

AUTO_ENV = "ECGCORE_AUTO_WORKER"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS workers (
    worker_id TEXT PRIMARY KEY,
    pid INTEGER NOT NULL,
    host TEXT NOT NULL,
    heartbeat REAL NOT NULL,
    slots INTEGER NOT NULL,
    started REAL NOT NULL,
    runner TEXT NOT NULL DEFAULT 'local',
    log TEXT
)"""

# Workers this process started: polled so a worker that exits is reaped, not a zombie
# child of the Streamlit process (a zombie's pid would still exist).
_spawned: list[subprocess.Popen] = []


def worker_id(pid: int | None = None, host: str | None = None) -> str:
    return f"{host or queue.host_name()}:{pid or os.getpid()}"


def connect() -> sqlite3.Connection:
    return workspace.open_store(workspace.index_path(), _SCHEMA)


def register(slots: int, runner: str = "local", pid: int | None = None,
             log: Path | str | None = None) -> dict[str, Any]:
    """Add (or refresh) this worker's row; `pid` defaults to this process."""
    pid = pid or os.getpid()
    host = queue.host_name()
    now = time.time()
    with workspace.write_transaction(connect) as conn:
        conn.execute(
            "INSERT INTO workers (worker_id, pid, host, heartbeat, slots, started, runner, log)"
            " VALUES (?,?,?,?,?,?,?,?) ON CONFLICT(worker_id) DO UPDATE SET heartbeat = excluded.heartbeat,"
            " slots = excluded.slots, runner = excluded.runner, log = COALESCE(excluded.log, log)",
            (worker_id(pid, host), pid, host, now, int(slots), now, runner, str(log) if log else None))
        row = conn.execute("SELECT * FROM workers WHERE worker_id = ?", (worker_id(pid, host),)).fetchone()
    return dict(row)


def beat(pid: int | None = None) -> None:
    with workspace.write_transaction(connect) as conn:
        conn.execute("UPDATE workers SET heartbeat = ? WHERE worker_id = ?", (time.time(), worker_id(pid)))


def unregister(pid: int | None = None) -> None:
    with workspace.write_transaction(connect) as conn:
        conn.execute("DELETE FROM workers WHERE worker_id = ?", (worker_id(pid),))


def alive_workers(now: float | None = None) -> list[dict[str, Any]]:
    """Live workers on any host (fresh heartbeat; on this host also a live pid), oldest first.
    Each is a dict with worker_id, pid, host, heartbeat, slots, started, runner, log."""
    for process in _spawned:
        process.poll()  # reap a worker this process started and that has exited
    now = time.time() if now is None else now
    host = queue.host_name()
    with closing(connect()) as conn:
        rows = [dict(r) for r in conn.execute("SELECT * FROM workers ORDER BY started, worker_id")]
    dead = [r["worker_id"] for r in rows if r["host"] == host and not queue.pid_alive(r["pid"])]
    if dead:
        with workspace.write_transaction(connect) as conn:
            conn.executemany("DELETE FROM workers WHERE worker_id = ?", [(w,) for w in dead])
    return [r for r in rows
            if r["worker_id"] not in dead and now - r["heartbeat"] <= queue.STALE_SECONDS]


def local_workers(now: float | None = None) -> list[dict[str, Any]]:
    host = queue.host_name()
    return [w for w in alive_workers(now) if w["host"] == host]


def autostart_enabled() -> bool:
    return os.environ.get(AUTO_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def worker_log_path() -> Path:
    path = workspace.home() / "workers"
    path.mkdir(parents=True, exist_ok=True)
    return path / f"{queue.host_name()}.log"


def ensure_local_worker(slots: int | None = None) -> dict[str, Any] | None:
    """The row of a live worker on this host, starting one (detached) when there is none.
    Returns None only when none is alive and ECGCORE_AUTO_WORKER=0 forbids starting one."""
    mine = local_workers()
    if mine:
        return mine[0]
    if not autostart_enabled():
        return None
    lock_path = workspace.home() / "workers.lock"
    with open(lock_path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one session at a time checks and starts
        try:
            mine = local_workers()
            if mine:
                return mine[0]
            return _start_worker(slots)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _start_worker(slots: int | None) -> dict[str, Any]:
    """`python -m ecgcore worker` in its own session (not stopped by the app's Ctrl-C or
    exit), with this workspace and this code on its path (`package_paths.child_env`)."""
    env = {**child_env(), "ECGCORE_HOME": str(workspace.home())}
    command = [sys.executable, "-m", "ecgcore", "worker"] + (["--slots", str(slots)] if slots else [])
    log_path = worker_log_path()
    with open(log_path, "a") as log:  # the worker keeps its own copy of the descriptor
        log.write(f"== {time.strftime('%Y-%m-%d %H:%M:%S')} started by pid {os.getpid()}\n")
        log.flush()
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                   env=env, start_new_session=True, close_fds=True)
    _spawned.append(process)
    # Written here, before the lock is released, so a second session sees this worker; the
    # worker refreshes it (with its real slot count) once it runs.
    return register(slots or 1, pid=process.pid, log=log_path)


def describe(worker: dict[str, Any] | None) -> str:
    """One line for a status caption."""
    if worker is None:
        return "no worker running (automatic start is off: ECGCORE_AUTO_WORKER=0)"
    age = time.time() - worker["heartbeat"]
    slots = f"{worker['slots']} slot" + ("s" if worker["slots"] != 1 else "")
    return (f"{worker['runner']} worker pid {worker['pid']} on {worker['host']}, {slots}, "
            f"heartbeat {age:.0f} s ago")


def local_worker_status() -> str:
    """The app's sidebar line: ensure a local worker (a cheap table read when one is alive,
    which is every rerun but the first) and say which one runs the jobs."""
    try:
        return "Jobs: " + describe(ensure_local_worker())
    except (OSError, sqlite3.Error) as exc:
        return f"Jobs: could not start a worker ({type(exc).__name__}: {exc})"
