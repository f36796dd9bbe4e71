"""What every WFDB layout reader shares: the row it notes per record while scanning
(`WfdbRow`: the signal files and the numpy fast-path plan of `ecgcore.data.wfdbio`) and
reading a record back from it, so a read never parses the header a second time."""

from __future__ import annotations

from dataclasses import dataclass

from ecgcore.data import wfdbio
from ecgcore.data.recordset import RecordRow, Signal
from ecgcore.data.sources.base import DatasetSource


@dataclass(frozen=True)
class WfdbRow(RecordRow):
    """A WFDB record: `path` is its header; `fast_read` is None when it needs wfdb."""

    fast_read: wfdbio.FastRead | None = None


def wfdb_row(record_id: str, header: wfdbio.Header) -> WfdbRow:
    """The row of one parsed and checked header."""
    return WfdbRow(record_id, header.path, header.signal_files, wfdbio.fast_read_of(header))


class WfdbSource(DatasetSource[WfdbRow]):
    """A layout whose records are WFDB headers with their signal files."""

    def read_signal(self, row: WfdbRow) -> Signal:
        return wfdbio.read_signal(row.path, row.record_id, allow_nan=True, plan=row.fast_read)
