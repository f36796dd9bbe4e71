"""Finding WFDB records in a folder tree: one header parse and one stat per record.

Used by the Challenge and any-WFDB-folder readers (and any reader that walks a
tree of `.hea` files). No signal is read here; see `ecgcore.data.wfdbio`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from ecgcore.data.recordset import Unreadable
from ecgcore.data.wfdbio import Header, check_record, read_header
from ecgcore.errors import RecordError


def checked_header(path: Path, shown: str | None = None) -> tuple[Header | None, str | None]:
    """(header, None) when the record's header exists, parses and passes the header-level
    checks (`check_record`); otherwise (None, the reason). `shown` names the header in
    the "missing" message (default: its file name)."""
    if not path.is_file():
        return None, f"header {shown or path.name} is missing"
    try:
        header = read_header(path)
    except RecordError as exc:
        return None, exc.reason
    problem = check_record(path, header)
    return (None, problem) if problem is not None else (header, None)


def record_leads(header: Header) -> tuple[str, ...]:
    """Lead names of a record; for a multi-segment record, those of its first segment
    that has signals (the master header itself lists none)."""
    if header.signals or not header.segments:
        return header.leads
    for segment in header.segments:
        if segment == "~":
            continue
        try:
            inner = read_header(header.path.parent / f"{segment}.hea")
        except RecordError:
            continue
        if inner.signals:
            return inner.leads
    return ()


def find_headers(root: Path | str) -> list[Path]:
    """Every `.hea` under `root` (recursive, sorted; hidden folders skipped)."""
    found: list[Path] = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found.extend(Path(folder) / f for f in sorted(files) if f.endswith(".hea"))
    return found


def first_headers(root: Path | str, limit: int) -> Iterator[Path]:
    """Up to `limit` `.hea` files, walking lazily (for cheap layout detection)."""
    count = 0
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for f in sorted(files):
            if f.endswith(".hea"):
                yield Path(folder) / f
                count += 1
                if count >= limit:
                    return


def record_ids(root: Path, headers: list[Path]) -> dict[Path, str]:
    """Record id per header: the record name when it is unique in the tree, else the
    path relative to `root` without suffix (so ids stay unique and readable)."""
    stems: dict[str, int] = {}
    for h in headers:
        stems[h.stem] = stems.get(h.stem, 0) + 1
    return {h: h.stem if stems[h.stem] == 1 else h.relative_to(root).with_suffix("").as_posix()
            for h in headers}


def scan_headers(root: Path | str) -> tuple[list[tuple[str, Header]], list[Unreadable]]:
    """Parse and check every record under `root` without reading any signal: the
    readable ones as (record id, header), the rest as Unreadable with the reason.
    Segment headers of multi-segment records are not records of their own."""
    root = Path(root)
    headers = find_headers(root)
    parsed: dict[Path, Header] = {}
    unreadable: list[Unreadable] = []
    ids = record_ids(root, headers)
    for path in headers:
        try:
            parsed[path] = read_header(path)
        except RecordError as exc:
            unreadable.append(Unreadable(ids[path], exc.reason))
    segment_paths = {h.path.parent / f"{seg}.hea" for h in parsed.values() for seg in h.segments}
    readable: list[tuple[str, Header]] = []
    for path, header in parsed.items():
        if path in segment_paths:
            continue
        problem = check_record(path, header)
        if problem is None:
            readable.append((ids[path], header))
        else:
            unreadable.append(Unreadable(ids[path], problem))
    return readable, unreadable
