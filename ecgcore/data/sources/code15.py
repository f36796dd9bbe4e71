"""CODE-15% (`exams.csv` + `exams_part*.hdf5`) and the CODE test set (`ecg_tracings.hdf5`).

CODE-15% (Ribeiro et al., Zenodo 10.5281/zenodo.4916206) stores its exams in about
18 HDF5 files of ~20,000 exams each: dataset `tracings` (N, 4096, 12) float32 and
dataset `exam_id` (N,). Each part ends with a filler row whose exam_id is 0; it is
skipped. `exams.csv` holds one row per exam: exam_id, age, is_male, patient_id, the six
labels 1dAVb, RBBB, LBBB, SB, AF, ST (true/false), and `trace_file` (the part file).

Signals are 400 Hz, 4096 samples, leads DI, DII, DIII, AVR, AVL, AVF, V1–V6 (renamed
to the standard I … V6 here). Recordings shorter than 4096 samples (the 7 s and 10 s
acquisitions) are zero-padded, centred, to 4096 by the dataset itself; the reader
returns them as stored (crop/pad policy belongs to `ecgcore.data.prepare`).

Amplitude unit. The authors' README says the values are "at the scale 1e-4V: so if the
signal is in V it should be multiplied by 1000"; the two halves disagree (1e-4 V would
mean tenths of a millivolt, the factor 1000 means millivolts). The PhysioNet/CinC
Challenge 2025 converter (`prepare_code15_data.py`) writes the stored values unscaled
with unit mV, and the stored QRS amplitudes are of the order of 1 — millivolts, not
tenths (reading them as 1e-4 V would make every ECG ten times too small). So the stored
values are read as mV (`MV_PER_UNIT = 1.0`); a user who settles the question
differently passes the option `mv_per_unit`.

The CODE test set (Ribeiro et al. 2020, 827 exams annotated by cardiologists) is a
second layout in this module, "code_test": `ecg_tracings.hdf5` with `tracings`
(827, 4096, 12), labels in `gold_standard.csv` (top level or `annotations/`), optional
`attributes.csv` (age, sex). Its exams carry no ids: the record id is the 1-based row.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd

from ecgcore.data.recordset import STANDARD_LEADS, RecordRow, Signal, Unreadable
from ecgcore.data.sources.base import DatasetSource, Scanned
from ecgcore.data.wfdb_comments import non_negative_number
from ecgcore.errors import EcgcoreError, RecordError

FS = 400.0
N_SAMPLES = 4096
LABEL_COLUMNS: tuple[str, ...] = ("1dAVb", "RBBB", "LBBB", "SB", "AF", "ST")
MV_PER_UNIT = 1.0
_TRUE_TEXT = frozenset({"true", "1", "1.0", "yes", "t"})


def truthy(value: Any) -> bool:
    """A CSV cell read as a flag: True/1/"true"/"1" (any case) are true; NaN and the rest false."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, float, np.integer, np.floating)):
        return bool(value == value and value != 0)
    return str(value).strip().lower() in _TRUE_TEXT


def labels_of(row: pd.Series | dict[str, Any]) -> tuple[str, ...]:
    """The CODE labels set in one CSV row, in the dataset's column order."""
    return tuple(c for c in LABEL_COLUMNS if c in row and truthy(row[c]))


def flag_column(column: pd.Series) -> np.ndarray:
    """A whole CSV column as booleans, with `truthy`'s rules but vectorised."""
    if pd.api.types.is_bool_dtype(column):
        return column.fillna(False).to_numpy(dtype=bool)
    if pd.api.types.is_numeric_dtype(column):
        return np.nan_to_num(column.to_numpy(dtype=float)) != 0
    return column.astype(str).str.strip().str.lower().isin(_TRUE_TEXT).to_numpy()


def _numeric(table: pd.DataFrame, name: str) -> pd.Series:
    """A column as floats (NaN where absent or not a number)."""
    if name not in table:
        return pd.Series(np.nan, index=table.index, dtype=float)
    return pd.to_numeric(table[name], errors="coerce").astype(float)


