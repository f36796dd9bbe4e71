"""Per-run data of a selection, read from the run folders (cached on file stamps).

Each function returns a tidy frame (one row per run x class, or run x epoch), the shape the
aggregations and the figure builders take. Runs without the file in question (running,
failed, or a run that never wrote it) are left out, not errors: a selection may mix states.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ecgcore.views.compare.stamp_cache import PREDICTIONS, StampCache
from ecgcore.runs.folder import read_predictions
from ecgcore.views.compare.head_to_head import RocCurve, roc_curves
from ecgcore.views.compare.table import read_results
from ecgcore.data.labels import class_name
from ecgcore.errors import EcgcoreError
from ecgcore.runs import RunStore

PER_CLASS_COLUMNS: tuple[str, ...] = ("run_id", "code", "name", "auc", "low", "high", "positives")
HISTORY_FRAME_COLUMNS: tuple[str, ...] = (
    "run_id", "epoch", "epochs_done", "train_loss", "val_loss", "val_macro_auc", "seconds", "wall_seconds",
)


def _float(value: object) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else float("nan")


def per_class_auc(store: RunStore, run_ids: Sequence[str]) -> pd.DataFrame:
    """Test AUC per class with its bootstrap CI, for every run of `run_ids` that has results
    (PER_CLASS_COLUMNS; `name` is the readable class name, `code` the SNOMED code)."""
    rows: list[dict[str, object]] = []
    for run_id in run_ids:
        results = read_results(store, run_id)
        test = results.get("test") if results else None
        if not isinstance(test, dict) or not isinstance(test.get("per_class_auc"), dict):
            continue
        cis = test.get("per_class_auc_ci") or {}
        positives = test.get("positives") or {}
        for code, auc in test["per_class_auc"].items():
            ci = cis.get(code) if isinstance(cis, dict) else None
            low, high = (ci[0], ci[1]) if isinstance(ci, list) and len(ci) == 2 else (None, None)
            rows.append({"run_id": run_id, "code": code, "name": class_name(code), "auc": _float(auc),
                         "low": _float(low), "high": _float(high),
                         "positives": positives.get(code) if isinstance(positives, dict) else None})
    frame = pd.DataFrame(rows, columns=list(PER_CLASS_COLUMNS))
    frame["positives"] = pd.array(frame["positives"].tolist(), dtype="Int64")
    return frame


def _epoch_frame(path: Path) -> pd.DataFrame:
    """One history.csv as the columns the views use (without run_id)."""
    history = pd.read_csv(path, on_bad_lines="skip")
    if "epoch" not in history:
        return pd.DataFrame(columns=list(HISTORY_FRAME_COLUMNS[1:]))
    part = pd.DataFrame({"epoch": pd.to_numeric(history["epoch"], errors="coerce")})
    for column in ("train_loss", "val_loss", "val_macro_auc", "seconds"):
        values = history[column] if column in history else pd.Series(np.nan, index=history.index)
        part[column] = pd.to_numeric(values, errors="coerce").to_numpy()
    part["epochs_done"] = np.arange(1, len(part) + 1)
    part["wall_seconds"] = part["seconds"].fillna(0.0).cumsum()
    return part[list(HISTORY_FRAME_COLUMNS[1:])]


EPOCH_FRAMES: StampCache[pd.DataFrame] = StampCache(_epoch_frame, max_entries=2_000)


def histories(store: RunStore, run_ids: Sequence[str]) -> pd.DataFrame:
    """history.csv of each run, stacked (HISTORY_FRAME_COLUMNS). `epochs_done` counts epochs
    from 1; `wall_seconds` is the training time spent by the end of each epoch."""
    parts: list[pd.DataFrame] = []
    for run_id in run_ids:
        try:
            part = EPOCH_FRAMES.get(store.runs_dir / run_id / "history.csv")
        except (OSError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError):
            continue
        if part is None or part.empty:
            continue
        parts.append(part.assign(run_id=run_id)[list(HISTORY_FRAME_COLUMNS)])
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype="object" if c == "run_id" else "float64")
                             for c in HISTORY_FRAME_COLUMNS})
    return pd.concat(parts, ignore_index=True)


def predictions(store: RunStore, run_id: str) -> dict[str, np.ndarray]:
    """A run's predictions.npz arrays; a clear error when the run has none."""
    arrays = PREDICTIONS.get(store.get(run_id).path / "predictions.npz")
    if arrays is None:
        raise EcgcoreError(f"run {run_id} has no predictions.npz (it has not been evaluated)")
    return arrays


# ROC curves per predictions.npz stamp: scikit-learn's argument checks cost ~5 ms per class.
ROC_CURVES: StampCache[list[RocCurve]] = StampCache(lambda path: roc_curves(read_predictions(path)),
                                                    max_entries=256)


def run_roc_curves(store: RunStore, run_id: str) -> list[RocCurve]:
    """`roc_curves` of a run's predictions, cached on the file's stamp."""
    curves = ROC_CURVES.get(store.get(run_id).path / "predictions.npz")
    if curves is None:
        raise EcgcoreError(f"run {run_id} has no predictions.npz (it has not been evaluated)")
    return curves
