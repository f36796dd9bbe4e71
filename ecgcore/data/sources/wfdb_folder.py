"""Any folder of WFDB records (users' own data), with an optional `labels.csv`.

The last layout tried: any `.hea` anywhere under the folder makes it a dataset.
A `labels.csv` at the top also keeps the Challenge reader from claiming the folder
when its headers carry `#Dx:` comments.
Records are found recursively; the record id is the record name, or the path
relative to the folder when two subfolders hold records of the same name.

`labels.csv` (optional, at the top of the folder) has the columns `record` and
`codes`. `record` is a record id, a relative path (with or without a `.hea`
suffix) or a record name; `codes` lists SNOMED CT codes or free text separated by
`,` or `;`. Codes the label space knows become labels; everything else is kept as
unmapped text (vocabulary "snomed"). Records the file does not list take their
labels from a Challenge-style `#Dx:` header comment when there is one, else none.
Rows naming a record that does not exist are reported in `unreadable`, so a typo
in the file is seen rather than silently dropped. `#Age:`/`#Sex:` comments fill
age and sex when present.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from ecgcore.data import wfdb_scan
from ecgcore.data.recordset import Unreadable
from ecgcore.data.sources.base import Scanned
from ecgcore.data.sources.challenge import USER_LABELS_FILE, header_record
from ecgcore.data.sources.wfdb_reader import WfdbRow, WfdbSource
from ecgcore.errors import EcgcoreError

LABELS_FILE = USER_LABELS_FILE
_SPLIT = re.compile(r"[,;]")


def split_codes(cell: str) -> tuple[str, ...]:
    """"426783006; 164889003,my own label" -> the three entries, stripped, empties dropped."""
    return tuple(part.strip() for part in _SPLIT.split(cell) if part.strip())


def _record_key(text: str) -> str:
    """A `record` cell normalised for matching: forward slashes, no `./`, no WFDB suffix."""
    key = text.strip().replace("\\", "/")
    while key.startswith("./"):
        key = key[2:]
    for suffix in (".hea", ".dat", ".mat"):
        if key.lower().endswith(suffix):
            return key[: -len(suffix)]
    return key


def read_labels_csv(path: Path) -> dict[str, tuple[str, ...]]:
    """{record key: codes} from labels.csv; raises EcgcoreError on a malformed file."""
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise EcgcoreError(f"{path}: cannot read labels file ({exc})") from exc
    columns = {str(c).strip().lower(): c for c in table.columns}
    if "record" not in columns or "codes" not in columns:
        raise EcgcoreError(f"{path}: labels file needs the columns 'record' and 'codes' "
                           f"(found: {', '.join(map(str, table.columns)) or 'none'})")
    labels: dict[str, tuple[str, ...]] = {}
    for record, codes in zip(table[columns["record"]], table[columns["codes"]]):
        key = _record_key(str(record))
        if key:
            labels[key] = labels.get(key, ()) + split_codes(str(codes))
    return labels


class WfdbFolderSource(WfdbSource):
    """Any WFDB records under a folder, labels from labels.csv or `#Dx:` comments."""

    layout = "wfdb_folder"
    description = "Any folder of WFDB records (.hea + signal files), optional labels.csv"

    @classmethod
    def detect(cls, root: Path) -> bool:
        return next(wfdb_scan.first_headers(root, 1), None) is not None

    def scan(self) -> tuple[list[Scanned[WfdbRow]], list[Unreadable]]:
        readable, unreadable = wfdb_scan.scan_headers(self.root)
        labels_path = self.root / LABELS_FILE
        labels = read_labels_csv(labels_path) if labels_path.is_file() else {}
        used: set[str] = set()
        records: list[Scanned[WfdbRow]] = []
        for record_id, header in readable:
            record = header_record(record_id, header, self.root.name)
            row = record.metadata
            row["source"] = self.root.name  # name prefixes mean nothing outside the Challenge
            for key in self._keys(record_id, header.path):
                if key in labels:
                    row["raw_labels"] = labels[key]
                    used.add(key)
                    break
            records.append(record)
        known = {key for record_id, header in readable for key in self._keys(record_id, header.path)}
        known |= {u.record for u in unreadable}
        for key in labels:
            if key not in used and key not in known:
                unreadable.append(Unreadable(key, f"listed in {LABELS_FILE} but no such record "
                                                  f"(no {key}.hea under {self.root.name})"))
        return records, unreadable

    def _keys(self, record_id: str, header_path: Path) -> tuple[str, ...]:
        """The ways labels.csv may name a record: its id (the record name when unique)
        or its path relative to the folder."""
        relative = header_path.relative_to(self.root).with_suffix("").as_posix()
        return tuple(dict.fromkeys((record_id, relative)))
