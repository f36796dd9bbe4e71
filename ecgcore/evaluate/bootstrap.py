"""Bootstrap draws and percentile confidence intervals of ROC-AUC (per class and macro).

The protocol follows the PTB-XL benchmark (docs/references.md, "PTB-XL benchmark"): records are
resampled with replacement; a draw is kept only when every class that has
positives in the full set still has a positive in it (and every class with
negatives still has a negative, so no per-class AUC is undefined); the seed is
fixed so the draws can be regenerated from (seed, n_boot, y_true) alone, and the
index matrix is returned for callers that save it.

scikit-learn's roc_auc_score per draw and class is far too slow for
200 draws x 26 classes x 5,000 records, so `bootstrap_auc` computes the
Mann-Whitney form of the AUC with multiplicity weights by hand, vectorised over
draws (checked against scikit-learn in the tests).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ecgcore.evaluate.metrics import EvaluationError, auc_defined

DEFAULT_N_BOOT = 200
# How many candidate draws may be rejected per kept one before giving up.
MAX_TRIES_PER_DRAW = 50


@dataclass(frozen=True)
class Draws:
    """Kept bootstrap draws: `indices` (n_boot, n_records) into the evaluated records;
    `rejected` counts the candidate draws examined that broke the keep rule."""

    indices: np.ndarray
    seed: int
    rejected: int

    @property
    def n(self) -> int:
        return int(self.indices.shape[0])

    def describe(self) -> dict[str, int]:
        """The results.json "bootstrap" entry: enough to regenerate the same draws."""
        return {"n": self.n, "seed": self.seed, "kept_draws": self.n, "rejected_draws": self.rejected,
                "n_records": int(self.indices.shape[1])}


def draw_indices(y_true: np.ndarray, n_boot: int = DEFAULT_N_BOOT, seed: int = 0,
                 classes: Sequence[str] | None = None) -> Draws:
    """`n_boot` resamples of the records in which every class keeps a positive (if it has one in
    the full set) and a negative (likewise). Candidates are generated in batches of `n_boot`
    from numpy's default_rng(seed), so the result depends only on (y_true, n_boot, seed).
    `classes` only names the culprit when a class is too rare to keep in enough draws."""
    if n_boot < 1:
        raise EvaluationError(f"n_boot must be at least 1, got {n_boot}")
    truth = y_true.astype(bool)
    n_records = truth.shape[0]
    need_pos = truth.any(axis=0)
    need_neg = (~truth).any(axis=0)
    rng = np.random.default_rng(seed)
    kept: list[np.ndarray] = []
    n_kept, rejected = 0, 0
    while n_kept < n_boot:
        if rejected > MAX_TRIES_PER_DRAW * n_boot:
            rarest = int(np.argmin(np.where(need_pos, truth.sum(axis=0), n_records + 1)))
            name = classes[rarest] if classes is not None else f"column {rarest}"
            raise EvaluationError(
                f"bootstrap: {rejected} draws rejected for {n_kept} kept; class {name} has "
                f"{int(truth[:, rarest].sum())} positive(s) in {n_records} records, too rare to resample")
        candidates = rng.integers(0, n_records, size=(n_boot, n_records))
        ok = np.ones(n_boot, dtype=bool)
        for c in np.flatnonzero(need_pos | need_neg):
            drawn = truth[candidates, c]
            has_pos = drawn.any(axis=1)
            ok &= (has_pos | ~need_pos[c]) & (~drawn.all(axis=1) | ~need_neg[c])
        good = candidates[ok][: n_boot - n_kept]
        rejected += int((~ok).sum())
        kept.append(good)
        n_kept += good.shape[0]
    return Draws(indices=np.concatenate(kept).astype(np.int64), seed=int(seed), rejected=rejected)


def _counts_by_record(indices: np.ndarray, n_records: int) -> np.ndarray:
    """(n_records, n_boot) multiplicity of each record in each draw (record-major, so the
    per-class gathers and cumulative sums below run over contiguous rows)."""
    n_boot = indices.shape[0]
    flat = (indices + np.arange(n_boot)[:, None] * n_records).ravel()
    counts = np.bincount(flat, minlength=n_boot * n_records).reshape(n_boot, n_records)
    return np.ascontiguousarray(counts.T, dtype=np.float64)


# Kept by hand, not roc_auc_score per draw: 0.27 s for 200 x 26 classes x 5,000 records, not ~22 s (measured).
def _auc_by_record(y_true: np.ndarray, y_score: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """`weighted_auc` on record-major counts (n_records, n_boot)."""
    order = np.argsort(y_score, kind="mergesort")
    scores = y_score[order]
    positive = y_true[order].astype(bool)
    new_group = np.r_[True, scores[1:] != scores[:-1]]
    starts = np.flatnonzero(new_group)
    ends = np.r_[starts[1:], scores.size] - 1
    group = np.cumsum(new_group) - 1
    neg_w = counts[order]
    neg_w[positive] = 0.0
    neg_cum = np.cumsum(neg_w, axis=0)
    pos = np.flatnonzero(positive)
    first, last = starts[group[pos]], ends[group[pos]]
    below = neg_cum[first] - neg_w[first]  # negative weight strictly below the positive's score
    tied = neg_cum[last] - below  # negative weight at exactly its score
    pos_w = counts[order[pos]]
    credit = (pos_w * (below + 0.5 * tied)).sum(axis=0)
    total = pos_w.sum(axis=0) * neg_cum[-1]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, credit / np.where(total > 0, total, 1.0), np.nan)


def weighted_auc(y_true: np.ndarray, y_score: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """ROC-AUC of one class for each row of `counts` (n_boot, n_records) of record multiplicities.

    AUC = Σ_{i pos, j neg} w_i w_j ([s_i > s_j] + ½[s_i = s_j]) / (Σ_pos w · Σ_neg w): records
    are sorted by score once; each positive is credited with the cumulative negative weight
    strictly below its score plus half the negative weight tied with it. NaN where a draw
    has no positive or no negative."""
    return _auc_by_record(y_true, y_score, np.ascontiguousarray(np.asarray(counts, dtype=np.float64).T))


def bootstrap_auc(y_true: np.ndarray, y_score: np.ndarray, draws: Draws) -> np.ndarray:
    """(n_boot, C) per-class ROC-AUC in every draw; NaN columns for classes undefined in the full set."""
    counts = _counts_by_record(draws.indices, y_true.shape[0])
    defined = auc_defined(y_true)
    out = np.full((draws.n, y_true.shape[1]), np.nan)
    for c in np.flatnonzero(defined):
        out[:, c] = _auc_by_record(y_true[:, c], y_score[:, c], counts)
    return out


def percentile_ci(samples: np.ndarray, ci: float = 0.95) -> tuple[float, float]:
    """Percentile interval: the (1-ci)/2 and (1+ci)/2 quantiles (0.95 -> 2.5/97.5 %, 0.90 -> the
    PTB-XL benchmark's 5/95 %). NaN when no finite sample exists."""
    if not 0.0 < ci < 1.0:
        raise EvaluationError(f"ci must be between 0 and 1 (e.g. 0.95), got {ci}")
    finite = samples[np.isfinite(samples)]
    if finite.size == 0:
        return float("nan"), float("nan")
    low, high = np.quantile(finite, [round((1 - ci) / 2, 10), round((1 + ci) / 2, 10)])
    return float(low), float(high)


def macro_over_draws(per_class: np.ndarray) -> np.ndarray:
    """(n_boot,) macro AUC per draw: mean over the classes defined (non-NaN columns)."""
    defined = ~np.all(np.isnan(per_class), axis=0)
    if not defined.any():
        return np.full(per_class.shape[0], np.nan)
    return per_class[:, defined].mean(axis=1)


def auc_intervals(y_true: np.ndarray, y_score: np.ndarray, draws: Draws,
                  ci: float = 0.95) -> tuple[tuple[float, float], list[tuple[float, float]]]:
    """(macro AUC CI, per-class AUC CIs) from the same draws."""
    per_class = bootstrap_auc(y_true, y_score, draws)
    macro = percentile_ci(macro_over_draws(per_class), ci)
    return macro, [percentile_ci(per_class[:, c], ci) for c in range(per_class.shape[1])]


def two_sided_p(observed: float, samples: np.ndarray) -> float:
    """Bootstrap p-value of a difference: twice the fraction of draws on the other side of 0
    from the observed difference (0 itself counts as the other side), bounded to [1/n, 1].
    An observed difference of exactly 0 (or an undefined one) gives 1."""
    finite = samples[np.isfinite(samples)]
    if finite.size == 0 or not np.isfinite(observed) or observed == 0:
        return 1.0
    other = np.mean(finite <= 0) if observed > 0 else np.mean(finite >= 0)
    return float(min(1.0, max(1.0 / finite.size, 2.0 * other)))
