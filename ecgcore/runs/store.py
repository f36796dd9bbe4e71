"""The run store: one folder per run under `runs/`, indexed in the workspace's `store.sqlite`.

The folders are the truth and the `runs` table is a cache of them, rebuilt by
`reindex()` (and automatically when `store.sqlite` is missing). Several processes
create and finish runs at once (the CLI, background workers, the app), so the index
uses WAL, a busy timeout, one short `BEGIN IMMEDIATE` transaction per change, and
upserts: the last writer of a run's row always wrote it from that run's files.

Lifecycle: `create` (status "running", config.json written) -> the trainer appends
history, writes predictions and the model -> `finish` (results.json, "done") or
`fail` ("failed"/"cancelled", partial files kept). A folder without results.json
that the index does not know as running shows as "incomplete".
"""

from __future__ import annotations

import json
import re
import secrets
import sqlite3
import time
from collections.abc import Mapping
from contextlib import AbstractContextManager, closing
from pathlib import Path
from typing import Any

import pandas as pd

from ecgcore import workspace
from ecgcore.errors import EcgcoreError
from ecgcore.runs.folder import CONFIG_FILE, RunFolder, jsonable
from ecgcore.runs.hashing import config_hash
from ecgcore.runs.run_config import RunConfig, RunConfigError

RUNS_DIR = "runs"

#: Run states. "incomplete" is only ever derived from a folder (no results.json).
STATUSES: tuple[str, ...] = ("running", "done", "failed", "cancelled", "incomplete")
END_STATUSES: frozenset[str] = frozenset({"failed", "cancelled"})

#: Keys results.json must hold for a finished run (README, "Run folder"); "test" holds TEST_KEYS.
RESULT_KEYS: tuple[str, ...] = (
    "run_id", "status", "source", "target", "arch", "strategy", "train_fraction", "n_train",
    "seed", "classes", "test", "best_epoch", "epochs_run", "train_seconds", "device",
)
TEST_KEYS: tuple[str, ...] = ("macro_auc", "macro_auc_ci", "per_class_auc", "macro_auprc", "f1_weighted")

#: Config keys copied into the index (and into results.json when the runner leaves them out).
IDENTITY_KEYS: tuple[str, ...] = ("source", "target", "task", "arch", "strategy", "train_fraction", "seed", "device")

#: The columns of `RunStore.list()`, in order ("path" is derived, not stored).
INDEX_COLUMNS: tuple[str, ...] = (
    "run_id", "config_hash", "kind", "status", "created", "finished", "source", "target", "task",
    "arch", "strategy", "train_fraction", "seed", "macro_auc", "macro_auc_low", "macro_auc_high",
    "best_epoch", "epochs_run", "train_seconds", "device", "error",
)
LIST_COLUMNS: tuple[str, ...] = INDEX_COLUMNS + ("path",)
#: dtypes of the numeric columns of `list()` (nullable integers: a missing value stays missing).
NUMERIC_COLUMNS: dict[str, str] = {
    "train_fraction": "float64", "seed": "Int64", "macro_auc": "float64", "macro_auc_low": "float64",
    "macro_auc_high": "float64", "best_epoch": "Int64", "epochs_run": "Int64", "train_seconds": "float64",
}

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS runs ("
    " run_id TEXT PRIMARY KEY, config_hash TEXT NOT NULL, kind TEXT NOT NULL, status TEXT NOT NULL,"
    " created TEXT NOT NULL, finished TEXT, source TEXT, target TEXT, task TEXT, arch TEXT,"
    " strategy TEXT, train_fraction REAL, seed INTEGER, macro_auc REAL, macro_auc_low REAL,"
    " macro_auc_high REAL, best_epoch INTEGER, epochs_run INTEGER, train_seconds REAL, device TEXT,"
    " error TEXT)"
)
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def iso(stamp: float) -> str:
    """UTC time with milliseconds; sorts as text in time order."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(stamp)) + f".{int(stamp % 1 * 1000):03d}Z"


def now_iso() -> str:
    return iso(time.time())


def new_run_id(hash_: str) -> str:
    """`YYYYMMDD-HHMM-<hash8>-<4 random hex>` (UTC): readable, sortable, unique."""
    return f"{time.strftime('%Y%m%d-%H%M', time.gmtime())}-{hash_[:8]}-{secrets.token_hex(2)}"


def config_identity(config: Mapping[str, Any]) -> dict[str, Any]:
    """The IDENTITY_KEYS of a run before its results say more, named as its results.json
    will name them: a run config's from its parts (datasets by folder name); a config that
    is not a run's (one written by hand, e.g. in a test) from its top-level keys."""
    try:
        run = RunConfig.from_dict(config)
    except RunConfigError:
        return {key: config.get(key) for key in IDENTITY_KEYS}
    return {"source": run.source.name if run.source is not None else None,
            "target": run.data.name, "task": run.data.task, "arch": run.model.arch,
            "strategy": run.strategy_name, "train_fraction": run.train_fraction, "seed": run.seed,
            "device": run.train.device}


