"""Paired comparisons that use the seeds: a two-level bootstrap over seeds and test records.

An *arm* is one setting (strategy, architecture, fraction, …) with one run per seed. Runs of
one comparison are scored on the same test records (runs of one experiment share their test
split; ecgcore.evaluate.paired_bootstrap.align_runs is the two-run form of the same check), so every
run's AUC can be recomputed on the *same* bootstrap resamples of those records.

`shared_draws` aligns a set of runs on the records and classes they all share, draws the record
resamples once (ecgcore.evaluate.bootstrap.draw_indices: kept draws, seed-determined) and holds
each run's per-class AUC observed and in every draw: `boot[r, b, c]`.

`compare_arms(shared, a, b)` is the two-level bootstrap of the difference A − B of the seed-mean
AUC (per class and macro). In draw b:
  1. seeds: each arm's S seeds are resampled with replacement. When both arms have several
     runs and the same seed numbers (same initialisation, same data order), the seeds are
     paired: one resample of seed numbers serves both arms. Otherwise each arm is resampled
     independently. An arm with one seed has no seed level (its seed variance is not included).
  2. records: record resample b, the same for every run of both arms.
  diff_b = mean over A's drawn seeds of AUC_A(records_b) − the same for B.
The CI is the percentile interval of diff_b, the p-value ecgcore.evaluate.bootstrap.two_sided_p
(floor 1/B). Seed resamples come from numpy's default_rng([seed, 1]) drawn afresh for every
comparison, so a result depends only on (runs, n_boot, seed), not on what else was compared.
With one seed on each side it is exactly the paired record bootstrap (`paired_bootstrap`).
Vectorised: one `bootstrap_auc` per run, then a weighted sum over seeds per draw.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ecgcore.errors import EcgcoreError
from ecgcore.evaluate import EvaluationError, bootstrap_auc, draw_indices
from ecgcore.evaluate.bootstrap import DEFAULT_N_BOOT, Draws, percentile_ci, two_sided_p
from ecgcore.evaluate.metrics import auc_defined, check_inputs, per_class_auc
from ecgcore.evaluate.run_metrics import json_number

Predictions = Mapping[str, np.ndarray]


def names(arrays: Predictions, key: str) -> list[str]:
    return [str(v) for v in np.asarray(arrays[key]).tolist()]


@dataclass(frozen=True)
class SharedDraws:
    """Runs aligned on their shared records and classes, with every run's AUC in every draw."""

    run_ids: list[str]
    classes: list[str]
    record_ids: list[str]
    truth: np.ndarray          # (N, C) labels of the shared records
    observed: np.ndarray       # (R, C) per-class AUC of each run (NaN where undefined)
    boot: np.ndarray           # (R, B, C) per-class AUC of each run in each record draw
    draws: Draws
    only_records: dict[str, int]  # run id -> its records left out (not shared by every run)
    dropped_classes: list[str]

    @property
    def n_boot(self) -> int:
        return self.draws.n

    @property
    def defined(self) -> np.ndarray:
        return auc_defined(self.truth)

    def index(self, run_id: str) -> int:
        return self.run_ids.index(run_id)

    def macro_observed(self) -> np.ndarray:
        """(R,) macro AUC of each run: mean over the classes defined on the shared records."""
        if not self.defined.any():
            return np.full(len(self.run_ids), np.nan)
        return self.observed[:, self.defined].mean(axis=1)

    def macro_boot(self) -> np.ndarray:
        """(R, B) macro AUC of each run in each draw (the same classes as `macro_observed`)."""
        if not self.defined.any():
            return np.full(self.boot.shape[:2], np.nan)
        return self.boot[:, :, self.defined].mean(axis=2)


