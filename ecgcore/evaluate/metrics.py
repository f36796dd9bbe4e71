"""Point metrics of one multi-label prediction: pure functions of (y_true, y_score).

Conventions shared by every function here (and written into results.json):
- `y_true` is an (N, C) 0/1 matrix, `y_score` an (N, C) matrix of finite scores
  (probabilities for the F1 family), column c belongs to `classes[c]`.
- A record is called positive for a class when `score >= threshold` (0.5 unless
  tuned); the same rule everywhere so numbers agree between functions.
- A class whose ROC-AUC is undefined in this set (no positives or no negatives)
  gets NaN and is left out of the macro mean; AUPRC is undefined only without
  positives. Callers turn NaN into JSON null.
ROC-AUC, AP and F1 come from scikit-learn (F1 is counted per column by hand only because
scikit-learn misreads a one-column indicator; tests check equality); Fmax, the
sample-centric F-max of CAFA-style protein-function evaluation, has no library
implementation and is written by hand.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

from ecgcore.errors import EcgcoreError

DEFAULT_THRESHOLD = 0.5
# The threshold grid of Fmax: 0.00, 0.01, ..., 1.00 (scores are probabilities).
FMAX_GRID = np.round(np.linspace(0.0, 1.0, 101), 2)


class EvaluationError(EcgcoreError, ValueError):
    """Inputs to an evaluation do not fit together; the message says which and why."""


def check_inputs(y_true: object, y_score: object, classes: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Validated copies: y_true as int8 0/1, y_score as float64, both (N, C) with C = len(classes).

    Raises EvaluationError naming the row and class of the first bad value, so a
    broken prediction file is found without a debugger."""
    truth = np.asarray(y_true)
    score = np.asarray(y_score, dtype=np.float64)
    names = [str(c) for c in classes]
    if truth.ndim != 2 or score.ndim != 2:
        raise EvaluationError(f"y_true and y_score must be 2-D (records, classes), got shapes {truth.shape} and {score.shape}")
    if truth.shape != score.shape:
        raise EvaluationError(f"y_true {truth.shape} and y_score {score.shape} differ in shape")
    if truth.shape[1] != len(names):
        raise EvaluationError(f"{truth.shape[1]} score columns but {len(names)} classes")
    if len(set(names)) != len(names):
        raise EvaluationError(f"duplicate class names in {names}")
    if truth.shape[0] == 0:
        raise EvaluationError("no records to evaluate")
    bad = ~np.isin(truth, (0, 1))
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise EvaluationError(f"y_true row {row}, class {names[col]}: value {truth[row, col]!r} is not 0 or 1")
    bad = ~np.isfinite(score)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise EvaluationError(
            f"y_score row {row}, class {names[col]}: value {score[row, col]!r} is not finite "
            f"({int(bad.sum())} non-finite scores in all)")
    return truth.astype(np.int8), score


def auc_defined(y_true: np.ndarray) -> np.ndarray:
    """(C,) bool: the class has at least one positive and one negative, so ROC-AUC exists."""
    positives = y_true.sum(axis=0)
    return (positives > 0) & (positives < y_true.shape[0])


def per_class_auc(y_true: np.ndarray, y_score: np.ndarray) -> np.ndarray:
    """(C,) ROC-AUC per class by scikit-learn; NaN where undefined."""
    defined = auc_defined(y_true)
    return np.array([roc_auc_score(y_true[:, c], y_score[:, c]) if defined[c] else np.nan
                     for c in range(y_true.shape[1])])


def per_class_auprc(y_true: np.ndarray, y_score: np.ndarray) -> np.ndarray:
    """(C,) average precision (AUPRC) per class by scikit-learn; NaN without positives."""
    return np.array([average_precision_score(y_true[:, c], y_score[:, c]) if y_true[:, c].any() else np.nan
                     for c in range(y_true.shape[1])])


def nan_mean(values: np.ndarray) -> float:
    """Mean of the defined (non-NaN) values; NaN when none is defined."""
    defined = values[~np.isnan(values)]
    return float(defined.mean()) if defined.size else float("nan")


def macro_auc(y_true: object, y_score: object) -> float:
    """Mean ROC-AUC over the classes defined in this set (NaN when none is): the number early
    stopping watches and results.json reports as macro_auc."""
    truth, score = check_inputs(y_true, y_score, [str(c) for c in range(np.shape(y_true)[1])])
    return nan_mean(per_class_auc(truth, score))


