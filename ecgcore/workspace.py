"""The workspace: everything the app and CLI write lives under `$ECGCORE_HOME`.

Layout (a contract, see README): `datasets/`, `cache/`, `runs/`, `store.sqlite`.
Datasets the user adds by path are remembered in the store's `datasets` table;
folders under `datasets/` are listed without registration.
"""

from __future__ import annotations

import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path


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


def connect() -> sqlite3.Connection:
    """Open the workspace store (WAL, so readers never block the writer)."""
    conn = sqlite3.connect(home() / "store.sqlite", timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(
        "CREATE TABLE IF NOT EXISTS datasets ("
        " name TEXT PRIMARY KEY, path TEXT NOT NULL, added REAL NOT NULL)"
    )
    return conn


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
    with connect() as conn:
        for name, path in conn.execute("SELECT name, path FROM datasets ORDER BY name"):
            entries[name] = DatasetEntry(name, Path(path), registered=True)
    return list(entries.values())


def add_dataset(name: str, path: Path | str) -> DatasetEntry:
    """Remember a dataset folder outside the workspace under a short name."""
    folder = Path(path).expanduser().resolve()
    if not name.strip():
        raise ValueError("a dataset needs a name")
    with connect() as conn:
        conn.execute(
            "INSERT OR REPLACE INTO datasets (name, path, added) VALUES (?, ?, ?)",
            (name.strip(), str(folder), time.time()),
        )
    return DatasetEntry(name.strip(), folder, registered=True)


def remove_dataset(name: str) -> None:
    """Forget an added dataset (its files are never touched)."""
    with connect() as conn:
        conn.execute("DELETE FROM datasets WHERE name = ?", (name,))
