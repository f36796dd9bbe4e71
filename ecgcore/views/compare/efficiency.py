"""Label efficiency: "fine-tuned at 10 % of the target ≈ scratch at X %".

From the data-efficiency curves: the reference line's (scratch's) macro AUC, mean over
seeds, as a function of the target fraction is interpolated **linearly in log10(fraction)**
between the measured fractions; X is the smallest fraction at which it first reaches the
treated line's (e.g. fine-tuning's) mean macro AUC at the fraction asked about. When scratch
already reaches it at its smallest measured fraction, X is "at or below" that fraction
(nothing is extrapolated); when it never reaches it, X is "beyond the largest fraction
measured".

Uncertainty: the two-level bootstrap of ecgcore.views.compare.seeded. In every draw the seeds of
each setting are resampled (independently per setting; seed resamples from numpy's
default_rng([seed, 2])), every run's macro AUC is taken on the same record resample, and X
is found again. The CI is the percentile interval of X over draws, taken as order statistics
so "at or below" and "beyond" draws count at their end of the order. With one seed per
setting only the records are resampled (no seed variance), and the method says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from ecgcore.views.compare.seeded import Arm, SharedDraws, seed_weights


def crossing_fraction(fractions: np.ndarray, curves: np.ndarray, targets: np.ndarray | float) -> np.ndarray:
    """Where each curve (rows of `curves` over ascending `fractions`) first reaches its target,
    interpolated linearly in log10(fraction): -inf when it is reached at the first fraction
    already, +inf when never. 1-D `curves` gives a 0-d result."""
    x = np.log10(np.asarray(fractions, dtype=float))
    y = np.atleast_2d(np.asarray(curves, dtype=float))
    target = np.broadcast_to(np.asarray(targets, dtype=float), y.shape[:1])
    reached = y >= target[:, None]
    first = np.argmax(reached, axis=1)
    out = np.full(y.shape[0], np.inf)
    below = reached.any(axis=1) & (first == 0)
    out[below] = -np.inf
    inside = np.flatnonzero(reached.any(axis=1) & (first > 0))
    if inside.size:
        k = first[inside]
        y0, y1 = y[inside, k - 1], y[inside, k]
        t = (target[inside] - y0) / (y1 - y0)  # y0 < target <= y1, so y1 > y0
        out[inside] = 10 ** (x[k - 1] + t * (x[k] - x[k - 1]))
    return out if np.ndim(curves) > 1 else out[0]


def percent(fraction: float) -> str:
    return f"{100 * fraction:.3g} %"


@dataclass(frozen=True)
class LabelEfficiency:
    """`line` at `at_fraction` reaches `target_auc`; `baseline` reaches it at `fraction`
    (±inf: at or below / beyond the fractions measured), with a CI over bootstrap draws."""

    line: str
    baseline: str
    at_fraction: float
    target_auc: float
    fraction: float
    ci: tuple[float, float]
    measured: tuple[float, ...]  # the baseline's fractions
    n_boot: int
    method: str
    run_ids: list[str] = field(default_factory=list)

    def where(self, value: float) -> str:
        if value == -np.inf:
            return f"at or below {percent(self.measured[0])}"
        if value == np.inf:
            return f"beyond {percent(self.measured[-1])}"
        return percent(value)

    @property
    def text(self) -> str:
        """"finetune at 10 % ≈ scratch at 34 % (95 % CI 18 % to beyond 100 %)"."""
        low, high = (self.where(v) for v in self.ci)
        return (f"{self.line} at {percent(self.at_fraction)} ≈ {self.baseline} at {self.where(self.fraction)} "
                f"(95 % CI {low} to {high})")


def _order_ci(values: np.ndarray, ci: float) -> tuple[float, float]:
    """Percentile interval as order statistics (inverted CDF), so ±inf draws keep their place."""
    low, high = np.quantile(values, [(1 - ci) / 2, (1 + ci) / 2], method="inverted_cdf")
    return float(low), float(high)


def label_efficiency(shared: SharedDraws, line: str, treated: Arm, at_fraction: float, baseline: str,
                     reference: Mapping[float, Arm], *, seed: int = 0, ci: float = 0.95) -> LabelEfficiency:
    """Where `reference` ({fraction: arm}, e.g. scratch) reaches `treated`'s seed-mean macro AUC
    (module docstring); all runs must be in `shared`."""
    fractions = np.array(sorted(reference), dtype=float)
    arms = [reference[f] for f in sorted(reference)]
    observed, boot = shared.macro_observed(), shared.macro_boot()
    rng = np.random.default_rng([seed, 2])

    def seed_means(arm: Arm) -> tuple[float, np.ndarray]:
        rows = [shared.index(r) for r in arm.run_ids]
        weights = seed_weights(rng.integers(0, arm.n, size=(shared.n_boot, arm.n)), arm.n)
        return float(observed[rows].mean()), np.einsum("bs,sb->b", weights, boot[rows])

    target, target_boot = seed_means(treated)
    means = [seed_means(arm) for arm in arms]
    curve = np.array([m for m, _ in means])
    curves = np.stack([b for _, b in means], axis=1)  # (B, F)
    fraction = float(crossing_fraction(fractions, curve, target))
    draws = crossing_fraction(fractions, curves, target_boot)
    several = treated.n > 1 or any(arm.n > 1 for arm in arms)
    seeds = ("seeds of every setting and" if several else "one seed per setting (no seed variance);") + \
        f" {len(shared.record_ids)} test records"
    method = (f"{baseline}'s mean macro AUC interpolated linearly in log10(fraction) between the measured "
              f"fractions, first crossing; 95 % CI: two-level bootstrap, {shared.n_boot} draws of {seeds} resampled")
    run_ids = list(treated.run_ids) + [r for arm in arms for r in arm.run_ids]
    return LabelEfficiency(line=line, baseline=baseline, at_fraction=float(at_fraction), target_auc=target,
                           fraction=fraction, ci=_order_ci(draws, ci), measured=tuple(float(f) for f in fractions),
                           n_boot=shared.n_boot, method=method, run_ids=run_ids)
