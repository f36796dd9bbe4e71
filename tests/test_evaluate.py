"""Point metrics, thresholds, evaluate() and mean_std: against scikit-learn and hand-worked cases."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, f1_score, roc_auc_score

from ecgcore.evaluate import (
    EvaluationError,
    evaluate,
    fmax,
    macro_auc,
    mean_std,
    tune_thresholds,
)
from ecgcore.evaluate.thresholds import best_f1_threshold


def random_task(n: int = 400, c: int = 6, seed: int = 0) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Labels with varied prevalence and informative, tie-rich scores in [0, 1]."""
    rng = np.random.default_rng(seed)
    prevalence = np.linspace(0.05, 0.5, c)
    y = (rng.random((n, c)) < prevalence).astype(int)
    score = np.clip(0.35 * y + 0.75 * rng.random((n, c)), 0, 1).round(2)
    return y, score, [f"class{i}" for i in range(c)]


def test_auc_auprc_f1_match_sklearn() -> None:
    y, s, classes = random_task()
    r = evaluate(y, s, classes, n_boot=20)
    pred = (s >= 0.5).astype(int)
    assert r["macro_auc"] == pytest.approx(roc_auc_score(y, s, average="macro"), abs=1e-12)
    assert macro_auc(y, s) == r["macro_auc"]
    assert r["macro_auprc"] == pytest.approx(average_precision_score(y, s, average="macro"), abs=1e-12)
    for i, name in enumerate(classes):
        assert r["per_class_auc"][name] == pytest.approx(roc_auc_score(y[:, i], s[:, i]), abs=1e-12)
        assert r["per_class_auprc"][name] == pytest.approx(average_precision_score(y[:, i], s[:, i]), abs=1e-12)
    assert r["f1_macro_at_0_5"] == pytest.approx(f1_score(y, pred, average="macro"), abs=1e-12)
    # Nguyen & Do's prevalence weights equal sklearn's support weights.
    assert r["f1_weighted"] == pytest.approx(f1_score(y, pred, average="weighted"), abs=1e-12)
    assert r["f1_samples_at_0_5"] == pytest.approx(f1_score(y, pred, average="samples", zero_division=0), abs=1e-12)
    assert r["n_records"] == 400
    assert r["positives"] == {name: int(y[:, i].sum()) for i, name in enumerate(classes)}
    assert r["undefined_classes"] == []
    low, high = r["macro_auc_ci"]
    assert low < r["macro_auc"] < high


def test_prevalence_weighted_f1_hand_worked() -> None:
    # class a: 2 positives, TP=1 FP=1 FN=1 -> F1 0.5; class b: 1 positive, found -> F1 1.
    y = np.array([[1, 0], [1, 0], [0, 1], [0, 0]])
    s = np.array([[0.9, 0.1], [0.2, 0.1], [0.1, 0.8], [0.7, 0.2]])
    r = evaluate(y, s, ["a", "b"], n_boot=5)
    assert r["per_class_f1_at_0_5"] == {"a": 0.5, "b": 1.0}
    assert r["f1_weighted"] == pytest.approx((0.5 * 2 / 4 + 1.0 * 1 / 4) / (3 / 4))
    assert r["f1_macro_at_0_5"] == pytest.approx(0.75)


def test_class_without_positives_is_reported_not_averaged() -> None:
    y, s, classes = random_task(c=4)
    y[:, 1] = 0  # no positives
    y[:, 3] = 1  # no negatives
    r = evaluate(y, s, classes, n_boot=30)
    json.dumps(r, allow_nan=False)  # NaN-free
    assert r["undefined_classes"] == ["class1", "class3"]
    assert r["per_class_auc"]["class1"] is None and r["per_class_auc"]["class3"] is None
    assert r["per_class_auc_ci"]["class1"] is None
    assert r["per_class_auprc"]["class1"] is None
    assert r["per_class_auprc"]["class3"] == pytest.approx(1.0)  # all positive: AP defined
    expected = np.mean([roc_auc_score(y[:, i], s[:, i]) for i in (0, 2)])
    assert r["macro_auc"] == pytest.approx(expected, abs=1e-12)
    assert macro_auc(y, s) == pytest.approx(expected, abs=1e-12)
    assert r["positives"]["class1"] == 0
    assert r["bootstrap"]["kept_draws"] == 30


