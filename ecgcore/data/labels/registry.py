"""The named tasks, one registry: `get_task(name)` and `list_tasks()`.

Class lists are facts copied from their sources: the Challenge's weights files
(class order of `weights.csv`), Nguyen & Do 2025 (docs/references.md, paper code
order) and Ribeiro et al. 2020 (CODE-15% columns). PTB-XL tasks are built from
the dataset's own scp_statements.csv.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ecgcore.data.labels.named_tasks import Task, ptbxl_task, read_scp_statements, snomed_task

# Challenge 2021: 30 scored codes as 26 classes, keys and order of weights.csv.
CHALLENGE2021_SCORED: tuple[str, ...] = (
    "164889003", "164890007", "6374002", "426627000", "733534002|164909002",
    "713427006|59118001", "270492004", "713426002", "39732003", "445118002",
    "164947007", "251146004", "111975006", "698252002", "426783006",
    "284470004|63593006", "10370003", "365413008", "427172004|17338001", "164917005",
    "47665007", "427393009", "426177001", "427084000", "164934002", "59931005",
)

# Challenge 2020: 27 scored codes as 24 classes. Order of weights.csv with each
# equivalent code merged into the first code of its pair (the 2020 scorer's rule).
# LBBB has no partner in 2020; CLBBB 733534002 (2021) still sets it, being the same class.
CHALLENGE2020_SCORED: tuple[str, ...] = (
    "270492004", "164889003", "164890007", "426627000", "713427006|59118001",
    "713426002", "445118002", "39732003", "164909002", "251146004", "698252002",
    "10370003", "284470004|63593006", "427172004|17338001", "164947007", "111975006",
    "164917005", "47665007", "427393009", "426177001", "426783006", "427084000",
    "164934002", "59931005",
)

# Nguyen & Do 2025, paper code order, exact SNOMED codes (no equivalents added).
NGUYEN_CPSC: tuple[tuple[str, str], ...] = (
    ("NORM", "426783006"), ("AF", "164889003"), ("IAVB", "270492004"),
    ("LBBB", "164909002"), ("RBBB", "59118001"), ("PAC", "284470004"),
    ("VEB", "164884008"), ("STD", "429622005"), ("STE", "164931005"),
)
NGUYEN_GEORGIA: tuple[tuple[str, str], ...] = (
    ("NORM", "426783006"), ("AF", "164889003"), ("IAVB", "270492004"),
    ("SB", "426177001"), ("LAD", "39732003"), ("STach", "427084000"),
    ("TAb", "164934002"), ("TInv", "59931005"), ("LQT", "111975006"),
    ("PAC", "284470004"),
)
NGUYEN_PTB: tuple[tuple[str, str], ...] = (("NORM", "426783006"), ("MI", "164865005"))
NGUYEN_PTBXL_ORDER: tuple[str, ...] = ("NORM", "MI", "STTC", "HYP", "CD")

# CODE-15% (Ribeiro et al. 2020) label columns in their published order.
CODE15_CLASSES: tuple[tuple[str, str], ...] = (
    ("1dAVb", "270492004"), ("RBBB", "59118001"), ("LBBB", "164909002"),
    ("SB", "426177001"), ("AF", "164889003"), ("ST", "427084000"),
)


def _paper_task(name: str, pairs: tuple[tuple[str, str], ...], description: str) -> Task:
    return snomed_task(
        name,
        tuple(code for _, code in pairs),
        description,
        class_labels=tuple(label for label, _ in pairs),
        with_equivalents=False,
    )


@dataclass(frozen=True)
class TaskEntry:
    """A registered task: how to build it (from the SCP statements table, which only the
    PTB-XL tasks read) and whether it needs that table."""

    description: str
    build: Callable[[pd.DataFrame | None], Task]
    needs_scp_statements: bool = False


def _statements(name: str, statements: pd.DataFrame | None) -> pd.DataFrame:
    if statements is None:
        raise ValueError(f"task {name!r} is built from PTB-XL's scp_statements.csv: pass scp_statements=")
    return statements


def _ptbxl_entry(kind: str, count: int) -> TaskEntry:
    def build(statements: pd.DataFrame | None) -> Task:
        return ptbxl_task(kind, _statements(f"ptbxl_{kind}", statements))

    return TaskEntry(f"PTB-XL benchmark '{kind}' ({count} classes, SCP codes)", build, True)


def _fixed(task: Task) -> TaskEntry:
    return TaskEntry(task.description, lambda statements: task)


TASKS: dict[str, TaskEntry] = {
    **{f"ptbxl_{kind}": _ptbxl_entry(kind, count) for kind, count in (
        ("all", 71), ("diagnostic", 44), ("subdiagnostic", 23),
        ("superdiagnostic", 5), ("form", 19), ("rhythm", 12),
    )},
    "challenge2021_scored": _fixed(snomed_task(
        "challenge2021_scored", CHALLENGE2021_SCORED,
        "PhysioNet/CinC Challenge 2021 scored diagnoses: 30 SNOMED codes as 26 classes")),
    "challenge2020_scored": _fixed(snomed_task(
        "challenge2020_scored", CHALLENGE2020_SCORED,
        "PhysioNet/CinC Challenge 2020 scored diagnoses: 27 SNOMED codes as 24 classes")),
    "nguyen_cpsc2018": _fixed(_paper_task(
        "nguyen_cpsc2018", NGUYEN_CPSC, "Nguyen & Do 2025 CPSC2018 labels (9 classes, exact codes)")),
    "nguyen_georgia": _fixed(_paper_task(
        "nguyen_georgia", NGUYEN_GEORGIA, "Nguyen & Do 2025 Georgia labels (10 classes, exact codes)")),
    "nguyen_ptb": _fixed(_paper_task(
        "nguyen_ptb", NGUYEN_PTB, "Nguyen & Do 2025 PTB Diagnostic labels: NORM (healthy control), MI")),
    "nguyen_ptbxl": TaskEntry(
        "Nguyen & Do 2025 PTB-XL superclasses in the paper's order (NORM, MI, STTC, HYP, CD)",
        lambda statements: ptbxl_task(
            "superdiagnostic", _statements("nguyen_ptbxl", statements),
            name="nguyen_ptbxl", class_order=NGUYEN_PTBXL_ORDER),
        True),
    "code15": _fixed(snomed_task(
        "code15", tuple(code for _, code in CODE15_CLASSES),
        "CODE-15% six abnormalities (Ribeiro et al. 2020); a record with none is normal",
        class_labels=tuple(label for label, _ in CODE15_CLASSES), keep="all")),
}


def list_tasks() -> dict[str, str]:
    """Registered task names -> one-line description, in registry order."""
    return {name: entry.description for name, entry in TASKS.items()}


def get_task(name: str, scp_statements: Path | str | pd.DataFrame | None = None) -> Task:
    """The named task. PTB-XL tasks are built from `scp_statements` (the table, the CSV
    or the PTB-XL folder holding it); the others ignore it. A dataset's own task:
    `ecgcore.data.labels.resolve`."""
    entry = TASKS.get(name)
    if entry is None:
        raise KeyError(f"unknown task {name!r}; known: {', '.join(TASKS)}")
    if entry.needs_scp_statements and isinstance(scp_statements, (Path, str)):
        scp_statements = read_scp_statements(scp_statements)
    return entry.build(scp_statements if isinstance(scp_statements, pd.DataFrame) else None)