def binarize(y_score: np.ndarray, thresholds: float | np.ndarray = DEFAULT_THRESHOLD) -> np.ndarray:
    """0/1 predictions, positive when score >= threshold (scalar or one per class)."""
    return (y_score >= np.asarray(thresholds, dtype=np.float64)).astype(np.int8)


# Kept by hand: f1_score(average=None) reads a one-column indicator as binary (two scores); equal otherwise.
def per_class_f1(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """(C,) F1 per column, 2TP / (2TP + FP + FN), 0 when a class has neither positives nor
    predictions (scikit-learn's zero_division=0). Computed per column here because
    scikit-learn reads a single-column indicator as a binary problem and returns two values."""
    truth, pred = np.asarray(y_true, dtype=bool), np.asarray(y_pred, dtype=bool)
    tp = (truth & pred).sum(axis=0)
    denominator = 2 * tp + (~truth & pred).sum(axis=0) + (truth & ~pred).sum(axis=0)
    return np.divide(2.0 * tp, denominator, out=np.zeros(truth.shape[1]), where=denominator > 0)


def f1_macro(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Macro F1 as scikit-learn defines it (`f1_score(average="macro", zero_division=0)`): the
    unweighted mean of every class's F1, a class without positives counting 0 whether or not
    it is predicted."""
    return float(per_class_f1(y_true, y_pred).mean())


def f1_macro_positive_classes(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean per-class F1 over the classes with at least one positive in this set only (as for
    the macro AUC, a class with nothing to find is left out rather than counted as 0); NaN
    when no class has a positive. Higher than `f1_macro` whenever a class lacks positives."""
    f1 = per_class_f1(y_true, y_pred)
    has_positive = y_true.any(axis=0)
    return float(f1[has_positive].mean()) if has_positive.any() else float("nan")


def f1_prevalence_weighted(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Nguyen & Do's metric (docs/references.md, "Nguyen & Do 2025"): Σ f1_c·w_c / Σ w_c with
    w_c the prevalence of class c in this (test) set. Equal to scikit-learn's average='weighted'."""
    weights = y_true.mean(axis=0)
    if weights.sum() == 0:
        return float("nan")
    return float((per_class_f1(y_true, y_pred) * weights).sum() / weights.sum())


# Kept by hand: f1_score(average='samples') refuses a one-column indicator; equal otherwise.
def f1_samples(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Sample-averaged F1 (per record 2|T∩P| / (|T| + |P|), 0 when both are empty, then the mean
    over records): scikit-learn's average='samples', which refuses a single-column indicator."""
    truth, pred = np.asarray(y_true, dtype=bool), np.asarray(y_pred, dtype=bool)
    both = (truth & pred).sum(axis=1)
    sizes = truth.sum(axis=1) + pred.sum(axis=1)
    return float(np.divide(2.0 * both, sizes, out=np.zeros(truth.shape[0]), where=sizes > 0).mean())


# Kept by hand: no library implements the sample-centric Fmax.
def fmax(y_true: np.ndarray, y_score: np.ndarray, grid: np.ndarray = FMAX_GRID) -> tuple[float, float]:
    """Sample-centric Fmax (CAFA's protein-centric F-max, with records as the proteins), and its
    threshold. Reported as one more summary of the scores; not a metric of the PTB-XL benchmark
    as published today (its authors removed Fmax from their evaluation).

    For each threshold t of `grid`, with P_i(t) = {c : score_ic >= t} and T_i the true labels:
      precision(t) = mean over records with |P_i(t)| > 0 of |P_i ∩ T_i| / |P_i|
      recall(t)    = mean over records with |T_i| > 0   of |P_i ∩ T_i| / |T_i|
      F(t) = 2·precision·recall / (precision + recall)   (0 when both are 0 or no record predicts)
    Fmax = max over t of F(t); the smallest maximising t is returned with it."""
    truth = y_true.astype(bool)
    n_true = truth.sum(axis=1)
    labelled = n_true > 0
    if not labelled.any():
        return float("nan"), float("nan")
    best, best_t = 0.0, float(grid[0])
    for t in grid:
        pred = y_score >= t
        n_pred = pred.sum(axis=1)
        hits = (pred & truth).sum(axis=1)
        predicting = n_pred > 0
        if not predicting.any():
            continue
        precision = float(np.mean(hits[predicting] / n_pred[predicting]))
        recall = float(np.mean(hits[labelled] / n_true[labelled]))
        if precision + recall == 0:
            continue
        f = 2 * precision * recall / (precision + recall)
        if f > best + 1e-12:
            best, best_t = f, float(t)
    return best, best_t
