"""The shared base of every layout reader: scan a folder, harmonise labels, build a Recordset."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from ecgcore.data.recordset import TABLE_COLUMNS, Recordset, Signal, Unreadable


class DatasetSource(ABC):
    """One on-disk layout. Subclasses set `layout`/`description` and implement
    `detect`, `scan` and `read_signal`; `load` is shared.

    Instances hold only the root path and options (plain data), so a Recordset
    pickles cheaply into joblib workers.
    """

    layout: ClassVar[str]
    description: ClassVar[str]

    def __init__(self, root: Path | str, **options: Any) -> None:
        self.root = Path(root)
        self.options = options

    @classmethod
    @abstractmethod
    def detect(cls, root: Path) -> bool:
        """True when `root` looks like this layout (cheap: file names, one header at most)."""

    @abstractmethod
    def scan(self) -> tuple[list[dict[str, Any]], list[Unreadable]]:
        """Rows (dicts with `record_id` and the TABLE_COLUMNS except `labels`/`unmapped`,
        which `load` fills from `raw_labels` + `label_vocab`) and the records skipped, each
        with its reason. Header-level checks belong here (missing/truncated signal file,
        sample or channel count larger than stored, unknown format) so one bad record never
        sinks the dataset."""

    @abstractmethod
    def read_signal(self, row: pd.Series, record_id: str) -> Signal:
        """Samples of one record as (n_leads, n_samples) float32 mV, NaN/inf kept as stored
        (`Recordset.read` refuses them by default; `prepare` interpolates them); raises
        RecordError when the files cannot be read."""

    def record_files(self, row: pd.Series, record_id: str) -> list[Path]:
        """Files behind one record: `path` plus the row's `signal_files` (WFDB readers
        note them while scanning, so a cache key needs no second header parse)."""
        extra = row.get("signal_files", ())
        return [Path(row["path"]), *(Path(f) for f in (extra if isinstance(extra, tuple) else ()))]

    def load(self, name: str | None = None) -> Recordset:
        from ecgcore.data.labels import harmonise

        rows, unreadable = self.scan()
        for row in rows:
            row["labels"], row["unmapped"] = harmonise(row["label_vocab"], row["raw_labels"])
        table = pd.DataFrame(rows, columns=["record_id", *TABLE_COLUMNS, *_extra_columns(rows)])
        table = table.set_index("record_id", drop=True)
        table.index = table.index.astype(str)
        table["age"] = table["age"].astype(float)
        table["fold"] = table["fold"].fillna(0).astype(int)
        table["n_samples"] = table["n_samples"].astype(np.int64)
        table["fs"] = table["fs"].astype(float)
        return Recordset(
            name=name or self.root.name,
            layout=self.layout,
            root=self.root,
            table=table,
            source=self,
            unreadable=sorted(unreadable, key=lambda u: u.record),
        )


def _extra_columns(rows: list[dict[str, Any]]) -> list[str]:
    """Layout-specific columns (e.g. PTB-XL's scp_codes likelihoods), kept in first-seen order."""
    known = {"record_id", *TABLE_COLUMNS}
    extra: dict[str, None] = {}
    for row in rows:
        for key in row:
            if key not in known:
                extra[key] = None
    return list(extra)