def shared_draws(preds: Mapping[str, Predictions], *, n_boot: int = DEFAULT_N_BOOT, seed: int = 0) -> SharedDraws:
    """Align runs ({run id: predictions.npz arrays}) on the records and classes all of them hold
    and bootstrap each run's AUC on the same record draws. EcgcoreError, naming the reason, when
    they share no class or no record, or disagree on a shared record's labels."""
    if not preds:
        raise EcgcoreError("no runs to compare")
    run_ids = [str(r) for r in preds]
    arrays = list(preds.values())
    two = len(arrays) == 2
    class_lists = [names(a, "classes") for a in arrays]
    common = set.intersection(*(set(c) for c in class_lists))
    classes = [c for c in class_lists[0] if c in common]
    if not classes:
        detail = (f"A scores {class_lists[0][:5]}, B scores {class_lists[1][:5]}" if two
                  else f"{len(arrays)} runs")
        raise EcgcoreError(f"the {'two ' if two else ''}runs share no class ({detail}); "
                           "a head-to-head needs classes both runs score")
    id_lists = [names(a, "record_ids") for a in arrays]
    common_ids = set.intersection(*(set(i) for i in id_lists))
    records = [r for r in id_lists[0] if r in common_ids]
    if not records:
        sizes = " and ".join(str(len(i)) for i in id_lists)
        raise EcgcoreError(f"the {'two ' if two else ''}runs share no test record ({sizes} records, none in "
                           "common); compare runs tested on the same split")
    truth0: np.ndarray | None = None
    scores = []
    for run_id, a, ids, cls in zip(run_ids, arrays, id_lists, class_lists):
        position = {r: i for i, r in enumerate(ids)}
        rows = [position[r] for r in records]
        cols = [cls.index(c) for c in classes]
        truth = np.asarray(a["y_true"])[np.ix_(rows, cols)]
        if truth0 is None:
            truth0 = truth
        else:
            differs = np.flatnonzero((truth != truth0).any(axis=1))
            if differs.size:
                who = "the two runs disagree" if two else f"runs {run_ids[0]} and {run_id} disagree"
                raise EcgcoreError(f"record {records[differs[0]]}: {who} on its labels ({differs.size} shared "
                                   "records differ); they were not scored against the same truth")
        scores.append(np.asarray(a["y_score"])[np.ix_(rows, cols)])
    assert truth0 is not None
    try:
        truth, _ = check_inputs(truth0, scores[0], classes)
        draws = draw_indices(truth, n_boot, seed, classes)
    except EvaluationError as exc:
        raise EcgcoreError(f"comparison on {len(records)} shared records: {exc}") from exc
    observed = np.stack([per_class_auc(truth, s) for s in scores])
    boot = np.stack([bootstrap_auc(truth, np.asarray(s, dtype=np.float64), draws) for s in scores])
    dropped = sorted(set().union(*(set(c) for c in class_lists)) - common)
    only = {r: len(i) - len(records) for r, i in zip(run_ids, id_lists)}
    return SharedDraws(run_ids=run_ids, classes=classes, record_ids=records, truth=truth, observed=observed,
                       boot=boot, draws=draws, only_records=only, dropped_classes=dropped)


@dataclass(frozen=True)
class Arm:
    """One setting: its runs and their seeds (None where unknown), in the same order."""

    run_ids: tuple[str, ...]
    seeds: tuple[int | None, ...]

    def __post_init__(self) -> None:
        if not self.run_ids or len(self.run_ids) != len(self.seeds):
            raise EcgcoreError("an arm needs at least one run and one seed entry per run")

    @property
    def n(self) -> int:
        return len(self.run_ids)


def seeds_paired(a: Arm, b: Arm) -> bool:
    """Both arms have several runs with the same, distinct, known seed numbers."""
    known = None not in a.seeds and None not in b.seeds
    return (known and a.n >= 2 and a.n == b.n and len(set(a.seeds)) == a.n
            and set(a.seeds) == set(b.seeds))


def seed_weights(idx: np.ndarray, n: int) -> np.ndarray:
    """(B, n) share of each seed in each seed resample (rows sum to 1)."""
    return (idx[:, :, None] == np.arange(n)).sum(axis=1) / n


def describe_method(a: Arm, b: Arm, n_boot: int, n_records: int, paired: bool) -> str:
    """One line naming the method, the seeds and the draws behind a comparison."""
    records = f"{n_records} test records (the same draw for both arms)"
    if a.n == 1 and b.n == 1:
        return (f"paired bootstrap over {records}, {n_boot} draws; one seed per arm: "
                "seed-to-seed variance is not included")
    seeds = (f"{a.n} seeds paired by seed number" if paired
             else f"{a.n} seed{'s' if a.n != 1 else ''} of A and {b.n} of B resampled independently")
    text = f"two-level bootstrap, {n_boot} draws: {seeds} × {records}"
    single = [name for name, arm in (("A", a), ("B", b)) if arm.n == 1]
    if single:
        text += f"; {single[0]} has one seed: its seed variance is not included"
    return text


