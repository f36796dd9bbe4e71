"""The PhysioNet/CinC Challenge 2021 score (docs/references.md), re-implemented from its
definition.

1. Each of our classes is mapped onto a class of the reward matrix: a class key is a
   code or an "a|b" group of equivalent codes, and it maps to the weights class sharing
   a code with it. Several of our classes mapping to one weights class are merged (labels
   and binary outputs by OR). Classes the Challenge does not score are ignored, as the
   official scorer ignores unscored labels; `map_classes` lists them.
2. A multi-label confusion matrix A[true, predicted]: every record adds
   1 / max(1, |true ∪ predicted|) to A[j, k] for each true class j and predicted class k.
3. Observed score = Σ W ⊙ A; normalised (observed − inactive) / (correct − inactive), where
   "correct" outputs the true labels and "inactive" always outputs only normal sinus rhythm
   (426783006). 1 is perfect, 0 no better than calling everything normal; when correct
   equals inactive (a set where every record is plain NSR) the score is 0, as officially.

The official score sums over every scored class of the weights file. When our classes cover
only some of them (a task that is not the full Challenge label set), `challenge_score`
computes the same formula over the covered classes only: a subset score, not comparable
with published Challenge scores. `scored_coverage` says which classes are covered, and
`evaluate` reports such a number as `challenge_score_subset`.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ecgcore.evaluate.metrics import EvaluationError

NORMAL_SINUS_RHYTHM = "426783006"
SEPARATOR = "|"


def _codes(key: str) -> set[str]:
    return {part.strip() for part in str(key).split(SEPARATOR) if part.strip()}


def load_challenge_weights(path: str | Path) -> tuple[tuple[str, ...], np.ndarray]:
    """(class keys in file order, reward matrix W) from a Challenge `weights.csv`.

    The file's first row is "", key_1, ..., key_C and each following row key_i, W_i1..W_iC;
    row keys must repeat the column keys in the same order."""
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            rows = [row for row in csv.reader(handle) if any(cell.strip() for cell in row)]
    except OSError as exc:
        raise EvaluationError(f"{path}: cannot read the Challenge weights ({exc.strerror or exc})") from None
    if len(rows) < 2:
        raise EvaluationError(f"{path}: not a Challenge weights file (fewer than two rows)")
    columns = tuple(cell.strip() for cell in rows[0][1:])
    body = rows[1:]
    if len(body) != len(columns):
        raise EvaluationError(f"{path}: {len(columns)} column classes but {len(body)} rows")
    weights = np.empty((len(columns), len(columns)))
    for i, row in enumerate(body):
        if row[0].strip() != columns[i]:
            raise EvaluationError(f"{path}: row {i + 1} is class {row[0].strip()!r}, expected {columns[i]!r}")
        if len(row) - 1 != len(columns):
            raise EvaluationError(f"{path}: row {row[0].strip()} has {len(row) - 1} values, expected {len(columns)}")
        try:
            weights[i] = [float(cell) for cell in row[1:]]
        except ValueError:
            raise EvaluationError(f"{path}: row {row[0].strip()} holds a value that is not a number") from None
    return columns, weights


def map_classes(classes: Sequence[str], weight_classes: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """(for each of our classes the index of its weights class or -1, our unscored classes).

    Raises EvaluationError when one of our classes spans two different weights classes."""
    lookup: dict[str, int] = {}
    for j, key in enumerate(weight_classes):
        for code in _codes(key):
            lookup[code] = j
    index = np.full(len(classes), -1, dtype=np.int64)
    unscored: list[str] = []
    for c, key in enumerate(classes):
        targets = {lookup[code] for code in _codes(key) if code in lookup}
        if len(targets) > 1:
            names = [weight_classes[t] for t in sorted(targets)]
            raise EvaluationError(f"class {key}: its codes fall in several Challenge classes {names}")
        if targets:
            index[c] = targets.pop()
        else:
            unscored.append(str(key))
    return index, unscored


def scored_coverage(classes: Sequence[str], weight_classes: Sequence[str]) -> tuple[list[str], list[str]]:
    """(weights classes some of our classes map to, weights classes none does), both as the
    weights file's keys in its order. The score is the official one only when the second
    list is empty."""
    index, _ = map_classes(classes, weight_classes)
    covered = set(index[index >= 0].tolist())
    return ([str(k) for j, k in enumerate(weight_classes) if j in covered],
            [str(k) for j, k in enumerate(weight_classes) if j not in covered])


def _project(matrix: np.ndarray, index: np.ndarray, n_weight_classes: int) -> np.ndarray:
    """Our (N, C) 0/1 matrix as an (N, C_w) bool matrix in the weights' class space (OR-merged)."""
    out = np.zeros((matrix.shape[0], n_weight_classes), dtype=bool)
    for c in np.flatnonzero(index >= 0):
        out[:, index[c]] |= matrix[:, c].astype(bool)
    return out


# Kept by hand: the Challenge 2021 score is in no library; this follows the official evaluate_model.py.
def confusion(labels: np.ndarray, outputs: np.ndarray) -> np.ndarray:
    """The Challenge's multi-label confusion matrix A[true, predicted] with per-record weight
    1 / max(1, |labels ∪ outputs|)."""
    labels = labels.astype(bool)
    outputs = outputs.astype(bool)
    norm = np.maximum((labels | outputs).sum(axis=1), 1).astype(np.float64)
    return (labels / norm[:, None]).T @ outputs.astype(np.float64)


def challenge_metric(labels: np.ndarray, outputs: np.ndarray, weights: np.ndarray, normal_index: int) -> float:
    """Normalised Challenge score of bool (N, C_w) labels and outputs already in the weights' space."""
    observed = float(np.sum(weights * confusion(labels, outputs)))
    correct = float(np.sum(weights * confusion(labels, labels)))
    inactive_outputs = np.zeros_like(labels, dtype=bool)
    inactive_outputs[:, normal_index] = True
    inactive = float(np.sum(weights * confusion(labels, inactive_outputs)))
    if correct == inactive:
        return 0.0
    return (observed - inactive) / (correct - inactive)


def challenge_score(y_true: np.ndarray, y_pred: np.ndarray, classes: Sequence[str],
                    weights: tuple[Sequence[str], np.ndarray]) -> tuple[float, list[str]]:
    """(Challenge 2021 score, our classes it ignored as unscored) of 0/1 predictions.

    Computed over the weights classes our classes cover: the official score when they cover
    all of them, a subset score otherwise (check with `scored_coverage`).
    `weights` is what `load_challenge_weights` returns. Raises EvaluationError when none of
    our classes is scored or normal sinus rhythm is not among them (no inactive classifier)."""
    weight_classes, matrix = weights
    index, unscored = map_classes(classes, weight_classes)
    if not (index >= 0).any():
        raise EvaluationError("none of the classes is scored by the Challenge weights")
    normal_index = next((j for j, key in enumerate(weight_classes) if NORMAL_SINUS_RHYTHM in _codes(key)), None)
    if normal_index is None or normal_index not in set(index.tolist()):
        raise EvaluationError(f"normal sinus rhythm {NORMAL_SINUS_RHYTHM} is not among the classes; "
                              "the Challenge score needs it for the always-normal baseline")
    n = len(weight_classes)
    labels = _project(np.asarray(y_true), index, n)
    outputs = _project(np.asarray(y_pred), index, n)
    return challenge_metric(labels, outputs, np.asarray(matrix, dtype=np.float64), normal_index), unscored
