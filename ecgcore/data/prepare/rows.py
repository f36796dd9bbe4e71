"""Table rows as plain dicts, for the per-record loops.

`recordset.table.loc[rid]` builds a pandas Series per call (~70 us; `iterrows` ~25 us);
over 5,000 records that is a visible share of a cache hit or of a cold build. The
readers only index rows by column name, so a dict that also answers `row.col`,
`row.name` and `row.to_dict()` serves them. Callers fall back to a real Series when
a source does something a dict cannot (any exception other than RecordError).
"""

from __future__ import annotations

from typing import Any

import pandas as pd


class RowView(dict):
    """One table row: `row["path"]`, `row.path`, `row.get("fold")`, `row.name` (the record id)."""

    name: str = ""

    def __getattr__(self, item: str) -> Any:
        try:
            return self[item]
        except KeyError as exc:
            raise AttributeError(item) from exc

    def to_dict(self) -> dict[str, Any]:
        return dict(self)


class RowViews:
    """Row k of a table as a RowView, without building a Series."""

    def __init__(self, table: pd.DataFrame) -> None:
        self.ids = [str(i) for i in table.index]
        self.columns = [str(c) for c in table.columns]
        self.values = [table[c].tolist() for c in table.columns]

    def __len__(self) -> int:
        return len(self.ids)

    def row(self, k: int) -> RowView:
        view = RowView(zip(self.columns, (column[k] for column in self.values)))
        view.name = self.ids[k]
        return view
