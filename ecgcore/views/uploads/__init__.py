"""Uploaded ECG files -> records ready to score, safely.

`read_uploads([(name, bytes), …], fs=None)` accepts what a clinician has at hand:
a WFDB record (`.hea` with its `.dat`, several files uploaded together), a Challenge
record (`.hea` + `.mat`), a zip of such files, an SPH `.h5`, or a CSV (one column per
lead, lead names in the header, values in mV, `fs` given by the caller). It returns one
`UploadedRecord` per record found. The bytes are checked (size, names, zip members, see
`safety`), staged in a private folder under `$ECGCORE_HOME/uploads/` and read with the
same readers `predict` and the datasets use; the folder is removed before returning.
Nothing in an upload is executed or unpickled. Any problem raises `UploadError`, whose
message names the file and the reason.

`score_upload(run, record)` gives the run's probabilities with `predict`'s own
preprocessing and evaluation windows, so an upload scores exactly like the same file
passed to `python -m ecgcore predict`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ecgcore.data.recordset import Signal
from ecgcore.views.scoring import LoadedRun, prepare_input, score
from ecgcore.views.record_facts import RecordFacts
from ecgcore.views.uploads.formats import READERS, SIGNAL_SUFFIXES, StagedRecord, check_signal
from ecgcore.views.uploads.safety import (
    MAX_UNPACKED_BYTES, MAX_UPLOAD_BYTES, UploadedFile, UploadError, check_upload_size,
    expand_zip, safe_name, staging_dir, write_file,
)

__all__ = ["MAX_UPLOAD_BYTES", "SUPPORTED", "UploadError", "UploadedFile", "UploadedRecord",
           "read_uploads", "score_upload"]

MAX_RECORDS = 50
ARCHIVE_SUFFIXES = frozenset({".zip"})
SUPPORTED = ("a WFDB record (.hea with its .dat or .mat), a zip of them, an SPH .h5, "
             "or a CSV (one column per lead)")


@dataclass(frozen=True)
class UploadedRecord:
    """One record read from an upload: its name (the main file's stem), the signal in mV,
    the format ("wfdb", "challenge", "sph-h5", "csv"), the uploaded files that made it,
    a note on any assumption made while reading (e.g. a default sampling rate), and what
    the record's own header says of the patient (WFDB uploads with `# Age:`/`# Sex:`/`# Dx:`)."""

    record: str
    signal: Signal
    format: str
    files: tuple[str, ...]
    note: str = ""
    facts: RecordFacts | None = None


def _suffix(name: str) -> str:
    return Path(name).suffix.lower()


def _unpack(files: list[UploadedFile]) -> dict[str, UploadedFile]:
    """Zips expanded, every name made safe; unknown file types are refused at the top level
    and skipped inside a zip (archives often carry README, RECORDS or annotation files)."""
    known = set(READERS) | SIGNAL_SUFFIXES
    out: dict[str, UploadedFile] = {}
    budget = MAX_UNPACKED_BYTES
    for upload in files:
        if _suffix(upload.name) in ARCHIVE_SUFFIXES:
            members = [m for m in expand_zip(upload, budget) if _suffix(m.name) in known]
            if not members:
                raise UploadError(upload.name, f"the zip holds no ECG record; it may hold {SUPPORTED}")
            origin = upload.name
        elif _suffix(upload.name) in known:
            members, origin = [upload], ""
        else:
            raise UploadError(upload.name, f"unsupported file type {_suffix(upload.name) or '(none)'};"
                                           f" upload {SUPPORTED}")
        for member in members:
            budget -= len(member.data)
            name = safe_name(member.name)
            if name in out:
                where = f" in {origin}" if origin else ""
                raise UploadError(member.name, f"two uploaded files are named {name}{where}")
            out[name] = UploadedFile(name, member.data)
    if budget < 0:
        raise UploadError(files[0].name, f"the upload unpacks to more than {MAX_UNPACKED_BYTES} bytes")
    return out


def read_uploads(files: Sequence[tuple[str, bytes] | UploadedFile],
                 fs: float | None = None) -> list[UploadedRecord]:
    """Every record in an upload (see the module docstring); `fs` is the sampling rate of
    CSV files (required for them) and of `.h5` files (default 500 Hz, SPH's rate)."""
    uploads = [f if isinstance(f, UploadedFile) else UploadedFile(str(f[0]), bytes(f[1])) for f in files]
    if not uploads:
        raise UploadError("upload", f"no file given; upload {SUPPORTED}")
    check_upload_size(uploads)
    staged = _unpack(uploads)
    mains = sorted(name for name in staged if _suffix(name) in READERS)
    if not mains:
        first = next(iter(staged))
        raise UploadError(first, "a signal file without its header (.hea); upload both together")
    if len(mains) > MAX_RECORDS:
        raise UploadError(mains[0], f"{len(mains)} records in one upload, more than {MAX_RECORDS}")
    stems: dict[str, str] = {}
    for name in mains:
        other = stems.setdefault(Path(name).stem, name)
        if other != name:
            raise UploadError(name, f"names the same record as {other}; upload one file per record name")
    records: list[UploadedRecord] = []
    used: set[str] = set()
    with staging_dir() as folder:
        for name, upload in staged.items():
            write_file(folder, name, upload.data)
        names = frozenset(staged)
        for name in mains:
            result = READERS[_suffix(name)](StagedRecord(folder / name, names, fs))
            check_signal(result, name)
            used.update(result.files)
            records.append(UploadedRecord(Path(name).stem, result.signal, result.format,
                                          result.files, result.note, result.facts))
    orphans = sorted(set(staged) - used)
    if orphans:
        raise UploadError(orphans[0], "no uploaded header (.hea) names this signal file; upload "
                                      "each .dat/.mat with its .hea")
    return records


def score_upload(run: LoadedRun, record: UploadedRecord) -> dict[str, float]:
    """{class: probability} for one uploaded record, as `predict` scores a file on disk."""
    window, n_valid = prepare_input(run, record.signal, record.record)
    probabilities = score(run, window[None], np.array([n_valid]))[0]
    return {c: float(p) for c, p in zip(run.checkpoint.classes, probabilities)}
