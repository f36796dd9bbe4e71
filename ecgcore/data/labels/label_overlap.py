"""What two datasets have in common: per-class counts and the shared task.

Classes here are SNOMED class keys after the Challenge equivalences (`class_key`):
a plain code, or "a|b" for an equivalent pair, so RBBB in one dataset and CRBBB in
another count as the same class.
"""

from __future__ import annotations

from collections import Counter

import pandas as pd

from ecgcore.data.labels.snomed import abbreviation, class_key, concept_name
from ecgcore.data.labels.named_tasks import Task, snomed_task

OVERLAP_COLUMNS: tuple[str, ...] = ("code", "abbreviation", "name", "count_a", "count_b", "shared")


def class_counts(table: pd.DataFrame) -> Counter[str]:
    """Records per class key in a Recordset table (a record counts once per class)."""
    counts: Counter[str] = Counter()
    for labels in table["labels"]:
        counts.update({class_key(code) for code in labels})
    return counts


def overlap_table(table_a: pd.DataFrame, table_b: pd.DataFrame) -> pd.DataFrame:
    """One row per class present in either table: code (class key), abbreviation, name,
    count_a, count_b and shared (present in both); most frequent overall first, ties
    by code."""
    counts_a, counts_b = class_counts(table_a), class_counts(table_b)
    keys = sorted(set(counts_a) | set(counts_b), key=lambda k: (-(counts_a[k] + counts_b[k]), k))
    rows = [
        {
            "code": key,
            "abbreviation": abbreviation(key),
            "name": concept_name(key),
            "count_a": counts_a[key],
            "count_b": counts_b[key],
            "shared": counts_a[key] > 0 and counts_b[key] > 0,
        }
        for key in keys
    ]
    frame = pd.DataFrame(rows, columns=list(OVERLAP_COLUMNS))
    return frame.astype({"count_a": "int64", "count_b": "int64", "shared": "bool"})


def shared_task(table_a: pd.DataFrame, table_b: pd.DataFrame, name: str = "shared") -> Task:
    """The SNOMED classes both datasets carry, as a task (classes sorted by key; any code
    of an equivalence group sets its class; records with no shared class stay as
    all-negative examples). Raises ValueError when the datasets share no class."""
    counts_a, counts_b = class_counts(table_a), class_counts(table_b)
    classes = tuple(sorted(set(counts_a) & set(counts_b)))
    if not classes:
        raise ValueError("the two datasets share no SNOMED class")
    return snomed_task(
        name,
        classes,
        f"{len(classes)} SNOMED classes present in both datasets (after Challenge equivalences)",
    )
