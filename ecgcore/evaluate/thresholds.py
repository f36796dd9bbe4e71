"""Per-class decision thresholds tuned on VALIDATION predictions only (nothing leaks:
docs/architecture.md).

For each class the threshold maximising F1 on the validation set is found exactly:
every distinct validation score is a candidate (a record is positive when
score >= threshold), F1 is computed for all candidates at once from cumulative
counts, and the best one wins (ties: the highest threshold, i.e. the fewest
positive calls). A class without positives in validation cannot be tuned and
keeps the default 0.5; `tune_thresholds` says which classes those are.
"""

from __future__ import annotations

import numpy as np

from ecgcore.evaluate.metrics import DEFAULT_THRESHOLD


# Kept by hand, not precision_recall_curve: its p*r floats split exact F1 ties (118 in 20,000 random sets).
def best_f1_threshold(y_true: np.ndarray, y_score: np.ndarray) -> tuple[float, float]:
    """(threshold, F1 at it) for one class, maximising F1 over all distinct scores; F1 is
    2TP / (2TP + FP + FN) from integer counts, so equal F1s tie exactly and the highest
    threshold wins."""
    truth = y_true.astype(bool)
    n_pos = int(truth.sum())
    if n_pos == 0:
        return DEFAULT_THRESHOLD, 0.0
    order = np.argsort(-y_score, kind="mergesort")
    scores = y_score[order]
    tp = np.cumsum(truth[order])
    fp = np.cumsum(~truth[order])
    # Only the last position of each run of equal scores is a valid cut ("score >= t").
    last = np.r_[scores[1:] != scores[:-1], True]
    tp, fp, cuts = tp[last], fp[last], scores[last]
    f1 = 2 * tp / (2 * tp + fp + (n_pos - tp))
    best = int(np.argmax(f1))  # first maximum = highest threshold among equal F1
    return float(cuts[best]), float(f1[best])


def tune_thresholds(y_true: np.ndarray, y_score: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """(C,) thresholds maximising each class's F1 on (validation) data, and the indices of
    classes left at the default because validation has no positive for them."""
    n_classes = y_true.shape[1]
    thresholds = np.full(n_classes, DEFAULT_THRESHOLD)
    untuned: list[int] = []
    for c in range(n_classes):
        if not y_true[:, c].any():
            untuned.append(c)
            continue
        thresholds[c], _ = best_f1_threshold(y_true[:, c], y_score[:, c])
    return thresholds, untuned
