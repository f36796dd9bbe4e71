"""Every task name an experiment may use, and the one way to turn a name into a Task:
`resolve(name, recordset)`.

Besides the named tasks of `registry` (fixed class lists, and the PTB-XL benchmark tasks
built from the dataset's own SCP statements table, `Recordset.scp_statements`):
- "dataset_labels": every SNOMED class with at least `min_positives` records in the dataset
  (the dataset's own label set, as Nguyen & Do keep each dataset's labels);
- "shared": the SNOMED classes the dataset shares with the other side of the transfer.
- "snomed:CODES": the SNOMED classes listed, comma-separated; "a|b" joins codes into one
  class, and each code's Challenge equivalents count too. "snomed:164889003" is a binary
  AF task (one model per condition, as Avetisyan et al.); the same name on a PTB-XL and a
  Challenge folder names the same classes, since both readers harmonise to SNOMED.
- "nguyen_code_test": Nguyen & Do's CODE-test labels, NORM then the six abnormalities
  (1dAVb, RBBB, LBBB, SB, AF, ST); NORM is a record with none of the six, as the paper
  defines it. Its NORM label is derived from the table (`with_derived_labels`) before
  the task reads it, since the CODE files have no "normal" column.
- "unlabelled": every readable record and no class, the records whose labels the dataset
  does not give included (`labels_known` False; every other task drops them). Only
  self-supervised pretraining can use it: a supervised run has nothing to learn from it.
Class keys are those of `class_counts`, so a source trained on "shared" and a target on
"dataset_labels" name the same class the same way (which is what lets a strategy keep the
head rows of shared classes).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from ecgcore.data.labels.label_overlap import class_counts, shared_task
from ecgcore.data.labels.named_tasks import Task, snomed_task, unlabelled_task
from ecgcore.data.labels.registry import TASKS, get_task
from ecgcore.data.labels.snomed import class_name
from ecgcore.data.recordset import Recordset, labels_known
from ecgcore.errors import EcgcoreError

SNOMED_PREFIX = "snomed:"
NORMAL = "426783006"  # the label space's normal / sinus-rhythm class (PTB-XL NORM, SR)
CODE_TEST_ABNORMAL = ("270492004", "59118001", "164909002", "426177001", "164889003", "427084000")
CODE_TEST_LABELS = ("1dAVb", "RBBB", "LBBB", "SB", "AF", "ST")
UNLABELLED = "unlabelled"


def resolve(name: str, recordset: Recordset, other: Recordset | None = None,
            min_positives: int = 10) -> Task:
    """The Task `name` means on `recordset` (see the module docstring); `other` is the
    other dataset of a transfer ("shared" only). EcgcoreError names what is wrong."""
    if name == "dataset_labels":
        return _dataset_labels(recordset, min_positives)
    if name == "shared":
        return _shared(recordset, other)
    if name == UNLABELLED:
        return unlabelled_task(UNLABELLED)
    if name.startswith(SNOMED_PREFIX):
        return listed_task(name)
    if name == "nguyen_code_test":
        return snomed_task(name, (NORMAL, *CODE_TEST_ABNORMAL),
                           "Nguyen & Do 2025 CODE-test labels: NORM (none of the six), 1dAVb, RBBB, "
                           "LBBB, SB, AF, ST", class_labels=("NORM", *CODE_TEST_LABELS),
                           keep="all", with_equivalents=False)
    try:
        return get_task(name, scp_statements=recordset.scp_statements)
    except KeyError as exc:
        raise EcgcoreError(str(exc).strip("'\"")) from exc
    except ValueError as exc:
        raise EcgcoreError(f"{recordset.name}: task {name!r}: {exc} "
                           f"(no scp_statements.csv in {recordset.root})") from exc


def _dataset_labels(recordset: Recordset, min_positives: int) -> Task:
    counts = class_counts(recordset.table)
    classes = tuple(sorted(k for k, n in counts.items() if n >= min_positives))
    if not classes:
        raise EcgcoreError(f"{recordset.name}: no SNOMED class has {min_positives} or more "
                           "labelled records (the target has no usable labels)")
    return snomed_task(f"{recordset.name}_labels", classes,
                       f"{len(classes)} classes of {recordset.name} with >= {min_positives} records",
                       class_labels=tuple(class_name(c).split(" — ")[0] for c in classes))


def _shared(recordset: Recordset, other: Recordset | None) -> Task:
    if other is None:
        raise EcgcoreError("task 'shared' needs the other dataset of the transfer")
    try:
        return shared_task(recordset.table, other.table, name=f"shared_{recordset.name}_{other.name}")
    except ValueError as exc:
        raise EcgcoreError(f"{recordset.name} and {other.name}: {exc}") from exc


def listed_task(name: str) -> Task:
    """The task "snomed:CODE[,CODE…]" (see the module docstring)."""
    keys = tuple(k.strip() for k in name[len(SNOMED_PREFIX):].split(",") if k.strip())
    if not keys or any(not part.strip().isdigit() for key in keys for part in key.split("|")):
        raise EcgcoreError(f"task {name!r}: expected snomed: followed by comma-separated SNOMED "
                           "codes (digits; 'a|b' joins codes into one class)")
    return snomed_task(name, keys, f"{len(keys)} listed SNOMED class(es)",
                       class_labels=tuple(class_name(k).split(" — ")[0] for k in keys))


def _normal_when_none_of_six(recordset: Recordset) -> Recordset:
    """CODE-test rows with none of the six abnormalities get the normal label (not the rows
    whose labels are unknown: nothing says they are normal)."""
    table = recordset.table.copy()
    table["labels"] = [tuple(labels) if set(labels) & set(CODE_TEST_ABNORMAL) or not known
                       else (*labels, NORMAL)
                       for labels, known in zip(table["labels"], labels_known(table), strict=True)]
    return dataclasses.replace(recordset, table=table)


# task name -> how the table's labels are completed before that task reads them
DERIVED_LABELS: dict[str, Callable[[Recordset], Recordset]] = {
    "nguyen_code_test": _normal_when_none_of_six,
}


def with_derived_labels(name: str, recordset: Recordset) -> Recordset:
    """The recordset with the labels the task `name` derives (unchanged for other tasks)."""
    derive = DERIVED_LABELS.get(name)
    return recordset if derive is None else derive(recordset)


def check_task_name(name: str) -> None:
    """Raise EcgcoreError unless `name` is a task an experiment can use (checked when a plan
    is made, so a typo shows in a dry run, not hours later when the run starts)."""
    if name in TASKS or name in ("dataset_labels", "shared", UNLABELLED, *DERIVED_LABELS):
        return
    if name.startswith(SNOMED_PREFIX):
        listed_task(name)
        return
    raise EcgcoreError(f"unknown task {name!r}; known: dataset_labels, shared, snomed:CODES, "
                       f"{UNLABELLED} (self-supervised pretraining), {', '.join([*TASKS, *DERIVED_LABELS])}")
