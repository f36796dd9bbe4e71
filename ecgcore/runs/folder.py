"""One run's folder: the files the app, the CLI and other programs read (a contract: README,
"Run folder"; docs/architecture.md).

`runs/<run_id>/` holds `config.json` (everything needed to rerun), `history.csv`
(one row per epoch), `results.json`, `predictions.npz`, `model.pt` and `log.txt`.
The folder is the truth; the SQLite index only caches it. So every file is written
atomically (temp file in the same folder, then `os.replace`): a crash never leaves
a half-written file that looks complete. The two exceptions are append-only:
`history.csv` and `log.txt` grow one flushed line at a time and are never rewritten,
so a restarted run continues them and a reader always sees whole earlier rows.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePath
from typing import Any

import numpy as np
import pandas as pd

from ecgcore.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from ecgcore.errors import EcgcoreError
from ecgcore.runs.run_config import RunConfig

CONFIG_FILE = "config.json"
HISTORY_FILE = "history.csv"
RESULTS_FILE = "results.json"
PREDICTIONS_FILE = "predictions.npz"
MODEL_FILE = "model.pt"
LOG_FILE = "log.txt"
RUN_FILES: tuple[str, ...] = (CONFIG_FILE, HISTORY_FILE, RESULTS_FILE, PREDICTIONS_FILE, MODEL_FILE, LOG_FILE)

#: The first columns of history.csv, in this order; extra keys of the first row follow.
HISTORY_COLUMNS: tuple[str, ...] = ("epoch", "train_loss", "val_loss", "val_macro_auc", "lr", "seconds")
PREDICTION_KEYS: tuple[str, ...] = ("record_ids", "y_true", "y_score", "classes")


def jsonable(value: Any) -> Any:
    """Plain, strict JSON: numpy scalars and arrays as Python values, paths as text,
    NaN and infinities as null (JSON has no spelling for them)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, Mapping):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(item) for item in value]
    raise EcgcoreError(f"a {type(value).__name__} cannot be written to JSON ({value!r})")


def _atomic_write(path: Path, write: Any, mode: str = "w") -> None:
    """Call `write(handle)` on a temp file beside `path`, fsync, then rename over `path`."""
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, mode, **({"encoding": "utf-8"} if "b" not in mode else {})) as out:
            write(out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, data: Mapping[str, Any]) -> None:
    text = json.dumps(jsonable(data), indent=2, allow_nan=False) + "\n"
    _atomic_write(path, lambda out: out.write(text))


def read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise EcgcoreError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise EcgcoreError(f"{path}: expected a JSON object, found {type(data).__name__}")
    return data


def _append_line(path: Path, text: str) -> None:
    """Append and flush to disk; repair a torn last line (a crash mid-write) by starting a new one."""
    needs_newline = False
    if path.exists() and path.stat().st_size > 0:
        with open(path, "rb") as existing:
            existing.seek(-1, os.SEEK_END)
            needs_newline = existing.read(1) != b"\n"
    with open(path, "a", encoding="utf-8", newline="") as out:
        out.write(("\n" if needs_newline else "") + text)
        out.flush()
        os.fsync(out.fileno())


