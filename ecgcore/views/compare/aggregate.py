"""Aggregations over runs: mean ± std over seeds, the data-efficiency curve, convergence.

Pure functions of the frames `runs_table` and `load.histories` return. Runs that repeat
the same setting with another seed form one group (GROUP_KEYS); `mean_std` from
ecgcore.evaluate does the arithmetic.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ecgcore.evaluate import mean_std
from ecgcore.views.compare.stats import seed_ci_method, seed_mean_ci
from ecgcore.views.compare.table import NO_SOURCE, pretraining_methods, source_kinds

#: A setting: runs that differ only in their seed.
#: Runs of different protocols (paper-exact vs ours) are never pooled, nor runs of different
#: source kinds (none / own pretraining / checkpoint, `table.source_kinds`).
GROUP_KEYS: tuple[str, ...] = ("protocol", "source_kind", "source", "pretrain_method", "target", "task", "arch",
                               "strategy", "train_fraction")
SUMMARY_COLUMNS: tuple[str, ...] = GROUP_KEYS + (
    "n_seeds", "macro_auc_mean", "macro_auc_std", "ci_low", "ci_high", "ci_method", "n_train", "seeds", "run_ids",
)
CONVERGENCE_COLUMNS: tuple[str, ...] = (
    "run_id", "best_val_auc", "best_epoch", "epochs_run", "target_auc", "epochs_to_target",
    "seconds_to_target", "seconds_total",
)


def finished(table: pd.DataFrame) -> pd.DataFrame:
    """Target runs that finished with a macro AUC (pretraining runs are a means, not an answer),
    with `source_kind` filled (a frame without it reads its `source`, `table.source_kinds`)."""
    keep = (table["status"] == "done") & (table["kind"] == "target") & table["macro_auc"].notna()
    done = table[keep.to_numpy(dtype=bool)].reset_index(drop=True)
    done["source_kind"] = source_kinds(done)
    done["pretrain_method"] = pretraining_methods(
        done["pretrain_method"].tolist() if "pretrain_method" in done else [None] * len(done), done["source_kind"])
    return done


def seed_summary(table: pd.DataFrame) -> pd.DataFrame:
    """One row per setting (GROUP_KEYS) of the finished target runs: macro AUC mean ± std over
    seeds (std None for one seed), its 95 % CI, and the runs (and seeds) it holds.

    The CI (`ci_low`, `ci_high`, named in `ci_method`): with several seeds the t-interval of the
    seed mean (`stats.seed_mean_ci`, n - 1 df); with one seed that run's own bootstrap CI over
    test records, which holds no seed-to-seed variance. `n_train`: the runs' median n_train."""
    done = finished(table)
    rows: list[dict[str, object]] = []
    if not done.empty:
        keys = done[list(GROUP_KEYS)].astype("object").where(done[list(GROUP_KEYS)].notna(), "")
        columns = {name: done[column].to_numpy(dtype=float) for name, column in
                   (("macro_auc", "macro_auc"), ("ci_low", "macro_auc_low"), ("ci_high", "macro_auc_high"))}
        run_ids = done["run_id"].to_numpy()
        seeds = done["seed"].to_numpy(dtype=object)
        n_train = pd.to_numeric(done["n_train"], errors="coerce").to_numpy(dtype=float)
        # Plain numpy per group: a DataFrame per group costs ~10 ms, too much for hundreds of settings.
        for group_values, positions in sorted(keys.groupby(list(GROUP_KEYS), dropna=False).indices.items(),
                                              key=lambda item: tuple(map(str, item[0]))):
            metrics = [{name: float(values[p]) for name, values in columns.items()} for p in positions]
            stats = mean_std(metrics)
            n_seeds = int(stats["macro_auc"]["n"] or 0)
            interval = seed_mean_ci([m["macro_auc"] for m in metrics])
            if interval is None:  # one seed: the run's own bootstrap CI
                interval = (metrics[0]["ci_low"], metrics[0]["ci_high"])
            counts = n_train[positions]
            row: dict[str, object] = dict(zip(GROUP_KEYS, group_values))
            row.update(
                n_seeds=n_seeds,
                macro_auc_mean=stats["macro_auc"]["mean"],
                macro_auc_std=stats["macro_auc"]["std"],
                ci_low=interval[0], ci_high=interval[1], ci_method=seed_ci_method(n_seeds),
                n_train=float(np.median(counts[np.isfinite(counts)])) if np.isfinite(counts).any() else None,
                seeds=[None if pd.isna(v) else int(v) for v in seeds[positions]],
                run_ids=[str(r) for r in run_ids[positions]],
            )
            rows.append(row)
    frame = pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))
    for column in ("train_fraction", "macro_auc_mean", "macro_auc_std", "ci_low", "ci_high", "n_train"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    return frame


def _line_name(row: dict[str, object], vary: Sequence[str], by_kind: bool) -> str:
    """strategy, plus whichever of architecture/source/target/task/protocol vary between the
    lines; `by_kind` (a checkpoint among the sources): the source said with its kind instead."""
    parts = [str(row["strategy"])]
    if by_kind and row["source_kind"] == "checkpoint":
        parts.append(f"checkpoint {row['source']}")
    elif by_kind and row["source_kind"] == "pretraining":
        parts.append(f"pretrained on {row['source']}")
    named = [f"{row[key]} pretraining" if key == "pretrain_method" else str(row[key])
             for key in vary if not (key == "pretrain_method" and not row[key])]  # scratch: no method
    return " · ".join(parts + named)


def data_efficiency(table: pd.DataFrame) -> pd.DataFrame:
    """Macro AUC against target fraction: the seed summary with a `line` column (one line per
    strategy; architecture, source or target join the name when the selection mixes them),
    sorted by line and fraction. The band is `seed_summary`'s CI (see `ci_method`).

    When a foundation-model checkpoint is among the sources, every line that starts from a
    source names it with its kind ("finetune · checkpoint demo_net1d", "finetune ·
    pretrained on source_ptbxl"); without one the names are as they always were."""
    summary = seed_summary(table)
    by_kind = bool((summary["source_kind"] == "checkpoint").any())
    # "none" (no source) is told apart by the strategy already; only several real sources vary.
    # ... nor runs without own pretraining (no method) from the methods.
    distinct = {key: set(summary[key]) - ({NO_SOURCE} if key == "source" else {""} if key == "pretrain_method"
                                          else set())
                for key in ("arch", "source", "pretrain_method", "target", "task", "protocol")}
    vary = [key for key, values in distinct.items() if len(values) > 1 and not (by_kind and key == "source")]
    summary["line"] = [_line_name(row, vary, by_kind) for row in summary.to_dict("records")]
    return summary.sort_values(["line", "train_fraction"], kind="mergesort").reset_index(drop=True)


def convergence(history: pd.DataFrame, share: float = 0.95) -> pd.DataFrame:
    """Per run: its best validation macro AUC, and the epochs (counted from 1) and training
    seconds it took to first reach `share` of that best (CONVERGENCE_COLUMNS). Runs without a
    defined validation AUC get NaN targets."""
    if not 0.0 < share <= 1.0:
        raise ValueError(f"share must be in (0, 1], got {share}")
    rows: list[dict[str, object]] = []
    for run_id, part in history.groupby("run_id", sort=False):
        auc = part["val_macro_auc"].to_numpy(dtype=float)
        row: dict[str, object] = {"run_id": run_id, "epochs_run": len(part),
                                  "seconds_total": float(part["wall_seconds"].iloc[-1])}
        if np.isfinite(auc).any():
            best = int(np.nanargmax(auc))
            target = share * float(auc[best])
            first = int(np.flatnonzero(np.nan_to_num(auc, nan=-np.inf) >= target)[0])
            row.update(best_val_auc=float(auc[best]), best_epoch=int(part["epochs_done"].iloc[best]),
                       target_auc=target, epochs_to_target=int(part["epochs_done"].iloc[first]),
                       seconds_to_target=float(part["wall_seconds"].iloc[first]))
        rows.append(row)
    frame = pd.DataFrame(rows, columns=list(CONVERGENCE_COLUMNS))
    for column in ("best_epoch", "epochs_run", "epochs_to_target"):
        frame[column] = pd.array([None if pd.isna(v) else int(v) for v in frame[column]], dtype="Int64")
    for column in ("best_val_auc", "target_auc", "seconds_to_target", "seconds_total"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    return frame
