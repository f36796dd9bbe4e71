"""Calibration of the runs of a selection: Brier score, expected calibration error (ECE) and
the reliability-diagram data, by ecgcore.evaluate.calibration.

Runs evaluated since the calibration metrics exist carry `test.brier` and `test.ece` in
results.json; older runs lack them, and for those the numbers are computed from the run's
predictions.npz (`source` says which). The reliability table always comes from
predictions.npz (every (record, class) pair pooled, equal-width bins). Both reads are cached
on the files' stamps.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ecgcore.views.compare.stamp_cache import StampCache
from ecgcore.views.compare.table import read_results
from ecgcore.errors import EcgcoreError
from ecgcore.evaluate import EvaluationError
from ecgcore.evaluate.calibration import (
    DEFAULT_N_BINS,
    TABLE_COLUMNS,
    brier_score,
    expected_calibration_error,
    reliability_table,
)
from ecgcore.runs import RunStore
from ecgcore.runs.folder import read_predictions

CALIBRATION_COLUMNS: tuple[str, ...] = ("run_id", "brier", "ece", "ece_bins", "source")
RELIABILITY_COLUMNS: tuple[str, ...] = ("run_id", *TABLE_COLUMNS)
FROM_RESULTS = "results.json"
FROM_PREDICTIONS = "computed from predictions.npz"


def _from_predictions(path: Path) -> dict[str, Any]:
    """Brier, ECE and the reliability table (DEFAULT_N_BINS bins) of one predictions.npz, or the
    reason there are none (scores that are not probabilities)."""
    arrays = read_predictions(path)
    try:
        return {"brier": brier_score(arrays["y_true"], arrays["y_score"]),
                "ece": expected_calibration_error(arrays["y_true"], arrays["y_score"], DEFAULT_N_BINS),
                "table": reliability_table(arrays["y_true"], arrays["y_score"], DEFAULT_N_BINS), "note": None}
    except EvaluationError as err:
        return {"brier": None, "ece": None, "table": None, "note": str(err)}


CALIBRATION: StampCache[dict[str, Any]] = StampCache(_from_predictions, max_entries=256)


def _number(value: object) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) \
        and math.isfinite(float(value)) else float("nan")


def calibration_table(store: RunStore, run_ids: Sequence[str]) -> pd.DataFrame:
    """Per run: Brier score and ECE (CALIBRATION_COLUMNS) from results.json, or computed from
    predictions.npz for runs evaluated before these metrics existed. Runs with neither, or
    whose scores are not probabilities, get NaN and the reason in `source`."""
    rows = []
    for run_id in run_ids:
        test = (read_results(store, run_id) or {}).get("test")
        test = test if isinstance(test, dict) else {}
        if "brier" in test or "ece" in test:
            source = FROM_RESULTS if test.get("brier") is not None else str(test.get("calibration_note") or
                                                                            "not measured")
            rows.append({"run_id": run_id, "brier": _number(test.get("brier")), "ece": _number(test.get("ece")),
                         "ece_bins": test.get("ece_bins", DEFAULT_N_BINS), "source": source})
            continue
        try:
            computed = CALIBRATION.get(store.runs_dir / run_id / "predictions.npz")
        except (OSError, EcgcoreError) as err:
            computed = {"brier": None, "ece": None, "note": f"predictions.npz unreadable: {err}"}
        if computed is None:
            computed = {"brier": None, "ece": None, "note": "no predictions.npz"}
        rows.append({"run_id": run_id, "brier": _number(computed["brier"]), "ece": _number(computed["ece"]),
                     "ece_bins": DEFAULT_N_BINS, "source": computed["note"] or FROM_PREDICTIONS})
    frame = pd.DataFrame(rows, columns=list(CALIBRATION_COLUMNS))
    for column in ("brier", "ece"):
        frame[column] = frame[column].astype("float64")
    return frame


def reliability(store: RunStore, run_ids: Sequence[str]) -> pd.DataFrame:
    """Reliability-diagram data of each run's predictions.npz (RELIABILITY_COLUMNS; DEFAULT_N_BINS
    equal-width bins, every (record, class) pair pooled); runs without usable predictions are
    left out."""
    parts = []
    for run_id in run_ids:
        try:
            computed = CALIBRATION.get(store.runs_dir / run_id / "predictions.npz")
        except (OSError, EcgcoreError):
            continue
        if computed is not None and computed["table"] is not None:
            parts.append(computed["table"].assign(run_id=run_id)[list(RELIABILITY_COLUMNS)])
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype="object" if c == "run_id" else "float64")
                             for c in RELIABILITY_COLUMNS})
    return pd.concat(parts, ignore_index=True)