def _csv_line(values: Sequence[Any]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(["" if v is None else v for v in values])
    return buffer.getvalue()


def read_predictions(path: Path) -> dict[str, np.ndarray]:
    """predictions.npz without unpickling; a clear error when arrays are missing or unreadable."""
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except (ValueError, OSError) as exc:
        raise EcgcoreError(f"{path}: unreadable predictions ({exc})") from exc
    missing = [key for key in PREDICTION_KEYS if key not in arrays]
    if missing:
        raise EcgcoreError(f"{path}: missing arrays {missing}")
    return arrays


class RunFolder:
    """Reads and writes the files of one run folder (the folder must exist)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        if not self.path.is_dir():
            raise EcgcoreError(f"{self.path}: no such run folder")

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    @property
    def run_id(self) -> str:
        return self.path.name

    # -- config and results ---------------------------------------------------------------
    @property
    def config_path(self) -> Path:
        return self.path / CONFIG_FILE

    @property
    def config(self) -> dict[str, Any]:
        if not self.config_path.exists():
            raise EcgcoreError(f"{self.run_id}: the run folder has no {CONFIG_FILE}")
        return read_json(self.config_path)

    @property
    def run_config(self) -> RunConfig:
        """config.json as a typed value (RunConfigError when it is not a run's config)."""
        return RunConfig.from_dict(self.config)

    def write_config(self, config: Mapping[str, Any]) -> None:
        write_json_atomic(self.config_path, config)

    @property
    def results_path(self) -> Path:
        return self.path / RESULTS_FILE

    def results(self) -> dict[str, Any] | None:
        """The results, or None while the run has not ended (or never wrote them). Metrics of
        runs written before a key was renamed come under today's names (the file stays as
        written: `ecgcore.evaluate.upgrade_test_metrics`)."""
        if not self.results_path.exists():
            return None
        results = read_json(self.results_path)
        if isinstance(results, dict) and isinstance(results.get("test"), Mapping):
            # Imported here: ecgcore.evaluate loads scikit-learn, which the store otherwise never needs.
            from ecgcore.evaluate.run_metrics import upgrade_test_metrics

            results["test"] = upgrade_test_metrics(results["test"])
        return results

    def write_results(self, results: Mapping[str, Any]) -> None:
        write_json_atomic(self.results_path, results)

    # -- history ---------------------------------------------------------------------------
    @property
    def history_path(self) -> Path:
        return self.path / HISTORY_FILE

    def _history_header(self) -> list[str] | None:
        if not self.history_path.exists() or self.history_path.stat().st_size == 0:
            return None
        with open(self.history_path, encoding="utf-8", newline="") as handle:
            return next(csv.reader(handle), None)

    def append_history(self, row: Mapping[str, Any]) -> None:
        """Append one epoch row. The first row fixes the columns (HISTORY_COLUMNS, then its
        extra keys in order); later rows may leave columns empty but add none, because
        the file is never rewritten."""
        header = self._history_header()
        lines = ""
        if header is None:
            header = list(HISTORY_COLUMNS) + [key for key in row if key not in HISTORY_COLUMNS]
            lines = _csv_line(header)
        unknown = [key for key in row if key not in header]
        if unknown:
            raise EcgcoreError(
                f"{self.run_id}: history row has columns {unknown} that {HISTORY_FILE} does not have "
                f"({header}); give every column in the first row"
            )
        values = [jsonable(row.get(column)) for column in header]
        _append_line(self.history_path, lines + _csv_line(values))

    def history(self) -> pd.DataFrame:
        """All rows written so far (an empty frame with the standard columns before the first)."""
        if self._history_header() is None:
            return pd.DataFrame({column: pd.Series(dtype="float64") for column in HISTORY_COLUMNS})
        return pd.read_csv(self.history_path, on_bad_lines="skip")

    # -- predictions -------------------------------------------------------------------------
    @property
    def predictions_path(self) -> Path:
        return self.path / PREDICTIONS_FILE

    def write_predictions(
        self, record_ids: Sequence[str], y_true: Any, y_score: Any, classes: Sequence[str]
    ) -> None:
        """Test-set scores with their record ids and class list (label order is data)."""
        ids = np.asarray([str(r) for r in record_ids], dtype=str)
        names = np.asarray([str(c) for c in classes], dtype=str)
        truth = np.asarray(y_true)
        score = np.asarray(y_score)
        if not np.issubdtype(score.dtype, np.floating):
            score = score.astype(np.float64)
        if truth.dtype == object or not (np.issubdtype(truth.dtype, np.number) or truth.dtype == bool):
            raise EcgcoreError(f"{self.run_id}: y_true must be numeric, not {truth.dtype}")
        expected = (len(ids), len(names))
        for name, array in (("y_true", truth), ("y_score", score)):
            if array.shape != expected:
                raise EcgcoreError(
                    f"{self.run_id}: {name} has shape {array.shape}, expected {expected} "
                    f"({len(ids)} records x {len(names)} classes)"
                )
        arrays = {"record_ids": ids, "y_true": truth, "y_score": score, "classes": names}
        _atomic_write(self.predictions_path, lambda out: np.savez(out, allow_pickle=False, **arrays), "wb")

    def predictions(self) -> dict[str, np.ndarray]:
        """The arrays of predictions.npz, loaded without unpickling anything."""
        if not self.predictions_path.exists():
            raise EcgcoreError(f"{self.run_id}: no {PREDICTIONS_FILE} (the run has not been evaluated)")
        return read_predictions(self.predictions_path)

    # -- model -------------------------------------------------------------------------------
    @property
    def model_path(self) -> Path:
        return self.path / MODEL_FILE

    def save_model(self, checkpoint: Checkpoint) -> Path:
        return save_checkpoint(checkpoint, self.model_path)

    def load_model(self) -> Checkpoint:
        return load_checkpoint(self.model_path)

    # -- log ---------------------------------------------------------------------------------
    @property
    def log_path(self) -> Path:
        return self.path / LOG_FILE

    def log(self, message: str) -> None:
        """One UTC-timestamped line (continuation lines indented) appended to log.txt."""
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        text = str(message).rstrip("\n").replace("\n", "\n    ")
        _append_line(self.log_path, f"{stamp} {text}\n")

    # -- checksums (ecgcore.runs.verify_runs) ---------------------------------------------------
    @property
    def manifest_path(self) -> Path:
        from ecgcore.runs.verify_runs import MANIFEST_FILE

        return self.path / MANIFEST_FILE

    def write_manifest(self, created: str) -> dict[str, Any]:
        """Record the SHA-256 and size of every final file in checksums.json (atomically).
        `RunStore.finish` calls this last: a folder with a manifest is complete."""
        from ecgcore.runs.verify_runs import build_manifest

        manifest = build_manifest(self.path, self.run_id, created)
        write_json_atomic(self.manifest_path, manifest)
        return manifest

    def verify(self) -> list[str]:
        """Problems of this run folder against its checksums (empty: good); see verify.py."""
        from ecgcore.runs.verify_runs import verify_folder

        return verify_folder(self.path)
