"""Did the source model see the target's test records?

A checkpoint records `seen`: dataset name -> record ids it was trained on. The same
ECG can sit in two datasets under two names: the PhysioNet/CinC Challenge 2021 data
contain all of PTB-XL, record "HR00001" being PTB-XL ecg_id 1. A target test record
counts as seen when

1. a source dataset of the same name lists the same record id, or
2. both sides are the same PTB-XL ECG: Challenge ids "HR<digits>" anywhere (the HR
   prefix is the Challenge's PTB-XL marker) and plain ecg_ids ("1", "00001") of a
   dataset that is PTB-XL (its layout is "ptbxl", or its name says PTB-XL).

The result says which target test ids were seen and in which source datasets, so a
run can warn and record it in its results.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

_CHALLENGE_PTBXL = re.compile(r"^HR0*(\d+)$", re.IGNORECASE)
_DIGITS = re.compile(r"^0*(\d+)$")
PTBXL_LAYOUT = "ptbxl"


def is_ptbxl_name(name: str, layout: str = "") -> bool:
    """True for the layout "ptbxl" or a dataset named like PTB-XL ("ptbxl", "PTB-XL 1.0.3",
    "ptb_xl_500")."""
    if layout:
        return layout == PTBXL_LAYOUT
    return "ptbxl" in re.sub(r"[^a-z0-9]", "", name.lower())


def ptbxl_ecg_id(record_id: str, in_ptbxl: bool) -> int | None:
    """The PTB-XL ecg_id a record id stands for, or None: "HR00001" -> 1 anywhere; "1" or
    "00001" -> 1 only inside a PTB-XL dataset."""
    text = str(record_id).strip()
    match = _CHALLENGE_PTBXL.match(text)
    if match:
        return int(match.group(1))
    if in_ptbxl:
        digits = _DIGITS.match(text)
        if digits:
            return int(digits.group(1))
    return None


@dataclass
class LeakageReport:
    """overlap   target test ids the source saw (sorted, target spelling)
    by_source source dataset name -> the target test ids it contains
    """

    target_dataset: str
    n_test: int
    overlap: list[str] = field(default_factory=list)
    by_source: dict[str, list[str]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.overlap)

    @property
    def warning(self) -> str:
        """One line for the log and the app; empty when nothing leaked."""
        if not self.overlap:
            return ""
        where = ", ".join(f"{name} ({len(ids)})" for name, ids in self.by_source.items())
        shown = ", ".join(self.overlap[:5]) + (" …" if len(self.overlap) > 5 else "")
        return (f"{len(self.overlap)} of {self.n_test} test records of {self.target_dataset} were in "
                f"the source model's training data ({where}): {shown}; its test scores are optimistic")

    def to_dict(self) -> dict[str, Any]:
        return {"target_dataset": self.target_dataset, "n_test": self.n_test,
                "n_overlap": len(self.overlap), "overlap": list(self.overlap),
                "by_source": {k: list(v) for k, v in self.by_source.items()}, "warning": self.warning}


def check_leakage(seen: Mapping[str, Iterable[str]], target_dataset: str, target_test_ids: Sequence[str],
                  *, target_layout: str = "", source_layouts: Mapping[str, str] | None = None) -> list[str]:
    """The target test ids the source saw (sorted; empty when none). `leakage_report` takes
    the same arguments and also says where, with a warning line for logs and results."""
    return leakage_report(seen, target_dataset, target_test_ids, target_layout=target_layout,
                          source_layouts=source_layouts).overlap


def leakage_report(seen: Mapping[str, Iterable[str]], target_dataset: str, target_test_ids: Sequence[str],
                   *, target_layout: str = "", source_layouts: Mapping[str, str] | None = None) -> LeakageReport:
    """Which target test records the source saw (see the module docstring for the rules).
    `target_layout` / `source_layouts` (dataset name -> layout) make the PTB-XL test exact;
    without them a dataset is PTB-XL when its name says so."""
    source_layouts = source_layouts or {}
    target_is_ptbxl = is_ptbxl_name(target_dataset, target_layout)
    test_ids = [str(r) for r in target_test_ids]
    by_ecg: dict[int, list[str]] = {}
    for record in test_ids:
        ecg = ptbxl_ecg_id(record, target_is_ptbxl)
        if ecg is not None:
            by_ecg.setdefault(ecg, []).append(record)
    found: dict[str, set[str]] = {}
    for name, ids in seen.items():
        source_is_ptbxl = is_ptbxl_name(name, source_layouts.get(name, ""))
        same_dataset = name == target_dataset
        test_set = set(test_ids) if same_dataset else set()
        hits: set[str] = set()
        for record in ids:
            record = str(record)
            if record in test_set:
                hits.add(record)
            ecg = ptbxl_ecg_id(record, source_is_ptbxl)
            if ecg is not None and ecg in by_ecg:
                hits.update(by_ecg[ecg])
        if hits:
            found[name] = hits
    overlap = sorted(set().union(*found.values()), key=_natural) if found else []
    return LeakageReport(target_dataset=target_dataset, n_test=len(test_ids), overlap=overlap,
                         by_source={name: sorted(hits, key=_natural) for name, hits in found.items()})


def _natural(record: str) -> tuple[str, int, str]:
    match = re.match(r"^(\D*)(\d+)(.*)$", record)
    return (match.group(1), int(match.group(2)), match.group(3)) if match else (record, -1, "")