def test_nothing_defined_is_null_not_a_crash() -> None:
    y = np.zeros((40, 3), dtype=int)
    r = evaluate(y, np.random.default_rng(0).random((40, 3)), ["a", "b", "c"], n_boot=10)
    json.dumps(r, allow_nan=False)
    assert r["undefined_classes"] == ["a", "b", "c"]
    assert r["macro_auc"] is None and r["macro_auc_ci"] == [None, None]
    assert r["macro_auprc"] is None and r["f1_macro_positive_classes_at_0_5"] is None and r["fmax"] is None
    assert r["f1_macro_at_0_5"] == 0.0  # scikit-learn's macro F1: every class counts 0


def test_fmax_hand_worked() -> None:
    y = np.array([[1, 0], [0, 1], [1, 1]])
    s = np.array([[0.9, 0.2], [0.6, 0.7], [0.4, 0.8]])
    # t=0.3: precision (1 + 1/2 + 1)/3, recall 1 -> F = 10/11; t=0.5: P = R = 5/6; t=0.75: P 1, R 1/2.
    best, t = fmax(y, s, grid=np.array([0.3, 0.5, 0.75]))
    assert best == pytest.approx(10 / 11)
    assert t == 0.3
    best, t = fmax(y, s, grid=np.array([0.5, 0.75]))
    assert best == pytest.approx(5 / 6) and t == 0.5
    # No record predicted at any threshold -> 0; unlabelled records do not enter the recall.
    assert fmax(y, s, grid=np.array([0.95]))[0] == 0.0
    y2 = np.vstack([y, [0, 0]])
    s2 = np.vstack([s, [0.1, 0.1]])
    assert fmax(y2, s2, grid=np.array([0.3]))[0] == pytest.approx(10 / 11)


def test_best_threshold_hand_worked_and_brute_force() -> None:
    t, f = best_f1_threshold(np.array([1, 1, 0, 0, 1]), np.array([0.9, 0.8, 0.7, 0.3, 0.2]))
    assert (t, f) == (0.8, pytest.approx(0.8))
    y, s, _ = random_task(n=300, c=3, seed=3)
    for c in range(3):
        t, f = best_f1_threshold(y[:, c], s[:, c])
        brute = max(f1_score(y[:, c], s[:, c] >= u) for u in np.unique(s[:, c]))
        assert f == pytest.approx(brute)
        assert f1_score(y[:, c], s[:, c] >= t) == pytest.approx(brute)


def test_thresholds_come_from_validation_only() -> None:
    y, s, classes = random_task(seed=1)
    yv, sv, _ = random_task(seed=2)
    yv[:, 2] = 0
    r1 = evaluate(y, s, classes, y_val=yv, score_val=sv, n_boot=10)
    r2 = evaluate(y, 1 - s, classes, y_val=yv, score_val=sv, n_boot=10)
    assert r1["thresholds"] == r2["thresholds"]  # test scores do not move them
    expected, untuned = tune_thresholds(yv, sv)
    assert r1["thresholds"] == dict(zip(classes, expected.tolist()))
    assert r1["thresholds_untuned"] == ["class2"] and untuned == [2]
    assert r1["thresholds"]["class2"] == 0.5
    pred = (s >= expected).astype(int)
    assert r1["f1_macro_tuned"] == pytest.approx(f1_score(y, pred, average="macro"))
    with pytest.raises(EvaluationError, match="both"):
        evaluate(y, s, classes, y_val=yv, n_boot=10)
    # Stored thresholds reproduce the tuned metrics without the validation predictions.
    again = evaluate(y, s, classes, thresholds=r1["thresholds"], n_boot=10)
    assert again["f1_macro_tuned"] == r1["f1_macro_tuned"]
    assert again["per_class_f1_tuned"] == r1["per_class_f1_tuned"]
    with pytest.raises(EvaluationError, match="lack classes"):
        evaluate(y, s, classes, thresholds={"class0": 0.5}, n_boot=10)


def test_bad_input_is_named() -> None:
    y, s, classes = random_task(n=20, c=3)
    s = s.copy()
    s[7, 1] = np.nan
    with pytest.raises(EvaluationError, match="row 7, class class1"):
        evaluate(y, s, classes)
    with pytest.raises(EvaluationError, match="3 score columns but 4 classes"):
        evaluate(y, s, classes + ["x"])
    with pytest.raises(EvaluationError, match="differ in shape"):
        evaluate(y, s[:, :2], classes)
    y2 = y.copy()
    y2[3, 0] = 2
    with pytest.raises(EvaluationError, match="row 3, class class0"):
        evaluate(y2, np.zeros_like(s), classes)


