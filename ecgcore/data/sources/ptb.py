"""PTB Diagnostic ECG Database (Bousseljot et al. 1995), native PhysioNet layout.

Layout: `patientNNN/<record>.hea` (+ `RECORDS`), 1000 Hz, 15 channels per header: the
12 standard leads i, ii, iii, avr, avl, avf, v1–v6 (in `<record>.dat`) and the 3 Frank
leads vx, vy, vz (in `<record>.xyz`). Header comments carry the clinical summary::

    # age: 81
    # sex: female
    # Reason for admission: Myocardial infarction

The reader keeps only the 12 standard leads (`leads` lists them as written, lower
case); the Frank leads are dropped when the signal is read. The patient id is the
folder name (several records per patient). The raw label is the reason for admission
as written (label vocabulary "ptb_reason"); records without one ("n/a" or absent) keep
empty raw labels — Nguyen & Do drop those for their NORM/MI task, which the task layer
decides. A record whose header does not name all 12 standard leads goes to
`unreadable`.

The signal is read through `ecgcore.data.wfdbio.read_signal`: the channels span two
files, so it takes wfdb's route (all 15 channels) and the 12 are selected after.
"""

from __future__ import annotations

from pathlib import Path

from ecgcore.data import wfdb_scan, wfdbio
from ecgcore.data.recordset import STANDARD_LEADS, Signal, Unreadable
from ecgcore.data.sources.base import Scanned
from ecgcore.data.sources.wfdb_reader import WfdbRow, WfdbSource, wfdb_row
from ecgcore.errors import RecordError

REASON_KEY = "reason for admission"
FRANK_LEADS: frozenset[str] = frozenset({"vx", "vy", "vz"})
_STANDARD_LOWER: tuple[str, ...] = tuple(lead.lower() for lead in STANDARD_LEADS)
_MISSING_TEXT: frozenset[str] = frozenset({"", "n/a", "na", "unknown", "none"})
_DETECT_HEADERS = 3


def _header_paths(root: Path) -> list[Path]:
    """Headers named by RECORDS when present, else every patient*/<record>.hea."""
    records = root / "RECORDS"
    if records.is_file():
        names = [line.strip() for line in records.read_text(errors="replace").splitlines()]
        return [root / f"{name}.hea" for name in names if name]
    return sorted(root.glob("patient*/*.hea"))


def standard_channels(leads: tuple[str, ...]) -> list[int] | None:
    """Indices of the 12 standard leads in the header, in standard order (names matched
    case-insensitively); None when any is missing."""
    lower = [lead.lower() for lead in leads]
    if not set(_STANDARD_LOWER) <= set(lower):
        return None
    return [lower.index(name) for name in _STANDARD_LOWER]


def admission_reason(comments: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """The reason for admission as a one-element tuple, () when absent or "n/a"."""
    reason = wfdbio.comment_fields(comments).get(REASON_KEY, "").strip()
    return () if reason.lower() in _MISSING_TEXT else (reason,)


def _looks_like_ptb(header_path: Path) -> bool:
    try:
        text = header_path.read_text(errors="replace").lower()
    except OSError:
        return False
    frank = any(f" {lead}" in text for lead in FRANK_LEADS) and ".xyz" in text
    return "reason for admission" in text or frank


class PtbSource(WfdbSource):
    """PTB Diagnostic: 12 standard leads of each record, reason for admission as label."""

    layout = "ptb"
    description = "PTB Diagnostic (patientNNN/*.hea, 1000 Hz, 12 standard + 3 Frank leads)"

    @classmethod
    def detect(cls, root: Path) -> bool:
        headers = sorted(root.glob("patient*/*.hea"))[:_DETECT_HEADERS]
        return any(_looks_like_ptb(path) for path in headers)

    def scan(self) -> tuple[list[Scanned[WfdbRow]], list[Unreadable]]:
        records: list[Scanned[WfdbRow]] = []
        unreadable: list[Unreadable] = []
        seen: set[str] = set()
        for path in _header_paths(self.root):
            record_id = path.stem
            if record_id in seen:
                unreadable.append(Unreadable(f"{path.parent.name}/{record_id}",
                                             f"record name {record_id} appears twice"))
                continue
            seen.add(record_id)
            record, problem = self._record(record_id, path)
            if record is None:
                unreadable.append(Unreadable(record_id, problem))
            else:
                records.append(record)
        return records, unreadable

    @staticmethod
    def _record(record_id: str, path: Path) -> tuple[Scanned[WfdbRow] | None, str]:
        header, problem = wfdb_scan.checked_header(path, f"{path.parent.name}/{path.name}")
        if header is None:
            return None, problem or "unreadable header"
        channels = standard_channels(header.leads)
        if channels is None:
            return None, (f"header does not name the 12 standard leads "
                          f"(has {', '.join(header.leads) or 'none'})")
        fields = wfdbio.comment_fields(header.comments)
        return Scanned({
            "record_id": record_id,
            "patient_id": path.parent.name,
            "fs": header.fs,
            "n_samples": header.n_samples,
            "leads": tuple(header.leads[i] for i in channels),
            "raw_labels": admission_reason(header.comments),
            "label_vocab": "ptb_reason",
            "age": wfdbio.parse_age(fields.get("age", "")),
            "sex": wfdbio.parse_sex(fields.get("sex", "")),
            "fold": 0,
            "source": "PTB",
            "path": str(path),
        }, wfdb_row(record_id, header)), ""

    def read_signal(self, row: WfdbRow) -> Signal:
        full = super().read_signal(row)
        channels = standard_channels(full.leads)
        if channels is None:
            raise RecordError(row.record_id, f"signal lacks a standard lead (has {', '.join(full.leads)})")
        data = full.data[channels]
        return Signal(data=data, fs=full.fs, leads=tuple(full.leads[i] for i in channels))