def exam_columns(exams: pd.DataFrame) -> dict[str, list[Any]]:
    """exams.csv as per-row table values (vectorised: CODE-15% has 345,779 rows).

    Labels become tuples in column order; sex comes from is_male (blank -> unknown);
    ages below 0 or not numbers -> NaN; patient ids -> integer text."""
    n = len(exams)
    present = [c for c in LABEL_COLUMNS if c in exams.columns]
    bits = np.zeros(n, dtype=np.int64)
    for j, name in enumerate(present):
        bits |= flag_column(exams[name]).astype(np.int64) << j
    tuples = {int(b): tuple(c for j, c in enumerate(present) if int(b) >> j & 1)
              for b in np.unique(bits)}
    age = _numeric(exams, "age")
    age = age.where(age >= 0)
    sex = np.full(n, "", dtype=object)
    if "is_male" in exams:
        male = exams["is_male"]
        known = male.notna().to_numpy() & (male.astype(str).str.strip() != "").to_numpy()
        sex = np.where(known, np.where(flag_column(male), "M", "F"), "")
    patient = _numeric(exams, "patient_id")
    return {
        "exam_id": pd.to_numeric(exams["exam_id"]).astype(np.int64).tolist(),
        "raw_labels": [tuples[int(b)] for b in bits],
        "age": age.astype(float).tolist(),
        "sex": sex.tolist(),
        "patient_id": ["" if p != p else str(int(p)) for p in patient.tolist()],
    }


@dataclass(frozen=True)
class TracingRow(RecordRow):
    """An exam of a CODE HDF5 file: `path` is the file, `index` its row in `tracings`."""

    index: int = 0


@functools.lru_cache(maxsize=8)
def _open_h5(path: str, mtime_ns: int, size: int, pid: int) -> h5py.File:
    """An open part file, reused across reads: opening a 1.5 GB CODE-15% part costs
    milliseconds, more than reading one tracing. Keyed by modification time and size
    (a changed file is reopened) and by process id (a handle never crosses a fork)."""
    return h5py.File(path, "r")


def read_tracing(path: Path, index: int, record_id: str, mv_per_unit: float) -> np.ndarray:
    """One exam of a CODE `tracings` dataset as (12, n_samples) float32 mV (NaN/inf kept,
    as every reader does); RecordError when unreadable."""
    try:
        stat = path.stat()
        tracings = _open_h5(str(path), stat.st_mtime_ns, stat.st_size, os.getpid())["tracings"]
        if index >= tracings.shape[0]:
            raise RecordError(record_id, f"row {index} is past the end of {path.name} "
                                         f"({tracings.shape[0]} rows)")
        data = np.asarray(tracings[index], dtype=np.float32)
    except RecordError:
        raise
    except (OSError, KeyError, ValueError) as exc:
        raise RecordError(record_id, f"cannot read {path.name}: {exc}") from exc
    if data.ndim != 2 or data.shape[1] != len(STANDARD_LEADS):
        raise RecordError(record_id, f"{path.name} row {index} has shape {data.shape}, "
                                     f"expected (n_samples, 12)")
    return np.ascontiguousarray(data.T) * np.float32(mv_per_unit)


def _index_part(path: Path) -> tuple[np.ndarray | None, int, str]:
    """(exam ids, samples per tracing, problem) of one part file, reading no signal."""
    try:
        with h5py.File(path, "r") as f:
            if "tracings" not in f or "exam_id" not in f:
                return None, 0, "has no `tracings` or no `exam_id` dataset"
            shape = f["tracings"].shape
            ids = np.asarray(f["exam_id"][:]).astype(np.int64)
    except OSError as exc:
        return None, 0, f"is not a readable HDF5 file ({exc})"
    if len(shape) != 3 or shape[2] != len(STANDARD_LEADS) or shape[0] != ids.shape[0]:
        return None, 0, f"`tracings` shape {shape} does not match {ids.shape[0]} exam ids x n x 12"
    return ids, int(shape[1]), ""


class _TracingSource(DatasetSource[TracingRow]):
    """A CODE layout: tracings in HDF5 files, read as stored values times `mv_per_unit`."""

    @property
    def mv_per_unit(self) -> float:
        return float(self.options.get("mv_per_unit", MV_PER_UNIT))

    def read_signal(self, row: TracingRow) -> Signal:
        data = read_tracing(row.path, row.index, row.record_id, self.mv_per_unit)
        return Signal(data=data, fs=FS, leads=STANDARD_LEADS)


