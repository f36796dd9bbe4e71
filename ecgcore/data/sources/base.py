"""The shared base of every layout reader: scan a folder, harmonise labels, build a Recordset."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar, Generic, NamedTuple, TypeVar

import numpy as np
import pandas as pd

from ecgcore.data.recordset import TABLE_COLUMNS, RecordRow, Recordset, Signal, Unreadable

RowT = TypeVar("RowT", bound=RecordRow)


class Scanned(NamedTuple, Generic[RowT]):
    """One readable record as a scan found it: its public metadata (a dict with
    `record_id` and the TABLE_COLUMNS except `labels`/`unmapped`, which `load` fills from
    `raw_labels` + `label_vocab`, and `labels_known`, which defaults to True; plus any
    layout-specific columns) and the reader's own row (where the samples are)."""

    metadata: dict[str, Any]
    row: RowT


class DatasetSource(ABC, Generic[RowT]):
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
    def scan(self) -> tuple[list[Scanned[RowT]], list[Unreadable]]:
        """The readable records and those skipped, each with its reason. Header-level checks
        belong here (missing/truncated signal file, sample or channel count larger than
        stored, unknown format) so one bad record never sinks the dataset."""

    @abstractmethod
    def read_signal(self, row: RowT) -> Signal:
        """Samples of one record as (n_leads, n_samples) float32 mV, NaN/inf kept as stored
        (`Recordset.read` refuses them by default; `prepare` interpolates them); raises
        RecordError naming `row.record_id` when the files cannot be read."""

    def scp_statements(self) -> pd.DataFrame | None:
        """The dataset's SCP-ECG statements table when the layout has one (PTB-XL)."""
        return None

    def load(self, name: str | None = None) -> Recordset:
        from ecgcore.data.labels import harmonise

        scanned, unreadable = self.scan()
        metadata = [record.metadata for record in scanned]
        for row in metadata:
            row["labels"], row["unmapped"] = harmonise(row["label_vocab"], row["raw_labels"])
            row.setdefault("labels_known", True)
        table = pd.DataFrame(metadata, columns=["record_id", *TABLE_COLUMNS, *_extra_columns(metadata)])
        table = table.set_index("record_id", drop=True)
        table.index = table.index.astype(str)
        table["age"] = table["age"].astype(float)
        table["fold"] = table["fold"].fillna(0).astype(int)
        table["n_samples"] = table["n_samples"].astype(np.int64)
        table["fs"] = table["fs"].astype(float)
        table["labels_known"] = table["labels_known"].astype(bool)
        return Recordset(
            name=name or self.root.name,
            layout=self.layout,
            root=self.root,
            table=table,
            source=self,
            unreadable=sorted(unreadable, key=lambda u: u.record),
            rows={str(record.metadata["record_id"]): record.row for record in scanned},
            scp_statements=self.scp_statements(),
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
