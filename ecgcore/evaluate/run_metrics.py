"""`evaluate(...)`: every test metric of one run in one JSON-serialisable dict (results.json "test").

Undefined values (a class without positives, a CI with no defined draw) are JSON
null, never NaN, so the file stays valid JSON for every reader. Thresholds are
tuned on the validation predictions when they are given and only then applied
to the test set.

Key names say what they compute. Results written before the names were made precise held
the mean F1 over the classes with positives under `f1_macro_at_0_5` and `f1_macro_tuned`
(recognisable by the absence of `f1_macro_positive_classes_at_0_5`); finished runs are never
rewritten, so `upgrade_test_metrics` gives readers those files under today's names
(`RunFolder.results` applies it). Their `challenge_score` may be a subset score (no
`challenge_score_classes` key says which): it cannot be told apart without the weights file
and is left as written.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ecgcore.evaluate.bootstrap import DEFAULT_N_BOOT, auc_intervals, draw_indices
from ecgcore.evaluate.calibration import (
    DEFAULT_N_BINS,
    brier_score,
    expected_calibration_error,
    per_class_brier,
)
from ecgcore.evaluate.challenge_score import challenge_score, load_challenge_weights, scored_coverage
from ecgcore.evaluate.metrics import (
    DEFAULT_THRESHOLD,
    EvaluationError,
    auc_defined,
    binarize,
    check_inputs,
    f1_macro,
    f1_macro_positive_classes,
    f1_prevalence_weighted,
    f1_samples,
    fmax,
    nan_mean,
    per_class_auc,
    per_class_auprc,
    per_class_f1,
)
from ecgcore.evaluate.thresholds import tune_thresholds

ChallengeWeights = str | Path | tuple[Sequence[str], np.ndarray]


def json_number(value: float) -> float | None:
    """A plain float, or None for NaN/inf (JSON has no NaN)."""
    value = float(value)
    return value if np.isfinite(value) else None


def _by_class(names: list[str], values: np.ndarray) -> dict[str, float | None]:
    return {name: json_number(v) for name, v in zip(names, values)}


def _challenge_entries(truth: np.ndarray, score: np.ndarray, names: list[str],
                       weights: ChallengeWeights, thresholds: np.ndarray | None) -> dict:
    """The Challenge score at 0.5 (and at the tuned thresholds), or None with the reason.

    The official score sums over every scored class of the weights file; it is reported as
    `challenge_score` only when the task's classes cover all of them. Otherwise the same
    computation, restricted to the covered classes, is `challenge_score_subset`, and
    `challenge_score` is None with a note saying how many scored classes the task covers.
    `challenge_score_classes` / `challenge_score_missing_classes` list the weights file's
    classes (its keys, in its order) the number covers / leaves out."""
    loaded = load_challenge_weights(weights) if isinstance(weights, str | Path) else weights
    try:
        at_half, unscored = challenge_score(truth, binarize(score), names, loaded)
    except EvaluationError as exc:
        return {"challenge_score": None, "challenge_score_note": str(exc)}
    covered, missing = scored_coverage(names, loaded[0])
    out: dict = {"challenge_score_classes": covered, "challenge_score_missing_classes": missing,
                 "challenge_unscored_classes": unscored}
    tuned = (json_number(challenge_score(truth, binarize(score, thresholds), names, loaded)[0])
             if thresholds is not None else None)
    if not missing:
        out["challenge_score"] = json_number(at_half)
        if thresholds is not None:
            out["challenge_score_tuned"] = tuned
        return out
    out.update(challenge_score=None, challenge_score_subset=json_number(at_half),
               challenge_score_note=(f"the task covers {len(covered)} of the {len(loaded[0])} scored classes; "
                                     "the official score needs all of them, so the score over the covered "
                                     "classes is challenge_score_subset"))
    if thresholds is not None:
        out.update(challenge_score_tuned=None, challenge_score_subset_tuned=tuned)
    return out


def _calibration_entries(truth: np.ndarray, score: np.ndarray, names: list[str]) -> dict:
    """brier, per_class_brier, ece (10 equal-width bins, all record-class pairs pooled), or
    None with a note when the scores are not probabilities."""
    if score.min() < 0 or score.max() > 1:
        return {"brier": None, "per_class_brier": None, "ece": None, "ece_bins": DEFAULT_N_BINS,
                "calibration_note": "scores outside [0, 1] are not probabilities; no calibration measured"}
    return {"brier": json_number(brier_score(truth, score)),
            "per_class_brier": _by_class(names, per_class_brier(truth, score)),
            "ece": json_number(expected_calibration_error(truth, score, DEFAULT_N_BINS)),
            "ece_bins": DEFAULT_N_BINS}


#: F1 means whose computation moved to a precise name: old key -> (precise key, per-class key).
_RENAMED_F1 = {"f1_macro_at_0_5": ("f1_macro_positive_classes_at_0_5", "per_class_f1_at_0_5"),
               "f1_macro_tuned": ("f1_macro_positive_classes_tuned", "per_class_f1_tuned")}


def upgrade_test_metrics(test: Mapping) -> dict:
    """A results.json "test" dict with today's key meanings (a new dict; the input is untouched).

    Before the rename, `f1_macro_at_0_5` / `f1_macro_tuned` held the mean F1 over the classes
    with positives only. A dict without `f1_macro_positive_classes_*` is of that kind: the old
    value moves to `f1_macro_positive_classes_*` and `f1_macro_*` becomes scikit-learn's macro
    F1, recomputed exactly as the mean of the stored per-class F1 values (every class has one;
    0 for a class without positives). Today's dicts come back unchanged. Keys that need the
    predictions (brier, ece) are not invented: old runs lack them."""
    out = dict(test)
    for old, (precise, per_class) in _RENAMED_F1.items():
        if old not in out or precise in out:
            continue
        out[precise] = out[old]
        values = out.get(per_class)
        numbers = list(values.values()) if isinstance(values, Mapping) else []
        if numbers and all(isinstance(v, int | float) and not isinstance(v, bool) for v in numbers):
            out[old] = json_number(float(np.mean(numbers)))
        else:
            out[old] = None
    return out


def evaluate(y_true: object, y_score: object, classes: Sequence[str], *,
             y_val: object | None = None, score_val: object | None = None,
             thresholds: Mapping[str, float] | None = None,
             n_boot: int = DEFAULT_N_BOOT, seed: int = 0, ci: float = 0.95,
             challenge_weights: ChallengeWeights | None = None) -> dict:
    """All test metrics of one run (see the module docstring of each metric for its definition).

    Keys: n_records, positives, undefined_classes, macro_auc, macro_auc_ci, per_class_auc,
    per_class_auc_ci, macro_auprc, per_class_auprc, per_class_f1_at_0_5, f1_macro_at_0_5
    (scikit-learn's macro F1: every class, 0 for a class without positives),
    f1_macro_positive_classes_at_0_5 (mean F1 over the classes with positives only),
    f1_weighted (Nguyen & Do, at 0.5), f1_samples_at_0_5, fmax, fmax_threshold (sample-centric,
    CAFA-style), brier, per_class_brier, ece, ece_bins (see `calibration`), ci_level,
    bootstrap {n, seed, kept_draws, rejected_draws, n_records}; with validation predictions
    (or stored thresholds) also thresholds, thresholds_untuned, thresholds_default,
    per_class_f1_tuned, f1_macro_tuned, f1_macro_positive_classes_tuned, f1_weighted_tuned;
    with challenge weights challenge_score (+ _tuned) when the task covers every scored class,
    else challenge_score_subset (+ _tuned) with challenge_score None and a note, and in both
    cases challenge_score_classes, challenge_score_missing_classes, challenge_unscored_classes.

    `thresholds` ({class: threshold}, as stored in an earlier results.json) replaces tuning,
    so a run's tuned F1 can be recomputed without its validation predictions."""
    names = [str(c) for c in classes]
    truth, score = check_inputs(y_true, y_score, names)
    auc = per_class_auc(truth, score)
    auprc = per_class_auprc(truth, score)
    defined = auc_defined(truth)
    pred = binarize(score)
    draws = draw_indices(truth, n_boot, seed, names)
    macro_ci, class_ci = auc_intervals(truth, score, draws, ci)
    best_f, best_t = fmax(truth, score)
    result: dict = {
        "n_records": int(truth.shape[0]),
        "positives": {n: int(p) for n, p in zip(names, truth.sum(axis=0))},
        "undefined_classes": [n for n, d in zip(names, defined) if not d],
        "macro_auc": json_number(nan_mean(auc)),
        "macro_auc_ci": [json_number(v) for v in macro_ci],
        "per_class_auc": _by_class(names, auc),
        "per_class_auc_ci": {n: [json_number(v) for v in lim] if d else None
                             for n, lim, d in zip(names, class_ci, defined)},
        "macro_auprc": json_number(nan_mean(auprc)),
        "per_class_auprc": _by_class(names, auprc),
        "per_class_f1_at_0_5": _by_class(names, per_class_f1(truth, pred)),
        "f1_macro_at_0_5": json_number(f1_macro(truth, pred)),
        "f1_macro_positive_classes_at_0_5": json_number(f1_macro_positive_classes(truth, pred)),
        "f1_weighted": json_number(f1_prevalence_weighted(truth, pred)),
        "f1_samples_at_0_5": json_number(f1_samples(truth, pred)),
        "fmax": json_number(best_f),
        "fmax_threshold": json_number(best_t),
        **_calibration_entries(truth, score, names),
        "ci_level": ci,
        "bootstrap": draws.describe(),
    }
    if (y_val is None) != (score_val is None):
        raise EvaluationError("give both y_val and score_val (validation labels and scores) or neither")
    if y_val is not None and thresholds is not None:
        raise EvaluationError("give validation predictions to tune thresholds or stored thresholds, not both")
    cuts: np.ndarray | None = None
    untuned: list[str] = []
    if y_val is not None:
        val_truth, val_score = check_inputs(y_val, score_val, names)
        cuts, untuned_idx = tune_thresholds(val_truth, val_score)
        untuned = [names[c] for c in untuned_idx]
    elif thresholds is not None:
        missing = [n for n in names if n not in thresholds]
        if missing:
            raise EvaluationError(f"stored thresholds lack classes {missing}")
        cuts = np.array([float(thresholds[n]) for n in names])
    if cuts is not None:
        tuned_pred = binarize(score, cuts)
        result.update({
            "thresholds": _by_class(names, cuts),
            "thresholds_untuned": untuned,
            "thresholds_default": DEFAULT_THRESHOLD,
            "per_class_f1_tuned": _by_class(names, per_class_f1(truth, tuned_pred)),
            "f1_macro_tuned": json_number(f1_macro(truth, tuned_pred)),
            "f1_macro_positive_classes_tuned": json_number(f1_macro_positive_classes(truth, tuned_pred)),
            "f1_weighted_tuned": json_number(f1_prevalence_weighted(truth, tuned_pred)),
        })
    if challenge_weights is not None:
        result.update(_challenge_entries(truth, score, names, challenge_weights, cuts))
    return result
