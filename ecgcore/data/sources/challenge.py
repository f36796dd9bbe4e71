"""PhysioNet/CinC Challenge 2020/2021 layout: `.hea` + MATLAB v4 `.mat` per record.

Each header carries the labels and demographics as comments:
`#Age: 74`, `#Sex: Male`, `#Dx: 59118001,164890007` (SNOMED CT codes; some
releases write `# Dx:` with a space). The folder may hold any mix of the
Challenge's sources, in any nesting of subfolders; the source of a record is
known from its name prefix (see `SOURCES`).

Decisions:
- Scanning parses each header with `ecgcore.data.wfdbio` and stats its signal
  file; no signal is read. A header whose signal file is missing, too short for
  the samples it claims, or in an unknown format goes to `unreadable` with the
  reason (e.g. the INCART records shipped as headers only).
- NaN/inf samples are found when the signal is read: `Recordset.read` raises
  RecordError naming the record (checking every signal at scan time would cost a
  full read of the dataset).
- `patient_id` is "" (unknown): the Challenge headers carry no patient key, so
  each record is its own patient for splitting.
- A record without a `#Dx:` line loads with no labels.
- A folder with a `labels.csv` at its top is left to the `wfdb_folder` layout even
  when its headers carry `#Dx:` lines: the labels file is the user saying which
  labels count.
"""

from __future__ import annotations

import re
from pathlib import Path

from ecgcore.data import wfdb_scan, wfdbio
from ecgcore.data.recordset import Unreadable
from ecgcore.data.sources.base import Scanned
from ecgcore.data.sources.wfdb_reader import WfdbRow, WfdbSource, wfdb_row

# Record-name prefix -> originating database (Challenge 2021, Reyna et al. 2021, Table 1).
SOURCES: dict[str, str] = {
    "A": "CPSC2018",
    "Q": "CPSC-Extra",
    "I": "INCART",
    "S": "PTB",
    "HR": "PTB-XL",
    "E": "Georgia",
    "JS": "Chapman-Shaoxing/Ningbo",
}

_PREFIX = re.compile(r"^([A-Za-z]+)\d")
DETECT_HEADERS = 10  # headers looked at by `detect` before giving up
USER_LABELS_FILE = "labels.csv"  # marks a user's own WFDB folder (layout wfdb_folder)


def source_of(record_name: str, default: str = "") -> str:
    """The Challenge source of a record name ("HR00001" -> "PTB-XL"), else `default`."""
    match = _PREFIX.match(record_name)
    return SOURCES.get(match.group(1).upper(), default) if match else default


def has_dx_line(header_path: Path) -> bool:
    """True when the header's comments contain a `Dx:` field (reads one small file)."""
    try:
        text = wfdbio.decode_header_bytes(header_path.read_bytes())
    except OSError:
        return False
    comments = [line.strip()[1:] for line in text.splitlines() if line.strip().startswith("#")]
    return "dx" in wfdbio.comment_fields(comments)


def header_record(record_id: str, header: wfdbio.Header, default_source: str) -> Scanned[WfdbRow]:
    """The table row and reader row of one Challenge-style header (labels from `#Dx:`)."""
    fields = wfdbio.challenge_fields(header.comments)
    return Scanned({
        "record_id": record_id,
        "patient_id": "",
        "fs": float(header.fs),
        "n_samples": header.n_samples,
        "leads": wfdb_scan.record_leads(header),
        "raw_labels": fields.dx,
        "label_vocab": "snomed",
        "age": fields.age,
        "sex": fields.sex,
        "fold": 0,
        "source": source_of(header.record_name or header.path.stem, default_source),
        "path": str(header.path),
    }, wfdb_row(record_id, header))


class ChallengeSource(WfdbSource):
    """Challenge 2020/2021 records (`.hea` with `#Dx:` + `.mat`), recursive."""

    layout = "challenge"
    description = "PhysioNet/CinC Challenge 2020/2021 (.hea + MATLAB v4 .mat, #Dx: SNOMED CT)"

    @classmethod
    def detect(cls, root: Path) -> bool:
        if (root / USER_LABELS_FILE).is_file():
            return False
        return any(has_dx_line(h) for h in wfdb_scan.first_headers(root, DETECT_HEADERS))

    def scan(self) -> tuple[list[Scanned[WfdbRow]], list[Unreadable]]:
        readable, unreadable = wfdb_scan.scan_headers(self.root)
        records = [header_record(record_id, header, self.root.name) for record_id, header in readable]
        return records, unreadable
