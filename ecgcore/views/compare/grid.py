"""The statistics of a grid: every strategy against the baseline (scratch) at each target
fraction, with their seeds, Holm-adjusted over the grid, and label efficiency.

Input: the data-efficiency frame (`aggregate.data_efficiency`: one row per setting with its
line, run ids and seeds) and the predictions of the runs involved. A treated setting is
paired with the baseline setting of the same protocol, target, task, architecture and
fraction. Runs of one (protocol, target, task) are aligned on their shared test records
(`seeded.shared_draws`); a family whose runs share no record is skipped with a note.
Differences are the two-level bootstrap of `seeded.compare_arms`; the Holm adjustment runs
over every comparison of the table (one family: what the answer panel states at once).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ecgcore.errors import EcgcoreError
from ecgcore.evaluate.bootstrap import DEFAULT_N_BOOT
from ecgcore.views.compare.efficiency import LabelEfficiency, label_efficiency
from ecgcore.views.compare.seeded import (
    Arm,
    Predictions,
    SharedDraws,
    arms_of,
    compare_arms,
    shared_draws,
)
from ecgcore.views.compare.stats import ALPHA, format_adjusted, format_p, holm_bounded

BASELINE = "scratch"
FAMILY_KEYS: tuple[str, ...] = ("protocol", "target", "task")
PAIR_KEYS: tuple[str, ...] = FAMILY_KEYS + ("arch",)
COMPARISON_COLUMNS: tuple[str, ...] = (
    "line", "baseline", "train_fraction", "n_train", "macro_auc", "macro_auc_baseline", "diff", "low", "high",
    "p_value", "p_holm", "p_holm_bound", "p", "p Holm", "n_seeds", "n_seeds_baseline", "n_boot", "method", "run_ids",
    "baseline_run_ids", "strategy", "source_kind", "source",
)


@dataclass(frozen=True)
class GridStatistics:
    """`comparisons` (COMPARISON_COLUMNS, one row per treated setting, with the treated
    setting's strategy, source kind and source), label efficiency at each
    treated line's smallest fraction, and notes on what could not be compared."""

    comparisons: pd.DataFrame
    efficiency: list[LabelEfficiency] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    adjustment: str = ""


def _key(row: Mapping[str, object], keys: Sequence[str]) -> tuple[str, ...]:
    return tuple("" if row[k] is None or (isinstance(row[k], float) and np.isnan(row[k])) else str(row[k])
                 for k in keys)


def pairs(curve: pd.DataFrame, baseline: str = BASELINE) -> list[tuple[dict, dict]]:
    """(treated row, baseline row) of `curve` at the same protocol, target, task, architecture
    and fraction; treated rows are every strategy but `baseline`."""
    rows = curve.to_dict("records")
    base = {(_key(r, PAIR_KEYS), round(float(r["train_fraction"]), 9)): r for r in rows if r["strategy"] == baseline}
    out = []
    for row in rows:
        if row["strategy"] == baseline:
            continue
        match = base.get((_key(row, PAIR_KEYS), round(float(row["train_fraction"]), 9)))
        if match is not None:
            out.append((row, match))
    return out


def run_ids_needed(curve: pd.DataFrame, baseline: str = BASELINE) -> list[str]:
    """Every run whose predictions `grid_statistics` reads: the paired settings and every
    fraction of the baselines they are paired with (for label efficiency)."""
    found = pairs(curve, baseline)
    wanted = {_key(b, PAIR_KEYS) for _, b in found}
    ids: list[str] = []
    for row, _ in found:
        ids += row["run_ids"]
    for row in curve.to_dict("records"):
        if row["strategy"] == baseline and _key(row, PAIR_KEYS) in wanted:
            ids += row["run_ids"]
    return list(dict.fromkeys(ids))


def _arm(row: Mapping[str, object]) -> Arm:
    return arms_of(row["run_ids"], row.get("seeds") or [None] * len(row["run_ids"]))  # type: ignore[arg-type]


def setting_arm(summary: pd.DataFrame, run_id: str) -> Arm:
    """The seeds of `run_id`'s setting (a `seed_summary` row holding it) as an Arm; the run alone
    when no row holds it."""
    for row in summary.to_dict("records"):
        if run_id in row["run_ids"]:
            return _arm(row)
    return Arm((run_id,), (None,))


#: Which transferred strategy answers "does pretraining help?" first, when several ran.
TRANSFER_ORDER: tuple[str, ...] = ("finetune", "lp_ft", "discriminative_lr", "gradual_unfreeze", "partial_freeze",
                                   "linear_probe")


@dataclass(frozen=True)
class DefaultPair:
    """The head to head a page opens with, and why."""

    run_a: str
    run_b: str
    reason: str


def default_pair(runs: pd.DataFrame, baseline: str = BASELINE) -> DefaultPair | None:
    """The transfer question among `runs` (finished runs, runs_table columns): a transferred
    strategy (TRANSFER_ORDER first) against `baseline` at the same protocol, target, task,
    architecture, fraction and seed; the smallest such fraction (where pretraining is said to
    matter most), then the smallest seed. None when no run has its baseline twin."""
    keys = (*PAIR_KEYS, "seed")
    rows = runs.to_dict("records")
    base = {(_key(r, keys), round(float(r["train_fraction"]), 9)): r for r in rows if r["strategy"] == baseline}
    rank = {name: i for i, name in enumerate(TRANSFER_ORDER)}
    found = []
    for row in rows:
        if row["strategy"] == baseline or row.get("kind", "target") != "target":
            continue
        fraction = round(float(row["train_fraction"]), 9)
        twin = base.get((_key(row, keys), fraction))
        if twin is not None:
            seed = -1 if pd.isna(row["seed"]) else int(row["seed"])
            found.append(((rank.get(row["strategy"], len(rank)), row["strategy"], fraction, seed), row, twin))
    if not found:
        return None
    _, treated, twin = min(found, key=lambda item: item[0])
    seed = "" if pd.isna(treated["seed"]) else f", seed {int(treated['seed'])}"
    return DefaultPair(str(treated["run_id"]), str(twin["run_id"]),
                       f"{treated['strategy']} against {baseline} at {float(treated['train_fraction']):g} of the "
                       f"target, {treated['arch']}{seed}: the transfer question")


#: Most bootstrap draws `draws_to_resolve` asks for (a grid of hundreds of comparisons would
#: otherwise cost minutes); past it the answer says when its draws are too few to decide.
MAX_DRAWS = 5_000


def draws_to_resolve(n_comparisons: int, alpha: float = ALPHA) -> int:
    """Bootstrap draws B such that a p at the bootstrap's floor (1/B) stays well below alpha
    after Holm over `n_comparisons` (m/B <= alpha/4): with 200 draws and 12 comparisons the
    smallest Holm-adjusted p the bootstrap can show is 0.06, which cannot call anything."""
    return int(min(MAX_DRAWS, max(DEFAULT_N_BOOT, math.ceil(4 * n_comparisons / alpha))))


def grid_statistics(curve: pd.DataFrame, preds: Mapping[str, Predictions], *, baseline: str = BASELINE,
                    n_boot: int | None = None, seed: int = 0, ci: float = 0.95) -> GridStatistics:
    """Each treated setting minus its baseline (module docstring), Holm-adjusted over the grid,
    and label efficiency of each treated line at its smallest fraction. `n_boot` None: as many
    draws as `draws_to_resolve` asks for the grid's number of comparisons."""
    found = pairs(curve, baseline)
    n_boot = draws_to_resolve(len(found)) if n_boot is None else n_boot
    notes: list[str] = []
    if not found:
        notes.append(f"no {baseline} runs at the same fraction, architecture and target as the other strategies "
                     "in this selection: nothing to compare against")
    families: dict[tuple[str, ...], list[tuple[dict, dict]]] = {}
    for treated, base in found:
        families.setdefault(_key(treated, FAMILY_KEYS), []).append((treated, base))
    records: list[dict[str, object]] = []
    efficiency: list[LabelEfficiency] = []
    baselines = [r for r in curve.to_dict("records") if r["strategy"] == baseline]
    for family, members in families.items():
        ids = [r for t, b in members for r in (*t["run_ids"], *b["run_ids"])]
        ids += [r for b in baselines if _key(b, FAMILY_KEYS) == family for r in b["run_ids"]]
        ids = list(dict.fromkeys(ids))
        missing = [r for r in ids if r not in preds]
        try:
            if missing:
                raise EcgcoreError(f"{len(missing)} run(s) have no predictions.npz (e.g. {missing[0]})")
            shared = shared_draws({r: preds[r] for r in ids}, n_boot=n_boot, seed=seed)
        except EcgcoreError as err:
            notes.append(f"{' · '.join(v for v in family if v)}: not compared ({err})")
            continue
        for treated, base in members:
            result = compare_arms(shared, _arm(treated), _arm(base), seed=seed, ci=ci)
            low, high = result["macro_auc_diff_ci"]
            records.append({
                "line": treated["line"], "baseline": base["line"], "train_fraction": float(treated["train_fraction"]),
                "n_train": treated.get("n_train"), "macro_auc": result["macro_auc_a"],
                "macro_auc_baseline": result["macro_auc_b"], "diff": result["macro_auc_diff"], "low": low,
                "high": high, "p_value": result["p_value"], "n_seeds": result["n_seeds_a"],
                "n_seeds_baseline": result["n_seeds_b"], "n_boot": shared.n_boot, "method": result["method"],
                "run_ids": list(treated["run_ids"]), "baseline_run_ids": list(base["run_ids"]),
                "strategy": treated["strategy"], "source_kind": treated.get("source_kind"),
                "source": treated.get("source")})
        efficiency += _efficiency(shared, members, baselines, seed, ci)
    frame = pd.DataFrame(records, columns=list(COMPARISON_COLUMNS))
    n_boot_used = int(frame["n_boot"].iloc[0]) if len(frame) else n_boot
    adjusted, bound = holm_bounded(frame["p_value"].to_numpy(dtype=float), n_boot_used)
    frame["p_holm"] = adjusted
    frame["p_holm_bound"] = bound
    frame["p"] = [format_p(p, n_boot_used) for p in frame["p_value"].to_numpy(dtype=float)]
    frame["p Holm"] = [format_adjusted(p, b) for p, b in zip(adjusted, bound)]
    frame = frame.sort_values(["line", "train_fraction"], kind="mergesort").reset_index(drop=True)
    adjustment = f"Holm over the {len(frame)} comparison{'s' if len(frame) != 1 else ''} of this grid"
    return GridStatistics(comparisons=frame, efficiency=efficiency, notes=notes, adjustment=adjustment)


def _efficiency(shared: SharedDraws, members: list[tuple[dict, dict]], baselines: list[dict],
                seed: int, ci: float) -> list[LabelEfficiency]:
    """Label efficiency of each treated line (in this family) at its smallest paired fraction."""
    out = []
    smallest: dict[str, tuple[dict, dict]] = {}
    for treated, base in members:
        held = smallest.get(treated["line"])
        if held is None or treated["train_fraction"] < held[0]["train_fraction"]:
            smallest[treated["line"]] = (treated, base)
    for line, (treated, base) in smallest.items():
        reference = {float(b["train_fraction"]): _arm(b) for b in baselines
                     if _key(b, PAIR_KEYS) == _key(base, PAIR_KEYS)}
        out.append(label_efficiency(shared, line, _arm(treated), float(treated["train_fraction"]), base["line"],
                                    reference, seed=seed, ci=ci))
    return out