def test_mean_std_over_seeds() -> None:
    runs = [{"macro_auc": 0.8, "per_class_auc": {"a": 0.7, "b": None}, "seed": 0, "status": "done"},
            {"macro_auc": 0.9, "per_class_auc": {"a": 0.9, "b": 0.6}, "seed": 1, "status": "done"},
            {"macro_auc": 0.7, "per_class_auc": {"a": float("nan"), "b": 0.8}, "seed": 2}]
    summary = mean_std(runs)
    assert summary["macro_auc"]["mean"] == pytest.approx(0.8)
    assert summary["macro_auc"]["std"] == pytest.approx(0.1)
    assert summary["macro_auc"]["n"] == 3
    assert summary["per_class_auc.a"] == {"mean": pytest.approx(0.8), "std": pytest.approx(np.std([0.7, 0.9], ddof=1)), "n": 2}
    assert summary["per_class_auc.b"]["n"] == 2
    assert mean_std(runs[:1])["macro_auc"] == {"mean": 0.8, "std": None, "n": 1}
    assert "status" not in summary


def test_a_single_class_task_is_scored_per_column() -> None:
    """scikit-learn reads one indicator column as a binary problem; our F1s must not."""
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, size=(60, 1))
    score = np.clip(y * 0.6 + rng.random((60, 1)) * 0.5, 0, 1)
    result = evaluate(y, score, ["426783006"], n_boot=20)
    pred = (score >= 0.5).astype(int)
    assert result["f1_macro_at_0_5"] == pytest.approx(f1_score(y[:, 0], pred[:, 0]))
    assert result["f1_weighted"] == pytest.approx(f1_score(y[:, 0], pred[:, 0]))
    two = np.hstack([y, 1 - y]), np.hstack([score, 1 - score])
    assert evaluate(*two, ["a", "b"], n_boot=20)["f1_samples_at_0_5"] == pytest.approx(
        f1_score(two[0], (two[1] >= 0.5).astype(int), average="samples", zero_division=0))


def test_f1_macro_is_sklearns_and_the_positive_classes_mean_has_its_own_name() -> None:
    """f1_macro_* is scikit-learn's macro F1 over every class (a class without positives counts
    0); the mean over the classes with positives only is f1_macro_positive_classes_*."""
    y, s, classes = random_task(c=5, seed=4)
    y[:, 1] = 0  # no positives, but predicted: F1 0 in sklearn's macro
    y[:, 3] = 0
    s[:, 3] = 0.1  # no positives, never predicted: F1 0 (zero_division=0)
    pred = (s >= 0.5).astype(int)
    assert pred[:, 1].any() and not pred[:, 3].any()
    cuts = {name: 0.4 + 0.05 * i for i, name in enumerate(classes)}
    tuned = (s >= np.array(list(cuts.values()))).astype(int)
    r = evaluate(y, s, classes, n_boot=10, thresholds=cuts)
    positive = [0, 2, 4]
    assert r["f1_macro_at_0_5"] == pytest.approx(f1_score(y, pred, average="macro", zero_division=0), abs=1e-12)
    assert r["f1_macro_positive_classes_at_0_5"] == pytest.approx(
        f1_score(y[:, positive], pred[:, positive], average="macro"), abs=1e-12)
    assert r["f1_macro_tuned"] == pytest.approx(f1_score(y, tuned, average="macro", zero_division=0), abs=1e-12)
    assert r["f1_macro_positive_classes_tuned"] == pytest.approx(
        f1_score(y[:, positive], tuned[:, positive], average="macro"), abs=1e-12)
    assert r["f1_macro_at_0_5"] == pytest.approx(r["f1_macro_positive_classes_at_0_5"] * 3 / 5)
    # Nothing to find anywhere: sklearn's macro is 0, the positive-classes mean undefined.
    nothing = evaluate(np.zeros((30, 2), dtype=int), np.full((30, 2), 0.7), ["a", "b"], n_boot=5)
    assert nothing["f1_macro_at_0_5"] == 0.0 and nothing["f1_macro_positive_classes_at_0_5"] is None


