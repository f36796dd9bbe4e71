"""MIMIC-IV-ECG: Diagnostic Electrocardiogram Matched Subset 1.0 (Gow et al., PhysioNet 2023).

Layout, as released:

    record_list.csv            subject_id, study_id, file_name, ecg_time, path
                               (path: files/p1000/p10000032/s40689238/40689238, no extension)
    machine_measurements.csv   subject_id, study_id, cart_id, ecg_time, report_0 … report_17,
                               bandwidth, filtering, rr_interval, p_onset, p_end, qrs_onset,
                               qrs_end, t_end, p_axis, qrs_axis, t_axis
    files/pNNNN/pNNNNNNNN/sNNNNNNNN/NNNNNNNN.hea + .dat
                               WFDB format 16, 12 leads in the order I, II, III, aVR, aVF,
                               aVL, V1-V6, 500 Hz, 5000 samples, 200 ADC units per mV

(`machine_measurements_data_dictionary.csv`, `waveform_note_links.csv`, `RECORDS` and
`SHA256SUMS.txt` sit beside them; the reader needs none of them.)

Table: record id = study_id (one ECG each); patient = subject_id (so splits keep a
patient's many ECGs together); no age or sex (those live in the credentialed MIMIC-IV
clinical tables); fold 0; extra column `ecg_time` as record_list.csv writes it (shifted
dates, as MIMIC de-identifies them). Each record's header is parsed and its `.dat`
stat'ed like PTB-XL's (nothing is read), so a record whose files are missing or
truncated — e.g. a download of part of `files/` — goes to `unreadable` with the reason.

Labels: the dataset has no diagnoses, only the cart's machine statements (report_0 …
report_17, free text, most of them empty). A record's non-empty statements are its raw
labels as written (vocabulary "mimic_statement"; `ecgcore.data.labels.mimic_statements`
maps the statements that name a concept exactly and keeps the rest as unmapped text).
A record with no row in machine_measurements.csv, a row without a statement, or a folder
without that file has unknown labels (`labels_known` False, vocabulary "none"): usable
for self-supervised pretraining (task "unlabelled"), dropped by every supervised task.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd

from ecgcore.data import wfdb_scan, wfdbio
from ecgcore.data.recordset import Unreadable
from ecgcore.data.sources.base import Scanned
from ecgcore.data.sources.wfdb_reader import WfdbRow, WfdbSource, wfdb_row
from ecgcore.errors import EcgcoreError

log = logging.getLogger(__name__)

RECORD_LIST = "record_list.csv"
MEASUREMENTS = "machine_measurements.csv"
RECORD_LIST_COLUMNS: tuple[str, ...] = ("subject_id", "study_id", "path")
REPORT_PREFIX = "report_"
SOURCE = "MIMIC-IV-ECG"


def csv_columns(path: Path) -> list[str]:
    """The column names on a CSV file's first line ([] when it cannot be read)."""
    try:
        with path.open(encoding="utf-8", errors="replace") as f:
            header = f.readline()
    except OSError:
        return []
    return [column.strip().strip('"') for column in header.split(",")]


def _is_report_column(name: str) -> bool:
    return name.startswith(REPORT_PREFIX) and name[len(REPORT_PREFIX):].isdigit()


def machine_statements(path: Path) -> dict[str, tuple[str, ...]]:
    """study_id -> the non-empty report_N cells of its row, in column order, stripped
    ({} when the file is absent). EcgcoreError when the file has no study_id column."""
    if not path.is_file():
        return {}
    wanted = {"study_id", *(c for c in csv_columns(path) if _is_report_column(c))}
    if "study_id" not in wanted:
        raise EcgcoreError(f"{path}: no column study_id")
    frame = pd.read_csv(path, dtype=str, keep_default_na=False, usecols=lambda c: c in wanted)
    reports = sorted((c for c in frame.columns if _is_report_column(c)),
                     key=lambda c: int(c[len(REPORT_PREFIX):]))
    statements: dict[str, tuple[str, ...]] = {}
    for study, *cells in zip(frame["study_id"], *(frame[c] for c in reports), strict=True):
        statements.setdefault(study.strip(), tuple(text.strip() for text in cells if text.strip()))
    return statements


class MimicIvEcgSource(WfdbSource):
    """MIMIC-IV-ECG 1.0: record_list.csv, the WFDB tree under files/, machine statements."""

    layout = "mimic_iv_ecg"
    description = ("MIMIC-IV-ECG (record_list.csv + files/pNNNN/pNNNNNNNN/sNNNNNNNN/, "
                   "machine statements as labels)")

    @classmethod
    def detect(cls, root: Path) -> bool:
        return ((root / "files").is_dir()
                and set(RECORD_LIST_COLUMNS) <= set(csv_columns(root / RECORD_LIST)))

    def scan(self) -> tuple[list[Scanned[WfdbRow]], list[Unreadable]]:
        listing = pd.read_csv(self.root / RECORD_LIST, dtype=str, keep_default_na=False)
        missing = set(RECORD_LIST_COLUMNS) - set(listing.columns)
        if missing:
            raise EcgcoreError(f"{self.root / RECORD_LIST}: no column {', '.join(sorted(missing))}")
        statements = machine_statements(self.root / MEASUREMENTS)
        if not statements:
            log.info("%s: no %s; every record's labels are unknown", self.root, MEASUREMENTS)
        ecg_times = listing["ecg_time"] if "ecg_time" in listing.columns else [""] * len(listing)
        records: list[Scanned[WfdbRow]] = []
        unreadable: list[Unreadable] = []
        seen: set[str] = set()
        for subject, study, relative, ecg_time in zip(listing["subject_id"], listing["study_id"],
                                                      listing["path"], ecg_times, strict=True):
            record_id = study.strip()
            if record_id in seen:
                unreadable.append(Unreadable(record_id, f"study_id listed twice in {RECORD_LIST}"))
                continue
            seen.add(record_id)
            record, problem = self._record(record_id, subject.strip(), relative.strip(),
                                           ecg_time.strip(), statements.get(record_id, ()))
            if record is None:
                unreadable.append(Unreadable(record_id, problem))
            else:
                records.append(record)
        return records, unreadable

    def _record(self, record_id: str, subject: str, relative: str, ecg_time: str,
                statements: tuple[str, ...]) -> tuple[Scanned[WfdbRow] | None, str]:
        if not relative:
            return None, f"no path in {RECORD_LIST}"
        header_path = self.root / f"{relative}.hea"
        header, problem = wfdb_scan.checked_header(header_path, f"{relative}.hea")
        if header is None:
            return None, problem or "unreadable header"
        return Scanned(_metadata(record_id, subject, header, ecg_time, statements),
                       wfdb_row(record_id, header)), ""


def _metadata(record_id: str, subject: str, header: wfdbio.Header, ecg_time: str,
              statements: tuple[str, ...]) -> dict[str, Any]:
    """One record's table row; no statement means the labels are unknown."""
    return {
        "record_id": record_id,
        "patient_id": subject,
        "fs": header.fs,
        "n_samples": header.n_samples,
        "leads": header.leads,
        "raw_labels": statements,
        "label_vocab": "mimic_statement" if statements else "none",
        "age": float("nan"),
        "sex": "",
        "fold": 0,
        "source": SOURCE,
        "path": str(header.path),
        "labels_known": bool(statements),
        "ecg_time": ecg_time,
    }
