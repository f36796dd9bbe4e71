"""Mean ± standard deviation of metrics over repeated runs (seeds).

Input: a list of result dicts as `evaluate` returns them. Every numeric scalar is
summarised under its key; dicts of numbers one level deep (per_class_auc, ...)
under "key.class". Undefined values (None/NaN) are skipped, so `n` may differ
per metric and says how many runs contributed. The std is the sample standard
deviation (ddof=1), None for a single run.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import numpy as np


def _is_number(value: object) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool | np.bool_)


def _flatten(result: Mapping[str, object]) -> dict[str, float]:
    """Numeric scalars of one result, nested dicts of numbers as "outer.inner"."""
    flat: dict[str, float] = {}
    for key, value in result.items():
        if _is_number(value):
            flat[str(key)] = float(value)
        elif isinstance(value, Mapping):
            for inner, item in value.items():
                if _is_number(item):
                    flat[f"{key}.{inner}"] = float(item)
    return flat


def mean_std(results: Iterable[Mapping[str, object]]) -> dict[str, dict[str, float | int | None]]:
    """{metric: {"mean", "std", "n"}} over the runs that define the metric (NaN/None skipped)."""
    values: dict[str, list[float]] = {}
    for result in results:
        for key, value in _flatten(result).items():
            if math.isfinite(value):
                values.setdefault(key, []).append(value)
    summary: dict[str, dict[str, float | int | None]] = {}
    for key, items in values.items():
        array = np.asarray(items)
        summary[key] = {"mean": float(array.mean()),
                        "std": float(array.std(ddof=1)) if array.size > 1 else None,
                        "n": int(array.size)}
    return summary
