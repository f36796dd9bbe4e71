"""From a dataset folder to a clean, labelled, split, preprocessed dataset: `build_dataset`.

This is the one place where the rows of the prepared array X, the rows of the targets y
and the record ids are lined up (and checked); the training engine, the CLI and the app
all get their data from here.

    folder ──open_dataset──> Recordset            (reader drops: "unreadable: …")
           ──task_targets──> y, keep               (task drops: "no label for the task …",
                                                    "labels unknown …")
           ──prepare───────> X memmap (cached)     (prepare drops: "too short", "missing leads" …)
           ──SplitConfig───> Split (+ training fraction)
           ──standard scaler fitted on the training rows only (normalize="standard")

Only the records the task keeps are prepared, so X is the cache's own memmap with one row
per dataset row (no copy); a task that keeps other records has its own cache entry.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ecgcore import workspace
from ecgcore.data import splits as sp
from ecgcore.data.labels import Task, resolve, task_targets, with_derived_labels
from ecgcore.data.prepare.build import Progress, prepare
from ecgcore.data.prepare.config import PrepConfig
from ecgcore.data.recordset import LABELS_UNKNOWN_REASON, Recordset, labels_known
from ecgcore.data.sources import open_dataset
from ecgcore.errors import EcgcoreError

FRACTION_METHODS: tuple[str, ...] = ("stratified", "first_n")


@dataclass(frozen=True)
class SplitConfig:
    """How a dataset is split; JSON-serialisable, stored in every run's config.

    method        "auto" (official folds when every record has one, else "patient"),
                  "official" (PTB-XL strat_fold), "patient" (patient-disjoint stratified),
                  "paper" (Nguyen & Do's record-level train_test_split; patients may leak)
    val, test     fractions for "patient"; for "paper" `test` is test_size (default 0.33)
                  and there is no validation set (val must be 0 or None)
    seed          random seed of the patient split and of the stratified training fraction;
                  for "paper" the random_state (default 1)
    stratify      "paper" only: stratify=y as the paper does for CPSC
    train_folds, val_folds, test_folds   official fold numbers (PTB-XL: 1-8 / 9 / 10)
    train_fraction / train_n   use only this fraction / number of the training records
    train_fraction_method      "stratified" (nested random subsets) or "first_n" (the
                  paper's first N records in table order)
    """

    method: str = "auto"
    val: float | None = None
    test: float | None = None
    seed: int | None = None
    stratify: bool = False
    train_folds: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7, 8)
    val_folds: tuple[int, ...] = (9,)
    test_folds: tuple[int, ...] = (10,)
    train_fraction: float | None = None
    train_n: int | None = None
    train_fraction_method: str = "stratified"

    def __post_init__(self) -> None:
        for name in ("train_folds", "val_folds", "test_folds"):
            object.__setattr__(self, name, tuple(int(f) for f in getattr(self, name)))
        if self.method not in SPLIT_METHODS:
            raise ValueError(f"SplitConfig: method must be one of {tuple(SPLIT_METHODS)}, "
                             f"got {self.method!r}")
        if self.train_fraction_method not in FRACTION_METHODS:
            raise ValueError(f"SplitConfig: train_fraction_method must be one of "
                             f"{FRACTION_METHODS}, got {self.train_fraction_method!r}")
        if self.train_fraction is not None and self.train_n is not None:
            raise ValueError("SplitConfig: give train_fraction or train_n, not both")
        if self.method == "paper" and self.val:
            raise ValueError("SplitConfig: the paper split has no validation set (val must be 0)")

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        for name in ("train_folds", "val_folds", "test_folds"):
            data[name] = list(data[name])
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "SplitConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"SplitConfig: unknown settings {unknown}; known: {sorted(known)}")
        return cls(**data)


def _official(cfg: SplitConfig, table: pd.DataFrame, y: np.ndarray) -> sp.Split:
    return sp.official_folds(table["fold"].to_numpy(), cfg.train_folds, cfg.val_folds,
                             cfg.test_folds)


def _patient(cfg: SplitConfig, table: pd.DataFrame, y: np.ndarray) -> sp.Split:
    return sp.patient_split(table["patient_id"].to_numpy(dtype=object), y,
                            val=0.1 if cfg.val is None else cfg.val,
                            test=0.2 if cfg.test is None else cfg.test,
                            seed=0 if cfg.seed is None else cfg.seed)


def _paper(cfg: SplitConfig, table: pd.DataFrame, y: np.ndarray) -> sp.Split:
    return sp.paper_split(len(table), y, test_size=0.33 if cfg.test is None else cfg.test,
                          random_state=1 if cfg.seed is None else cfg.seed,
                          stratify=cfg.stratify)


def _auto(cfg: SplitConfig, table: pd.DataFrame, y: np.ndarray) -> sp.Split:
    folds = table["fold"].to_numpy()
    has_folds = len(folds) > 0 and bool((pd.to_numeric(pd.Series(folds), errors="coerce") > 0).all())
    return (_official if has_folds else _patient)(cfg, table, y)


SPLIT_METHODS: dict[str, Callable[[SplitConfig, pd.DataFrame, np.ndarray], sp.Split]] = {
    "auto": _auto,
    "official": _official,
    "patient": _patient,
    "paper": _paper,
}


def make_split(cfg: SplitConfig, table: pd.DataFrame, y: np.ndarray) -> sp.Split:
    """The split of `table`'s rows (with targets y), the training fraction applied."""
    split = SPLIT_METHODS[cfg.method](cfg, table, y)
    if cfg.train_fraction is None and cfg.train_n is None:
        return split
    full = split.train.size
    subset = sp.train_fraction(split.train, y, fraction=cfg.train_fraction, n=cfg.train_n,
                               method=cfg.train_fraction_method,  # type: ignore[arg-type]
                               seed=0 if cfg.seed is None else cfg.seed)
    note = (f"training subset: {subset.size} of {full} training records "
            f"({cfg.train_fraction_method})")
    return sp.Split(train=subset, val=split.val, test=split.test, method=split.method,
                    seed=split.seed, notes=f"{split.notes}; {note}" if split.notes else note,
                    params={**split.params, "n_train_full": full,
                            "train_fraction": cfg.train_fraction, "train_n": cfg.train_n,
                            "train_fraction_method": cfg.train_fraction_method})


# ---------------------------------------------------------------------------------------------
# the dataset a run trains on


def reason_kind(reason: str) -> str:
    """The kind of a drop reason ("unreadable", "shorter than min_seconds", …) for counting:
    the text before the first ':' or ' ('."""
    return reason.split(":", 1)[0].split(" (", 1)[0].strip()


@dataclass
class TaskDataset:
    """A clean, labelled, split, preprocessed dataset; row i of `X`, `y`, `record_ids`,
    `table`, `lead_mask` and `lengths` is the same record (checked on construction).

    X            float32 memmap (n, n_leads, T) as prepared (read-only, not standard-scaled)
    y            uint8 (n, C) targets in the order of `classes`
    classes      class keys of the task (SNOMED codes, "a|b" groups or PTB-XL classes)
    class_names  short display labels of the classes, same order
    record_ids   record of each row
    split        positions into these rows (train already cut to the training fraction)
    dropped      record -> why it is not in the dataset (reader, task or preprocessing)
    table        the recordset's metadata rows of these records (patient, fold, source, …)
    scaler       (mean, std) per lead fitted on the training rows when normalize="standard":
                 `batch()` applies it; None otherwise
    open_options the reader options the folder was opened with (e.g. PTB-XL fs=500)
    recordset    the whole recordset as opened (raw signals for display, explanation)
    """

    X: np.ndarray
    y: np.ndarray
    classes: tuple[str, ...]
    class_names: tuple[str, ...]
    record_ids: list[str]
    split: sp.Split
    dropped: dict[str, str]
    table: pd.DataFrame = field(repr=False)
    task: Task = field(repr=False)
    prep: PrepConfig = field(repr=False)
    split_config: SplitConfig = field(repr=False)
    name: str = ""
    layout: str = ""
    root: str = ""
    lead_mask: np.ndarray | None = field(default=None, repr=False)
    lengths: np.ndarray | None = field(default=None, repr=False)
    scaler: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)
    cache_path: str = ""
    open_options: dict[str, Any] = field(default_factory=dict)
    recordset: Recordset | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.check_alignment()

    def check_alignment(self) -> None:
        """Raise EcgcoreError unless every per-row array has one row per record."""
        n = len(self.record_ids)
        sizes = {"X": self.X.shape[0], "y": self.y.shape[0], "table": len(self.table)}
        if self.lead_mask is not None:
            sizes["lead_mask"] = self.lead_mask.shape[0]
        if self.lengths is not None:
            sizes["lengths"] = self.lengths.shape[0]
        wrong = {k: v for k, v in sizes.items() if v != n}
        if wrong:
            raise EcgcoreError(f"{self.name}: rows out of line with {n} record ids: {wrong}")
        if [str(r) for r in self.table.index] != list(self.record_ids):
            raise EcgcoreError(f"{self.name}: metadata rows are not in record-id order")
        if self.y.shape[1] != len(self.classes) or len(self.class_names) != len(self.classes):
            raise EcgcoreError(f"{self.name}: {self.y.shape[1]} target columns, "
                               f"{len(self.classes)} classes, {len(self.class_names)} names")
        if len(set(self.record_ids)) != n:
            raise EcgcoreError(f"{self.name}: repeated record ids")
        self.split.assignment(n)  # raises when a position is beyond the rows

    def __len__(self) -> int:
        return len(self.record_ids)

    @property
    def patients(self) -> np.ndarray:
        return self.table["patient_id"].to_numpy(dtype=object)

    def batch(self, index: np.ndarray | list[int] | slice) -> np.ndarray:
        """Rows of X as float32 in memory, with the train-fitted standard scaler applied
        when the config asks for one — what a model should be fed."""
        return self.scale(self.raw_rows(index))

    def raw_rows(self, index: np.ndarray | list[int] | slice) -> np.ndarray:
        """Rows of X as float32 in memory, before any dataset-level scaling (a trainer that
        crops first scales only the crop: `scale(crop(raw_rows(idx)))` equals cropping `batch`)."""
        if isinstance(index, slice):
            return np.asarray(self.X[index], dtype=np.float32)
        rows = np.asarray(index, dtype=np.int64)
        order = np.argsort(rows, kind="stable")  # memmaps read fastest in row order
        x = np.empty((rows.size, *self.X.shape[1:]), dtype=np.float32)
        x[order] = self.X[rows[order]]
        return x

    def scale(self, x: np.ndarray) -> np.ndarray:
        """The train-fitted standard scaler, per lead (identity when the config has none)."""
        if self.scaler is None:
            return x
        from ecgcore.data.prepare import apply_standard_scaler

        return apply_standard_scaler(x, *self.scaler)

    def dropped_counts(self) -> dict[str, int]:
        """How many records were dropped, per kind of reason."""
        return dict(Counter(reason_kind(r) for r in self.dropped.values()).most_common())

    def patient_overlap(self) -> dict[str, list[str]]:
        return sp.patient_overlap(self.patients, self.split)

    def summary(self) -> pd.DataFrame:
        """Records and positives per class in each split; `unused` counts rows in no split
        (training records left out by a training fraction, folds outside the three)."""
        dist = sp.label_distribution(self.y, self.split, self.class_names)
        sizes = self.split.sizes()
        records = pd.DataFrame({**{k: [v] for k, v in sizes.items()}, "total": [len(self)]},
                               index=pd.Index(["records"], name="class"))
        dist["total"] = self.y.astype(np.int64).sum(axis=0)
        out = pd.concat([records, dist])
        out.insert(3, "unused", out["total"] - out[["train", "val", "test"]].sum(axis=1))
        return out.astype(np.int64)

    def describe(self) -> dict[str, Any]:
        """JSON-ready facts for a run's config and the app (no per-record arrays)."""
        return {
            "dataset": self.name, "layout": self.layout, "root": self.root,
            "task": self.task.name, "classes": list(self.classes),
            "class_names": list(self.class_names), "n_records": len(self),
            "split": {"method": self.split.method, "seed": self.split.seed,
                      "notes": self.split.notes, "sizes": self.split.sizes()},
            "split_config": self.split_config.to_dict(), "prep": self.prep.to_dict(),
            "n_dropped": len(self.dropped), "dropped_counts": self.dropped_counts(),
            "patient_overlap": {k: len(v) for k, v in self.patient_overlap().items()},
            "standard_scaler": None if self.scaler is None else
            {"mean": self.scaler[0].tolist(), "std": self.scaler[1].tolist()},
            "cache": self.cache_path, "open_options": dict(self.open_options),
        }


def build_dataset(path_or_recordset: Path | str | Recordset, task: str | Task,
                  prep: PrepConfig | None = None, split: SplitConfig | None = None,
                  cache_dir: Path | str | None = None, *, n_jobs: int = -1,
                  progress: Progress | None = None,
                  open_options: Mapping[str, Any] | None = None) -> TaskDataset:
    """Open, label, preprocess (cached) and split a dataset for one task (a Task, or any
    name `ecgcore.data.labels.resolve` knows, with its default min_positives).

    Records leave on the way with a reason: the reader's unreadable ones, those without a
    label for the task (per the task's keep rule), those whose labels the dataset does not
    give ("labels unknown"; only the task "unlabelled" keeps them, for self-supervised
    pretraining), and those preprocessing cannot use (too short, missing leads, …). `cache_dir` defaults to the workspace cache. The standard
    scaler (normalize="standard") is fitted on the training rows actually used, i.e. after
    the training fraction, so a small-data run never sees statistics of records it lacks.
    """
    prep = prep or PrepConfig()
    split_config = split or SplitConfig()
    recordset = (path_or_recordset if isinstance(path_or_recordset, Recordset)
                 else open_dataset(path_or_recordset, **dict(open_options or {})))
    if isinstance(task, Task):
        the_task = task
    else:  # a task name: the labels it derives, then the Task it means on this dataset
        recordset = with_derived_labels(task, recordset)
        the_task = resolve(task, recordset)
    dropped: dict[str, str] = {u.record: f"unreadable: {u.reason}" for u in recordset.unreadable}

    targets, keep = task_targets(recordset.table, the_task)
    known = labels_known(recordset.table)
    for rid, is_known in zip(np.asarray(recordset.record_ids, dtype=object)[~keep], known[~keep],
                             strict=True):
        dropped[str(rid)] = f"no label for the task ({the_task.name})" if is_known else LABELS_UNKNOWN_REASON
    if not keep.any():
        raise EcgcoreError(f"{recordset.name}: none of {len(recordset)} records has a label of "
                           f"task {the_task.name!r} ({len(the_task.classes)} classes)")
    labelled = dataclasses.replace(recordset, table=recordset.table[keep])
    prepared = prepare(labelled, prep, Path(cache_dir) if cache_dir else workspace.cache_dir(),
                       n_jobs=n_jobs, progress=progress)
    for rid, reason in prepared.dropped.items():
        dropped[str(rid)] = reason

    # line up: the prepared rows are the labelled records that survived, in table order
    position = {rid: i for i, rid in enumerate(labelled.record_ids)}
    rows = np.array([position[rid] for rid in prepared.record_ids], dtype=np.int64)
    if np.any(np.diff(rows) <= 0):
        raise EcgcoreError(f"{recordset.name}: prepared rows are not in table order")
    table = labelled.table.iloc[rows]
    y = targets[keep][rows]
    split_obj = make_split(split_config, table, y)

    scaler = None
    if prep.normalize == "standard":
        from ecgcore.data.prepare import fit_standard_scaler

        if split_obj.train.size == 0:
            raise EcgcoreError(f"{recordset.name}: the standard scaler needs training records")
        scaler = fit_standard_scaler(prepared.X, split_obj.train, lengths=prepared.lengths)

    return TaskDataset(
        X=prepared.X, y=y, classes=tuple(the_task.classes),
        class_names=tuple(the_task.class_labels), record_ids=list(prepared.record_ids),
        split=split_obj, dropped=dropped, table=table, task=the_task, prep=prep,
        split_config=split_config, name=recordset.name, layout=recordset.layout,
        root=str(recordset.root), lead_mask=prepared.lead_mask, lengths=prepared.lengths,
        scaler=scaler, cache_path=str(prepared.path), open_options=recordset.open_options,
        recordset=recordset,
    )
