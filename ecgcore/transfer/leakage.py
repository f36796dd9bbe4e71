"""Did the source model see the target's test records?

A checkpoint records `seen` (dataset name -> record ids it was trained on), the layout
of each of those datasets (`extra["layouts"]`) and, since fingerprints exist, the signal
fingerprints of those records (`fingerprints`, see `ecgcore.data.identity`). The same
ECG can sit in two datasets under two names and in two formats: the PhysioNet/CinC
Challenge 2021 data re-issue CPSC2018, CPSC-Extra, INCART, PTB, PTB-XL, Georgia and
Chapman-Shaoxing/Ningbo. A target test record counts as seen when

1. `same_id`: a source dataset of the same name lists the same record id;
2. `public_id`: both are the same recording of a public dataset by name
   (`ecgcore.data.identity.public_id`: Challenge prefixes A/Q/I/S/HR/E/JS, PTB-XL
   ecg_ids, a folder named after its dataset; "HR00001" = PTB-XL ecg_id 1 anywhere);
3. `fingerprint`: its signal matches a training record's signal (any name, layout,
   format, gain or rate). Only when both sides have fingerprints: a checkpoint made
   before fingerprints existed is checked by rules 1-2 alone, and the report says so.

The report says which target test ids were seen, in which source datasets, by which
rule, so a run can warn and record it in its results.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ecgcore.data.identity import (
    PTBXL,
    Fingerprints,
    dataset_fingerprints,
    matching_records,
    names_dataset,
    public_id,
)
from ecgcore.errors import EcgcoreError

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from ecgcore.checkpoint import Checkpoint
    from ecgcore.data.pipeline import TaskDataset

PTBXL_LAYOUT = "ptbxl"
RULES: tuple[str, ...] = ("same_id", "public_id", "fingerprint")
CHECKED = "checked"


def is_ptbxl_name(name: str, layout: str = "") -> bool:
    """True for the layout "ptbxl" or a dataset named like PTB-XL ("ptbxl", "PTB-XL 1.0.3",
    "ptb_xl_500")."""
    if layout:
        return layout == PTBXL_LAYOUT
    return names_dataset(name, PTBXL)


def ptbxl_ecg_id(record_id: str, in_ptbxl: bool) -> int | None:
    """The PTB-XL ecg_id a record id stands for, or None: "HR00001" -> 1 anywhere; "1" or
    "00001" -> 1 only inside a PTB-XL dataset."""
    key = public_id(record_id, "ptbxl" if in_ptbxl else "", PTBXL_LAYOUT if in_ptbxl else "none")
    return int(key.split(":", 1)[1]) if key and key.startswith(f"{PTBXL}:") else None


@dataclass
class LeakageReport:
    """overlap      target test ids the source saw (sorted, target spelling)
    by_source    source dataset name -> the target test ids it contains
    matches      one entry per (target record, source dataset, source record) found:
                 {"record", "source", "source_record", "rules"}
    fingerprints source dataset name -> "checked", or why its signals were not compared
    """

    target_dataset: str
    n_test: int
    overlap: list[str] = field(default_factory=list)
    by_source: dict[str, list[str]] = field(default_factory=dict)
    matches: list[dict[str, Any]] = field(default_factory=list)
    fingerprints: dict[str, str] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.overlap)

    @property
    def by_rule(self) -> dict[str, int]:
        """Rule -> how many target test records it found (a record may count under several)."""
        found: dict[str, set[str]] = {rule: set() for rule in RULES}
        for match in self.matches:
            for rule in match["rules"]:
                found[rule].add(match["record"])
        return {rule: len(ids) for rule, ids in found.items()}

    @property
    def warning(self) -> str:
        """One line for the log and the app; empty when nothing leaked."""
        if not self.overlap:
            return ""
        where = ", ".join(f"{name} ({len(ids)})" for name, ids in self.by_source.items())
        shown = ", ".join(self.overlap[:5]) + (" …" if len(self.overlap) > 5 else "")
        rules = ", ".join(f"{rule} {n}" for rule, n in self.by_rule.items() if n)
        return (f"{len(self.overlap)} of {self.n_test} test records of {self.target_dataset} were in "
                f"the source model's training data ({where}; found by {rules}): {shown}; "
                f"its test scores are optimistic")

    def to_dict(self) -> dict[str, Any]:
        return {"target_dataset": self.target_dataset, "n_test": self.n_test,
                "n_overlap": len(self.overlap), "overlap": list(self.overlap),
                "by_source": {k: list(v) for k, v in self.by_source.items()}, "warning": self.warning,
                "by_rule": self.by_rule, "matches": [dict(m) for m in self.matches],
                "fingerprints": dict(self.fingerprints)}


def check_leakage(seen: Mapping[str, Iterable[str]], target_dataset: str, target_test_ids: Sequence[str],
                  *, target_layout: str = "", source_layouts: Mapping[str, str] | None = None,
                  source_fingerprints: Mapping[str, Fingerprints] | None = None,
                  target_fingerprints: Fingerprints | None = None) -> list[str]:
    """The target test ids the source saw (sorted; empty when none). `leakage_report` takes
    the same arguments and also says where and how, with a warning line for logs and results."""
    return leakage_report(seen, target_dataset, target_test_ids, target_layout=target_layout,
                          source_layouts=source_layouts, source_fingerprints=source_fingerprints,
                          target_fingerprints=target_fingerprints).overlap


def leakage_report(seen: Mapping[str, Iterable[str]], target_dataset: str, target_test_ids: Sequence[str],
                   *, target_layout: str = "", source_layouts: Mapping[str, str] | None = None,
                   source_fingerprints: Mapping[str, Fingerprints] | None = None,
                   target_fingerprints: Fingerprints | None = None) -> LeakageReport:
    """Which target test records the source saw (see the module docstring for the rules).
    `target_layout` / `source_layouts` (dataset name -> layout) make the name rules exact;
    without them a dataset's name says what it is. `source_fingerprints` (dataset name ->
    fingerprints of the records it trained on) and `target_fingerprints` (of the test
    records) turn on the signal rule."""
    source_layouts = source_layouts or {}
    source_fingerprints = source_fingerprints or {}
    test_ids = [str(r) for r in target_test_ids]
    by_public: dict[str, list[str]] = {}
    for record in test_ids:
        key = public_id(record, target_dataset, target_layout)
        if key is not None:
            by_public.setdefault(key, []).append(record)
    found: dict[tuple[str, str, str], set[str]] = {}  # (target id, source, source id) -> rules
    status: dict[str, str] = {}
    for name, ids in seen.items():
        test_set = set(test_ids) if name == target_dataset else set()
        layout = source_layouts.get(name, "")
        for record in map(str, ids):
            if record in test_set:
                found.setdefault((record, name, record), set()).add("same_id")
            key = public_id(record, name, layout)
            for hit in by_public.get(key, ()) if key is not None else ():
                found.setdefault((hit, name, record), set()).add("public_id")
        status[name] = _fingerprint_status(source_fingerprints.get(name), target_fingerprints)
        if status[name] == CHECKED:
            for source_record, hit, _ in matching_records(source_fingerprints[name], target_fingerprints):
                found.setdefault((hit, name, source_record), set()).add("fingerprint")
    test_set = set(test_ids)
    matches = sorted(({"record": t, "source": s, "source_record": r,
                       "rules": [rule for rule in RULES if rule in rules]}
                      for (t, s, r), rules in found.items() if t in test_set),
                     key=lambda m: (_natural(m["record"]), m["source"], _natural(m["source_record"])))
    by_source: dict[str, set[str]] = {}
    for match in matches:
        by_source.setdefault(match["source"], set()).add(match["record"])
    overlap = sorted({m["record"] for m in matches}, key=_natural)
    return LeakageReport(target_dataset=target_dataset, n_test=len(test_ids), overlap=overlap,
                         by_source={name: sorted(hits, key=_natural) for name, hits in by_source.items()},
                         matches=matches, fingerprints=status)


def _fingerprint_status(source: Fingerprints | None, target: Fingerprints | None) -> str:
    if source is None:
        return "no fingerprints in the source model (made before they existed): matched by name only"
    if target is None:
        return "the target's test records were not fingerprinted: matched by name only"
    if source.version != target.version:
        return (f"fingerprint versions differ (source {source.version}, target {target.version}): "
                f"matched by name only")
    return CHECKED


def _natural(record: str) -> tuple[str, int, str]:
    match = re.match(r"^(\D*)(\d+)(.*)$", record)
    return (match.group(1), int(match.group(2)), match.group(3)) if match else (record, -1, "")


# ------------------------------------------------------------------ for the runner

def run_fingerprints(data: "TaskDataset") -> Fingerprints | None:
    """Fingerprints of a prepared dataset's records (cached per dataset folder next to its
    prepared arrays); None, with a log line, when they cannot be had (the run goes on and
    its leakage check falls back to names)."""
    if data.recordset is None:
        return None
    cache = Path(data.cache_path).parent if data.cache_path else None
    try:
        return dataset_fingerprints(data.recordset, cache, ids=data.record_ids)
    except (OSError, ValueError, EcgcoreError) as exc:
        log.warning(f"fingerprints: none for {data.name} ({type(exc).__name__}: {exc}); leakage is checked by name only")
        return None


def seen_fingerprints(source: "Checkpoint | None", dataset: str,
                      trained: Fingerprints | None) -> dict[str, dict[str, Any]]:
    """What a new checkpoint stores beside `seen`: the source's fingerprints plus those of
    the records this run trained on (`trained`, None when it trained on none)."""
    out = dict(source.fingerprints) if source is not None else {}
    if trained is not None:
        previous = checkpoint_fingerprints(source).get(dataset) if source is not None else None
        out[dataset] = (trained if previous is None else previous.merged(trained)).to_payload()
    return out


def checkpoint_fingerprints(checkpoint: "Checkpoint") -> dict[str, Fingerprints]:
    """Dataset name -> fingerprints stored in a checkpoint ({} for files made before them;
    a damaged entry is left out, so that dataset is checked by name only)."""
    out: dict[str, Fingerprints] = {}
    for name, payload in (checkpoint.fingerprints or {}).items():
        try:
            out[name] = Fingerprints.from_payload(payload)
        except (KeyError, TypeError, ValueError):
            continue
    return out


def run_leakage(source: "Checkpoint | None", data: "TaskDataset", test_ids: Sequence[str],
                fingerprints: Fingerprints | None) -> LeakageReport | None:
    """The leakage report of a run on `data` from `source` (None without a source)."""
    if source is None:
        return None
    return leakage_report(source.seen, data.name, test_ids, target_layout=data.layout,
                          source_layouts=source.extra.get("layouts") or {},
                          source_fingerprints=checkpoint_fingerprints(source),
                          target_fingerprints=fingerprints.subset(test_ids) if fingerprints is not None else None)