def test_older_results_read_with_todays_key_meanings(tmp_path) -> None:
    """results.json written before the rename held the positive-classes mean under f1_macro_*;
    finished runs are never rewritten, so readers get it under its precise name and the standard
    macro F1 recomputed (exactly) from the stored per-class F1 values."""
    from ecgcore.evaluate import upgrade_test_metrics
    from ecgcore.runs.folder import RunFolder, write_json_atomic

    y, s, classes = random_task(c=4, seed=5)
    y[:, 2] = 0
    now = evaluate(y, s, classes, n_boot=5, thresholds={c: 0.45 for c in classes})
    old = {k: v for k, v in now.items() if not k.startswith("f1_macro_positive_classes")
           and k not in ("brier", "ece", "per_class_brier", "ece_bins")}
    old["f1_macro_at_0_5"] = now["f1_macro_positive_classes_at_0_5"]
    old["f1_macro_tuned"] = now["f1_macro_positive_classes_tuned"]
    upgraded = upgrade_test_metrics(old)
    for key in ("f1_macro_at_0_5", "f1_macro_positive_classes_at_0_5", "f1_macro_tuned",
                "f1_macro_positive_classes_tuned"):
        assert upgraded[key] == pytest.approx(now[key], abs=1e-12), key
    assert old["f1_macro_at_0_5"] == now["f1_macro_positive_classes_at_0_5"]  # input untouched
    assert upgrade_test_metrics(now) == now  # today's results pass through unchanged
    assert "brier" not in upgraded  # not recomputable from results.json: stays absent

    folder = tmp_path / "run1"
    folder.mkdir()
    write_json_atomic(folder / "results.json", {"run_id": "run1", "status": "done", "test": old})
    read = RunFolder(folder).results()
    assert read is not None
    assert read["test"]["f1_macro_at_0_5"] == pytest.approx(now["f1_macro_at_0_5"], abs=1e-12)
    assert read["test"]["f1_macro_positive_classes_at_0_5"] == old["f1_macro_at_0_5"]
    assert json.loads((folder / "results.json").read_text())["test"] == old  # the file stays as written


def test_calibration_keys_match_the_calibration_module() -> None:
    from sklearn.calibration import calibration_curve
    from sklearn.metrics import brier_score_loss

    y, s, classes = random_task(seed=6)
    r = evaluate(y, s, classes, n_boot=5)
    per_class = [brier_score_loss(y[:, c], s[:, c]) for c in range(len(classes))]
    assert r["per_class_brier"] == {name: pytest.approx(b, abs=1e-15) for name, b in zip(classes, per_class)}
    assert r["brier"] == pytest.approx(np.mean(per_class), abs=1e-15)
    prob_true, prob_pred = calibration_curve(y.ravel(), s.ravel(), n_bins=10)
    counts = np.bincount(np.searchsorted(np.linspace(0, 1, 11)[1:-1], s.ravel()), minlength=10)
    counts = counts[counts > 0]
    assert r["ece"] == pytest.approx(float(np.sum(counts / y.size * np.abs(prob_pred - prob_true))), abs=1e-12)
    assert r["ece_bins"] == 10
    json.dumps(r, allow_nan=False)
    # Scores outside [0, 1] are not probabilities: no calibration, and a note says why.
    logits = evaluate(y, s * 4 - 2, classes, n_boot=5)
    assert logits["brier"] is None and logits["ece"] is None and logits["per_class_brier"] is None
    assert "[0, 1]" in logits["calibration_note"]


def test_fmax_is_described_as_cafa_style_not_as_the_ptbxl_benchmarks() -> None:
    """The PTB-XL benchmark's authors removed Fmax from their evaluation; the metric stays, under
    its own definition (sample-centric, as CAFA's protein-centric F-max)."""
    from pathlib import Path

    import ecgcore.evaluate.metrics as metrics

    assert "CAFA" in (fmax.__doc__ or "") and "sample-centric" in (fmax.__doc__ or "").lower()
    root = Path(__file__).resolve().parents[1]
    texts = {"metrics docstring": metrics.__doc__ or "", "fmax docstring": fmax.__doc__ or ""}
    for name in ("README.md", "REPRODUCING.md"):
        texts[name] = (root / name).read_text(encoding="utf-8")
    for source, text in texts.items():
        # A paragraph or list item naming Fmax mentions PTB-XL only to say its benchmark removed it.
        for paragraph in re.split(r"\n\s*\n|\n\s*- ", text):
            if "fmax" in paragraph.lower() and "PTB-XL" in paragraph:
                assert "removed" in paragraph, (source, paragraph)