def _cell(value: Any) -> Any:
    """An index cell: plain scalars as they are, anything else as its JSON text."""
    value = jsonable(value)
    if value is None or isinstance(value, (str, int, float)):
        return value
    return json.dumps(value, sort_keys=True)


def _shown(value: Any) -> Any:
    """How an identity value shows in an index column: a dataset section (a mapping with a
    "dataset" path, as results.json of runs that failed before RunConfig held for `source`)
    by its folder name."""
    if isinstance(value, Mapping) and isinstance(value.get("dataset"), str):
        return Path(value["dataset"]).name
    return value


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _config_or_empty(folder: RunFolder) -> dict[str, Any]:
    """The run's config, or {} when config.json is missing or unreadable (the index still lists it)."""
    try:
        return folder.config
    except EcgcoreError:
        return {}


class RunStore:
    """Create, find, list, finish and fail runs in one workspace."""

    def __init__(self, home: Path | str | None = None) -> None:
        self.home = Path(home).expanduser().resolve() if home is not None else workspace.home()
        self.runs_dir = self.home / RUNS_DIR
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        self.db_path = workspace.index_path(self.home)  # $ECGCORE_INDEX on a cluster's head node
        had_index = self.db_path.exists()
        with closing(self._connect()):
            pass
        if not had_index and any(p.is_dir() and not p.name.startswith(".") for p in self.runs_dir.iterdir()):
            self.reindex()

    def __repr__(self) -> str:
        return f"RunStore({str(self.home)!r})"

    # -- the index -------------------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        return workspace.open_store(self.db_path, _SCHEMA,
                                    "CREATE INDEX IF NOT EXISTS runs_by_hash ON runs (config_hash, status)")

    def _write(self) -> AbstractContextManager[sqlite3.Connection]:
        """One short write transaction, taking the write lock up front (no upgrade deadlocks)."""
        return workspace.write_transaction(self._connect)

    @staticmethod
    def _upsert(conn: sqlite3.Connection, row: Mapping[str, Any]) -> None:
        columns = ", ".join(INDEX_COLUMNS)
        marks = ", ".join("?" for _ in INDEX_COLUMNS)
        conn.execute(f"INSERT OR REPLACE INTO runs ({columns}) VALUES ({marks})", [row.get(c) for c in INDEX_COLUMNS])

    def _index_row(self, run_id: str) -> dict[str, Any] | None:
        with closing(self._connect()) as conn:
            cursor = conn.execute(f"SELECT {', '.join(INDEX_COLUMNS)} FROM runs WHERE run_id = ?", (run_id,))
            found = cursor.fetchone()
        return dict(zip(INDEX_COLUMNS, found, strict=True)) if found else None

    # -- rows from folders -------------------------------------------------------------------------
    def _meta(
        self, folder: RunFolder, results: Mapping[str, Any] | None, known: Mapping[str, Any] | None
    ) -> dict[str, Any]:
        """kind, created and config_hash of a run: from results.json, else the index, else the folder."""
        results = results or {}
        known = known or {}
        config = _config_or_empty(folder)
        kind = results.get("kind") or known.get("kind") or config.get("kind")
        created = results.get("created") or known.get("created")
        if not created:
            stamp = (folder.config_path if folder.config_path.exists() else folder.path).stat().st_mtime
            created = iso(stamp)
        digest = results.get("config_hash") or known.get("config_hash") or (config_hash(config) if config else "")
        return {"kind": kind if isinstance(kind, str) else "target", "created": created, "config_hash": digest}

    def _row(
        self, folder: RunFolder, status: str, meta: Mapping[str, Any], results: Mapping[str, Any] | None
    ) -> dict[str, Any]:
        """The index row of a run from its config, its results (if any) and its meta."""
        results = results or {}
        identity = config_identity(_config_or_empty(folder))
        row: dict[str, Any] = {"run_id": folder.run_id, "status": status, **meta}
        for key in IDENTITY_KEYS:
            row[key] = _cell(_shown(results[key] if key in results else identity[key]))
        test = results.get("test") if isinstance(results.get("test"), Mapping) else {}
        ci = test.get("macro_auc_ci")
        low, high = (ci[0], ci[1]) if isinstance(ci, (list, tuple)) and len(ci) == 2 else (None, None)
        row.update(
            finished=results.get("finished"), macro_auc=_number(test.get("macro_auc")),
            macro_auc_low=_number(low), macro_auc_high=_number(high),
            best_epoch=_cell(results.get("best_epoch")), epochs_run=_cell(results.get("epochs_run")),
            train_seconds=_number(results.get("train_seconds")), error=_cell(results.get("error")),
        )
        return row

    # -- public API --------------------------------------------------------------------------------
    def create(self, config: dict[str, Any], kind: str = "target") -> RunFolder:
        """A new run folder with config.json, indexed as "running"."""
        digest = config_hash(config)
        for _ in range(100):
            run_id = new_run_id(digest)
            try:
                (self.runs_dir / run_id).mkdir()
                break
            except FileExistsError:
                continue
        else:
            raise EcgcoreError(f"could not find a free run id under {self.runs_dir}")
        folder = RunFolder(self.runs_dir / run_id)
        folder.write_config(config)
        meta = {"kind": kind, "created": now_iso(), "config_hash": digest}
        folder.log(f"created run {run_id} (kind {kind}, config hash {digest})")
        with self._write() as conn:
            self._upsert(conn, self._row(folder, "running", meta, None))
        return folder

    def get(self, run_id: str) -> RunFolder:
        """The folder of a run; a clear error for ids that name no run."""
        path = self.runs_dir / str(run_id)
        if not _RUN_ID.match(str(run_id)) or not (path / CONFIG_FILE).is_file():
            raise EcgcoreError(f"unknown run id {run_id!r} (no run folder {path}); `runs` lists the runs")
        return RunFolder(path)

    def status(self, run_id: str) -> str:
        """The status of a run as the index knows it (from the folder when not indexed)."""
        folder = self.get(run_id)
        known = self._index_row(run_id)
        if known and known["status"] == "running" and folder.manifest_path.is_file():
            # Finished on disk, but the process stopped before it updated the index: the
            # folder is the truth, so the index row is repaired now.
            row = self._folder_row(folder, known)
            with self._write() as conn:
                self._upsert(conn, row)
            return str(row["status"])
        if known:
            return str(known["status"])
        results = folder.results()
        return str(results.get("status", "incomplete")) if results else "incomplete"

    def finish(self, run_id: str, results: Mapping[str, Any]) -> RunFolder:
        """Write results.json (status "done"), then update the index. The results must hold
        RESULT_KEYS and test.TEST_KEYS; identity keys missing from them come from the config."""
        folder = self.get(run_id)
        config = folder.config
        merged: dict[str, Any] = config_identity(config)
        merged.update(results)
        merged.update(run_id=folder.run_id, status="done", finished=now_iso())
        merged.update(self._meta(folder, results, self._index_row(folder.run_id)))
        test = merged.get("test")
        missing = [key for key in RESULT_KEYS if key not in merged]
        missing += [f"test.{key}" for key in TEST_KEYS if not isinstance(test, Mapping) or key not in test]
        if missing:
            raise EcgcoreError(f"{folder.run_id}: results are missing {', '.join(missing)}; nothing was written")
        if folder.manifest_path.exists():
            raise EcgcoreError(f"{folder.run_id}: already finished (its checksums are recorded); "
                               "a finished run is never rewritten")
        folder.write_results(merged)
        folder.write_manifest(merged["finished"])  # last: a folder with checksums.json is complete
        with self._write() as conn:
            self._upsert(conn, self._row(folder, "done", self._meta(folder, merged, None), merged))
        return folder

    def fail(self, run_id: str, error: str, status: str = "failed") -> RunFolder:
        """End a run as "failed" or "cancelled": results.json holds the status and the error;
        every file already written (history, log, model) stays. A finished run stays finished."""
        if status not in END_STATUSES:
            raise EcgcoreError(f"a run can fail as {sorted(END_STATUSES)}, not {status!r}")
        folder = self.get(run_id)
        previous = folder.results()
        if (previous and previous.get("status") == "done") or folder.manifest_path.exists():
            raise EcgcoreError(f"{folder.run_id}: already finished; its results are kept (not marked {status})")
        config = folder.config
        results: dict[str, Any] = config_identity(config)
        results.update(run_id=folder.run_id, status=status, error=str(error), finished=now_iso())
        results.update(self._meta(folder, None, self._index_row(folder.run_id)))
        folder.log(f"{status}: {error}")
        folder.write_results(results)
        with self._write() as conn:
            self._upsert(conn, self._row(folder, status, self._meta(folder, results, None), results))
        return folder

    def find_done(self, config_hash: str, kind: str | None = None) -> str | None:
        """The newest finished run with this config hash whose results.json and model.pt exist."""
        query = "SELECT run_id FROM runs WHERE config_hash = ? AND status = 'done'"
        params: list[Any] = [config_hash]
        if kind is not None:
            query += " AND kind = ?"
            params.append(kind)
        with closing(self._connect()) as conn:
            candidates = [r[0] for r in conn.execute(query + " ORDER BY created DESC, run_id DESC", params)]
        for run_id in candidates:
            path = self.runs_dir / run_id
            folder = RunFolder(path) if path.is_dir() else None
            if folder is None or not folder.model_path.is_file():
                continue
            results = folder.results() if folder.results_path.is_file() else None
            if results and results.get("status") == "done":
                return run_id
        return None

    def list(self, **filters: Any) -> pd.DataFrame:
        """One row per run (newest first), LIST_COLUMNS. Filters are index columns: a value
        matches exactly, a list/tuple/set matches any of its values, None matches empty."""
        unknown = sorted(set(filters) - set(INDEX_COLUMNS))
        if unknown:
            raise EcgcoreError(f"cannot filter runs by {unknown}; known columns: {', '.join(INDEX_COLUMNS)}")
        clauses: list[str] = []
        params: list[Any] = []
        for column, value in filters.items():
            if value is None:
                clauses.append(f"{column} IS NULL")
            elif isinstance(value, (list, tuple, set, frozenset)):
                values = list(value)
                clauses.append(f"{column} IN ({', '.join('?' for _ in values)})" if values else "0")
                params.extend(_cell(v) for v in values)
            else:
                clauses.append(f"{column} = ?")
                params.append(_cell(value))
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        with closing(self._connect()) as conn:
            rows = conn.execute(
                f"SELECT {', '.join(INDEX_COLUMNS)} FROM runs{where} ORDER BY created DESC, run_id DESC", params
            ).fetchall()
        frame = pd.DataFrame(rows, columns=list(INDEX_COLUMNS))
        for column, dtype in NUMERIC_COLUMNS.items():
            frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(dtype)
        frame["path"] = [str(self.runs_dir / run_id) for run_id in frame["run_id"]]
        return frame[list(LIST_COLUMNS)]

    def reindex(self) -> int:
        """Rebuild the index from the run folders; returns how many runs it holds. A folder
        without results.json keeps "running" if the index had it so, else becomes "incomplete"."""
        with self._write() as conn:
            cursor = conn.execute(f"SELECT {', '.join(INDEX_COLUMNS)} FROM runs")
            known = {row[0]: dict(zip(INDEX_COLUMNS, row, strict=True)) for row in cursor.fetchall()}
            rows = []
            for path in sorted(p for p in self.runs_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
                rows.append(self._folder_row(RunFolder(path), known.get(path.name)))
            conn.execute("DELETE FROM runs")
            for row in rows:
                self._upsert(conn, row)
        return len(rows)

    def _folder_row(self, folder: RunFolder, known: Mapping[str, Any] | None) -> dict[str, Any]:
        try:
            results = folder.results()
        except EcgcoreError as exc:
            meta = self._meta(folder, None, known)
            return {**self._row(folder, "incomplete", meta, None), "error": str(exc)}
        if results is None:
            status = "running" if known and known.get("status") == "running" else "incomplete"
            return self._row(folder, status, self._meta(folder, None, known), None)
        status = results.get("status") if results.get("status") in STATUSES else "incomplete"
        return self._row(folder, str(status), self._meta(folder, results, known), results)


    def verify_all(self) -> dict[str, list[str]]:
        """Problems of every run (run id -> problems; empty list: good): each folder against
        its checksums (`RunFolder.verify`), plus the index against the folders: a run the
        index calls done must have a finished folder, and every indexed run a folder."""
        report: dict[str, list[str]] = {}
        folders = sorted(p for p in self.runs_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
        for path in folders:
            report[path.name] = RunFolder(path).verify()
        with closing(self._connect()) as conn:
            indexed = dict(conn.execute("SELECT run_id, status FROM runs").fetchall())
        for run_id, status in sorted(indexed.items()):
            if run_id not in report:
                report[run_id] = [f"indexed as {status!r} but has no run folder under {self.runs_dir}"]
                continue
            if status == "done":
                results = (self.runs_dir / run_id / "results.json")
                on_disk = None
                if results.is_file():
                    try:
                        on_disk = json.loads(results.read_text(encoding="utf-8")).get("status")
                    except (json.JSONDecodeError, AttributeError):
                        on_disk = "unreadable"
                if on_disk != "done":
                    report[run_id].append(f"indexed as done but its results.json says {on_disk!r}")
        return report

    def index_run(self, run_id: str, running: bool = False) -> str:
        """Index one run folder as it is on disk: a run that a process without the index
        wrote (a job on a cluster node, see `UnindexedRunStore`). `running`: a folder
        without results.json is a run in progress, not an incomplete one. Returns its status."""
        folder = self.get(run_id)
        known = self._index_row(run_id)
        if running:
            known = {**(known or {}), "status": "running"}
        row = self._folder_row(folder, known)
        with self._write() as conn:
            self._upsert(conn, row)
        return str(row["status"])


class UnindexedRunStore(RunStore):
    """The run store of a job process on a cluster node: it writes run folders only and
    never opens the index (SQLite over a network file system is unsafe); the dispatcher on
    the head node indexes each folder with `index_run`. `status` reads the folder, and
    `find_done` the folders of the hash (a run id carries its hash's first 8 characters)."""

    def __init__(self, home: Path | str | None = None) -> None:
        self.home = Path(home).expanduser().resolve() if home is not None else workspace.home()
        self.runs_dir = self.home / RUNS_DIR
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        self.db_path = workspace.index_path(self.home)

    def _connect(self) -> sqlite3.Connection:
        raise EcgcoreError(f"{self!r} writes run folders only; it does not open the index {self.db_path}")

    def _write(self) -> AbstractContextManager[None]:  # type: ignore[override]
        from contextlib import nullcontext

        return nullcontext()

    @staticmethod
    def _upsert(conn: sqlite3.Connection | None, row: Mapping[str, Any]) -> None:
        """Nothing: the dispatcher indexes the folder."""

    def _index_row(self, run_id: str) -> dict[str, Any] | None:
        return None

    def find_done(self, config_hash: str, kind: str | None = None) -> str | None:
        found: list[tuple[str, str]] = []
        for path in self.runs_dir.glob(f"*-{config_hash[:8]}-*"):
            folder = RunFolder(path)
            try:
                results = folder.results() if folder.model_path.is_file() else None
            except EcgcoreError:
                continue
            if (results and results.get("status") == "done" and results.get("config_hash") == config_hash
                    and (kind is None or results.get("kind") == kind)):
                found.append((str(results.get("created") or ""), path.name))
        return max(found)[1] if found else None
