"""PhysioNet/CinC 2021 challenge score: hand-worked cases, the official weights file, equivalences."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ecgcore.data.labels.registry import CHALLENGE2021_SCORED
from ecgcore.evaluate import (
    EvaluationError,
    challenge_score,
    evaluate,
    load_challenge_weights,
)
from ecgcore.evaluate.challenge_score import confusion

NSR, AF, AFL = "426783006", "164889003", "164890007"


@pytest.fixture()
def tiny_weights(tmp_path: Path) -> Path:
    """NSR, AF, AFL with full credit on the diagonal, 0.5 between AF and AFL, 0 elsewhere."""
    path = tmp_path / "weights.csv"
    path.write_text(f",{NSR},{AF},{AFL}\n{NSR},1,0,0\n{AF},0,1,0.5\n{AFL},0,0.5,1\n")
    return path


@pytest.fixture()
def official(shared_data: Path) -> Path:
    return shared_data / "labels" / "challenge2021" / "weights.csv"


# Records: r1 true AF, predicted AFL; r2 true NSR, predicted NSR; r3 true AFL, predicted AFL + NSR.
Y = np.array([[0, 1, 0], [1, 0, 0], [0, 0, 1]])
PRED = np.array([[0, 0, 1], [1, 0, 0], [1, 0, 1]])


def test_hand_worked_partial_credit(tiny_weights: Path) -> None:
    weights = load_challenge_weights(tiny_weights)
    assert weights[0] == (NSR, AF, AFL)
    # observed: r1 0.5·W[AF,AFL]=0.25, r2 1, r3 0.5·W[AFL,AFL] + 0.5·W[AFL,NSR] = 0.5 -> 1.75
    # correct: 3; inactive (NSR only): r1 0.5·0, r2 1, r3 0.5·0 -> 1; (1.75-1)/(3-1) = 0.375
    score, unscored = challenge_score(Y, PRED, [NSR, AF, AFL], weights)
    assert score == pytest.approx(0.375)
    assert unscored == []
    assert challenge_score(Y, Y, [NSR, AF, AFL], weights)[0] == pytest.approx(1.0)
    all_nsr = np.zeros_like(Y)
    all_nsr[:, 0] = 1
    assert challenge_score(Y, all_nsr, [NSR, AF, AFL], weights)[0] == pytest.approx(0.0)


def test_confusion_normalisation() -> None:
    a = confusion(np.array([[1, 1, 0], [0, 0, 0]]), np.array([[0, 1, 1], [0, 0, 0]]))
    # record 1: union {0,1,2} -> each true-predicted pair adds 1/3; record 2 adds nothing.
    expected = np.zeros((3, 3))
    expected[0, 1] = expected[0, 2] = expected[1, 1] = expected[1, 2] = 1 / 3
    np.testing.assert_allclose(a, expected)


def test_official_weights_file(official: Path) -> None:
    classes, w = load_challenge_weights(official)
    assert classes == CHALLENGE2021_SCORED
    assert w.shape == (26, 26)
    np.testing.assert_allclose(w, w.T)
    np.testing.assert_allclose(np.diag(w), 1.0)
    assert w[classes.index(AF), classes.index(AFL)] == 0.5
    # The hand-worked case with the official rewards (W[AF,NSR] = W[AFL,NSR] = 0.25):
    # observed 0.25 + 1 + 0.5 + 0.125 = 1.875; correct 3; inactive 0.125 + 1 + 0.125 = 1.25.
    score, _ = challenge_score(Y, PRED, [NSR, AF, AFL], (classes, w))
    assert score == pytest.approx((1.875 - 1.25) / (3 - 1.25))


def reference_score(labels: np.ndarray, outputs: np.ndarray, w: np.ndarray, normal: int) -> float:
    """The metric as the Challenge describes it, record by record, for cross-checking."""
    def total(out: np.ndarray) -> float:
        s = 0.0
        for i in range(labels.shape[0]):
            norm = max(1, int(np.sum(labels[i] | out[i])))
            for j in np.flatnonzero(labels[i]):
                for k in np.flatnonzero(out[i]):
                    s += w[j, k] / norm
        return s
    inactive = np.zeros_like(labels)
    inactive[:, normal] = True
    obs, cor, ina = total(outputs), total(labels), total(inactive)
    return (obs - ina) / (cor - ina)


def test_vectorised_score_matches_record_by_record(official: Path) -> None:
    classes, w = load_challenge_weights(official)
    rng = np.random.default_rng(0)
    labels = rng.random((150, 26)) < 0.08
    outputs = rng.random((150, 26)) < 0.1
    outputs[:50] = labels[:50]
    score, _ = challenge_score(labels, outputs, list(classes), (classes, w))
    assert score == pytest.approx(reference_score(labels, outputs, w, classes.index(NSR)))


def test_equivalent_codes_merge_and_unscored_are_ignored(official: Path) -> None:
    weights = load_challenge_weights(official)
    # CRBBB and RBBB as separate columns are one Challenge class; STD (429622005) is unscored.
    ours = [NSR, "713427006", "59118001", "429622005"]
    y = np.array([[1, 0, 0, 0], [0, 0, 1, 0], [0, 1, 0, 1]])
    pred = np.array([[1, 0, 0, 1], [0, 1, 0, 0], [0, 0, 1, 0]])
    score, unscored = challenge_score(y, pred, ours, weights)
    assert score == pytest.approx(1.0)
    assert unscored == ["429622005"]
    with pytest.raises(EvaluationError, match="normal sinus rhythm"):
        challenge_score(y[:, 1:], pred[:, 1:], ours[1:], weights)


def test_evaluate_reports_challenge_score(official: Path) -> None:
    rng = np.random.default_rng(1)
    classes = list(CHALLENGE2021_SCORED)
    y = (rng.random((120, 26)) < 0.15).astype(int)
    y[:, classes.index(NSR)] = 1 - y.any(axis=1)
    r = evaluate(y, y * 0.9 + 0.05, classes, n_boot=10, challenge_weights=official)
    assert r["challenge_score"] == pytest.approx(1.0)
    r = evaluate(y, y * 0.9 + 0.05, classes, n_boot=10, challenge_weights=str(official),
                 y_val=y, score_val=y * 0.9 + 0.05)
    assert r["challenge_score_tuned"] == pytest.approx(1.0)
    r = evaluate(y[:, :3], rng.random((120, 3)), ["a", "b", "c"], n_boot=10, challenge_weights=official)
    assert r["challenge_score"] is None and "none of the classes" in r["challenge_score_note"]


def test_bad_weights_file(tmp_path: Path) -> None:
    path = tmp_path / "w.csv"
    path.write_text(f",{NSR},{AF}\n{AF},1,0\n{NSR},0,1\n")
    with pytest.raises(EvaluationError, match="row 1 is class"):
        load_challenge_weights(path)
    path.write_text(f",{NSR},{AF}\n{NSR},1,x\n{AF},0,1\n")
    with pytest.raises(EvaluationError, match="not a number"):
        load_challenge_weights(path)
    with pytest.raises(EvaluationError, match="cannot read"):
        load_challenge_weights(tmp_path / "missing.csv")


def test_a_task_covering_some_scored_classes_reports_a_subset_score(official: Path) -> None:
    """The official score sums over all scored classes; on a task that covers only some, the
    number is reported as challenge_score_subset with the classes it covers, never as
    challenge_score."""
    classes, w = load_challenge_weights(official)
    r = evaluate(Y, PRED.astype(float), [NSR, AF, AFL], n_boot=5, challenge_weights=official,
                 thresholds={NSR: 0.5, AF: 0.5, AFL: 0.5})
    assert r["challenge_score"] is None and r["challenge_score_tuned"] is None
    assert "3 of the 26 scored classes" in r["challenge_score_note"]
    assert r["challenge_score_subset"] == pytest.approx((1.875 - 1.25) / (3 - 1.25))
    assert r["challenge_score_subset_tuned"] == r["challenge_score_subset"]
    assert r["challenge_score_classes"] == [k for k in classes if k in (NSR, AF, AFL)]  # weights.csv order
    assert len(r["challenge_score_missing_classes"]) == 23
    assert set(r["challenge_score_missing_classes"]) | {NSR, AF, AFL} == set(classes)
    assert r["challenge_unscored_classes"] == []


def test_a_task_covering_every_scored_class_reports_the_official_score(official: Path) -> None:
    classes, w = load_challenge_weights(official)
    ours = ["59118001" if key == "713427006|59118001" else key for key in classes] + ["429622005"]
    rng = np.random.default_rng(2)
    y = (rng.random((80, 27)) < 0.15).astype(int)
    y[:, classes.index(NSR)] = 1 - y[:, :26].any(axis=1)
    s = np.clip(y * 0.5 + rng.random((80, 27)) * 0.6, 0, 1)
    r = evaluate(y, s, ours, n_boot=5, challenge_weights=official)
    expected, unscored = challenge_score(y, (s >= 0.5).astype(int), ours, (classes, w))
    assert r["challenge_score"] == pytest.approx(expected)
    assert "challenge_score_subset" not in r and "challenge_score_note" not in r
    assert r["challenge_score_classes"] == list(classes)
    assert r["challenge_score_missing_classes"] == []
    assert r["challenge_unscored_classes"] == unscored == ["429622005"]
