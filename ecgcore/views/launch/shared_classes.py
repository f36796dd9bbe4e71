"""Which classes the source and the target share, and what happens to the others.

The Launch page shows this before anything is submitted, because it decides what a
transfer can do: a fine-tuned head starts from the source's rows of the shared classes
(`keep_shared_head`), `source_only` can score only those, classes only the target has
are learned from target data alone, and classes only the source has are seen in
pretraining and dropped from the target's head. The classes are those the runs will
use: the same task resolution as the experiment runner (`ecgcore.data.labels.resolve`),
matched across datasets as the transfer code matches them
(`class_mapping`: canonical SNOMED codes with the Challenge equivalences).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from ecgcore.data.labels import class_name, resolve, task_targets, with_derived_labels
from ecgcore.data.recordset import Recordset
from ecgcore.errors import EcgcoreError
from ecgcore.transfer import class_mapping

# What happens to a class, by where it is (shown in the class table).
FATES: dict[str, str] = {
    "shared": "in both: learned on the target; fine-tuned heads start from the source's row; "
              "source_only scores it",
    "target only": "learned from the target's records alone (a new head row); source_only "
                   "cannot score it",
    "source only": "seen in pretraining only; not in the target's head, not evaluated",
}
CLASS_COLUMNS: tuple[str, ...] = ("class", "name", "target records", "source records", "where", "what happens")


@dataclass(frozen=True)
class TaskClasses:
    """One side's task: its class keys, labelled records per class, records it keeps."""

    task: str
    classes: tuple[str, ...]
    counts: tuple[int, ...]
    n_records: int


@dataclass(frozen=True)
class ClassPlan:
    """The classes of a launch: the target's, the source's (None without a source), the
    target classes with a source counterpart, and why a side has no usable task."""

    target: TaskClasses | None
    source: TaskClasses | None
    shared: tuple[str, ...]
    target_error: str | None = None
    source_error: str | None = None

    @property
    def target_only(self) -> tuple[str, ...]:
        classes = self.target.classes if self.target else ()
        return tuple(c for c in classes if c not in self.shared)

    @property
    def source_only(self) -> tuple[str, ...]:
        """Source classes that answer for no target class."""
        if self.source is None or self.target is None:
            return ()
        used = set(class_mapping(self.source.classes, self.target.classes).values())
        return tuple(c for i, c in enumerate(self.source.classes) if i not in used)

    def problems(self, strategies: tuple[str, ...] | list[str], has_source: bool) -> list[str]:
        """Label-level reasons not to launch: a target without usable labels, a source
        whose task fails, no shared class for source_only."""
        problems: list[str] = []
        if self.target_error:
            problems.append(f"Target: {self.target_error}")
        if has_source and self.source_error:
            problems.append(f"Source: {self.source_error}")
        if "source_only" in strategies and has_source and self.target is not None and not self.shared:
            problems.append("source_only scores the target with the source's head, and the two "
                            "share no class: drop source_only or choose another source/task.")
        return problems

    def table(self) -> pd.DataFrame:
        """One row per class (target classes first, then source-only ones), with its
        readable name, record counts on each side and what happens to it."""
        rows: list[dict[str, object]] = []
        target_counts = dict(zip(self.target.classes, self.target.counts)) if self.target else {}
        source_counts = dict(zip(self.source.classes, self.source.counts)) if self.source else {}
        mapping = (class_mapping(self.source.classes, self.target.classes)
                   if self.source and self.target else {})
        for index, key in enumerate(self.target.classes if self.target else ()):
            source_key = self.source.classes[mapping[index]] if index in mapping and self.source else None
            where = "shared" if key in self.shared else "target only"
            rows.append({"class": key, "name": class_name(key), "target records": target_counts[key],
                         "source records": source_counts.get(source_key) if source_key else None,
                         "where": where, "what happens": FATES[where]})
        for key in self.source_only:
            rows.append({"class": key, "name": class_name(key), "target records": None,
                         "source records": source_counts[key], "where": "source only",
                         "what happens": FATES["source only"]})
        frame = pd.DataFrame(rows, columns=list(CLASS_COLUMNS))
        return frame.astype({"target records": "Int64", "source records": "Int64"})


def task_classes(recordset: Recordset, task: str, other: Recordset | None,
                 min_positives: int) -> TaskClasses:
    """The classes (and per-class counts) a run on `recordset` with `task` would use.
    Raises EcgcoreError with the reason when the task gives no usable class."""
    recordset = with_derived_labels(task, recordset)  # as the run does before it resolves
    task_obj = resolve(task, recordset, other, min_positives)
    targets, keep = task_targets(recordset.table, task_obj)
    counts = targets[keep].sum(axis=0)
    if not keep.any() or not counts.any():
        raise EcgcoreError(f"{recordset.name}: no record carries a class of task {task!r} "
                           "(the dataset has no usable labels for it)")
    return TaskClasses(task, tuple(task_obj.classes), tuple(int(n) for n in counts), int(keep.sum()))


def class_plan(target: Recordset, target_task: str, source: Recordset | None = None,
               source_task: str = "shared", min_positives: int = 20) -> ClassPlan:
    """Resolve both sides' tasks as the runs will and match their classes."""
    target_classes = source_classes = None
    target_error = source_error = None
    try:
        target_classes = task_classes(target, target_task, source, min_positives)
    except (EcgcoreError, ValueError) as exc:
        target_error = str(exc)
    if source is not None:
        try:
            source_classes = task_classes(source, source_task, target, min_positives)
        except (EcgcoreError, ValueError) as exc:
            source_error = str(exc)
    shared: tuple[str, ...] = ()
    if target_classes is not None and source_classes is not None:
        mapping = class_mapping(source_classes.classes, target_classes.classes)
        shared = tuple(target_classes.classes[i] for i in sorted(mapping))
    return ClassPlan(target_classes, source_classes, shared, target_error, source_error)
