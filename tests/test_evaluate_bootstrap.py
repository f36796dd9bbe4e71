"""Bootstrap draws, the rank-based AUC, percentile CIs and the paired bootstrap of two runs."""

from __future__ import annotations

import time

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from ecgcore.evaluate import (
    EvaluationError,
    align_runs,
    bootstrap_auc,
    draw_indices,
    evaluate,
    paired_bootstrap,
    paired_bootstrap_runs,
    percentile_ci,
    weighted_auc,
)


def task(n: int = 300, c: int = 5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random((n, c)) < np.linspace(0.05, 0.4, c)).astype(int)
    return y, np.clip(0.3 * y + 0.8 * rng.random((n, c)), 0, 1).round(2)


def test_weighted_auc_matches_sklearn_on_resamples_with_ties() -> None:
    y, s = task()
    draws = draw_indices(y, 25, seed=4)
    aucs = bootstrap_auc(y, s, draws)
    for b in range(draws.n):
        idx = draws.indices[b]
        for c in range(y.shape[1]):
            assert aucs[b, c] == pytest.approx(roc_auc_score(y[idx, c], s[idx, c]), abs=1e-12)
    # Unit weights give the plain AUC; a draw without positives gives NaN.
    ones = np.ones((1, len(y)))
    assert weighted_auc(y[:, 2], s[:, 2], ones)[0] == pytest.approx(roc_auc_score(y[:, 2], s[:, 2]))
    assert np.isnan(weighted_auc(np.zeros(len(y)), s[:, 2], ones)[0])
    assert weighted_auc(y[:, 2], np.full(len(y), 0.3), ones)[0] == 0.5  # all tied


def test_draws_are_deterministic_and_keep_a_positive_of_every_class() -> None:
    y, _ = task(n=60)
    y[:, 0] = 0
    y[5, 0] = 1  # one positive in 60 records: most raw draws lose it
    a, b = draw_indices(y, 50, seed=7), draw_indices(y, 50, seed=7)
    np.testing.assert_array_equal(a.indices, b.indices)
    assert not np.array_equal(a.indices, draw_indices(y, 50, seed=8).indices)
    assert a.indices.shape == (50, 60)
    assert a.rejected > 0
    for c in range(y.shape[1]):
        assert y[a.indices, c].any(axis=1).all()
        assert (1 - y[a.indices, c]).any(axis=1).all()
    assert a.describe() == {"n": 50, "seed": 7, "kept_draws": 50, "rejected_draws": a.rejected, "n_records": 60}


def test_impossible_resampling_is_a_clear_error() -> None:
    # 30 classes with one positive each in 30 records: a draw keeps all only if it is a
    # permutation (probability 30!/30^30), so the draws are given up with a message.
    y = np.eye(30, dtype=int)
    with pytest.raises(EvaluationError, match="too rare to resample"):
        draw_indices(y, 5, seed=0)
    with pytest.raises(EvaluationError, match="class c0 has 1 positive"):
        draw_indices(y, 5, seed=0, classes=[f"c{i}" for i in range(30)])
    with pytest.raises(EvaluationError, match="n_boot"):
        draw_indices(y, 0)


def test_percentile_ci_levels() -> None:
    values = np.arange(101, dtype=float)
    assert percentile_ci(values, 0.90) == (5.0, 95.0)
    assert percentile_ci(values, 0.95) == (2.5, 97.5)
    with pytest.raises(EvaluationError):
        percentile_ci(values, 95)


def test_evaluate_ci_reproducible_and_level() -> None:
    y, s = task(n=500)
    classes = list("abcde")
    r1 = evaluate(y, s, classes, n_boot=100, seed=3)
    r2 = evaluate(y, s, classes, n_boot=100, seed=3)
    assert r1 == r2
    r90 = evaluate(y, s, classes, n_boot=100, seed=3, ci=0.90)
    assert r90["macro_auc_ci"][0] >= r1["macro_auc_ci"][0]
    assert r90["macro_auc_ci"][1] <= r1["macro_auc_ci"][1]
    for name in classes:
        low, high = r1["per_class_auc_ci"][name]
        assert low <= high


def test_paired_identical_runs_give_zero_and_p_one() -> None:
    y, s = task()
    r = paired_bootstrap(y, s, s, list("abcde"), n_boot=50)
    assert r["macro_auc_diff"] == 0.0
    assert r["macro_auc_diff_ci"] == [0.0, 0.0]
    assert r["p_value"] == 1.0
    assert all(v["p_value"] == 1.0 and v["diff"] == 0.0 for v in r["per_class"].values())


def test_paired_clearly_better_run() -> None:
    rng = np.random.default_rng(5)
    y, _ = task(n=400)
    good = np.clip(0.6 * y + 0.5 * rng.random(y.shape), 0, 1)
    poor = rng.random(y.shape)
    r = paired_bootstrap(y, good, poor, list("abcde"), n_boot=200, seed=1)
    assert r["macro_auc_diff"] > 0.3
    assert r["macro_auc_diff_ci"][0] > 0
    assert r["p_value"] == pytest.approx(1 / 200)
    reverse = paired_bootstrap(y, poor, good, list("abcde"), n_boot=200, seed=1)
    assert reverse["macro_auc_diff"] == pytest.approx(-r["macro_auc_diff"])
    assert reverse["macro_auc_diff_ci"][1] < 0
    assert reverse["bootstrap"] == r["bootstrap"]


def test_paired_runs_aligned_by_record_id() -> None:
    rng = np.random.default_rng(2)
    y, s = task(n=200)
    other = np.clip(s + 0.2 * rng.random(s.shape), 0, 1)
    ids = [f"rec{i:04d}" for i in range(200)]
    perm = rng.permutation(200)
    run_a = {"record_ids": ids, "y_true": y, "y_score": s, "classes": list("abcde")}
    run_b = {"record_ids": [ids[i] for i in perm], "y_true": y[perm], "y_score": other[perm], "classes": list("abcde")}
    direct = paired_bootstrap(y, s, other, list("abcde"), n_boot=40)
    assert paired_bootstrap_runs(run_a, run_b, n_boot=40) == direct
    with pytest.raises(EvaluationError, match="same test records"):
        align_runs(ids, y, s, ids[:-1] + ["elsewhere"], y, other)
    bad = y.copy()
    bad[0] = 1 - bad[0]
    with pytest.raises(EvaluationError, match="record rec0000"):
        align_runs(ids, y, s, ids, bad, other)
    with pytest.raises(EvaluationError, match="class lists"):
        paired_bootstrap_runs(run_a, {**run_b, "classes": list("abcdf")})


def test_bootstrap_is_fast_enough_for_a_full_test_set() -> None:
    """Speed sanity (not a benchmark): 200 draws x 26 classes x 5,000 records."""
    rng = np.random.default_rng(0)
    y = (rng.random((5000, 26)) < np.linspace(0.005, 0.3, 26)).astype(int)
    s = rng.random((5000, 26)).round(3)
    start = time.perf_counter()
    draws = draw_indices(y, 200, seed=0)
    aucs = bootstrap_auc(y, s, draws)
    elapsed = time.perf_counter() - start
    assert aucs.shape == (200, 26) and np.isfinite(aucs).all()
    assert elapsed < 60  # ~0.4 s on the 2-core machine; a generous bound that catches a per-draw sklearn loop
