"""Browsing a run's test records: what the model said about each, and the record itself.

Everything comes from the run folder (docs/architecture.md: every figure can be rechecked from
disk): `predictions.npz` holds the test records with their true labels and scores,
`results.json` the decision thresholds tuned on validation (else 0.5 is used, and
`threshold_source` says which), `config.json` the target dataset the signals are read
from. Pure functions over these arrays do the filtering, so the page stays a view.

Outcome per class at the threshold t: TP (true, p >= t), FP (not true, p >= t),
FN (true, p < t), TN (not true, p < t). "Confidence" is the predicted probability of
the class being looked at.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ecgcore.data.labels import class_name
from ecgcore.data.recordset import Recordset, Signal
from ecgcore.data.sources import open_dataset
from ecgcore.errors import EcgcoreError
from ecgcore.runs import RunStore
from ecgcore.views.calls import Call, run_thresholds
from ecgcore.views.display import full_labels
from ecgcore.views.record_facts import RecordFacts

OUTCOMES: dict[str, str] = {
    "TP": "true positive", "FP": "false positive", "FN": "false negative", "TN": "true negative",
}


@dataclass(frozen=True)
class RunPredictions:
    """A run's test predictions with the thresholds that turn scores into calls."""

    run_id: str
    classes: tuple[str, ...]
    record_ids: tuple[str, ...]
    y_true: np.ndarray      # (records, classes) 0/1
    y_score: np.ndarray     # (records, classes) probabilities
    thresholds: np.ndarray  # (classes,)
    threshold_source: str   # "tuned on validation" or "0.5 (no tuned thresholds in results.json)"
    dataset: str            # the target dataset's folder (config.json data.dataset)
    dataset_options: dict[str, Any]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(class_name(c) for c in self.classes)

    def column(self, class_code: str) -> int:
        if class_code not in self.classes:
            raise EcgcoreError(f"run {self.run_id} has no class {class_code!r}; its classes: "
                               f"{', '.join(self.classes)}")
        return self.classes.index(class_code)

    def row(self, record_id: str) -> int:
        try:
            return self.record_ids.index(str(record_id))
        except ValueError as exc:
            raise EcgcoreError(f"record {record_id!r} is not among run {self.run_id}'s "
                               f"{len(self.record_ids)} test records") from exc


def load_run_predictions(run_id: str, store: RunStore | None = None) -> RunPredictions:
    """The run's test predictions; a clear error when the run has none."""
    folder = (store or RunStore()).get(run_id)
    arrays = folder.predictions()
    classes = tuple(str(c) for c in arrays["classes"])
    tuned = run_thresholds(folder.results(), classes)
    data = folder.run_config.data
    return RunPredictions(
        run_id=folder.run_id, classes=classes,
        record_ids=tuple(str(r) for r in arrays["record_ids"]),
        y_true=np.asarray(arrays["y_true"]).astype(np.int8),
        y_score=np.asarray(arrays["y_score"], dtype=np.float64),
        thresholds=np.asarray([tuned[c] for c in classes], dtype=np.float64),
        threshold_source=tuned.source,
        dataset=data.dataset, dataset_options=dict(data.options),
    )


def outcomes(preds: RunPredictions, class_code: str) -> np.ndarray:
    """"TP"/"FP"/"FN"/"TN" of every test record for one class at its threshold."""
    j = preds.column(class_code)
    called = preds.y_score[:, j] >= preds.thresholds[j]
    true = preds.y_true[:, j] > 0
    return np.where(true, np.where(called, "TP", "FN"), np.where(called, "FP", "TN"))


def filter_records(preds: RunPredictions, class_code: str, *, true_class: str | None = None,
                   outcome: str | None = None,
                   confidence: tuple[float, float] = (0.0, 1.0)) -> list[str]:
    """Test record ids, in the file's order, that have `true_class` among their true labels
    (any when None), whose outcome for `class_code` is `outcome` (any when None), and whose
    probability of `class_code` lies in the closed `confidence` range."""
    if outcome is not None and outcome not in OUTCOMES:
        raise EcgcoreError(f"unknown outcome {outcome!r}; one of {', '.join(OUTCOMES)}")
    low, high = confidence
    j = preds.column(class_code)
    keep = (preds.y_score[:, j] >= low) & (preds.y_score[:, j] <= high)
    if true_class is not None:
        keep &= preds.y_true[:, preds.column(true_class)] > 0
    if outcome is not None:
        keep &= outcomes(preds, class_code) == outcome
    return [preds.record_ids[i] for i in np.flatnonzero(keep)]


