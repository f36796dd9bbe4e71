"""The job table in the workspace's index (store.sqlite): submit, claim, progress, cancel, reap.

Every change is one short `BEGIN IMMEDIATE` transaction, so several workers, job
processes and the app can write at once; a claim selects and marks jobs in the same
transaction, so each job is claimed by exactly one worker. A job's `spec` column holds
its typed payload (`ecgcore.jobs.payload`) as JSON.
"""

# Kept by hand, not a task-queue library: Celery and RQ need a broker process; this queue is a table
# of the workspace index the app already reads, with pretraining waits, per-GPU slots and adoption.

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import time
import uuid
from collections.abc import Sequence
from contextlib import AbstractContextManager, closing
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ecgcore import workspace
from ecgcore.errors import EcgcoreError
from ecgcore.jobs.payload import JobPayload, RunJob, run_payload
from ecgcore.processes import pid_alive

if TYPE_CHECKING:
    from ecgcore.experiments.run_plan import RunSpec

STATES = ("queued", "waiting", "running", "cancelling", "done", "failed", "cancelled")
ACTIVE = ("queued", "waiting", "running", "cancelling")
ENDED = ("done", "failed", "cancelled")
STALE_SECONDS = 15.0
DEFAULT_MAX_ATTEMPTS = 2

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY,
    spec TEXT NOT NULL,
    config_hash TEXT NOT NULL,
    kind TEXT NOT NULL,
    label TEXT,
    depends_on TEXT,
    state TEXT NOT NULL,
    progress TEXT,
    pid INTEGER,
    host TEXT,
    heartbeat REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL DEFAULT 2,
    error TEXT,
    created REAL NOT NULL,
    started REAL,
    finished REAL,
    cancel_requested REAL,
    run_id TEXT,
    worker TEXT,
    device TEXT
)"""

#: Columns added after the table was first made, with their types: older stores get them
#: (`_add_columns`). worker: the `workers.worker_id` running the job; device: where it runs
#: ("cuda:0", "cpu", "ray"), set when it starts.
_LATER_COLUMNS: dict[str, str] = {"worker": "TEXT", "device": "TEXT"}


def host_name() -> str:
    return socket.gethostname()


def jobs_dir() -> Path:
    """Where each job process's output goes (`<job_id>.log`)."""
    path = workspace.home() / "jobs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def job_log_path(job_id: str) -> Path:
    return jobs_dir() / f"{job_id}.log"


def log_files(job: dict[str, Any]) -> list[tuple[str, Path]]:
    """What `logs JOB` and the Jobs page show, with a title each: the job process's output,
    then its run's log.txt (each when it exists)."""
    from ecgcore.runs import RunStore

    found: list[tuple[str, Path]] = []
    path = job_log_path(job["job_id"])
    if path.exists():
        found.append(("job output", path))
    if job.get("run_id"):
        try:
            log = RunStore().get(job["run_id"]).log_path
        except EcgcoreError:
            return found
        if log.exists():
            found.append(("run log", log))
    return found


def connect() -> sqlite3.Connection:
    """The workspace store with the jobs table (see `workspace.open_store`)."""
    conn = workspace.open_store(workspace.index_path(), _SCHEMA,
                                "CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs (state, created)")
    _add_columns(conn)
    return conn


def _add_columns(conn: sqlite3.Connection) -> None:
    """Stores made before jobs recorded their worker or device get the columns (once; a
    concurrent process adding one at the same moment is fine)."""
    have = {row["name"] for row in conn.execute("PRAGMA table_info(jobs)")}
    for name, kind in _LATER_COLUMNS.items():
        if name in have:
            continue
        try:
            conn.execute(f"ALTER TABLE jobs ADD COLUMN {name} {kind}")
        except sqlite3.OperationalError as exc:
            if "duplicate column" not in str(exc):
                raise


