"""The runs table: one row per run in the store, with the columns people compare runs by.

The SQLite index (`RunStore.list`) gives identity, status and macro AUC; results.json adds
what the index does not hold (n_train, n_test, AUPRC, F1, test records the source saw). results.json
is read through the stamp cache, so with hundreds of runs a rerun only re-reads the runs that changed.
Filters are data (`RunFilters`); an empty field means "any".
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ecgcore.errors import EcgcoreError
from ecgcore.runs import RunStore
from ecgcore.runs.run_config import SOURCE_KINDS, SUPERVISED, source_kind_of
from ecgcore.views.compare.stamp_cache import CONFIGS, RESULTS
from ecgcore.views.display import for_display, full_labels, run_label, run_labels  # noqa: F401 (labels re-exported)

#: How a run without a source dataset (trained from scratch on the target) shows.
NO_SOURCE = "none"

#: Columns of `runs_table`, in order.
TABLE_COLUMNS: tuple[str, ...] = (
    "run_id", "kind", "status", "protocol", "source_kind", "source", "pretrain_method", "target", "task", "arch",
    "strategy", "train_fraction",
    "n_train", "n_test", "seed", "macro_auc", "macro_auc_low", "macro_auc_high", "macro_auprc",
    "f1_weighted", "n_leaked", "best_epoch", "epochs_run", "train_seconds", "device", "experiment", "created",
    "error",
)
_FROM_RESULTS: dict[str, tuple[str, ...]] = {
    "n_train": ("n_train",), "n_test": ("n_test",), "experiment": ("experiment",),
    "protocol": ("protocol",),
    "macro_auprc": ("test", "macro_auprc"), "f1_weighted": ("test", "f1_weighted"),
    # test records the source model was trained on (results.json "leakage"; none without a source)
    "n_leaked": ("leakage", "n_overlap"),
    # how the source (or, for a pretraining run, the run itself) was pretrained: "supervised",
    # "simclr", ... (`pretraining_methods` fills it for runs written before it was recorded)
    "pretrain_method": ("pretrain_method",),
}
_DTYPES: dict[str, str] = {"n_train": "Int64", "n_test": "Int64", "macro_auprc": "float64",
                           "f1_weighted": "float64", "n_leaked": "Int64"}


def results_path(store: RunStore, run_id: str) -> Path:
    return store.runs_dir / run_id / "results.json"


def read_results(store: RunStore, run_id: str) -> dict[str, Any] | None:
    """A run's results.json (cached on its stamp), or None while it has none; an unreadable
    file counts as none (the index already shows that run as incomplete with the reason)."""
    try:
        return RESULTS.get(results_path(store, run_id))
    except EcgcoreError:
        return None


def _dig(data: Mapping[str, Any] | None, keys: Sequence[str]) -> Any:
    value: Any = data
    for key in keys:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value if isinstance(value, (int, float, str)) and not isinstance(value, bool) else None


def run_source_kind(store: RunStore, run_id: str, results: Mapping[str, Any] | None, source: Any) -> str:
    """What a run starts from (SOURCE_KINDS): results.json's `source_kind` (`source_kind_of`
    reads runs written before it as "pretraining" when they name a source); a run without
    results yet (running) from its config.json, where a checkpoint source is
    `source_checkpoint` and the index's `source` is then the checkpoint's name."""
    if results is not None:
        return source_kind_of(results)
    try:
        config = CONFIGS.get(store.runs_dir / run_id / "config.json") if source is not None else None
    except EcgcoreError:  # the index shows the run's problem already
        config = None
    if isinstance(config, Mapping) and config.get("source_checkpoint"):
        return "checkpoint"
    return source_kind_of({"source": source})


def pretraining_methods(methods: Sequence[Any], kinds: Sequence[str]) -> list[str | None]:
    """Each run's pretraining method: as results.json records it, else "supervised" for a run
    that starts from own pretraining (every source was supervised before methods existed),
    else None (no own pretraining behind it)."""
    return [method if isinstance(method, str) else (SUPERVISED if kind == "pretraining" else None)
            for method, kind in zip(methods, kinds)]


def source_kinds(table: pd.DataFrame) -> list[str]:
    """The `source_kind` of each row of a runs table, filled where a frame made without the
    column (or with gaps) has only `source`: "none" for NO_SOURCE, else "pretraining"."""
    kinds = table["source_kind"].tolist() if "source_kind" in table else [None] * len(table)
    sources = table["source"].tolist() if "source" in table else [NO_SOURCE] * len(table)
    return [kind if kind in SOURCE_KINDS else
            ("none" if source is None or pd.isna(source) or source == NO_SOURCE else "pretraining")
            for kind, source in zip(kinds, sources)]


def runs_table(store: RunStore) -> pd.DataFrame:
    """Every run of the store (newest first) with TABLE_COLUMNS."""
    index = store.list()
    extra: dict[str, list[Any]] = {column: [] for column in _FROM_RESULTS}
    kinds: list[str] = []
    for run_id, status, source in zip(index["run_id"], index["status"], index["source"]):
        results = read_results(store, run_id) if status != "running" else None
        for column, keys in _FROM_RESULTS.items():
            extra[column].append(_dig(results, keys))
        kinds.append(run_source_kind(store, run_id, results, None if pd.isna(source) else source))
    table = index.copy()
    for column, values in extra.items():
        dtype = _DTYPES.get(column, "object")
        table[column] = pd.array(values, dtype=dtype) if dtype != "object" else values
    table["source_kind"] = kinds
    table["pretrain_method"] = pretraining_methods(table["pretrain_method"].tolist(), kinds)
    table["source"] = table["source"].where(table["source"].notna(), NO_SOURCE)
    return table[list(TABLE_COLUMNS)].reset_index(drop=True)


@dataclass(frozen=True)
class RunFilters:
    """Which runs to show; an empty tuple means any value."""

    source_kinds: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    targets: tuple[str, ...] = ()
    archs: tuple[str, ...] = ()
    strategies: tuple[str, ...] = ()
    fractions: tuple[float, ...] = ()
    seeds: tuple[int, ...] = ()
    statuses: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()
    protocols: tuple[str, ...] = ()


#: Filter field -> table column.
FILTER_COLUMNS: dict[str, str] = {
    "source_kinds": "source_kind", "sources": "source", "targets": "target", "archs": "arch", "strategies": "strategy",
    "fractions": "train_fraction", "seeds": "seed", "statuses": "status", "kinds": "kind", "protocols": "protocol",
}


def filter_options(table: pd.DataFrame) -> dict[str, list[Any]]:
    """The values each filter can take in this table (sorted, missing values left out)."""
    options: dict[str, list[Any]] = {}
    for field in fields(RunFilters):
        column = table[FILTER_COLUMNS[field.name]].dropna()
        values = sorted(set(column.tolist()))
        if field.name == "fractions":
            values = [float(v) for v in values]
        elif field.name == "seeds":
            values = [int(v) for v in values]
        options[field.name] = values
    return options


def apply_filters(table: pd.DataFrame, filters: RunFilters) -> pd.DataFrame:
    """The rows of `table` that every non-empty filter field admits."""
    keep = np.ones(len(table), dtype=bool)
    for field in fields(RunFilters):
        wanted = getattr(filters, field.name)
        if not wanted:
            continue
        column = table[FILTER_COLUMNS[field.name]]
        if field.name == "fractions":
            values = column.astype("float64").to_numpy()
            keep &= np.isclose(values[:, None], np.asarray(wanted, dtype=float)[None, :]).any(axis=1)
        else:
            keep &= column.isin(list(wanted)).fillna(False).to_numpy(dtype=bool)
    return table[keep].reset_index(drop=True)


#: How the runs table writes its numbers where a column also holds gaps (then it is text).
RUN_FORMATS: dict[str, str] = {
    "macro_auc": "{:.3f}", "macro_auc_low": "{:.3f}", "macro_auc_high": "{:.3f}", "macro_auprc": "{:.3f}",
    "f1_weighted": "{:.3f}", "train_fraction": "{:g}", "train_seconds": "{:.1f}",
}


def runs_for_display(table: pd.DataFrame) -> pd.DataFrame:
    """`runs_table` rows as a person reads them: gaps as "—" or why they are empty (a run without
    a source has no leaked records to count; a run without an error has an empty error)."""
    shown = table.copy()
    if "n_leaked" in shown:
        no_source = ((shown["source"] == NO_SOURCE) & shown["n_leaked"].isna()).to_numpy(dtype=bool)
        if no_source.any():  # then the whole column is text (Arrow refuses a column of ints and words)
            values = shown["n_leaked"].astype(object).tolist()
            shown["n_leaked"] = ["no source" if flag else (None if pd.isna(value) else str(int(value)))
                                 for value, flag in zip(values, no_source)]
    return for_display(shown, RUN_FORMATS, {"error": ""})