def neighbour(ids: list[str], current: str | None, step: int) -> str | None:
    """The record `step` places from `current` in `ids` (clamped at the ends); the first
    record when `current` is not in the list; None for an empty list."""
    if not ids:
        return None
    if current not in ids:
        return ids[0]
    return ids[min(max(ids.index(current) + step, 0), len(ids) - 1)]


def true_labels(preds: RunPredictions, record_id: str) -> list[str]:
    """The run's classes the record truly has."""
    row = preds.y_true[preds.row(record_id)]
    return [c for c, t in zip(preds.classes, row) if t > 0]


def record_calls(preds: RunPredictions, record_id: str) -> list[Call]:
    """The record's calls at the run's thresholds, with its true labels, most probable first."""
    i = preds.row(record_id)
    calls = [Call(c, float(p), float(t), bool(y)) for c, p, t, y in
             zip(preds.classes, preds.y_score[i], preds.thresholds, preds.y_true[i])]
    return sorted(calls, key=lambda c: -c.probability)


def record_summary(preds: RunPredictions, record_id: str) -> pd.DataFrame:
    """One row per class for one record: readable name, probability, threshold, predicted,
    true label and outcome (sorted by probability, highest first)."""
    i = preds.row(record_id)
    score, truth = preds.y_score[i], preds.y_true[i] > 0
    called = score >= preds.thresholds
    outcome = np.where(truth, np.where(called, "TP", "FN"), np.where(called, "FP", "TN"))
    table = pd.DataFrame({
        "class": list(preds.classes), "name": list(preds.names), "probability": score,
        "threshold": preds.thresholds, "predicted": called, "true label": truth,
        "outcome": [OUTCOMES[o] for o in outcome],
    })
    return table.sort_values("probability", ascending=False, kind="stable").reset_index(drop=True)


def records_table(preds: RunPredictions, class_code: str, ids: list[str] | None = None) -> pd.DataFrame:
    """The (filtered) records for one class: record, probability, outcome, true labels."""
    ids = list(preds.record_ids) if ids is None else ids
    rows = [preds.row(r) for r in ids]
    j = preds.column(class_code)
    result = outcomes(preds, class_code)
    return pd.DataFrame({
        "record": ids, "probability": preds.y_score[rows, j] if rows else np.zeros(0),
        "outcome": [OUTCOMES[result[i]] for i in rows],
        "true labels": [", ".join(true_labels(preds, r)) for r in ids],
    })


@dataclass(frozen=True)
class TestRecord:
    """A test record's signal (mV) with what the dataset's table knows of the patient."""

    record_id: str
    signal: Signal
    age: float | None
    sex: str
    diagnoses: tuple[str, ...] = ()  # every label the dataset records (SNOMED), not only the run's

    @property
    def facts(self) -> RecordFacts:
        return RecordFacts(self.age, self.sex, self.diagnoses, where="the dataset's table")


def open_target(preds: RunPredictions) -> Recordset:
    """The run's target dataset (config.json names its folder and reader options)."""
    if not preds.dataset:
        raise EcgcoreError(f"run {preds.run_id}: config.json names no target dataset")
    return open_dataset(preds.dataset, **preds.dataset_options)


def read_test_record(recordset: Recordset, record_id: str) -> TestRecord:
    """One record's signal (NaN gaps kept, as the run's preprocessing saw them) plus age and
    sex where the table has them."""
    if record_id not in recordset.table.index:
        raise EcgcoreError(f"record {record_id!r} is not in dataset {recordset.root} (was it "
                           "moved or changed since the run?)")
    row = recordset.table.loc[record_id]
    age = row.get("age")
    age = float(age) if age is not None and not pd.isna(age) else None
    sex = str(row.get("sex") or "")
    labels = row.get("labels")
    diagnoses = tuple(str(c) for c in labels) if isinstance(labels, (tuple, list)) else ()
    return TestRecord(record_id, recordset.read(record_id, allow_nonfinite=True), age, sex, diagnoses)


def run_choices(store: RunStore | None = None, need: str = "predictions.npz") -> dict[str, str]:
    """{run_id: label} of finished runs whose folder holds `need` (predictions.npz for
    browsing test records, model.pt for scoring new ones), newest first."""
    frame = (store or RunStore()).list(status="done")
    labels = full_labels(frame)  # the one run label of every page, as Compare's pickers show it
    return {str(run_id): labels[str(run_id)] for run_id, path in zip(frame["run_id"], frame["path"])
            if (Path(path) / need).is_file()}
