"""PTB-XL as released on PhysioNet (Wagner et al. 2020, v1.0.x).

Layout: `ptbxl_database.csv` (one row per ECG: ecg_id, patient_id, age, sex, scp_codes,
strat_fold, filename_lr, filename_hr, …), `scp_statements.csv` (the 71 SCP-ECG
statements with their diagnostic/form/rhythm flags and classes), and the WFDB records
`records100/NNNNN/<ecg_id>_lr` (100 Hz) and `records500/NNNNN/<ecg_id>_hr` (500 Hz),
format 16, 10 s.

Option `fs`: 100 (default, the PTB-XL benchmark's rate) or 500 picks the
`filename_lr` or `filename_hr` column. Scanning reads the CSV and every header with
our fast parser and `stat`s the signal files (no samples are read), so the 21,799
records scan in seconds; a record whose header or signal file is missing or truncated
goes to `unreadable` with the reason.

Table: record id = ecg_id; raw labels = every key of `scp_codes` whatever its
likelihood (label vocabulary "scp"; the benchmark's tasks filter from
`scp_statements.csv`, see `ecgcore.data.labels.named_tasks`), with the likelihoods kept in
the extra column `scp_codes` ({code: likelihood}, parsed with `ast.literal_eval`,
never `eval`); fold = strat_fold (1–8 train, 9 validation, 10 test by convention);
sex 0 = male, 1 = female. PTB-XL writes the age of patients older than 89 as 300
(HIPAA); the reader reports those as 90 ("90 or older").
"""

from __future__ import annotations

import ast
import math
from pathlib import Path
from typing import Any

import pandas as pd

from ecgcore.data import wfdb_scan, wfdbio
from ecgcore.data.labels import read_scp_statements
from ecgcore.data.recordset import Unreadable
from ecgcore.data.sources.base import Scanned
from ecgcore.data.sources.wfdb_reader import WfdbRow, WfdbSource, wfdb_row
from ecgcore.errors import EcgcoreError

DATABASE_CSV = "ptbxl_database.csv"
STATEMENTS_CSV = "scp_statements.csv"
FILENAME_COLUMN: dict[int, str] = {100: "filename_lr", 500: "filename_hr"}
HIPAA_AGE = 300  # PTB-XL's stand-in for "older than 89"
SEX_CODES: dict[str, str] = {"0": "M", "1": "F", "0.0": "M", "1.0": "F", "m": "M", "f": "F",
                             "male": "M", "female": "F"}


def parse_scp_codes(cell: Any) -> dict[str, float]:
    """`"{'NORM': 100.0, 'SR': 0.0}"` -> {"NORM": 100.0, "SR": 0.0}; ValueError when the
    cell is not a dict literal of code -> number (safe: `ast.literal_eval`, or JSON
    which is a subset of it)."""
    if cell is None or (isinstance(cell, float) and math.isnan(cell)) or not str(cell).strip():
        return {}
    try:
        value = ast.literal_eval(str(cell).strip())
    except (ValueError, SyntaxError) as exc:
        raise ValueError(f"scp_codes {str(cell)[:60]!r} is not a dict literal") from exc
    if not isinstance(value, dict):
        raise ValueError(f"scp_codes {str(cell)[:60]!r} is not a dict")
    try:
        return {str(code).strip(): float(likelihood) for code, likelihood in value.items()}
    except (TypeError, ValueError) as exc:
        raise ValueError(f"scp_codes {str(cell)[:60]!r} has a non-numeric likelihood") from exc


def ptbxl_age(value: Any) -> float:
    """Age in years; 300 (PTB-XL's "older than 89") becomes 90, unknown becomes NaN."""
    age = wfdbio.parse_age("" if value is None else str(value))
    if age >= HIPAA_AGE:
        return 90.0
    return age


def ptbxl_sex(value: Any) -> str:
    """PTB-XL codes sex as 0 (male) / 1 (female)."""
    return SEX_CODES.get(str(value).strip().lower(), "")


def _integer_text(value: Any) -> str:
    """ids are written as floats ("15709.0"); keep the integer text."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    text = str(value).strip()
    try:
        number = float(text)
    except ValueError:
        return text
    return str(int(number)) if number.is_integer() else text


def _fold(value: Any) -> int:
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return 0


class PtbxlSource(WfdbSource):
    """PTB-XL native layout at 100 or 500 Hz (option `fs`)."""

    layout = "ptbxl"
    description = "PTB-XL (ptbxl_database.csv + records100/ or records500/, SCP codes, folds)"

    def __init__(self, root: Path | str, **options: Any) -> None:
        super().__init__(root, **options)
        fs = int(float(options.get("fs", 100)))
        if fs not in FILENAME_COLUMN:
            raise EcgcoreError(f"PTB-XL comes at 100 or 500 Hz, not fs={options.get('fs')!r}")
        self.fs = fs

    @classmethod
    def detect(cls, root: Path) -> bool:
        return (root / DATABASE_CSV).is_file()

    def scp_statements(self) -> pd.DataFrame | None:
        """The dataset's scp_statements.csv (what the PTB-XL benchmark tasks are built
        from), None when the folder lacks it; EcgcoreError when it is not one."""
        path = self.root / STATEMENTS_CSV
        if not path.is_file():
            return None
        try:
            return read_scp_statements(path)
        except ValueError as exc:
            raise EcgcoreError(str(exc)) from exc

    def scan(self) -> tuple[list[Scanned[WfdbRow]], list[Unreadable]]:
        database = pd.read_csv(self.root / DATABASE_CSV, dtype=str, keep_default_na=False)
        column = FILENAME_COLUMN[self.fs]
        missing = {"ecg_id", column} - set(database.columns)
        if missing:
            raise EcgcoreError(f"{self.root / DATABASE_CSV}: no column {', '.join(sorted(missing))}")
        records: list[Scanned[WfdbRow]] = []
        unreadable: list[Unreadable] = []
        for entry in database.to_dict("records"):
            record_id = _integer_text(entry["ecg_id"])
            record, problem = self._record(record_id, entry, column)
            if record is None:
                unreadable.append(Unreadable(record_id, problem))
            else:
                records.append(record)
        return records, unreadable

    def _record(self, record_id: str, entry: dict[str, Any],
                column: str) -> tuple[Scanned[WfdbRow] | None, str]:
        filename = entry[column].strip()
        if not filename:
            return None, f"no {column} in {DATABASE_CSV}"
        try:
            scp_codes = parse_scp_codes(entry.get("scp_codes"))
        except ValueError as exc:
            return None, str(exc)
        header_path = self.root / f"{filename}.hea"
        header, problem = wfdb_scan.checked_header(header_path, f"{filename}.hea")
        if header is None:
            return None, problem or "unreadable header"
        return Scanned({
            "record_id": record_id,
            "patient_id": _integer_text(entry.get("patient_id")),
            "fs": header.fs,
            "n_samples": header.n_samples,
            "leads": header.leads,
            "raw_labels": tuple(scp_codes),
            "label_vocab": "scp",
            "age": ptbxl_age(entry.get("age")),
            "sex": ptbxl_sex(entry.get("sex", "")),
            "fold": _fold(entry.get("strat_fold")),
            "source": "PTB-XL",
            "path": str(header_path),
            "scp_codes": scp_codes,
        }, wfdb_row(record_id, header)), ""
