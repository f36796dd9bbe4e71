"""What is in a dataset folder: layout, counts, rates, lengths, labels and every bad record.

`inspect_dataset(path)` is what `python -m ecgcore inspect-data PATH --json` prints
and what the Datasets page shows. Scripts rely on the keys `layout`, `n_records`
(readable), `n_unreadable`, `unreadable` ([{"record", "reason"}]), `sampling_rates`
({rate: count}), `label_counts` ({SNOMED code: count}) and `unmapped_labels`
({text: count}); the rest (`lengths`, `lead_sets`, `sources`, `patients`,
`folds`, `age`, `sex`, …) is descriptive. The report is plain JSON (string keys).

Unreadable records come from two places: header-level problems the reader found
while scanning (missing or short signal file, unknown format, …) and, with
`check_signals`, records whose signal read fails (a corrupt file, a shape that
disagrees with the header). Records with NaN/inf samples are readable — a gap is
data, and `prepare` interpolates it — and are listed under `nonfinite` with the
count per lead. Reading every signal is the slow part, so it runs in chunks on joblib
workers; statistics describe the readable records only.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from joblib import Parallel, delayed

from ecgcore.data.recordset import Recordset, Unreadable, nonfinite_reason
from ecgcore.data.sources import open_dataset
from ecgcore.errors import RecordError

# Signal checks projected to take longer than this in-process go to joblib workers.
PARALLEL_AFTER_SECONDS = 4.0
CHUNK_SIZE = 256

# Length histogram: right-open bins in seconds (10 s, the common ECG length, gets its own bin).
LENGTH_EDGES: tuple[float, ...] = (0.0, 5.0, 10.0, 10.5, 20.0, 30.0, 60.0, 120.0, 600.0, math.inf)

# Per-record files that `dataset_stamp` does not stat one by one.
RECORD_SUFFIXES = frozenset({".hea", ".dat", ".mat", ".h5", ".hdf5", ".atr", ".xyz"})

Progress = Callable[[int, int], None]


def inspect_dataset(path: Path | str, layout: str | None = None, check_signals: bool = True,
                    n_jobs: int | None = None, progress: Progress | None = None,
                    **options: Any) -> dict[str, Any]:
    """Open `path` (layout detected unless given; NotADatasetError when it is no dataset)
    and describe it. `options` go to the layout reader (e.g. PTB-XL's sampling rate)."""
    recordset = open_dataset(path, layout=layout, **options)
    return inspect_recordset(recordset, check_signals=check_signals, n_jobs=n_jobs, progress=progress)


def inspect_recordset(recordset: Recordset, check_signals: bool = True, n_jobs: int | None = None,
                      progress: Progress | None = None) -> dict[str, Any]:
    """The report of an already opened Recordset (the app caches the Recordset itself)."""
    findings = find_unreadable_signals(recordset, n_jobs=n_jobs, progress=progress) if check_signals else []
    gappy = [u for u in findings if isinstance(u, NonFinite)]
    bad_signals = [u for u in findings if not isinstance(u, NonFinite)]
    bad_ids = {u.record for u in bad_signals}
    table = recordset.table.loc[[rid for rid in recordset.table.index if rid not in bad_ids]]
    unreadable = sorted([*recordset.unreadable, *bad_signals], key=lambda u: u.record)
    label_counts = _count_items(table["labels"])
    return {
        "path": str(recordset.root),
        "name": recordset.name,
        "layout": recordset.layout,
        "layout_description": type(recordset.source).description,
        "n_records": int(len(table)),
        "n_unreadable": len(unreadable),
        "unreadable": [{"record": u.record, "reason": u.reason} for u in unreadable],
        "signals_checked": bool(check_signals),
        "nonfinite": [{"record": u.record, "reason": u.reason} for u in sorted(gappy, key=lambda u: u.record)],
        "sampling_rates": _rate_counts(table["fs"]),
        "lengths": _length_summary(table),
        "lead_sets": _ordered(Counter(",".join(map(str, leads)) for leads in table["leads"])),
        "sources": _ordered(Counter(str(s) for s in table["source"])),
        "patients": _patient_count(table["patient_id"]),
        "folds": {str(k): int(v) for k, v in sorted(Counter(table["fold"]).items()) if int(k) != 0},
        "label_counts": label_counts,
        "label_names": _label_names(label_counts),
        "unmapped_labels": _count_items(table["unmapped"]),
        "unlabelled": int(sum(1 for labels, unmapped in zip(table["labels"], table["unmapped"])
                              if not labels and not unmapped)),
        "age": _age_summary(table["age"]),
        "sex": _ordered(Counter(s if s in ("M", "F") else "unknown" for s in table["sex"])),
    }


def dataset_stamp(path: Path | str) -> float:
    """A cheap change marker for caches keyed on a dataset: the latest modification time of
    the folder, its direct subfolders and its top-level metadata files (not the records).

    Adding or removing a record changes its folder's time, so a cache keyed on
    (path, stamp) is refreshed; an in-place edit of one record file is not seen (that is
    what the preprocessing cache's content hash is for). Statting every record of a large
    dataset on each page rerun would cost more than the cache saves.
    """
    root = Path(path)
    try:
        latest = root.stat().st_mtime
        with os.scandir(root) as entries:
            for entry in entries:
                if entry.is_dir() or Path(entry.name).suffix.lower() not in RECORD_SUFFIXES:
                    latest = max(latest, entry.stat().st_mtime)
    except OSError:
        return 0.0
    return latest


class NonFinite(Unreadable):
    """A readable record with NaN/inf samples (reported, not dropped: prepare interpolates)."""


def find_unreadable_signals(recordset: Recordset, n_jobs: int | None = None,
                            chunk_size: int = CHUNK_SIZE,
                            progress: Progress | None = None) -> list[Unreadable]:
    """Read every record's signal and return those that fail, each with its reason.

    Records go in chunks (each ships only its records and the picklable source). With
    `n_jobs=None` the first chunk is read in-process and timed: when the rest would
    take longer than PARALLEL_AFTER_SECONDS (slow formats read through wfdb, or tens
    of thousands of records) the remaining chunks go to joblib workers; otherwise
    starting workers would cost more than it saves (the numpy fast path reads
    thousands of records a second). `n_jobs=1` never starts workers; any other
    number starts them at once.
    """
    table = recordset.table
    chunks = [dataclasses.replace(recordset, table=table.iloc[i:i + chunk_size], unreadable=[])
              for i in range(0, len(table), chunk_size)]
    total = len(table)
    found: list[Unreadable] = []
    done = 0

    def collect(chunk: Recordset, bad: list[Unreadable]) -> None:
        nonlocal done
        found.extend(bad)
        done += len(chunk)
        if progress is not None:
            progress(done, total)

    rest = chunks
    if n_jobs is None and chunks:
        started = time.perf_counter()
        collect(chunks[0], _check_chunk(chunks[0]))
        per_record = (time.perf_counter() - started) / len(chunks[0])
        rest = chunks[1:]
        parallel = per_record * (total - done) > PARALLEL_AFTER_SECONDS
    else:
        parallel = n_jobs != 1
    if parallel and rest:
        runner = Parallel(n_jobs=n_jobs or -1, return_as="generator")
        results: Iterable[list[Unreadable]] = runner(
            delayed(_check_chunk)(chunk) for chunk in rest)
    else:
        results = (_check_chunk(chunk) for chunk in rest)
    for chunk, bad in zip(rest, results):
        collect(chunk, bad)
    return found


def _check_chunk(chunk: Recordset) -> list[Unreadable]:
    """Read each record of a chunk; each problem becomes an Unreadable (or NonFinite)."""
    shapes = zip(chunk.record_ids, chunk.table["leads"], chunk.table["n_samples"])
    found = (_signal_problem(chunk, record_id, (len(leads), int(n))) for record_id, leads, n in shapes)
    return [problem for problem in found if problem is not None]


def _signal_problem(recordset: Recordset, record_id: str, expected: tuple[int, int]) -> Unreadable | None:
    """Why a record's signal cannot be used (or has gaps), None when it reads cleanly;
    `expected` is the (leads, samples) its metadata row gives."""
    try:
        signal = recordset.read(record_id, allow_nonfinite=True)
    except RecordError as err:
        return Unreadable(record_id, err.reason)
    except Exception as err:  # one broken file must not end the inspection of the rest
        return Unreadable(record_id, f"signal read failed: {type(err).__name__}: {err}")
    if signal.data.shape != expected:
        return Unreadable(record_id, f"signal has {signal.data.shape[0]} leads x "
                                     f"{signal.data.shape[1]} samples; the metadata says "
                                     f"{expected[0]} x {expected[1]}")
    gaps = nonfinite_reason(signal)
    if gaps is not None:
        return NonFinite(record_id, f"{gaps}; interpolated when preparing")
    return None


def _ordered(counter: Counter) -> dict[str, int]:
    """Counts as a plain dict, most frequent first, ties by key (stable JSON)."""
    return {str(k): int(v) for k, v in sorted(counter.items(), key=lambda kv: (-kv[1], str(kv[0])))}


def _count_items(column: Iterable[Iterable[str]]) -> dict[str, int]:
    """Records per item of a tuple column (each record counts an item once)."""
    counter: Counter = Counter()
    for items in column:
        counter.update({str(item) for item in items})
    return _ordered(counter)


def _rate_counts(rates: pd.Series) -> dict[str, int]:
    """{"500": n, "1000": m}: ascending by rate, written without a trailing ".0"."""
    counts = Counter(float(r) for r in rates)
    return {f"{rate:g}": int(n) for rate, n in sorted(counts.items())}


def _length_summary(table: pd.DataFrame) -> dict[str, Any]:
    seconds = (table["n_samples"].astype(float) / table["fs"].astype(float)).to_numpy()
    if seconds.size == 0:
        return {"min_seconds": None, "median_seconds": None, "max_seconds": None, "histogram": {}}
    bins = np.searchsorted(np.asarray(LENGTH_EDGES), seconds, side="right") - 1
    counts = np.bincount(bins, minlength=len(LENGTH_EDGES) - 1)
    histogram = {_bin_label(low, high): int(n)
                 for low, high, n in zip(LENGTH_EDGES[:-1], LENGTH_EDGES[1:], counts) if n}
    return {
        "min_seconds": round(float(seconds.min()), 3),
        "median_seconds": round(float(np.median(seconds)), 3),
        "max_seconds": round(float(seconds.max()), 3),
        "histogram": histogram,
    }


def _bin_label(low: float, high: float) -> str:
    return f">={low:g} s" if math.isinf(high) else f"{low:g}-{high:g} s"


def _patient_count(patients: pd.Series) -> int:
    """Distinct patients; a record with no patient key is its own patient."""
    known = [str(p) for p in patients if str(p)]
    return len(set(known)) + (len(patients) - len(known))


def _age_summary(ages: pd.Series) -> dict[str, Any]:
    known = ages.astype(float).dropna().to_numpy()
    if known.size == 0:
        return {"known": 0, "min": None, "median": None, "max": None}
    return {"known": int(known.size), "min": float(known.min()),
            "median": float(np.median(known)), "max": float(known.max())}


def _label_names(label_counts: dict[str, int]) -> dict[str, str]:
    """Readable names of the codes found ("AF — atrial fibrillation")."""
    from ecgcore.data.labels import class_name

    return {code: class_name(code) for code in label_counts}


def format_report(report: dict[str, Any]) -> str:
    """The human-readable form of a report (what `inspect-data` prints without --json)."""
    lines = [
        f"{report['path']}",
        f"  layout: {report['layout']} ({report.get('layout_description', '')})",
        f"  records: {report['n_records']} readable, {report['n_unreadable']} unreadable"
        f"{'' if report.get('signals_checked', True) else ' (signals not read)'}; "
        f"patients: {report.get('patients', '?')}",
        "  sampling rates: " + _joined((f"{rate} Hz x {n}" for rate, n in report["sampling_rates"].items())),
    ]
    lengths = report.get("lengths") or {}
    if lengths.get("min_seconds") is not None:
        lines.append(f"  lengths: {lengths['min_seconds']:g}-{lengths['max_seconds']:g} s "
                     f"(median {lengths['median_seconds']:g} s): "
                     + _joined(f"{label} x {n}" for label, n in lengths["histogram"].items()))
    lines.append("  lead sets: " + _joined(f"[{leads}] x {n}" for leads, n in report.get("lead_sets", {}).items()))
    lines.append("  sources: " + _joined(f"{s or '?'} x {n}" for s, n in report.get("sources", {}).items()))
    if report.get("folds"):
        lines.append("  folds: " + _joined(f"{fold}: {n}" for fold, n in report["folds"].items()))
    names = report.get("label_names", {})
    lines.append(f"  labels (SNOMED CT, records per code; {report.get('unlabelled', 0)} unlabelled):")
    lines += [f"    {n:>7}  {code:<10} {names.get(code, '')}" for code, n in report["label_counts"].items()]
    if report["unmapped_labels"]:
        lines.append("  unmapped labels (kept as text):")
        lines += [f"    {n:>7}  {text}" for text, n in report["unmapped_labels"].items()]
    if report["unreadable"]:
        lines.append("  unreadable records:")
        lines += [f"    {u['record']}: {u['reason']}" for u in report["unreadable"]]
    if report.get("nonfinite"):
        lines.append("  records with NaN/inf samples (readable):")
        lines += [f"    {u['record']}: {u['reason']}" for u in report["nonfinite"]]
    return "\n".join(lines)


def _joined(parts: Iterable[str]) -> str:
    text = ", ".join(parts)
    return text or "none"
