"""Calibration (Brier, ECE, reliability table): against scikit-learn and hand-worked cases."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.calibration import calibration_curve
from sklearn.metrics import brier_score_loss

from ecgcore.evaluate import EvaluationError
from ecgcore.evaluate.calibration import (
    brier_score,
    expected_calibration_error,
    per_class_brier,
    reliability_table,
)


def task(n: int = 300, c: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Labels and tie-rich probabilities, some exactly on bin edges (0, 0.1, ..., 1)."""
    rng = np.random.default_rng(seed)
    y = (rng.random((n, c)) < np.linspace(0.1, 0.5, c)).astype(int)
    s = np.clip(0.4 * y + 0.6 * rng.random((n, c)), 0, 1).round(1)
    return y, s


def test_brier_matches_sklearn_per_class_and_pooled() -> None:
    y, s = task()
    per = per_class_brier(y, s)
    expected = [brier_score_loss(y[:, c], s[:, c]) for c in range(y.shape[1])]
    np.testing.assert_allclose(per, expected, rtol=0, atol=1e-15)
    assert brier_score(y, s) == pytest.approx(np.mean(expected), abs=1e-15)
    assert brier_score(y[:, 1], s[:, 1]) == pytest.approx(expected[1], abs=1e-15)


@pytest.mark.parametrize("n_bins", [1, 5, 10, 7])
def test_reliability_table_matches_calibration_curve(n_bins: int) -> None:
    y, s = task()
    for c in range(y.shape[1]):
        table = reliability_table(y[:, c], s[:, c], n_bins)
        prob_true, prob_pred = calibration_curve(y[:, c], s[:, c], n_bins=n_bins, strategy="uniform")
        np.testing.assert_allclose(table["fraction_positive"], prob_true, atol=1e-12)
        np.testing.assert_allclose(table["mean_score"], prob_pred, atol=1e-12)
        assert table["count"].sum() == len(y)
    pooled = reliability_table(y, s, n_bins)
    prob_true, prob_pred = calibration_curve(y.ravel(), s.ravel(), n_bins=n_bins)
    np.testing.assert_allclose(pooled["fraction_positive"], prob_true, atol=1e-12)
    np.testing.assert_allclose(pooled["mean_score"], prob_pred, atol=1e-12)
    assert list(pooled.columns) == ["bin_low", "bin_high", "mean_score", "fraction_positive", "count"]
    assert pooled["count"].sum() == y.size
    assert ((pooled["mean_score"] >= pooled["bin_low"]) & (pooled["mean_score"] <= pooled["bin_high"])).all()


def test_ece_is_count_weighted_gap_of_calibration_curve() -> None:
    y, s = task(seed=3)
    prob_true, prob_pred = calibration_curve(y.ravel(), s.ravel(), n_bins=10)
    table = reliability_table(y, s)
    weights = table["count"] / y.size
    assert expected_calibration_error(y, s) == pytest.approx(float(np.sum(weights * np.abs(prob_pred - prob_true))),
                                                             abs=1e-15)


def test_hand_worked_ece_and_empty_bins_omitted() -> None:
    # Bin (0.1, 0.2]: scores 0.2, 0.2 with one positive -> gap |0.2 - 0.5| = 0.3, weight 2/4.
    # Bin (0.7, 0.8]: scores 0.8, 0.8 both positive -> gap 0.2, weight 2/4.  ECE = 0.25.
    y = np.array([1, 0, 1, 1])
    s = np.array([0.2, 0.2, 0.8, 0.8])
    table = reliability_table(y, s)
    assert table.to_dict("list") == {"bin_low": [pytest.approx(0.1), pytest.approx(0.7)],
                                     "bin_high": [pytest.approx(0.2), pytest.approx(0.8)],
                                     "mean_score": [pytest.approx(0.2), pytest.approx(0.8)],
                                     "fraction_positive": [0.5, 1.0], "count": [2, 2]}
    assert expected_calibration_error(y, s) == pytest.approx(0.25)
    assert brier_score(y, s) == pytest.approx((0.64 + 0.04 + 0.04 + 0.04) / 4)


def test_perfect_and_worst() -> None:
    y = np.array([[1, 0], [0, 1], [0, 0]])
    assert expected_calibration_error(y, y.astype(float)) == 0.0
    assert brier_score(y, y.astype(float)) == 0.0
    assert expected_calibration_error(y, 1.0 - y) == 1.0
    assert brier_score(y, 1.0 - y) == 1.0


def test_bad_inputs_say_why() -> None:
    y, s = task(n=10)
    with pytest.raises(EvaluationError, match=r"\[0, 1\]"):
        expected_calibration_error(y, s + 2)
    with pytest.raises(EvaluationError, match="differ in shape"):
        brier_score(y, s[:, :2])
    with pytest.raises(EvaluationError, match="2-D"):
        per_class_brier(y[:, 0], s[:, 0])
    with pytest.raises(EvaluationError, match="n_bins"):
        reliability_table(y, s, 0)
    with pytest.raises(EvaluationError, match="0 and 1"):
        brier_score(y * 2, s)
    assert isinstance(reliability_table(y, s), pd.DataFrame)
