"""`evaluate(...)`: every test metric of one run in one JSON-serialisable dict (results.json "test").

Undefined values (a class without positives, a CI with no defined draw) are JSON
null, never NaN, so the file stays valid JSON for every reader. Thresholds are
tuned on the validation predictions when they are given and only then applied
to the test set.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ecgcore.evaluate.bootstrap import DEFAULT_N_BOOT, auc_intervals, draw_indices
from ecgcore.evaluate.challenge import challenge_score, load_challenge_weights
from ecgcore.evaluate.metrics import (
    DEFAULT_THRESHOLD,
    EvaluationError,
    auc_defined,
    binarize,
    check_inputs,
    f1_macro,
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
    """challenge_score at 0.5 (and at the tuned thresholds), or None with the reason."""
    loaded = load_challenge_weights(weights) if isinstance(weights, str | Path) else weights
    try:
        at_half, unscored = challenge_score(truth, binarize(score), names, loaded)
    except EvaluationError as exc:
        return {"challenge_score": None, "challenge_score_note": str(exc)}
    out = {"challenge_score": json_number(at_half), "challenge_unscored_classes": unscored}
    if thresholds is not None:
        tuned, _ = challenge_score(truth, binarize(score, thresholds), names, loaded)
        out["challenge_score_tuned"] = json_number(tuned)
    return out


def evaluate(y_true: object, y_score: object, classes: Sequence[str], *,
             y_val: object | None = None, score_val: object | None = None,
             thresholds: Mapping[str, float] | None = None,
             n_boot: int = DEFAULT_N_BOOT, seed: int = 0, ci: float = 0.95,
             challenge_weights: ChallengeWeights | None = None) -> dict:
    """All test metrics of one run (see the module docstring of each metric for its definition).

    Keys: n_records, positives, undefined_classes, macro_auc, macro_auc_ci, per_class_auc,
    per_class_auc_ci, macro_auprc, per_class_auprc, per_class_f1_at_0_5, f1_macro_at_0_5,
    f1_weighted (Nguyen & Do, at 0.5), f1_samples_at_0_5, fmax, fmax_threshold, ci_level,
    bootstrap {n, seed, kept_draws, rejected_draws, n_records}; with validation predictions
    also thresholds, thresholds_untuned, per_class_f1_tuned, f1_macro_tuned, f1_weighted_tuned;
    with challenge weights challenge_score (+ challenge_score_tuned) or a note saying why not.

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
        "f1_weighted": json_number(f1_prevalence_weighted(truth, pred)),
        "f1_samples_at_0_5": json_number(f1_samples(truth, pred)),
        "fmax": json_number(best_f),
        "fmax_threshold": json_number(best_t),
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
            "f1_weighted_tuned": json_number(f1_prevalence_weighted(truth, tuned_pred)),
        })
    if challenge_weights is not None:
        result.update(_challenge_entries(truth, score, names, challenge_weights, cuts))
    return result