class Code15Source(_TracingSource):
    """CODE-15%: exams.csv rows joined to the part file and row that store each tracing."""

    layout = "code15"
    description = "CODE-15% (exams.csv + exams_part*.hdf5, 400 Hz, 6 labels)"

    @classmethod
    def detect(cls, root: Path) -> bool:
        return (root / "exams.csv").is_file() and any(root.glob("exams_part*.hdf5"))

    def scan(self) -> tuple[list[Scanned[TracingRow]], list[Unreadable]]:
        unreadable: list[Unreadable] = []
        location: dict[int, tuple[Path, int, int]] = {}
        for part in sorted(self.root.glob("exams_part*.hdf5")):
            ids, n_samples, problem = _index_part(part)
            if ids is None:
                unreadable.append(Unreadable(part.name, f"{part.name} {problem}"))
                continue
            for row, exam_id in enumerate(ids.tolist()):
                if exam_id != 0 and exam_id not in location:
                    location[exam_id] = (part, row, n_samples)
        exams = pd.read_csv(self.root / "exams.csv")
        if "exam_id" not in exams.columns:
            raise EcgcoreError(f"{self.root / 'exams.csv'}: no exam_id column")
        columns = exam_columns(exams)
        trace_files = exams["trace_file"].tolist() if "trace_file" in exams else [None] * len(exams)
        listed: set[int] = set()
        records: list[Scanned[TracingRow]] = []
        for exam_id, labels, age, sex, patient, trace_file in zip(
                columns["exam_id"], columns["raw_labels"], columns["age"], columns["sex"],
                columns["patient_id"], trace_files, strict=True):
            listed.add(exam_id)
            if exam_id not in location:
                unreadable.append(Unreadable(str(exam_id), _missing_reason(trace_file)))
                continue
            part, index, n_samples = location[exam_id]
            records.append(Scanned({
                "record_id": str(exam_id), "patient_id": patient, "fs": FS,
                "n_samples": n_samples, "leads": STANDARD_LEADS, "raw_labels": labels,
                "label_vocab": "code15", "age": age, "sex": sex, "fold": 0,
                "source": "CODE-15%", "path": str(part),
            }, TracingRow(str(exam_id), part, index=index)))
        for exam_id, (part, _, _) in location.items():
            if exam_id not in listed:
                unreadable.append(Unreadable(str(exam_id), f"stored in {part.name} but has no "
                                                           f"row in exams.csv (no labels)"))
        return records, unreadable


def _missing_reason(trace_file: Any) -> str:
    if isinstance(trace_file, str) and trace_file.strip():
        return (f"listed in exams.csv (trace_file {trace_file.strip()}) but absent from every "
                f"exams_part*.hdf5 in the folder")
    return "listed in exams.csv but absent from every exams_part*.hdf5 in the folder"


def _gold_standard(root: Path) -> Path | None:
    for candidate in (root / "gold_standard.csv", root / "annotations" / "gold_standard.csv"):
        if candidate.is_file():
            return candidate
    return None


class CodeTestSource(_TracingSource):
    """The 827-exam CODE test set (Ribeiro et al. 2020): one HDF5, cardiologists' labels."""

    layout = "code_test"
    description = "CODE test set (ecg_tracings.hdf5 + gold_standard.csv, 400 Hz, 827 exams)"

    @classmethod
    def detect(cls, root: Path) -> bool:
        return (root / "ecg_tracings.hdf5").is_file() and _gold_standard(root) is not None

    def scan(self) -> tuple[list[Scanned[TracingRow]], list[Unreadable]]:
        path = self.root / "ecg_tracings.hdf5"
        try:
            with h5py.File(path, "r") as f:
                shape = f["tracings"].shape
        except (OSError, KeyError) as exc:
            return [], [Unreadable(path.name, f"cannot read `tracings` in {path.name}: {exc}")]
        gold_path = _gold_standard(self.root)
        if gold_path is None:
            return [], [Unreadable(path.name, "no gold_standard.csv (top level or annotations/)")]
        gold = pd.read_csv(gold_path)
        attributes = self._attributes()
        records: list[Scanned[TracingRow]] = []
        unreadable: list[Unreadable] = []
        for index, labels in enumerate(gold.to_dict("records")):
            record_id = str(index + 1)
            if index >= shape[0]:
                unreadable.append(Unreadable(record_id, f"row {index + 1} of {gold_path.name} has "
                                                        f"no tracing ({path.name} holds {shape[0]})"))
                continue
            attrs = attributes[index] if index < len(attributes) else {}
            sex = str(attrs.get("sex", "")).strip().upper()
            records.append(Scanned({
                "record_id": record_id, "patient_id": "", "fs": FS, "n_samples": int(shape[1]),
                "leads": STANDARD_LEADS, "raw_labels": labels_of(labels), "label_vocab": "code15",
                "age": non_negative_number(attrs.get("age")), "sex": sex if sex in ("M", "F") else "",
                "fold": 0, "source": "CODE-test", "path": str(path),
            }, TracingRow(record_id, path, index=index)))
        for index in range(len(gold), shape[0]):
            unreadable.append(Unreadable(str(index + 1), f"tracing {index + 1} of {path.name} has "
                                                         f"no row in {gold_path.name} (no labels)"))
        return records, unreadable

    def _attributes(self) -> list[dict[str, Any]]:
        path = self.root / "attributes.csv"
        return pd.read_csv(path).to_dict("records") if path.is_file() else []