def write() -> AbstractContextManager[sqlite3.Connection]:
    """One short write transaction that takes the write lock up front."""
    return workspace.write_transaction(connect)


def _as_dict(row: sqlite3.Row) -> dict[str, Any]:
    item = dict(row)
    item["progress"] = json.loads(item["progress"]) if item.get("progress") else None
    item["spec"] = json.loads(item["spec"])
    return item


def public(job: dict[str, Any]) -> dict[str, Any]:
    """A job as `jobs --json` shows it: state is one of the six public states
    (queued, waiting, running, done, failed, cancelled) plus a `cancelling` flag."""
    item = {key: value for key, value in job.items() if key != "spec"}
    item["cancelling"] = job["state"] == "cancelling"
    if item["cancelling"]:  # scripts see the six documented states; a cancelling job still runs
        item["state"] = "running"
    payload = run_payload(job["spec"])
    return item | {"config": payload.config if payload is not None else None}


def get(job_id: str) -> dict[str, Any]:
    with closing(connect()) as conn:
        row = conn.execute("SELECT * FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
    if row is None:
        raise EcgcoreError(f"no job {job_id!r} (see `python -m ecgcore jobs`)")
    return _as_dict(row)


def list_jobs() -> list[dict[str, Any]]:
    with closing(connect()) as conn:
        rows = conn.execute("SELECT * FROM jobs ORDER BY created, job_id").fetchall()
    return [_as_dict(r) for r in rows]


def running_jobs() -> list[dict[str, Any]]:
    """The jobs a job process is working on (running or cancelling), oldest first."""
    with closing(connect()) as conn:
        rows = conn.execute("SELECT * FROM jobs WHERE state IN ('running', 'cancelling')"
                            " ORDER BY created, job_id").fetchall()
    return [_as_dict(r) for r in rows]


# -- submitting -----------------------------------------------------------------------------------
def submit_payloads(payloads: Sequence[JobPayload], max_attempts: int = DEFAULT_MAX_ATTEMPTS) -> list[str]:
    """Add one job per payload (in the order given: a job after the one it depends on);
    returns their job ids.

    A payload whose result a finished run already holds becomes a "done" job pointing at
    that run; a payload with an active job (queued, waiting, running) of the same config
    hash reuses that job; a payload that depends on another waits for that one's job."""
    from ecgcore.runs import RunStore

    store = RunStore()
    done_runs = [payload.finished_run(store) for payload in payloads]
    job_ids: list[str] = []
    by_hash: dict[str, str] = {}
    now = time.time()
    with write() as conn:
        for offset, (payload, run_id) in enumerate(zip(payloads, done_runs)):
            key = payload.config_hash
            active = None if key is None else conn.execute(
                f"SELECT job_id FROM jobs WHERE config_hash = ? AND state IN ({_marks(ACTIVE)})"
                " ORDER BY created LIMIT 1", (key, *ACTIVE)).fetchone()
            if active is not None:
                by_hash[key] = active["job_id"]
                job_ids.append(active["job_id"])
                continue
            job_id = "job-" + uuid.uuid4().hex[:10]
            depends_on = None
            if payload.depends_on:
                depends_on = by_hash.get(payload.depends_on) or _latest_job_for(conn, payload.depends_on)
            state, finished = ("done", now) if run_id else ("waiting" if depends_on else "queued", None)
            if state == "waiting" and _state_of(conn, depends_on) == "done":
                state = "queued"
            conn.execute(
                "INSERT INTO jobs (job_id, spec, config_hash, kind, label, depends_on, state,"
                " max_attempts, created, finished, run_id) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (job_id, json.dumps(payload.to_payload(), default=str), key or "", payload.kind,
                 payload.label, depends_on, state, max_attempts, now + offset * 1e-6, finished, run_id))
            if key is not None:
                by_hash[key] = job_id
            job_ids.append(job_id)
    return job_ids


