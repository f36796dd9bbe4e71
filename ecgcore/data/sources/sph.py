"""SPH: the Shandong Provincial Hospital database (Liu et al., Sci Data 2022).

Layout (the Challenge-2021-era copy): one `<ECG_ID>.h5` per record holding dataset
`ecg`, shape (12, N) float16 in mV, leads in the standard order I … V6, and a
`metadata.csv` with ECG_ID, AHA_Code, Patient_ID, Age, Sex, N, Date, fs, SNOMEDCTCode
(comma-separated codes in one cell), SR. ECG_ID is written with or without the `.h5`
suffix; the record id is the file stem. The `.h5` files may sit next to metadata.csv
or one folder down (the figshare release keeps them in `records/`).

Decisions:
- An `.h5` with no metadata row is a record whose labels are unknown (`labels_known`
  False, vocabulary "none", no patient, age or sex, the database's 500 Hz): its signal
  serves self-supervised pretraining (task "unlabelled"), while every supervised task
  drops it with the reason "labels unknown", since empty labels would otherwise count as
  negative for every class in training and evaluation. Its `ecg` dataset is checked like
  any other record's.
- A metadata row whose file is missing, or whose `ecg` dataset is not 12 x N, goes to
  `unreadable` with the reason.
- When metadata.csv has no SNOMEDCTCode column (the original figshare release has AHA
  codes only) the record keeps empty labels (vocabulary "none"); its AHA codes stay in
  the extra column `aha_code` for anyone who maps them.
- NaN/inf samples are returned as stored, as every reader does (`Recordset.read` refuses
  them by default; `prepare` interpolates them).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd

from ecgcore.data.recordset import STANDARD_LEADS, RecordRow, Signal, Unreadable
from ecgcore.data.sources.base import DatasetSource, Scanned
from ecgcore.data.wfdb_comments import non_negative_number
from ecgcore.errors import RecordError

DEFAULT_FS = 500.0


def _h5_files(root: Path) -> dict[str, Path]:
    """Record id (file stem) -> .h5 path, from the folder and its direct subfolders."""
    found: dict[str, Path] = {}
    for path in sorted([*root.glob("*.h5"), *root.glob("*/*.h5")]):
        found.setdefault(path.stem, path)
    return found


def _has_ecg_id_column(csv_path: Path) -> bool:
    try:
        with csv_path.open(encoding="utf-8", errors="replace") as f:
            header = f.readline()
    except OSError:
        return False
    return "ECG_ID" in [c.strip().strip('"') for c in header.split(",")]


def snomed_codes(cell: Any) -> tuple[str, ...]:
    """Codes of one SNOMEDCTCode cell ("426177001,427393009", a bare int, or empty)."""
    if cell is None or (isinstance(cell, float) and cell != cell):
        return ()
    parts = str(cell).replace(";", ",").split(",")
    return tuple(p.strip() for p in parts if p.strip())


def record_id_of(ecg_id: Any) -> str:
    """The record id of an ECG_ID cell: the file stem ("SPH00001.h5" and "SPH00001" agree)."""
    text = _text(ecg_id)
    return text[: -len(".h5")] if text.lower().endswith(".h5") else text


def ecg_shape(path: Path) -> tuple[int, ...]:
    """Shape of the `ecg` dataset, reading no samples; raises OSError/KeyError."""
    with h5py.File(path, "r") as f:
        return tuple(f["ecg"].shape)


def _n_samples(path: Path) -> tuple[int, str]:
    """(samples per lead, "") when the `ecg` dataset is 12 x N with N > 0, else (0, why not)."""
    try:
        shape = ecg_shape(path)
    except (OSError, KeyError) as exc:
        return 0, f"cannot read dataset `ecg` in {path.name}: {exc}"
    if len(shape) != 2 or shape[0] != len(STANDARD_LEADS) or shape[1] == 0:
        return 0, f"`ecg` in {path.name} has shape {shape}, expected (12, n_samples)"
    return shape[1], ""


def _text(value: Any) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return ""
    return str(value).strip()


@dataclass(frozen=True)
class SphRow(RecordRow):
    """An SPH record: `path` is its `.h5`; `fs` the rate metadata.csv gives it."""

    fs: float = DEFAULT_FS


class SphSource(DatasetSource[SphRow]):
    """SPH `.h5` records joined to their metadata.csv row."""

    layout = "sph"
    description = "Shandong Provincial Hospital (.h5 'ecg' 12xN mV + metadata.csv)"

    @classmethod
    def detect(cls, root: Path) -> bool:
        metadata = root / "metadata.csv"
        return metadata.is_file() and _has_ecg_id_column(metadata) and bool(_h5_files(root))

    def scan(self) -> tuple[list[Scanned[SphRow]], list[Unreadable]]:
        files = _h5_files(self.root)
        metadata = pd.read_csv(self.root / "metadata.csv", dtype=str, keep_default_na=False)
        has_snomed = "SNOMEDCTCode" in metadata.columns
        records: list[Scanned[SphRow]] = []
        unreadable: list[Unreadable] = []
        seen: set[str] = set()
        for meta in metadata.to_dict("records"):
            record_id = record_id_of(meta["ECG_ID"])
            seen.add(record_id)
            path = files.get(record_id)
            if path is None:
                unreadable.append(Unreadable(record_id, f"listed in metadata.csv but "
                                                        f"{record_id}.h5 is missing"))
                continue
            n_samples, problem = _n_samples(path)
            if problem:
                unreadable.append(Unreadable(record_id, problem))
                continue
            records.append(self._record(record_id, meta, path, n_samples, has_snomed))
        for record_id, path in files.items():
            if record_id in seen:
                continue
            n_samples, problem = _n_samples(path)
            if problem:
                unreadable.append(Unreadable(record_id, problem))
                continue
            records.append(self._record_without_row(record_id, path, n_samples))
        return records, unreadable

    @staticmethod
    def _record(record_id: str, meta: dict[str, Any], path: Path, n_samples: int,
                has_snomed: bool) -> Scanned[SphRow]:
        given = non_negative_number(meta.get("fs"))
        fs = given if given > 0 else DEFAULT_FS
        sex = _text(meta.get("Sex")).upper()[:1]
        return Scanned({
            "record_id": record_id,
            "patient_id": _text(meta.get("Patient_ID")),
            "fs": fs,
            "n_samples": n_samples,
            "leads": STANDARD_LEADS,
            "raw_labels": snomed_codes(meta.get("SNOMEDCTCode")) if has_snomed else (),
            "label_vocab": "snomed" if has_snomed else "none",
            "age": non_negative_number(meta.get("Age")),
            "sex": sex if sex in ("M", "F") else "",
            "fold": 0,
            "source": "SPH",
            "path": str(path),
            "aha_code": _text(meta.get("AHA_Code")),
        }, SphRow(record_id, path, fs=float(fs)))

    @staticmethod
    def _record_without_row(record_id: str, path: Path, n_samples: int) -> Scanned[SphRow]:
        """An `.h5` that metadata.csv does not list: a signal whose labels are unknown."""
        return Scanned({
            "record_id": record_id,
            "patient_id": "",
            "fs": DEFAULT_FS,
            "n_samples": n_samples,
            "leads": STANDARD_LEADS,
            "raw_labels": (),
            "label_vocab": "none",
            "age": float("nan"),
            "sex": "",
            "fold": 0,
            "source": "SPH",
            "path": str(path),
            "labels_known": False,
            "aha_code": "",
        }, SphRow(record_id, path, fs=DEFAULT_FS))

    def read_signal(self, row: SphRow) -> Signal:
        return Signal(data=read_ecg(row.path, row.record_id), fs=row.fs, leads=STANDARD_LEADS)


def read_ecg(path: Path, record_id: str) -> np.ndarray:
    """The `ecg` dataset of one SPH `.h5` as (12, n_samples) float32 mV (also used for
    uploaded `.h5` files); RecordError names the record and the reason."""
    try:
        with h5py.File(path, "r") as f:
            data = np.asarray(f["ecg"][()], dtype=np.float32)
    except (OSError, KeyError, TypeError, ValueError, RuntimeError, OverflowError) as exc:
        raise RecordError(record_id, f"cannot read dataset `ecg` in {path.name}: {exc}") from exc
    if data.ndim != 2 or data.shape[0] != len(STANDARD_LEADS):
        raise RecordError(record_id, f"`ecg` in {path.name} has shape {data.shape}, "
                                     f"expected (12, n_samples)")
    return data
