"""Named multi-label tasks over the label space, and their target matrices.

A `Task` is data: an ordered tuple of class keys, the label space it reads
("snomed": a table's `labels` column; "scp": PTB-XL's SCP codes in `raw_labels`),
a mapping from a label to the class(es) it sets, and a rule for which records
count as labelled. Every artefact that stores scores keeps `Task.classes`, so the
class order travels with the numbers.

A record whose labels the dataset does not give (`labels_known` False in the table) is
never a labelled record, whatever the keep rule: its empty labels would otherwise count
as negatives. Only a task that reads no labels (`labelled_only=False`: the self-supervised
task "unlabelled") keeps it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

import numpy as np
import pandas as pd

from ecgcore.data.labels.snomed import abbreviation, equivalents
from ecgcore.data.recordset import labels_known


def _rows_with_labels(table: pd.DataFrame) -> np.ndarray:
    """Records carrying any label at all, mapped or not (an empty Dx / missing reason fails)."""
    columns = [name for name in ("raw_labels", "labels", "unmapped") if name in table.columns]
    has_any = np.zeros(len(table), dtype=bool)
    for name in columns:
        has_any |= np.fromiter(
            (hasattr(value, "__len__") and len(value) > 0 for value in table[name]), dtype=bool, count=len(table)
        )
    return has_any


# Which records a task keeps, given its targets (N, C) and the table.
#   any_class  at least one class of the task (PTB-XL benchmark: others are dropped)
#   any_label  any label at all, so records without a task class stay as all-negative
#              (the Challenge evaluation; Nguyen & Do's "other codes ignored")
#   all        every record (CODE-15%: no abnormal label means a normal ECG)
KEEP_RULES: dict[str, Callable[[np.ndarray, pd.DataFrame], np.ndarray]] = {
    "any_class": lambda targets, table: targets.any(axis=1),
    "any_label": lambda targets, table: _rows_with_labels(table),
    "all": lambda targets, table: np.ones(len(table), dtype=bool),
}


def _snomed_labels(table: pd.DataFrame) -> list[tuple[str, ...]]:
    return [tuple(labels) for labels in table["labels"]]


def _scp_labels(table: pd.DataFrame) -> list[tuple[str, ...]]:
    """SCP codes of PTB-XL rows (every key of scp_codes, whatever its likelihood, which
    the reader keeps in raw_labels); rows of other vocabularies have none."""
    return [
        tuple(raw) if vocab == "scp" else ()
        for raw, vocab in zip(table["raw_labels"], table["label_vocab"], strict=True)
    ]


# The label spaces a task can read, each as "labels of every table row".
SPACES: dict[str, Callable[[pd.DataFrame], list[tuple[str, ...]]]] = {
    "snomed": _snomed_labels,
    "scp": _scp_labels,
}


@dataclass(frozen=True)
class Task:
    """A named multi-label task.

    classes       class keys in output order (SNOMED codes, "a|b" for an equivalence
                  group, or SCP codes / PTB-XL classes in the "scp" space)
    space         "snomed" or "scp"
    mapping       label in that space -> class key(s) it sets
    description   one line for people
    class_labels  short display labels per class (defaults to the SNOMED abbreviation,
                  or the key itself in the "scp" space)
    keep          which records count as labelled, a key of KEEP_RULES
    labelled_only drop the records whose labels are unknown (`labels_known` False); only
                  a task without classes for self-supervised pretraining sets it False
    """

    name: str
    classes: tuple[str, ...]
    space: str
    mapping: Mapping[str, tuple[str, ...]] = field(repr=False, hash=False)
    description: str
    class_labels: tuple[str, ...] = ()
    keep: str = "any_class"
    labelled_only: bool = True

    def __post_init__(self) -> None:
        if self.space not in SPACES:
            raise ValueError(f"task {self.name!r}: unknown space {self.space!r}; known: {', '.join(SPACES)}")
        if self.keep not in KEEP_RULES:
            raise ValueError(f"task {self.name!r}: unknown keep rule {self.keep!r}; known: {', '.join(KEEP_RULES)}")
        if len(set(self.classes)) != len(self.classes):
            raise ValueError(f"task {self.name!r}: repeated class keys")
        stray = {cls for targets in self.mapping.values() for cls in targets} - set(self.classes)
        if stray:
            raise ValueError(f"task {self.name!r}: mapping sets unknown classes {sorted(stray)}")
        # Registry tasks are shared objects: freeze the mapping so no caller can edit them.
        object.__setattr__(self, "mapping", MappingProxyType(dict(self.mapping)))
        if not self.class_labels:
            shown = self.classes if self.space == "scp" else tuple(abbreviation(c) for c in self.classes)
            object.__setattr__(self, "class_labels", shown)
        if len(self.class_labels) != len(self.classes):
            raise ValueError(f"task {self.name!r}: {len(self.class_labels)} labels for {len(self.classes)} classes")
        if not self.labelled_only and self.classes:
            raise ValueError(f"task {self.name!r}: a task that keeps records of unknown labels "
                             "cannot have classes (their targets would be guesses)")


def task_targets(table: pd.DataFrame, task: Task) -> tuple[np.ndarray, np.ndarray]:
    """(targets, keep) for every row of `table`, in table order.

    targets is (N, C) uint8 with C = len(task.classes); keep is (N,) bool, False for
    the records the task drops (see `Task.keep`, and `Task.labelled_only` for the records
    whose labels are unknown). Index both with `keep` to train; `(~keep).sum()` is the
    count to report as dropped.
    """
    column = {cls: i for i, cls in enumerate(task.classes)}
    targets = np.zeros((len(table), len(task.classes)), dtype=np.uint8)
    for row, labels in enumerate(SPACES[task.space](table)):
        for label in labels:
            for cls in task.mapping.get(label, ()):
                targets[row, column[cls]] = 1
    keep = KEEP_RULES[task.keep](targets, table)
    if task.labelled_only:
        keep &= labels_known(table)
    return targets, keep


def unlabelled_task(name: str = "unlabelled") -> Task:
    """Every readable record, zero classes: what self-supervised pretraining reads (it
    needs signals, not labels, so the records whose labels are unknown count too)."""
    return Task(name, (), "snomed", {}, "every readable record, no classes (self-supervised "
                "pretraining only)", keep="all", labelled_only=False)


def snomed_task(
    name: str,
    classes: tuple[str, ...],
    description: str,
    *,
    class_labels: tuple[str, ...] = (),
    keep: str = "any_label",
    with_equivalents: bool = True,
) -> Task:
    """A SNOMED task whose class keys are codes or "a|b" groups. Every code of a key sets
    its class; with `with_equivalents` the Challenge equivalents of those codes do too
    (so CRBBB 713427006 sets an RBBB 59118001 class). Paper-exact label sets pass False."""
    mapping: dict[str, tuple[str, ...]] = {}
    for key in classes:
        codes = key.split("|")
        if with_equivalents:
            codes = [code for part in codes for code in equivalents(part)] + codes
        for code in dict.fromkeys(codes):
            mapping[code] = (*mapping.get(code, ()), key)
    return Task(name, classes, "snomed", mapping, description, class_labels, keep)


# --- PTB-XL benchmark tasks (Strodthoff et al. 2021), from scp_statements.csv ---------

# task -> (flag column selecting statements or None for all, column naming the class or
# None for the statement itself). Mirrors the benchmark's label aggregation.
PTBXL_AGGREGATIONS: dict[str, tuple[str | None, str | None]] = {
    "all": (None, None),
    "diagnostic": ("diagnostic", None),
    "subdiagnostic": ("diagnostic", "diagnostic_subclass"),
    "superdiagnostic": ("diagnostic", "diagnostic_class"),
    "form": ("form", None),
    "rhythm": ("rhythm", None),
}


def read_scp_statements(path: Path | str) -> pd.DataFrame:
    """PTB-XL's scp_statements.csv (or the folder holding it), indexed by SCP code."""
    path = Path(path)
    if path.is_dir():
        path = path / "scp_statements.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: PTB-XL scp_statements.csv not found")
    statements = pd.read_csv(path, index_col=0)
    needed = {"diagnostic", "form", "rhythm", "diagnostic_class", "diagnostic_subclass"}
    missing = needed - set(statements.columns)
    if missing:
        raise ValueError(f"{path}: not a PTB-XL scp_statements.csv (missing columns {sorted(missing)})")
    statements.index = statements.index.astype(str).str.strip()
    return statements


def ptbxl_task(kind: str, statements: pd.DataFrame, *, name: str | None = None,
               class_order: tuple[str, ...] | None = None) -> Task:
    """One PTB-XL benchmark task. Every SCP key of a record counts, whatever its
    likelihood; classes sort as sklearn's MultiLabelBinarizer sorts them unless
    `class_order` gives a paper's own order."""
    flag, target_column = PTBXL_AGGREGATIONS[kind]
    chosen = statements if flag is None else statements[statements[flag] == 1]
    mapping: dict[str, tuple[str, ...]] = {}
    for code, row in chosen.iterrows():
        target = code if target_column is None else row[target_column]
        if isinstance(target, str) and target.strip():
            mapping[str(code)] = (target.strip(),)
    classes = tuple(sorted({cls for targets in mapping.values() for cls in targets}))
    if class_order is not None:
        if set(class_order) != set(classes):
            raise ValueError(f"class order {class_order} does not match PTB-XL {kind} classes {classes}")
        classes = class_order
    return Task(
        name=name or f"ptbxl_{kind}",
        classes=classes,
        space="scp",
        mapping=mapping,
        description=f"PTB-XL benchmark '{kind}': {len(classes)} classes from SCP statements",
        keep="any_class",
    )
