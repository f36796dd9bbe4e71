"""Reading one uploaded record per format: WFDB/Challenge (.hea + .dat/.mat), SPH `.h5`, CSV.

Each reader gets the staged file (already written, under a safe name, inside the
private upload folder) and returns a `Signal` in mV, or raises UploadError naming the
file and the reason. WFDB records go through `ecgcore.views.scoring.read_record_file`, SPH
files through `ecgcore.data.sources.sph.read_ecg`, so an upload is read exactly as the
same file on disk would be by `predict` and by the dataset readers.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from ecgcore.data import wfdbio
from ecgcore.data.prepare.signal_ops import canonical_lead, lead_indices
from ecgcore.data.recordset import STANDARD_LEADS, Signal
from ecgcore.data.sources import sph
from ecgcore.errors import RecordError
from ecgcore.views.scoring import read_record_file
from ecgcore.views.record_facts import RecordFacts, facts_from_comments
from ecgcore.views.uploads.safety import MAX_UNPACKED_BYTES, UploadError, safe_name

# Signal files a WFDB header names; they are read through their header, never alone.
SIGNAL_SUFFIXES = frozenset({".dat", ".mat"})
MAX_FS = 20_000.0


@dataclass(frozen=True)
class StagedRecord:
    """What a reader needs: the staged main file, the names of every staged file, and
    the sampling rate the caller gave (for formats that do not store one)."""

    path: Path
    names: frozenset[str]
    fs: float | None


@dataclass(frozen=True)
class ReadResult:
    signal: Signal
    format: str
    files: tuple[str, ...]
    note: str = ""
    facts: RecordFacts | None = None  # age, sex, Dx from a WFDB header's comments


def _wrap(name: str, exc: RecordError) -> UploadError:
    return UploadError(name, exc.reason)


def read_wfdb(staged: StagedRecord) -> ReadResult:
    """A WFDB record by its header; every signal file it names must be uploaded with it."""
    path = staged.path
    try:
        header = wfdbio.read_header(path)
    except RecordError as exc:
        raise _wrap(path.name, exc) from exc
    if header.n_segments is not None:
        raise UploadError(path.name, "multi-segment WFDB records cannot be uploaded; upload a "
                                     "single-segment record")
    files = [path.name]
    for spec in header.signals:
        name = spec.file_name
        if not name or name == "~" or name in files:
            continue
        if safe_name(name) != name:
            raise UploadError(path.name, f"signal file name {name!r} in the header is not a plain "
                                         "file name")
        if name not in staged.names:
            raise UploadError(path.name, f"its signal file {name} was not uploaded; upload the .hea "
                                         "together with its .dat/.mat (or a zip of them)")
        files.append(name)
    try:
        signal = read_record_file(path)
    except RecordError as exc:
        raise _wrap(path.name, exc) from exc
    kind = "challenge" if any(f.lower().endswith(".mat") for f in files) else "wfdb"
    return ReadResult(signal, kind, tuple(files), facts=facts_from_comments(header.comments))


def read_h5(staged: StagedRecord) -> ReadResult:
    """An SPH-style `.h5`: dataset `ecg`, (12, n_samples) in mV, leads I … V6. Only plain
    numeric data stored in this file is accepted (no links or external/virtual storage,
    which would make HDF5 read other files)."""
    path = staged.path
    try:
        with h5py.File(path, "r") as f:
            link = f.get("ecg", getlink=True)
            if link is None:
                raise UploadError(path.name, "no dataset `ecg` (an SPH record stores its 12 x N "
                                             "samples there)")
            if not isinstance(link, h5py.HardLink):
                raise UploadError(path.name, "`ecg` is a link to other data, not a dataset in the file")
            dataset = f["ecg"]
            if not isinstance(dataset, h5py.Dataset):
                raise UploadError(path.name, "`ecg` is a group, not a dataset")
            if dataset.is_virtual or dataset.external:
                raise UploadError(path.name, "`ecg` maps data from other files; upload the samples "
                                             "themselves")
            if dataset.dtype.kind not in "fiu":
                raise UploadError(path.name, f"`ecg` holds {dataset.dtype}, not numbers")
            shape = tuple(dataset.shape)
    except (OSError, RuntimeError, KeyError, ValueError, OverflowError) as exc:  # h5py on damaged files
        raise UploadError(path.name, f"not a readable HDF5 file ({exc})") from exc
    if len(shape) != 2 or shape[0] != len(STANDARD_LEADS) or shape[1] == 0:
        raise UploadError(path.name, f"`ecg` has shape {shape}, expected (12, n_samples) "
                                     "with leads I, II, III, aVR, aVL, aVF, V1-V6")
    if shape[0] * shape[1] * 4 > MAX_UNPACKED_BYTES:
        raise UploadError(path.name, f"`ecg` holds {shape[1]} samples per lead, too many to read")
    try:
        data = sph.read_ecg(path, path.stem)
    except RecordError as exc:
        raise _wrap(path.name, exc) from exc
    fs = staged.fs or sph.DEFAULT_FS
    note = "" if staged.fs else f"sampling rate taken as {sph.DEFAULT_FS:g} Hz (SPH's rate)"
    return ReadResult(Signal(data=data, fs=float(fs), leads=STANDARD_LEADS), "sph-h5",
                      (path.name,), note)


def _delimiter(first_line: str) -> str:
    counts = {d: first_line.count(d) for d in (",", ";", "\t")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def read_csv(staged: StagedRecord) -> ReadResult:
    """One column per lead (header: lead names), one row per sample, values in mV; the
    sampling rate comes from the caller. Every cell must be a finite number."""
    path = staged.path
    if staged.fs is None or not 0 < staged.fs <= MAX_FS:
        raise UploadError(path.name, "give the sampling rate (Hz) of a CSV upload"
                          if staged.fs is None else f"sampling rate {staged.fs} Hz is not usable")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    first = text.split("\n", 1)[0]
    try:
        frame = pd.read_csv(io.StringIO(text), sep=_delimiter(first), dtype=np.float64,
                            skipinitialspace=True, quoting=csv.QUOTE_MINIMAL)
    except pd.errors.EmptyDataError as exc:
        raise UploadError(path.name, "the file is empty") from exc
    except pd.errors.ParserError as exc:
        raise UploadError(path.name, f"rows have differing numbers of values ({exc})") from exc
    except (ValueError, TypeError) as exc:
        raise UploadError(path.name, f"a value is not a number ({exc})") from exc
    if not isinstance(frame.index, pd.RangeIndex):  # pandas took the extra first values as an index
        raise UploadError(path.name, f"rows have more values than the header has lead names "
                                     f"({len(frame.columns)})")
    leads = _csv_leads([str(c) for c in frame.columns], path.name)
    values = frame.to_numpy(dtype=np.float64)
    if values.shape[0] < 2:
        raise UploadError(path.name, f"only {values.shape[0]} sample row(s) below the header")
    bad = ~np.isfinite(values)
    if bad.any():
        row, col = (int(i) for i in np.argwhere(bad)[0])
        raise UploadError(path.name, f"{int(bad.sum())} empty or non-finite values, the first at "
                                     f"line {row + 2}, column {leads[col]}")
    signal = Signal(data=np.ascontiguousarray(values.T, dtype=np.float32), fs=float(staged.fs),
                    leads=tuple(leads))
    return ReadResult(signal, "csv", (path.name,))


def _csv_leads(columns: list[str], name: str) -> list[str]:
    """The header's lead names in their standard spelling; anything else is refused."""
    leads: list[str] = []
    standard = {lead.lower() for lead in STANDARD_LEADS}
    for column in columns:
        lead = canonical_lead(column)
        if lead.lower() not in standard:
            raise UploadError(name, f"column {column!r} is not a lead name; give one column per "
                                    f"lead named {', '.join(STANDARD_LEADS)} (values in mV)")
        if lead in leads:
            raise UploadError(name, f"lead {lead} appears twice in the header")
        leads.append(lead)
    return leads


# Suffix of a record's main file -> its reader (one registry, no if/elif chain).
READERS: dict[str, Callable[[StagedRecord], ReadResult]] = {
    ".hea": read_wfdb, ".h5": read_h5, ".hdf5": read_h5, ".csv": read_csv,
}


def check_signal(result: ReadResult, name: str) -> None:
    """What every upload must satisfy whatever its format: samples, a usable rate, and at
    least one of the 12 standard leads (else a model would see only zeros)."""
    signal = result.signal
    if signal.data.ndim != 2 or signal.data.shape[1] == 0:
        raise UploadError(name, f"no samples (signal shape {signal.data.shape})")
    if not 0 < signal.fs <= MAX_FS:
        raise UploadError(name, f"sampling rate {signal.fs} Hz is not usable")
    if max(lead_indices(tuple(signal.leads), STANDARD_LEADS)) < 0:
        raise UploadError(name, f"none of the 12 standard leads is in it (has "
                                f"{', '.join(signal.leads)})")
