"""Task names an experiment file may use beyond the named tasks of `ecgcore.data.labels`.

- "dataset_labels": every SNOMED class with at least `min_positives` records in the dataset
  (the dataset's own label set, as Nguyen & Do keep each dataset's labels);
- "shared": the SNOMED classes the dataset shares with the other side of the transfer.
Class keys are those of `ecgcore.data.labels.class_counts`, so a source trained on
"shared" and a target on "dataset_labels" name the same class the same way (which is
what lets a strategy keep the head rows of shared classes).
"""

from __future__ import annotations

from ecgcore.data.labels import Task, class_counts, class_name, shared_task, snomed_task
from ecgcore.data.recordset import Recordset
from ecgcore.errors import EcgcoreError


def experiment_task(name: str, recordset: Recordset, other: Recordset | None = None,
                    min_positives: int = 10) -> Task | str:
    """A Task for the experiment-level names; any other name is passed on unchanged."""
    if name == "dataset_labels":
        counts = class_counts(recordset.table)
        classes = tuple(sorted(k for k, n in counts.items() if n >= min_positives))
        if not classes:
            raise EcgcoreError(f"{recordset.name}: no SNOMED class has {min_positives} or more "
                               "labelled records (the target has no usable labels)")
        return snomed_task(f"{recordset.name}_labels", classes,
                           f"{len(classes)} classes of {recordset.name} with >= {min_positives} records",
                           class_labels=tuple(class_name(c).split(" — ")[0] for c in classes))
    if name == "shared":
        if other is None:
            raise EcgcoreError("task 'shared' needs the other dataset of the transfer")
        try:
            task = shared_task(recordset.table, other.table, name=f"shared_{recordset.name}_{other.name}")
        except ValueError as exc:
            raise EcgcoreError(f"{recordset.name} and {other.name}: {exc}") from exc
        return task
    return name
