"""The contract between readers and everything downstream.

A reader (one per on-disk layout, see `ecgcore.data.sources`) turns a dataset
folder into a `Recordset`: one metadata row per readable record, the list of
records it could not read (with the reason), and a way to read one signal.
Everything after that — labels, preprocessing, splits, the app — only talks to
this module's types, never to a layout.

Two things per record, kept apart: the public metadata row (`Recordset.table`, the
columns below, which labels, splits and the app read) and the reader's own note of
where the samples are (`RecordRow`, which only its reader reads back).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from ecgcore.data.sources.base import DatasetSource

# The standard order every prepared array uses.
STANDARD_LEADS: tuple[str, ...] = (
    "I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6",
)

# Columns every Recordset.table carries (index: record_id, unique per dataset).
#   patient_id  str   patient key for patient-disjoint splits ("" when unknown:
#                     then the record is its own patient)
#   fs          float sampling rate in Hz
#   n_samples   int   samples per lead
#   leads       tuple lead names as written in the file
#   raw_labels  tuple the dataset's own codes or texts, as written
#   label_vocab str   vocabulary of raw_labels: snomed | scp | ludb_text | code15 | ptb_reason | none
#   labels      tuple harmonised SNOMED CT codes (see ecgcore.data.labels.harmonise)
#   unmapped    tuple raw labels with no SNOMED code, kept as text
#   age         float years, NaN when unknown
#   sex         str   "M", "F" or "" when unknown
#   fold        int   official fold (PTB-XL strat_fold), 0 when none
#   source      str   originating database (e.g. "CPSC2018", "PTB-XL", "Georgia")
#   path        str   path of the record's main file (header or container)
#   labels_known bool False when the dataset gives no labels for the record at all (an SPH
#                     `.h5` without a metadata row, a MIMIC-IV-ECG study without machine
#                     statements): its empty labels mean "unknown", not "none of these", so
#                     every supervised task drops it (`labels_known`) while self-supervised
#                     pretraining (task "unlabelled") keeps it
TABLE_COLUMNS: tuple[str, ...] = (
    "patient_id", "fs", "n_samples", "leads", "raw_labels", "label_vocab",
    "labels", "unmapped", "age", "sex", "fold", "source", "path", "labels_known",
)

# Why a supervised task drops a record whose labels are unknown (`TaskDataset.dropped`;
# its kind, "labels unknown", is what `dropped_counts` counts).
LABELS_UNKNOWN_REASON = ("labels unknown (the dataset gives none for this record: usable for "
                         "self-supervised pretraining only)")


def labels_known(table: pd.DataFrame) -> np.ndarray:
    """(N,) bool: which rows carry the dataset's labels. Every reader fills the
    `labels_known` column; a table built by hand without it counts as all known."""
    if "labels_known" not in table.columns:
        return np.ones(len(table), dtype=bool)
    return table["labels_known"].to_numpy(dtype=bool)


@dataclass(frozen=True)
class Signal:
    """One record's samples: (n_leads, n_samples) float32 in millivolts."""

    data: np.ndarray
    fs: float
    leads: tuple[str, ...]

    @property
    def seconds(self) -> float:
        return self.data.shape[1] / self.fs


def nonfinite_reason(signal: Signal) -> str | None:
    """'N NaN/inf samples in lead(s) …' when the signal has any, else None."""
    bad = ~np.isfinite(signal.data)
    if not bad.any():
        return None
    per_lead = bad.sum(axis=1)
    leads = ", ".join(f"{signal.leads[i]} ({int(per_lead[i])})" for i in np.flatnonzero(per_lead))
    return f"{int(bad.sum())} NaN/inf samples in lead(s) {leads}"


@dataclass(frozen=True)
class RecordRow:
    """Where a reader finds one record's samples, as it noted them while scanning (so a
    read needs no second look at the header). Only the reader that made it reads it back;
    a reader with more to note subclasses it (`WfdbRow`, `TracingRow`, …).

    record_id     the record, as errors name it
    path          its main file (header or container), the table's `path`
    signal_files  further files behind it (a WFDB record's `.dat`/`.mat`)
    """

    record_id: str
    path: Path
    signal_files: tuple[Path, ...] = ()

    @property
    def files(self) -> list[Path]:
        """Every file behind the record: what a cache key must cover."""
        return [self.path, *self.signal_files]


@dataclass(frozen=True)
class Unreadable:
    """A record the reader skipped, and why (the rest of the dataset still loads)."""

    record: str
    reason: str


@dataclass
class Recordset:
    """A dataset as the engine sees it: metadata table + unreadable list + signal reader.

    rows            record id -> the reader's `RecordRow`; a Recordset made from a subset
                    of the table (`dataclasses.replace(rs, table=…)`) keeps the rows of
                    those records only, so a chunk sent to a joblib worker pickles small
    scp_statements  the dataset's SCP-ECG statements (PTB-XL's scp_statements.csv,
                    indexed by code) when its reader has them: what the PTB-XL benchmark
                    tasks are built from (`ecgcore.data.labels.resolve`); None otherwise

    Picklable (the source holds only paths and options), so joblib workers can
    read signals in parallel.
    """

    name: str
    layout: str
    root: Path
    table: pd.DataFrame
    source: "DatasetSource[Any]"
    unreadable: list[Unreadable] = field(default_factory=list)
    rows: Mapping[str, RecordRow] = field(default_factory=dict, repr=False)
    scp_statements: pd.DataFrame | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if len(self.rows) != len(self.table):
            self.rows = {rid: self.rows[rid] for rid in map(str, self.table.index) if rid in self.rows}

    def __len__(self) -> int:
        return len(self.table)

    @property
    def open_options(self) -> dict[str, Any]:
        """The reader options the folder was opened with (e.g. PTB-XL fs=500)."""
        return dict(getattr(self.source, "options", {}))

    @property
    def record_ids(self) -> list[str]:
        return [str(r) for r in self.table.index]

    def read(self, record_id: str, allow_nonfinite: bool = False) -> Signal:
        """Read one record's signal; raises `RecordError` naming the record and reason.

        Readers return samples as stored, NaN/inf included (a gap in a real record is
        data, and `prepare` interpolates it); this strict default refuses them so a
        caller never computes on a NaN by accident."""
        from ecgcore.errors import RecordError

        signal = self.source.read_signal(self.rows[record_id])
        if not allow_nonfinite:
            reason = nonfinite_reason(signal)
            if reason is not None:
                raise RecordError(record_id, reason)
        return signal

    def files(self, record_id: str) -> list[Path]:
        """The files behind one record (what a cache key must cover)."""
        return self.rows[record_id].files
