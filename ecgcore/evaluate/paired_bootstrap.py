"""Paired bootstrap difference of two runs scored on the SAME test records.

Both runs are resampled with the same draws, so the interval is of the
difference itself (much narrower than comparing two separate intervals when the
runs err on the same records). Difference = run A minus run B.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ecgcore.evaluate.bootstrap import (
    DEFAULT_N_BOOT,
    bootstrap_auc,
    draw_indices,
    macro_over_draws,
    percentile_ci,
    two_sided_p,
)
from ecgcore.evaluate.metrics import (
    EvaluationError,
    auc_defined,
    check_inputs,
    nan_mean,
    per_class_auc,
)
from ecgcore.evaluate.run_metrics import json_number


def align_runs(ids_a: Sequence[str], y_true_a: np.ndarray, score_a: np.ndarray,
               ids_b: Sequence[str], y_true_b: np.ndarray, score_b: np.ndarray,
               ) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """(record ids, y_true, score_a, score_b) with run B reordered to run A's record order.

    Raises EvaluationError when the record sets differ (naming a few ids on each side), when
    an id repeats, or when the two runs disagree on a record's labels."""
    a = [str(r) for r in ids_a]
    b = [str(r) for r in ids_b]
    for name, ids in (("run A", a), ("run B", b)):
        if len(set(ids)) != len(ids):
            dup = next(r for r in ids if ids.count(r) > 1)
            raise EvaluationError(f"{name}: record {dup} appears more than once")
    only_a, only_b = sorted(set(a) - set(b)), sorted(set(b) - set(a))
    if only_a or only_b:
        raise EvaluationError(
            f"runs are not scored on the same test records: {len(only_a)} only in run A "
            f"(e.g. {only_a[:3]}), {len(only_b)} only in run B (e.g. {only_b[:3]})")
    position = {r: i for i, r in enumerate(b)}
    order = np.array([position[r] for r in a], dtype=np.int64)
    truth_a, truth_b = np.asarray(y_true_a), np.asarray(y_true_b)[order]
    if truth_a.shape != truth_b.shape:
        raise EvaluationError(f"runs have different label shapes {truth_a.shape} and {truth_b.shape}")
    differs = np.flatnonzero((truth_a != truth_b).any(axis=1))
    if differs.size:
        raise EvaluationError(f"record {a[differs[0]]}: the two runs disagree on its labels "
                              f"({differs.size} records differ)")
    return a, truth_a, np.asarray(score_a), np.asarray(score_b)[order]


def paired_bootstrap(y_true: np.ndarray, score_a: np.ndarray, score_b: np.ndarray,
                     classes: Sequence[str], *, n_boot: int = DEFAULT_N_BOOT, seed: int = 0,
                     ci: float = 0.95) -> dict:
    """Difference A − B of macro AUC and of each class's AUC: observed value, percentile CI and
    two-sided bootstrap p-value, from the same kept draws for both runs. JSON-serialisable."""
    truth, sa = check_inputs(y_true, score_a, classes)
    _, sb = check_inputs(y_true, score_b, classes)
    names = [str(c) for c in classes]
    draws = draw_indices(truth, n_boot, seed, names)
    auc_a, auc_b = per_class_auc(truth, sa), per_class_auc(truth, sb)
    boot_a, boot_b = bootstrap_auc(truth, sa, draws), bootstrap_auc(truth, sb, draws)
    boot_diff = boot_a - boot_b
    macro_diff = macro_over_draws(boot_a) - macro_over_draws(boot_b)
    observed_macro = nan_mean(auc_a) - nan_mean(auc_b)
    defined = auc_defined(truth)
    per_class: dict[str, dict] = {}
    for c, name in enumerate(names):
        observed = float(auc_a[c] - auc_b[c]) if defined[c] else float("nan")
        low, high = percentile_ci(boot_diff[:, c], ci)
        per_class[name] = {"diff": json_number(observed), "ci": [json_number(low), json_number(high)],
                           "p_value": two_sided_p(observed, boot_diff[:, c]) if defined[c] else None}
    low, high = percentile_ci(macro_diff, ci)
    return {
        "macro_auc_a": json_number(nan_mean(auc_a)),
        "macro_auc_b": json_number(nan_mean(auc_b)),
        "macro_auc_diff": json_number(observed_macro),
        "macro_auc_diff_ci": [json_number(low), json_number(high)],
        "p_value": two_sided_p(observed_macro, macro_diff),
        "per_class": per_class,
        "undefined_classes": [n for n, d in zip(names, defined) if not d],
        "ci_level": ci,
        "bootstrap": draws.describe(),
    }


def paired_bootstrap_runs(run_a: dict, run_b: dict, *, n_boot: int = DEFAULT_N_BOOT, seed: int = 0,
                          ci: float = 0.95) -> dict:
    """`paired_bootstrap` of two prediction sets shaped like predictions.npz
    ({"record_ids", "y_true", "y_score", "classes"}), aligned by record id first."""
    classes_a = [str(c) for c in run_a["classes"]]
    classes_b = [str(c) for c in run_b["classes"]]
    if classes_a != classes_b:
        raise EvaluationError(f"runs have different class lists: {classes_a} vs {classes_b}")
    _, truth, sa, sb = align_runs(run_a["record_ids"], run_a["y_true"], run_a["y_score"],
                                  run_b["record_ids"], run_b["y_true"], run_b["y_score"])
    return paired_bootstrap(truth, sa, sb, classes_a, n_boot=n_boot, seed=seed, ci=ci)