def submit_specs(specs: Sequence[RunSpec], max_attempts: int = DEFAULT_MAX_ATTEMPTS) -> list[str]:
    """Add one run job per RunSpec (in plan order, pretraining first); see `submit_payloads`."""
    return submit_payloads([RunJob.of(spec) for spec in specs], max_attempts=max_attempts)


def _marks(values: Sequence[Any]) -> str:
    return ", ".join("?" for _ in values)


def _latest_job_for(conn: sqlite3.Connection, config_hash: str) -> str | None:
    row = conn.execute("SELECT job_id FROM jobs WHERE config_hash = ? ORDER BY created DESC LIMIT 1",
                       (config_hash,)).fetchone()
    return row["job_id"] if row else None


def _state_of(conn: sqlite3.Connection, job_id: str | None) -> str | None:
    if job_id is None:
        return None
    row = conn.execute("SELECT state FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
    return row["state"] if row else None


# -- claiming and running -------------------------------------------------------------------------
def promote_waiting(conn: sqlite3.Connection) -> None:
    """Waiting jobs whose dependency finished become queued; a failed or cancelled
    dependency fails the jobs that wait for it, with the reason."""
    rows = conn.execute("SELECT w.job_id, d.job_id AS dep, d.state AS dep_state, d.error AS dep_error"
                        " FROM jobs w LEFT JOIN jobs d ON d.job_id = w.depends_on"
                        " WHERE w.state = 'waiting'").fetchall()
    now = time.time()
    for row in rows:
        if row["dep_state"] == "done":
            conn.execute("UPDATE jobs SET state = 'queued' WHERE job_id = ?", (row["job_id"],))
        elif row["dep_state"] in ("failed", "cancelled") or row["dep_state"] is None:
            reason = (f"its dependency {row['dep']} {row['dep_state'] or 'is missing'}"
                      + (f": {row['dep_error']}" if row["dep_error"] else ""))
            conn.execute("UPDATE jobs SET state = 'failed', error = ?, finished = ? WHERE job_id = ?",
                         (reason, now, row["job_id"]))


def _mark_running(conn: sqlite3.Connection, job_id: str, host: str, worker: str | None,
                  device: str | None) -> bool:
    """Queued -> running (one more attempt, fresh heartbeat, no progress); False when the job
    is no longer queued (another worker took it, or it was cancelled)."""
    now = time.time()
    cursor = conn.execute("UPDATE jobs SET state = 'running', attempts = attempts + 1, host = ?, heartbeat = ?,"
                          " started = ?, pid = NULL, progress = NULL, worker = ?, device = ?"
                          " WHERE job_id = ? AND state = 'queued'", (host, now, now, worker, device, job_id))
    return cursor.rowcount == 1


def claim(n: int, host: str | None = None, worker: str | None = None) -> list[dict[str, Any]]:
    """Atomically take up to n queued jobs (oldest first) and mark them running (by `worker`,
    a `workers.worker_id`)."""
    if n <= 0:
        return []
    host = host or host_name()
    with write() as conn:
        promote_waiting(conn)
        rows = conn.execute("SELECT job_id FROM jobs WHERE state = 'queued' ORDER BY created LIMIT ?",
                            (n,)).fetchall()
        ids = [r["job_id"] for r in rows if _mark_running(conn, r["job_id"], host, worker, None)]
    return [get(job_id) for job_id in ids]


def queued_jobs(limit: int) -> list[dict[str, Any]]:
    """Up to `limit` queued jobs in the order a worker takes them (oldest first), after
    promoting waiting jobs whose dependency is done; nothing is claimed (see `claim_job`)."""
    with write() as conn:
        promote_waiting(conn)
        rows = conn.execute("SELECT * FROM jobs WHERE state = 'queued' ORDER BY created, job_id LIMIT ?",
                            (limit,)).fetchall()
    return [_as_dict(r) for r in rows]


def claim_job(job_id: str, host: str | None = None, worker: str | None = None,
              device: str | None = None) -> dict[str, Any] | None:
    """Atomically take this one queued job, marking it running on `device` ("cuda:0", "cpu",
    "ray"); None when it is no longer queued. Of several workers claiming it at once,
    exactly one gets it."""
    with write() as conn:
        taken = _mark_running(conn, job_id, host or host_name(), worker, device)
    return get(job_id) if taken else None


def note_held(notes: dict[str, str | None]) -> None:
    """A worker's word on why queued jobs wait (job_id -> sentence), shown by the Jobs page as
    the job's progress `{"held": sentence}`; None clears it. Only queued jobs are touched
    (a claim clears the note with the rest of the progress)."""
    if not notes:
        return
    with write() as conn:
        for job_id, why in notes.items():
            conn.execute("UPDATE jobs SET progress = ? WHERE job_id = ? AND state = 'queued'",
                         (json.dumps({"held": why}) if why else None, job_id))


def pending_count() -> int:
    """Jobs that a worker could still run (queued, or waiting for a dependency)."""
    with write() as conn:
        promote_waiting(conn)
        row = conn.execute("SELECT COUNT(*) AS n FROM jobs WHERE state IN ('queued', 'waiting')").fetchone()
    return int(row["n"])


def set_pid(job_id: str, pid: int, host: str | None = None) -> None:
    """The job's process (and, for a job started on another node, that node's host name)."""
    with write() as conn:
        conn.execute("UPDATE jobs SET pid = ?, host = COALESCE(?, host), heartbeat = ? WHERE job_id = ?",
                     (pid, host, time.time(), job_id))


def beat(job_id: str, progress: dict[str, Any] | None = None, run_id: str | None = None) -> str:
    """Heartbeat (and progress / run id when given); returns the job's current state."""
    with write() as conn:
        conn.execute("UPDATE jobs SET heartbeat = ?, progress = COALESCE(?, progress),"
                     " run_id = COALESCE(?, run_id) WHERE job_id = ?",
                     (time.time(), json.dumps(progress, default=str) if progress is not None else None,
                      run_id, job_id))
        row = conn.execute("SELECT state FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
    return row["state"] if row else "missing"


def end(job_id: str, state: str, error: str | None = None, run_id: str | None = None) -> None:
    """A job process's last word: done, failed or cancelled."""
    if state not in ENDED:
        raise EcgcoreError(f"a job ends as one of {ENDED}, not {state!r}")
    with write() as conn:
        conn.execute("UPDATE jobs SET state = ?, error = ?, run_id = COALESCE(?, run_id), finished = ?"
                     " WHERE job_id = ? AND state IN ('running', 'cancelling')",
                     (state, error, run_id, time.time(), job_id))


def cancel(job_id: str) -> str:
    """Queued/waiting -> cancelled now; running -> cancelling (the job process stops at its
    next step, the worker signals it after a grace period). Returns the new state."""
    now = time.time()
    with write() as conn:
        state = _state_of(conn, job_id)
        if state is None:
            raise EcgcoreError(f"no job {job_id!r} (see `python -m ecgcore jobs`)")
        if state in ("queued", "waiting"):
            conn.execute("UPDATE jobs SET state = 'cancelled', error = 'cancelled by the user',"
                         " finished = ? WHERE job_id = ?", (now, job_id))
            return "cancelled"
        if state == "running":
            conn.execute("UPDATE jobs SET state = 'cancelling', cancel_requested = ? WHERE job_id = ?",
                         (now, job_id))
            return "cancelling"
    return state


def adopt_orphans(host: str, me: str, live_workers: Sequence[str]) -> list[dict[str, Any]]:
    """Running jobs on this host whose worker is gone but whose process still runs (a worker
    killed with SIGKILL leaves them: they run in their own sessions and keep their
    heartbeat): they become `me`'s, so the new worker counts them against its slots,
    enforces their cancellation and notices when they end. Returns the adopted jobs."""
    query = ("SELECT job_id, pid, worker FROM jobs WHERE state IN ('running', 'cancelling')"
             " AND host = ? AND pid IS NOT NULL")
    with closing(connect()) as conn:  # read first: most loops there is nothing to adopt
        candidates = [r["job_id"] for r in conn.execute(query, (host,))
                      if r["worker"] != me and r["worker"] not in live_workers]
    if not candidates:
        return []
    adopted: list[str] = []
    with write() as conn:
        for row in conn.execute(query, (host,)).fetchall():
            if row["worker"] == me or row["worker"] in live_workers or not pid_alive(row["pid"]):
                continue
            conn.execute("UPDATE jobs SET worker = ? WHERE job_id = ?", (me, row["job_id"]))
            adopted.append(row["job_id"])
    return [get(job_id) for job_id in adopted]


# -- noticing dead jobs ---------------------------------------------------------------------------
def reap_stale(host: str | None = None, now: float | None = None,
               stale_seconds: float = STALE_SECONDS, reason: str | None = None,
               only: Sequence[str] = (), attempt: int | None = None) -> list[tuple[str, str]]:
    """Running jobs whose heartbeat is older than `stale_seconds`, or whose process is gone
    on this host, are requeued (attempts left) or failed, with the reason; a cancelling one
    becomes cancelled. Their unfinished run is marked failed/cancelled in the run store.
    A stale job whose process still exists on this host is hung: its process group is
    killed first, so a requeued job never runs twice at once.
    `only` limits this to given job ids and `attempt` to that attempt (the worker uses them
    when its own child exited: a later attempt of the same job is not touched).
    Returns (job_id, new state) pairs."""
    host = host or host_name()
    now = time.time() if now is None else now
    changed: list[tuple[str, str, str | None, str]] = []
    with write() as conn:
        rows = conn.execute("SELECT * FROM jobs WHERE state IN ('running', 'cancelling')").fetchall()
        for row in rows:
            if (only and row["job_id"] not in only) or (attempt is not None and row["attempts"] != attempt):
                continue
            why = reason
            if why is None and row["heartbeat"] is not None and now - row["heartbeat"] > stale_seconds:
                why = f"no heartbeat for {now - row['heartbeat']:.0f} s (host {row['host']})"
                if row["host"] == host and row["pid"] and pid_alive(row["pid"]):
                    _kill_group(row["pid"])
                    why += f"; its hung process {row['pid']} was killed"
            if why is None and row["host"] == host and row["pid"] and not pid_alive(row["pid"]):
                why = f"job process {row['pid']} is gone"
            if why is None:
                continue
            if row["state"] == "cancelling":
                new, error = "cancelled", f"cancelled by the user ({why})"
            elif row["attempts"] < row["max_attempts"]:
                new, error = "queued", f"attempt {row['attempts']} lost: {why}; requeued"
            else:
                new, error = "failed", f"{why} (attempt {row['attempts']} of {row['max_attempts']})"
            conn.execute("UPDATE jobs SET state = ?, error = ?, pid = NULL, finished = ? WHERE job_id = ?",
                         (new, error, now if new != "queued" else None, row["job_id"]))
            changed.append((row["job_id"], new, row["run_id"], error))
    _close_runs(changed)
    return [(job_id, new) for job_id, new, _, _ in changed]


def _kill_group(pid: int) -> None:
    """SIGKILL a job's process group (each job runs in its own session)."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _close_runs(changed: Sequence[tuple[str, str, str | None, str]]) -> None:
    """The run folder of a lost job is marked failed/cancelled (a finished run is left alone)."""
    from ecgcore.runs import RunStore

    store = None
    for _, new, run_id, error in changed:
        if not run_id:
            continue
        store = store or RunStore()
        try:
            if store.status(run_id) not in ("done", "failed", "cancelled"):
                store.fail(run_id, error, status="cancelled" if new == "cancelled" else "failed")
        except EcgcoreError:
            continue
