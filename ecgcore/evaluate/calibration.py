"""Calibration of one multi-label prediction: pure functions of (y_true, y_score).

`y_true` is 0/1 and `y_score` holds probabilities in [0, 1], either (N, C) for N
records and C classes or (N,) for one class. A multi-label output is C separate
binary predictions, so the pooled numbers treat every (record, class) pair as one
binary prediction.

- `brier_score`      mean over records and classes of (p - y)^2; equals the mean over
                     classes of scikit-learn's `brier_score_loss` of each column.
- `per_class_brier`  (C,) the same per class (scikit-learn's `brier_score_loss` per column).
- `reliability_table` the reliability-diagram data: equal-width bins over [0, 1]; per
                     non-empty bin its edges, mean score, fraction of positives, count.
- `expected_calibration_error`
                     ECE = Σ_bins (count_b / N) · |mean score_b − fraction positive_b|, over the
                     bins of `reliability_table` with all (record, class) pairs pooled
                     (N = their number). 0 is perfectly calibrated, 1 the worst.

Bins follow `sklearn.calibration.calibration_curve(strategy="uniform")` exactly: with
edges 0 = e_0 < e_1 < ... < e_B = 1, bin b holds the scores in (e_b, e_{b+1}] and the
first bin also holds 0, so the per-bin values equal calibration_curve's. scikit-learn
has no ECE or pooled multi-label reliability table; the few lines here are by hand.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ecgcore.evaluate.metrics import EvaluationError

DEFAULT_N_BINS = 10
TABLE_COLUMNS = ["bin_low", "bin_high", "mean_score", "fraction_positive", "count"]


def _checked(y_true: object, y_score: object) -> tuple[np.ndarray, np.ndarray]:
    """float64 copies of labels and scores of the same shape, 1-D or 2-D, scores in [0, 1]."""
    truth = np.asarray(y_true)
    score = np.asarray(y_score, dtype=np.float64)
    if truth.shape != score.shape:
        raise EvaluationError(f"y_true {truth.shape} and y_score {score.shape} differ in shape")
    if score.ndim not in (1, 2):
        raise EvaluationError(f"calibration takes 1-D (one class) or 2-D (records, classes) inputs, got shape {score.shape}")
    if score.size == 0:
        raise EvaluationError("no predictions to assess calibration on")
    if not np.isin(truth, (0, 1)).all():
        raise EvaluationError("y_true holds values other than 0 and 1")
    if not np.isfinite(score).all() or score.min() < 0 or score.max() > 1:
        raise EvaluationError("calibration needs probabilities: y_score must lie in [0, 1]")
    return truth.astype(np.float64), score


def brier_score(y_true: np.ndarray, y_score: np.ndarray) -> float:
    """Mean over records and classes of (p − y)²; 0 is perfect, 0.25 what a constant 0.5 scores."""
    truth, score = _checked(y_true, y_score)
    return float(np.mean((score - truth) ** 2))


def per_class_brier(y_true: np.ndarray, y_score: np.ndarray) -> np.ndarray:
    """(C,) mean over records of (p − y)² for each class (column) of 2-D inputs."""
    truth, score = _checked(y_true, y_score)
    if score.ndim != 2:
        raise EvaluationError(f"per_class_brier takes 2-D (records, classes) inputs, got shape {score.shape}")
    return np.mean((score - truth) ** 2, axis=0)


# Kept by hand: calibration_curve gives no bin counts, which ECE weights by; its bins are the same.
def _bins(truth: np.ndarray, score: np.ndarray, n_bins: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(edges, score sums, positive counts, counts) per bin of the pooled predictions."""
    if isinstance(n_bins, bool) or not isinstance(n_bins, int | np.integer) or n_bins < 1:
        raise EvaluationError(f"n_bins must be a positive whole number, got {n_bins!r}")
    edges = np.linspace(0.0, 1.0, int(n_bins) + 1)
    flat_truth, flat_score = truth.ravel(), score.ravel()
    ids = np.searchsorted(edges[1:-1], flat_score)  # as calibration_curve: (low, high], 0 in bin 0
    sums = np.bincount(ids, weights=flat_score, minlength=n_bins)
    positives = np.bincount(ids, weights=flat_truth, minlength=n_bins)
    counts = np.bincount(ids, minlength=n_bins)
    return edges, sums, positives, counts


def reliability_table(y_true: np.ndarray, y_score: np.ndarray, n_bins: int = DEFAULT_N_BINS) -> pd.DataFrame:
    """One row per non-empty equal-width bin: bin_low, bin_high, mean_score, fraction_positive,
    count. 1-D inputs give one class's table; 2-D inputs pool every (record, class) pair."""
    truth, score = _checked(y_true, y_score)
    edges, sums, positives, counts = _bins(truth, score, n_bins)
    keep = counts > 0
    return pd.DataFrame({
        "bin_low": edges[:-1][keep],
        "bin_high": edges[1:][keep],
        "mean_score": sums[keep] / counts[keep],
        "fraction_positive": positives[keep] / counts[keep],
        "count": counts[keep].astype(np.int64),
    }, columns=TABLE_COLUMNS)


def expected_calibration_error(y_true: np.ndarray, y_score: np.ndarray, n_bins: int = DEFAULT_N_BINS) -> float:
    """Σ over non-empty equal-width bins of (count_b / N) · |mean score_b − fraction positive_b|,
    all (record, class) pairs pooled (see the module docstring for the bins)."""
    table = reliability_table(y_true, y_score, n_bins)
    weights = table["count"].to_numpy() / table["count"].sum()
    gaps = np.abs(table["mean_score"].to_numpy() - table["fraction_positive"].to_numpy())
    return float(np.sum(weights * gaps))
