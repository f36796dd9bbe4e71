"""The workspace: everything the app and CLI write lives under `$ECGCORE_HOME`.

Layout (a contract, see README): `datasets/`, `cache/`, `runs/`, `jobs/`, `checkpoints/`,
`store.sqlite`.
Datasets the user adds by path are remembered in the store's `datasets` table;
folders under `datasets/` are listed without registration.

The index (`store.sqlite`: runs, jobs, workers, datasets) has one host: on a cluster the
folders are shared between nodes but the index stays on the head node's local disk
(`$ECGCORE_INDEX` names it), because SQLite's WAL mode does not work over a network file
system. Job processes on other nodes call `forbid_index()` and never open it.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ecgcore.errors import EcgcoreError

#: The index file when it is not `$ECGCORE_HOME/store.sqlite` (a cluster's head node keeps
#: it on its local disk while the workspace folders are on the shared file system).
INDEX_ENV = "ECGCORE_INDEX"
INDEX_FILE = "store.sqlite"


def home() -> Path:
    """The workspace root (created on first use)."""
    root = Path(os.environ.get("ECGCORE_HOME", "./workspace")).expanduser().resolve()
    for sub in ("datasets", "cache", "runs"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    return root


def datasets_dir() -> Path:
    return home() / "datasets"


def cache_dir() -> Path:
    return home() / "cache"


def runs_dir() -> Path:
    return home() / "runs"


def checkpoints_dir() -> Path:
    """Registered foundation-model checkpoints: one `<name>.json` record each
    (`ecgcore.foundation.checkpoints`); the checkpoint files themselves stay where the user
    keeps them (created on first use)."""
    folder = home() / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def index_path(root: Path | None = None) -> Path:
    """The index of the workspace at `root` (default: this workspace): `$ECGCORE_INDEX` for
    this workspace when set, else `root/store.sqlite`."""
    root = home() if root is None else root
    configured = os.environ.get(INDEX_ENV, "").strip()
    if configured and root == home():
        return Path(configured).expanduser().resolve()
    return root / INDEX_FILE


class IndexForbidden(EcgcoreError):
    """A process that must not open the index (a job process on a cluster node) tried to."""


def forbid_index(why: str) -> None:
    """From now on this process opens no SQLite database file (an audit hook refuses every
    `sqlite3.connect` but ":memory:"): a job process on a cluster node reports through
    files and leaves the index to the dispatcher. Cannot be undone (audit hooks stay)."""

    def refuse(event: str, args: tuple[Any, ...]) -> None:
        if event == "sqlite3.connect" and str(args[0]) != ":memory:":
            raise IndexForbidden(f"refused to open {args[0]}: {why}")

    sys.addaudithook(refuse)


def open_store(path: Path, *schema: str) -> sqlite3.Connection:
    """A connection to a store file shared by many processes (the app, the CLI, workers,
    job processes): autocommit (transactions are explicit, see `write_transaction`), WAL
    so readers never block the writer, a 60 s busy timeout, rows by column name; runs the
    caller's CREATE … IF NOT EXISTS statements."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=60, isolation_level=None)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA busy_timeout = 60000")
    _enable_wal(conn, path)
    for statement in schema:
        conn.execute(statement)
    return conn


def _enable_wal(conn: sqlite3.Connection, path: Path, timeout: float = 60.0) -> None:
    """Switch the store to WAL (a setting kept in the file). SQLite answers "database is
    locked" at once, without its busy handler, when two processes switch a new file at the
    same moment (two app sessions starting a worker), so the switch is retried here."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


@contextmanager
def write_transaction(connect_to: Callable[[], sqlite3.Connection]) -> Iterator[sqlite3.Connection]:
    """One short write transaction that takes the write lock up front (BEGIN IMMEDIATE: no
    lock upgrade, so no deadlock between two writers); rolled back on any error."""
    with closing(connect_to()) as conn:
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")


_DATASETS_SCHEMA = ("CREATE TABLE IF NOT EXISTS datasets ("
                    " name TEXT PRIMARY KEY, path TEXT NOT NULL, added REAL NOT NULL)")


def connect() -> sqlite3.Connection:
    """Open the workspace store with its `datasets` table."""
    return open_store(index_path(), _DATASETS_SCHEMA)


@dataclass(frozen=True)
class DatasetEntry:
    name: str
    path: Path
    registered: bool  # True when added by path, False when found under datasets/


def list_datasets() -> list[DatasetEntry]:
    """Folders under `datasets/` (one level, and the sites inside a demo folder) plus added paths."""
    entries: dict[str, DatasetEntry] = {}
    for folder in sorted(p for p in datasets_dir().iterdir() if p.is_dir()):
        entries[folder.name] = DatasetEntry(folder.name, folder, registered=False)
    with closing(connect()) as conn:
        for name, path in conn.execute("SELECT name, path FROM datasets ORDER BY name"):
            entries[name] = DatasetEntry(name, Path(path), registered=True)
    return list(entries.values())


def add_dataset(name: str, path: Path | str) -> DatasetEntry:
    """Remember a dataset folder outside the workspace under a short name."""
    folder = Path(path).expanduser().resolve()
    if not name.strip():
        raise ValueError("a dataset needs a name")
    with write_transaction(connect) as conn:
        conn.execute(
            "INSERT OR REPLACE INTO datasets (name, path, added) VALUES (?, ?, ?)",
            (name.strip(), str(folder), time.time()),
        )
    return DatasetEntry(name.strip(), folder, registered=True)


def remove_dataset(name: str) -> None:
    """Forget an added dataset (its files are never touched)."""
    with write_transaction(connect) as conn:
        conn.execute("DELETE FROM datasets WHERE name = ?", (name,))
