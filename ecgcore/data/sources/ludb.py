"""LUDB: the Lobachevsky University Electrocardiography Database (Kalyakulina et al. 2020).

Layout (v1.0.1): `data/<n>.hea` + `data/<n>.dat` (format 16, 12 leads, 500 Hz,
5000 samples), `RECORDS` (lines `data/1` …), `ludb.csv`. Each header ends with
comments::

    #<age>: 51
    #<sex>: F
    #<diagnoses>:
    #Rhythm: Sinus bradycardia.
    #Left ventricular hypertrophy.

Every comment line after `<diagnoses>:` is one free-text statement; it is kept as
written minus the trailing full stop (label vocabulary "ludb_text"; `harmonise` maps
the ones that have a SNOMED code and keeps the rest as unmapped text). Lead names are
lower case in the files (i, ii, avr, …) and are kept as written; downstream matches
lead names case-insensitively. Each of the 200 records is a different subject, so the
record id doubles as the patient id.

In v1.0.1 every lead is scaled to exactly 1 mV peak to peak (see the dataset's
README): absolute amplitudes carry no meaning on this dataset.
"""

from __future__ import annotations

from pathlib import Path

from ecgcore.data import wfdb_scan, wfdbio
from ecgcore.data.recordset import Unreadable
from ecgcore.data.sources.base import Scanned
from ecgcore.data.sources.wfdb_reader import WfdbRow, WfdbSource, wfdb_row

DIAGNOSES_KEY = "<diagnoses>"


def _header_paths(root: Path) -> list[Path]:
    """Headers named by RECORDS when present, else every .hea in data/ and the root."""
    records = root / "RECORDS"
    if records.is_file():
        names = [line.strip() for line in records.read_text(errors="replace").splitlines()]
        return [root / f"{name}.hea" for name in names if name]
    return sorted([*root.glob("*.hea"), *(root / "data").glob("*.hea")])


def _sort_key(record_id: str) -> tuple[int, str]:
    return (int(record_id), "") if record_id.isdigit() else (1 << 62, record_id)


def diagnoses(comments: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """The statements after the `<diagnoses>:` comment, one per line, trailing '.' removed."""
    statements: list[str] = []
    found = False
    for line in comments:
        if not found:
            key, sep, rest = line.partition(":")
            if sep and key.strip().lower() == DIAGNOSES_KEY:
                found = True
                line = rest
            else:
                continue
        text = line.strip().rstrip(".").strip()
        if text:
            statements.append(text)
    return tuple(statements)


def mentions_diagnoses(header_path: Path) -> bool:
    """True when a header carries LUDB's `#<diagnoses>:` comment (cheap text check)."""
    try:
        return "#<diagnoses>:" in header_path.read_text(errors="replace")
    except OSError:
        return False


class LudbSource(WfdbSource):
    """LUDB headers and format-16 signals; labels are the free-text diagnoses."""

    layout = "ludb"
    description = "LUDB (Lobachevsky University, .hea/.dat, free-text diagnoses)"

    @classmethod
    def detect(cls, root: Path) -> bool:
        if (root / "ludb.csv").is_file():
            return True
        first = next(iter(sorted((root / "data").glob("*.hea"))), None) or next(
            iter(sorted(root.glob("*.hea"))), None)
        return first is not None and mentions_diagnoses(first)

    def scan(self) -> tuple[list[Scanned[WfdbRow]], list[Unreadable]]:
        records: list[Scanned[WfdbRow]] = []
        unreadable: list[Unreadable] = []
        for path in _header_paths(self.root):
            record_id = path.stem
            header, problem = wfdb_scan.checked_header(path)
            if header is None:
                unreadable.append(Unreadable(record_id, problem or "unreadable header"))
            else:
                records.append(self._record(record_id, path, header))
        records.sort(key=lambda r: _sort_key(r.row.record_id))
        return records, unreadable

    @staticmethod
    def _record(record_id: str, path: Path, header: wfdbio.Header) -> Scanned[WfdbRow]:
        fields = wfdbio.comment_fields(header.comments)
        return Scanned({
            "record_id": record_id,
            "patient_id": record_id,
            "fs": header.fs,
            "n_samples": header.n_samples,
            "leads": header.leads,
            "raw_labels": diagnoses(header.comments),
            "label_vocab": "ludb_text",
            "age": wfdbio.parse_age(fields.get("age", "")),
            "sex": wfdbio.parse_sex(fields.get("sex", "")),
            "fold": 0,
            "source": "LUDB",
            "path": str(path),
        }, wfdb_row(record_id, header))