def compare_arms(shared: SharedDraws, a: Arm, b: Arm, *, seed: int = 0, ci: float = 0.95) -> dict[str, Any]:
    """Two-level bootstrap of seed-mean AUC, arm A minus arm B (module docstring), per class and
    macro: observed difference, percentile CI, two-sided p. JSON-serialisable; `method` says
    what was resampled."""
    if set(a.run_ids) & set(b.run_ids):
        raise EcgcoreError("the two arms share a run; compare two different settings")
    paired = seeds_paired(a, b)
    if paired:  # both arms in the order of A's seed numbers
        order_b = {s: r for s, r in zip(b.seeds, b.run_ids)}
        b = Arm(tuple(order_b[s] for s in a.seeds), a.seeds)
    rows_a = [shared.index(r) for r in a.run_ids]
    rows_b = [shared.index(r) for r in b.run_ids]
    n_boot = shared.n_boot
    rng = np.random.default_rng([seed, 1])
    idx_a = rng.integers(0, a.n, size=(n_boot, a.n))
    idx_b = idx_a if paired else rng.integers(0, b.n, size=(n_boot, b.n))
    w_a, w_b = seed_weights(idx_a, a.n), seed_weights(idx_b, b.n)
    # diff[b, c] = Σ_s w_a[b, s] AUC_a,s[b, c] − Σ_s w_b[b, s] AUC_b,s[b, c]
    boot_diff = (np.einsum("bs,sbc->bc", w_a, shared.boot[rows_a])
                 - np.einsum("bs,sbc->bc", w_b, shared.boot[rows_b]))
    macro = shared.macro_boot()
    macro_diff = np.einsum("bs,sb->b", w_a, macro[rows_a]) - np.einsum("bs,sb->b", w_b, macro[rows_b])
    obs_a, obs_b = shared.observed[rows_a].mean(axis=0), shared.observed[rows_b].mean(axis=0)
    macro_obs = shared.macro_observed()
    macro_a, macro_b = float(macro_obs[rows_a].mean()), float(macro_obs[rows_b].mean())
    defined = shared.defined
    per_class: dict[str, dict[str, Any]] = {}
    for c, name in enumerate(shared.classes):
        observed = float(obs_a[c] - obs_b[c]) if defined[c] else float("nan")
        low, high = percentile_ci(boot_diff[:, c], ci)
        per_class[name] = {"auc_a": json_number(obs_a[c]), "auc_b": json_number(obs_b[c]),
                           "diff": json_number(observed), "ci": [json_number(low), json_number(high)],
                           "p_value": two_sided_p(observed, boot_diff[:, c]) if defined[c] else None}
    low, high = percentile_ci(macro_diff, ci)
    n_records = len(shared.record_ids)
    return {
        "macro_auc_a": json_number(macro_a),
        "macro_auc_b": json_number(macro_b),
        "macro_auc_diff": json_number(macro_a - macro_b),
        "macro_auc_diff_ci": [json_number(low), json_number(high)],
        "p_value": two_sided_p(macro_a - macro_b, macro_diff),
        "per_class": per_class,
        "undefined_classes": [n for n, d in zip(shared.classes, defined) if not d],
        "ci_level": ci,
        "bootstrap": {**shared.draws.describe(), "seed_draw_seed": [seed, 1]},
        "n_seeds_a": a.n, "n_seeds_b": b.n, "seeds_paired": paired,
        "run_ids_a": list(a.run_ids), "run_ids_b": list(b.run_ids),
        "method": describe_method(a, b, n_boot, n_records, paired),
    }


def arms_of(run_ids: Sequence[str], seeds: Sequence[int | None]) -> Arm:
    """An Arm from parallel lists (seeds None or NaN where unknown)."""
    clean = tuple(None if s is None or (isinstance(s, float) and np.isnan(s)) else int(s) for s in seeds)
    return Arm(tuple(str(r) for r in run_ids), clean)
