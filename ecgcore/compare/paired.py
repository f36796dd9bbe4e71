"""Two runs head to head, and ROC curves, from predictions.npz arrays.

Runs of one experiment file share their test set; runs of different files may not. The
comparison is made on what the two runs share: the test records present in both (aligned
by record id) and the classes both scored. It refuses, naming the reason, when they share
no record or no class, or when they disagree on a shared record's labels (then they are
not scored against the same truth and a difference means nothing).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import auc, roc_curve

from ecgcore.data.labels import class_name
from ecgcore.errors import EcgcoreError
from ecgcore.evaluate import EvaluationError, paired_bootstrap
from ecgcore.evaluate.metrics import per_class_auc

Predictions = Mapping[str, np.ndarray]
H2H_COLUMNS: tuple[str, ...] = ("code", "name", "auc_a", "auc_b", "diff", "low", "high", "p_value")


@dataclass(frozen=True)
class HeadToHead:
    """Run A minus run B on their shared test records and classes."""

    n_records: int
    classes: list[str]
    only_a_records: int
    only_b_records: int
    dropped_classes: list[str]
    result: dict[str, Any] = field(repr=False)
    per_class: pd.DataFrame = field(repr=False)

    @property
    def macro(self) -> dict[str, Any]:
        """Macro AUC of each run, the difference, its CI and p-value."""
        keys = ("macro_auc_a", "macro_auc_b", "macro_auc_diff", "macro_auc_diff_ci", "p_value")
        return {key: self.result[key] for key in keys}


def _names(arrays: Predictions, key: str) -> list[str]:
    return [str(v) for v in np.asarray(arrays[key]).tolist()]


def head_to_head(pred_a: Predictions, pred_b: Predictions, *, n_boot: int = 200, seed: int = 0,
                 ci: float = 0.95) -> HeadToHead:
    """Paired bootstrap difference (A - B) of per-class and macro AUC on the shared records and
    classes; EcgcoreError when there is nothing common to compare or the labels disagree."""
    ids_a, ids_b = _names(pred_a, "record_ids"), _names(pred_b, "record_ids")
    classes_a, classes_b = _names(pred_a, "classes"), _names(pred_b, "classes")
    shared_classes = [c for c in classes_a if c in set(classes_b)]
    if not shared_classes:
        raise EcgcoreError(f"the two runs share no class (A scores {classes_a[:5]}, B scores {classes_b[:5]}); "
                           "a head-to-head needs classes both runs score")
    in_b = {r: i for i, r in enumerate(ids_b)}
    rows_a = [i for i, r in enumerate(ids_a) if r in in_b]
    if not rows_a:
        raise EcgcoreError(f"the two runs share no test record ({len(ids_a)} and {len(ids_b)} records, none in "
                           "common); compare runs tested on the same split")
    rows_b = [in_b[ids_a[i]] for i in rows_a]
    cols_a = [classes_a.index(c) for c in shared_classes]
    cols_b = [classes_b.index(c) for c in shared_classes]
    truth_a = np.asarray(pred_a["y_true"])[np.ix_(rows_a, cols_a)]
    truth_b = np.asarray(pred_b["y_true"])[np.ix_(rows_b, cols_b)]
    differs = np.flatnonzero((truth_a != truth_b).any(axis=1))
    if differs.size:
        raise EcgcoreError(f"record {ids_a[rows_a[differs[0]]]}: the two runs disagree on its labels "
                           f"({differs.size} shared records differ); they were not scored against the same truth")
    score_a = np.asarray(pred_a["y_score"])[np.ix_(rows_a, cols_a)]
    score_b = np.asarray(pred_b["y_score"])[np.ix_(rows_b, cols_b)]
    try:
        result = paired_bootstrap(truth_a, score_a, score_b, shared_classes, n_boot=n_boot, seed=seed, ci=ci)
    except EvaluationError as exc:
        raise EcgcoreError(f"head to head on {len(rows_a)} shared records: {exc}") from exc
    auc_a, auc_b = per_class_auc(truth_a, score_a), per_class_auc(truth_b, score_b)
    rows = []
    for c, code in enumerate(shared_classes):
        entry = result["per_class"][code]
        low, high = entry["ci"]
        rows.append({"code": code, "name": class_name(code), "auc_a": float(auc_a[c]), "auc_b": float(auc_b[c]),
                     "diff": _nan(entry["diff"]), "low": _nan(low), "high": _nan(high),
                     "p_value": _nan(entry["p_value"])})
    dropped = sorted(set(classes_a) ^ set(classes_b))
    return HeadToHead(n_records=len(rows_a), classes=shared_classes, only_a_records=len(ids_a) - len(rows_a),
                      only_b_records=len(ids_b) - len(rows_b), dropped_classes=dropped, result=result,
                      per_class=pd.DataFrame(rows, columns=list(H2H_COLUMNS)))


def _nan(value: object) -> float:
    return float("nan") if value is None else float(value)  # type: ignore[arg-type]


@dataclass(frozen=True)
class RocCurve:
    code: str
    name: str
    fpr: np.ndarray
    tpr: np.ndarray
    auc: float
    positives: int


def roc_curves(pred: Predictions) -> list[RocCurve]:
    """ROC curve per class of one run (scikit-learn), in the run's class order; classes without
    both positives and negatives in the test set have no curve and are left out."""
    truth = np.asarray(pred["y_true"])
    score = np.asarray(pred["y_score"])
    curves = []
    for c, code in enumerate(_names(pred, "classes")):
        column = truth[:, c]
        if column.min() == column.max():
            continue
        fpr, tpr, _ = roc_curve(column, score[:, c])
        # The area under the curve itself: what roc_auc_score computes, without a second pass.
        curves.append(RocCurve(code=code, name=class_name(code), fpr=fpr, tpr=tpr, auc=float(auc(fpr, tpr)),
                               positives=int(column.sum())))
    return curves
