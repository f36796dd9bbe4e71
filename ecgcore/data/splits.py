"""Train/validation/test splits over a recordset's rows: pure functions, deterministic by seed.

Every split is a `Split` of integer positions into the recordset table (row order of
`Recordset.table`), so the same positions index the prepared array X, the targets y and
the record ids. Nothing here reads files.

Which split to use (see docs/references.md, "Paper-exact against sound"):
- `official_folds`: PTB-XL's `strat_fold` (1-8 train, 9 validation, 10 test), which the
  dataset's authors made patient-disjoint and stratified.
- `patient_split` / `patient_kfold`: the sound default for every other dataset — no patient
  in two splits, and each class's prevalence close to the overall in every split.
- `paper_split`: Nguyen & Do's record-level `train_test_split(test_size=0.33,
  random_state=1)`, reproduced exactly; patients may leak, and the split says so.
- `train_fraction`: the training subset for data-efficiency curves (stratified and nested
  across fractions, or the paper's "first N records").

The patient-level iterative stratification is written here because scikit-learn has no
multi-label stratified group splitter (`StratifiedGroupKFold` is single-label only).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from ecgcore.errors import EcgcoreError

SPLIT_NAMES: tuple[str, str, str] = ("train", "val", "test")

LEAK_NOTE = "record-level split: patients may leak (paper-exact)"


class SplitError(EcgcoreError, ValueError):
    """A split cannot be made from the inputs given (the message says which input and why)."""


@dataclass
class Split:
    """Positions (into the recordset table) of the training, validation and test records."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    method: str
    seed: int | None = None
    notes: str = ""
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in SPLIT_NAMES:
            setattr(self, name, np.asarray(getattr(self, name), dtype=np.int64).reshape(-1))
        parts = [getattr(self, name) for name in SPLIT_NAMES]
        joined = np.concatenate(parts)
        if np.unique(joined).size != joined.size:
            raise SplitError(f"{self.method} split: a record is in more than one split")
        if joined.size and joined.min() < 0:
            raise SplitError(f"{self.method} split: negative record position")

    def parts(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name) for name in SPLIT_NAMES}

    def sizes(self) -> dict[str, int]:
        return {name: int(idx.size) for name, idx in self.parts().items()}

    def assignment(self, n: int) -> np.ndarray:
        """Per-row split name ("train" / "val" / "test", "" when the row is in none)."""
        out = np.full(n, "", dtype=object)
        for name, idx in self.parts().items():
            if idx.size and idx.max() >= n:
                raise SplitError(f"{self.method} split: position {idx.max()} beyond {n} records")
            out[idx] = name
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (positions as lists), so a run's config can recreate the split."""
        return {
            "method": self.method,
            "seed": self.seed,
            "notes": self.notes,
            "params": dict(self.params),
            "sizes": self.sizes(),
            **{name: idx.tolist() for name, idx in self.parts().items()},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Split":
        return cls(
            train=np.asarray(data["train"], dtype=np.int64),
            val=np.asarray(data["val"], dtype=np.int64),
            test=np.asarray(data["test"], dtype=np.int64),
            method=str(data["method"]),
            seed=data.get("seed"),
            notes=str(data.get("notes", "")),
            params=dict(data.get("params", {})),
        )


# ---------------------------------------------------------------------------------------------
# official folds


def official_folds(folds: np.ndarray | Sequence[int], train: Iterable[int] = range(1, 9),
                   val: Iterable[int] = (9,), test: Iterable[int] = (10,)) -> Split:
    """PTB-XL convention: folds 1-8 train, 9 validation, 10 test (the folds' own stratification
    and patient-disjointness are the dataset authors'). Records in a fold named in none of the
    three groups are left out and the notes count them."""
    folds = np.asarray(folds)
    if folds.size == 0:
        raise SplitError("official folds: no records")
    numeric = pd.to_numeric(pd.Series(folds.reshape(-1)), errors="coerce").to_numpy(dtype=float)
    missing = np.isnan(numeric) | (numeric <= 0)
    if missing.any():
        raise SplitError(
            f"official folds: {int(missing.sum())} of {folds.size} records have no official fold "
            "(fold missing or 0); use a patient split for this dataset"
        )
    fold_int = numeric.astype(np.int64)
    groups = {"train": set(train), "val": set(val), "test": set(test)}
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        if groups[a] & groups[b]:
            raise SplitError(f"official folds: fold(s) {sorted(groups[a] & groups[b])} "
                             f"named for both {a} and {b}")
    idx = {name: np.flatnonzero(np.isin(fold_int, sorted(g))) for name, g in groups.items()}
    unused = folds.size - sum(i.size for i in idx.values())
    notes = "official folds (patient-disjoint as published)"
    if unused:
        notes += f"; {unused} records in folds outside train/val/test left out"
    return Split(**idx, method="official", seed=None, notes=notes,
                 params={name: sorted(g) for name, g in groups.items()})


# ---------------------------------------------------------------------------------------------
# patient-disjoint iterative stratification


def _as_label_matrix(y: np.ndarray | None, n: int) -> np.ndarray:
    """(N, C) 0/1 int matrix; a 1-D y of class ids becomes one-hot; None means no labels."""
    if y is None:
        return np.zeros((n, 0), dtype=np.int64)
    arr = np.asarray(y)
    if arr.ndim == 1:
        _, inverse = np.unique(arr, return_inverse=True)
        arr = np.eye(int(inverse.max()) + 1 if arr.size else 0, dtype=np.int64)[inverse]
    if arr.ndim != 2 or arr.shape[0] != n:
        raise SplitError(f"labels have shape {np.asarray(y).shape}, expected ({n}, n_classes)")
    return (arr > 0).astype(np.int64)


def patient_groups(patients: np.ndarray | Sequence[Any]) -> np.ndarray:
    """Group number per record: records sharing a non-empty patient id share a group; a record
    with an empty or missing patient id is its own patient."""
    keys = []
    for i, p in enumerate(np.asarray(patients, dtype=object).reshape(-1)):
        text = "" if p is None or (isinstance(p, float) and np.isnan(p)) else str(p).strip()
        keys.append(f"p:{text}" if text else f"r:{i}")
    _, groups = np.unique(np.asarray(keys, dtype=object).astype(str), return_inverse=True)
    return groups.astype(np.int64)


# Kept by hand: scikit-learn has no multi-label stratified group splitter (StratifiedGroupKFold is single-label).
def _stratify_groups(groups: np.ndarray, y: np.ndarray, proportions: Sequence[float],
                     rng: np.random.Generator) -> np.ndarray:
    """Assign each group to one of len(proportions) subsets; return the subset per record.

    Iterative stratification (Sechidis, Tsoumakas & Vlahavas 2011) with patient groups as
    the unit: take the label with the fewest positives still unassigned; place each group
    carrying it (largest groups first, else random order) in the subset whose remaining need
    for that label is largest, ties broken by the largest remaining need for records, then at
    random. Groups without any positive label go by remaining need for records alone.
    """
    n_groups = int(groups.max()) + 1 if groups.size else 0
    props = np.asarray(proportions, dtype=float)
    props = props / props.sum()
    n_sub = props.size
    group_y = np.zeros((n_groups, y.shape[1]), dtype=np.int64)
    np.add.at(group_y, groups, y)
    group_size = np.bincount(groups, minlength=n_groups).astype(float)

    need_label = np.outer(props, y.sum(axis=0).astype(float))  # (n_sub, C)
    need_records = props * float(groups.size)  # (n_sub,)
    subset_of_group = np.full(n_groups, -1, dtype=np.int64)
    remaining_y = group_y.astype(float)
    tie_noise = rng.random

    def place(group_ids: np.ndarray, label: int | None) -> None:
        for g in group_ids:
            primary = need_label[:, label] if label is not None else need_records
            score = np.stack([primary, need_records, tie_noise(n_sub)])
            best = int(np.lexsort(score[::-1])[-1])
            subset_of_group[g] = best
            need_label[best] -= group_y[g]
            need_records[best] -= group_size[g]

    unassigned = np.ones(n_groups, dtype=bool)
    while True:
        counts = remaining_y[unassigned].sum(axis=0) if unassigned.any() else np.zeros(0)
        positive = np.flatnonzero(counts > 0)
        if positive.size == 0:
            break
        rarest = counts[positive].min()
        label = int(rng.choice(positive[counts[positive] == rarest]))
        candidates = np.flatnonzero(unassigned & (group_y[:, label] > 0))
        candidates = rng.permutation(candidates)
        candidates = candidates[np.argsort(-group_size[candidates], kind="stable")]
        place(candidates, label)
        unassigned[candidates] = False
    rest = rng.permutation(np.flatnonzero(unassigned))
    rest = rest[np.argsort(-group_size[rest], kind="stable")]
    place(rest, None)
    return subset_of_group[groups]


def _check_fraction(name: str, value: float) -> float:
    if not 0.0 <= float(value) < 1.0:
        raise SplitError(f"{name} fraction must be in [0, 1), got {value}")
    return float(value)


def patient_split(patients: np.ndarray | Sequence[Any], y: np.ndarray | None,
                  val: float = 0.1, test: float = 0.2, seed: int = 0) -> Split:
    """Patient-disjoint, multi-label stratified train/val/test split (the sound default)."""
    patients = np.asarray(patients, dtype=object).reshape(-1)
    n = patients.size
    val, test = _check_fraction("val", val), _check_fraction("test", test)
    if val + test >= 1.0:
        raise SplitError(f"val ({val}) + test ({test}) leave no training records")
    if n == 0:
        raise SplitError("patient split: no records")
    labels = _as_label_matrix(y, n)
    groups = patient_groups(patients)
    subset = _stratify_groups(groups, labels, [1.0 - val - test, val, test],
                              np.random.default_rng(seed))
    parts = {name: np.flatnonzero(subset == k) for k, name in enumerate(SPLIT_NAMES)}
    n_patients = int(groups.max()) + 1
    return Split(**parts, method="patient", seed=seed,
                 notes=f"patient-disjoint multi-label stratified split of {n_patients} patients",
                 params={"val": val, "test": test})


def patient_kfold(patients: np.ndarray | Sequence[Any], y: np.ndarray | None, k: int = 10,
                  seed: int = 0) -> np.ndarray:
    """Fold number 1..k per record, patient-disjoint and stratified like `patient_split` —
    for datasets that ship no official folds (feed the result to `official_folds`)."""
    patients = np.asarray(patients, dtype=object).reshape(-1)
    if k < 2:
        raise SplitError(f"k-fold needs k >= 2, got {k}")
    labels = _as_label_matrix(y, patients.size)
    subset = _stratify_groups(patient_groups(patients), labels, [1.0] * k,
                              np.random.default_rng(seed))
    return subset + 1


# ---------------------------------------------------------------------------------------------
# the paper's record-level split


def paper_split(n: int, y: np.ndarray | None = None, test_size: float = 0.33,
                random_state: int = 1, stratify: bool = False) -> Split:
    """Nguyen & Do's split: `train_test_split(X, y, test_size=0.33, random_state=1[, stratify=y])`.

    The positions are the ones scikit-learn returns for `np.arange(n)`, in its order, so
    `X[split.train]` equals the paper's `X_train` row for row (the permutation depends only on
    n, test_size, random_state and y). With `stratify=True` scikit-learn's
    `StratifiedShuffleSplit` treats each distinct label ROW of a multi-label y as one class
    (rows joined into strings), so the split is stratified by label combination, not per
    label, and it fails when a combination occurs only once — exactly as the paper's code
    would. There is no validation set. Records are split, not patients: patients may leak.
    """
    from sklearn.model_selection import train_test_split

    if n < 2:
        raise SplitError(f"paper split needs at least 2 records, got {n}")
    strat = None
    if stratify:
        if y is None:
            raise SplitError("paper split: stratify=True needs the label matrix y")
        strat = np.asarray(y)
        if strat.shape[0] != n:
            raise SplitError(f"paper split: y has {strat.shape[0]} rows for {n} records")
    try:
        train, test = train_test_split(np.arange(n), test_size=test_size,
                                       random_state=random_state, stratify=strat)
    except ValueError as exc:
        raise SplitError(f"paper split (scikit-learn train_test_split): {exc}") from exc
    return Split(train=train, val=np.zeros(0, dtype=np.int64), test=test, method="paper",
                 seed=random_state, notes=LEAK_NOTE,
                 params={"test_size": test_size, "stratify": bool(stratify)})


# ---------------------------------------------------------------------------------------------
# training fractions


def _fraction_size(n_train: int, fraction: float | None, n: int | None) -> int:
    if (fraction is None) == (n is None):
        raise SplitError("give exactly one of fraction or n")
    if fraction is not None:
        if not 0.0 < float(fraction) <= 1.0:
            raise SplitError(f"training fraction must be in (0, 1], got {fraction}")
        return max(1, int(round(float(fraction) * n_train)))
    if int(n) < 1:  # type: ignore[arg-type]
        raise SplitError(f"training subset size must be at least 1, got {n}")
    if int(n) > n_train:  # type: ignore[arg-type]
        raise SplitError(f"training subset of {n} records asked for, only {n_train} in train")
    return int(n)  # type: ignore[arg-type]


# Kept by hand: no library draws nested stratified subsets (each smaller fraction inside the larger).
def stratified_order(y: np.ndarray, seed: int = 0) -> np.ndarray:
    """An order of the rows of y in which every prefix is stratified (so subsets are nested).

    Each row's stratum is its rarest positive label (the label iterative stratification
    would place it by; rows without labels form one stratum). Within a stratum of m rows,
    shuffled, the j-th row gets the key (j + u) / m with one random offset u per stratum;
    sorting all rows by key interleaves the strata systematically, so any prefix of length
    t holds t·m/N ± 1 rows of each stratum. Labels that are nobody's rarest follow their
    co-occurring strata, proportional in expectation.
    """
    labels = (np.asarray(y) > 0).astype(np.int64)
    n = labels.shape[0]
    rng = np.random.default_rng(seed)
    counts = labels.sum(axis=0)
    rank = np.where(labels > 0, counts[None, :], np.iinfo(np.int64).max)
    stratum = np.where(labels.any(axis=1), np.argmin(rank, axis=1), -1) if n else np.zeros(0)
    keys = np.empty(n, dtype=float)
    for s in np.unique(stratum):
        members = rng.permutation(np.flatnonzero(stratum == s))
        keys[members] = (np.arange(members.size) + rng.random()) / members.size
    return np.lexsort((rng.random(n), keys))


def train_fraction(train_index: np.ndarray, y: np.ndarray | None, fraction: float | None = None,
                   n: int | None = None,
                   method: Literal["stratified", "first_n"] = "stratified",
                   seed: int = 0) -> np.ndarray:
    """A subset of the training positions, for data-efficiency curves.

    `stratified`: a random subset stratified over the labels, NESTED across sizes for the
    same seed (the 10% subset lies inside the 20% subset), so a data-efficiency curve adds
    records instead of redrawing them; built from `stratified_order`. `first_n`: the paper's
    "first N records", in table order (sorted positions). Returned sorted by position.
    """
    train_index = np.asarray(train_index, dtype=np.int64).reshape(-1)
    size = _fraction_size(train_index.size, fraction, n)
    if method == "first_n":
        return np.sort(train_index)[:size]
    if method != "stratified":
        raise SplitError(f"unknown train_fraction method {method!r}; use stratified or first_n")
    if y is None:
        labels = np.zeros((train_index.size, 0), dtype=np.int64)
    else:
        labels = _as_label_matrix(np.asarray(y)[train_index], train_index.size)
    order = stratified_order(labels, seed=seed)
    return np.sort(train_index[order[:size]])


# ---------------------------------------------------------------------------------------------
# checks and reports


def patient_overlap(patients: np.ndarray | Sequence[Any], split: Split) -> dict[str, list[str]]:
    """Patient ids found in two splits, per pair ("train/val", "train/test", "val/test").

    Empty lists for a patient-disjoint split; records without a patient id count as their
    own patient and never overlap.
    """
    patients = np.asarray(patients, dtype=object).reshape(-1)

    def ids(idx: np.ndarray) -> set[str]:
        out = set()
        for p in patients[idx]:
            if p is None or (isinstance(p, float) and np.isnan(p)):
                continue
            text = str(p).strip()
            if text:
                out.add(text)
        return out

    sets = {name: ids(idx) for name, idx in split.parts().items()}
    return {f"{a}/{b}": sorted(sets[a] & sets[b])
            for a, b in (("train", "val"), ("train", "test"), ("val", "test"))}


def label_distribution(y: np.ndarray, split: Split,
                       class_names: Sequence[str] | None = None) -> pd.DataFrame:
    """Positives per class in each split (rows: classes; columns: train, val, test, total)."""
    labels = _as_label_matrix(y, np.asarray(y).shape[0])
    names = list(class_names) if class_names is not None else [str(c) for c in range(labels.shape[1])]
    if len(names) != labels.shape[1]:
        raise SplitError(f"{len(names)} class names for {labels.shape[1]} label columns")
    table = pd.DataFrame({name: labels[idx].sum(axis=0) for name, idx in split.parts().items()},
                         index=pd.Index(names, name="class"))
    table["total"] = table[list(SPLIT_NAMES)].sum(axis=1)
    return table.astype(np.int64)
