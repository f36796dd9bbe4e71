"""Small statistics of the Compare view: the CI of a mean over seeds, multiplicity
adjustments (Holm, Benjamini-Hochberg) and how a bootstrap p-value is written.

- `seed_mean_ci`      Student t interval of the mean over seeds: mean ± t_{(1+ci)/2, n-1} · s/√n,
                      s the sample standard deviation (ddof=1). Seeds are treated as independent
                      draws of the training randomness; the test set is fixed, so the interval is
                      of the mean *on this test set*. None below two seeds.
- `holm`              Holm (1979) step-down adjusted p-values (family-wise error rate).
- `benjamini_hochberg` Benjamini-Hochberg (1995) step-up adjusted p-values (false discovery rate).
- `format_p`          a p-value as text; a bootstrap p at its floor (no draw on the other side
                      of 0, see ecgcore.evaluate.bootstrap.two_sided_p) reads "< 1/B", e.g.
                      "< 0.005 (1/200)", never as an exact value.

statsmodels has both adjustments (multipletests) but is not a dependency of the workbench;
the two are a few lines each and checked against worked examples in the tests.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats

#: The significance level the answer panel uses with Holm-adjusted p-values.
ALPHA = 0.05


def seed_mean_ci(values: Sequence[float], ci: float = 0.95) -> tuple[float, float] | None:
    """t-interval (n - 1 degrees of freedom) of the mean of `values` (one per seed); None for
    fewer than two finite values. NaN values are left out."""
    array = np.asarray([v for v in values if v is not None and math.isfinite(float(v))], dtype=float)
    if array.size < 2:
        return None
    half = stats.t.ppf((1 + ci) / 2, df=array.size - 1) * array.std(ddof=1) / math.sqrt(array.size)
    mean = float(array.mean())
    return mean - float(half), mean + float(half)


def seed_ci_method(n_seeds: int) -> str:
    """How the CI of a setting with `n_seeds` seeds is computed (the label the views show)."""
    if n_seeds >= 2:
        return f"t-interval of the mean over {n_seeds} seeds ({n_seeds - 1} df)"
    return "bootstrap CI of the one run (test records resampled; no seed variance)"


def _clean(p_values: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(p_values, dtype=float)
    return p, np.isfinite(p)


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjustment: sort the m finite p-values ascending, p_(i) -> (m - i + 1) p_(i)
    (i from 1), take the running maximum and cap at 1. NaN entries stay NaN and do not count in m.
    By hand: scipy has no Holm adjustment and statsmodels is not a dependency for six lines."""
    p, finite = _clean(p_values)
    out = np.full(p.shape, np.nan)
    values = p[finite]
    if values.size:
        order = np.argsort(values, kind="mergesort")
        adjusted = np.empty(values.size)
        ranked = values[order]
        adjusted[order] = np.minimum(1.0, np.maximum.accumulate((ranked.size - np.arange(ranked.size)) * ranked))
        out[finite] = adjusted
    return out


def benjamini_hochberg(p_values: Sequence[float]) -> np.ndarray:
    """Benjamini-Hochberg step-up adjustment (scipy's `false_discovery_control`, method "bh"):
    p_(i) -> m p_(i) / i, the running minimum from the largest down, capped at 1. NaN entries
    stay NaN and do not count in m."""
    p, finite = _clean(p_values)
    out = np.full(p.shape, np.nan)
    if finite.any():
        out[finite] = stats.false_discovery_control(p[finite], method="bh")
    return out


def at_floor(p: float, n_boot: int | None) -> bool:
    """Whether a bootstrap p-value sits at its floor 1/B (no draw on the other side of 0)."""
    return bool(n_boot) and math.isfinite(p) and p <= 1.0 / n_boot * (1 + 1e-9)


def _number(p: float) -> str:
    return f"{p:.2g}" if p < 0.001 else f"{p:.3f}".rstrip("0").rstrip(".") if p < 0.1 else f"{p:.2f}"


def format_p(p: float | None, n_boot: int | None = None) -> str:
    """'p' as text: '< 0.005 (1/200)' at a bootstrap's floor (`n_boot` draws), '—' when undefined,
    else two significant digits."""
    if p is None or not math.isfinite(p):
        return "—"
    if at_floor(p, n_boot):
        return f"< {_number(1.0 / n_boot)} (1/{n_boot})"  # type: ignore[operator]
    return _number(p)


def holm_bounded(p_values: Sequence[float], n_boot: int | None) -> tuple[np.ndarray, np.ndarray]:
    """(Holm-adjusted p, whether each is only a strict upper bound). A p at the bootstrap floor
    stands for "< 1/B"; an adjusted value is then a bound too when it depends on that p (Holm
    with the floored p set to 0 gives a smaller value): the adjusted p lies below it."""
    p = np.asarray(p_values, dtype=float)
    adjusted = holm(p)
    floored = np.array([at_floor(v, n_boot) for v in p], dtype=bool)
    if not floored.any():
        return adjusted, np.zeros(p.shape, dtype=bool)
    lowest = holm(np.where(floored, 0.0, p))
    return adjusted, np.isfinite(adjusted) & (lowest < adjusted - 1e-12)


def format_adjusted(adjusted: float | None, bound: bool) -> str:
    """An adjusted p as text; '< x' when it is only an upper bound (see `holm_bounded`)."""
    if adjusted is None or not math.isfinite(adjusted):
        return "—"
    return ("< " if bound else "") + _number(adjusted)
