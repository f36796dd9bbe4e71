"""Readers, one per on-disk layout, over a shared base; one registry, detection in order.

`open_dataset(path)` detects the layout (the first registered layout whose
`detect` accepts the folder, most specific first) and returns a Recordset.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ecgcore.data.recordset import Recordset
from ecgcore.data.sources.base import DatasetSource
from ecgcore.errors import NotADatasetError

LAYOUTS: dict[str, type[DatasetSource]] = {}


def register(cls: type[DatasetSource]) -> type[DatasetSource]:
    """Class decorator: add a layout to the registry (detection follows import order)."""
    LAYOUTS[cls.layout] = cls
    return cls


def detect_layout(path: Path | str) -> str:
    root = Path(path)
    if not root.exists():
        raise NotADatasetError(f"{root}: no such file or folder")
    if not root.is_dir():
        raise NotADatasetError(f"{root}: not a folder (a dataset is a folder of records)")
    for name, cls in LAYOUTS.items():
        if cls.detect(root):
            return name
    raise NotADatasetError(
        f"{root}: no dataset found (no PTB-XL, Challenge, LUDB, PTB, CODE-15%, SPH or WFDB records)"
    )


def open_dataset(path: Path | str, layout: str | None = None, name: str | None = None,
                 **options: Any) -> Recordset:
    """Read a dataset folder into a Recordset (layout detected unless given)."""
    layout = layout or detect_layout(path)
    if layout not in LAYOUTS:
        raise NotADatasetError(f"unknown layout {layout!r}; known: {', '.join(LAYOUTS)}")
    return LAYOUTS[layout](Path(path), **options).load(name=name)


# Most specific first: files that only one layout has, then header contents, then any WFDB.
from ecgcore.data.sources import ptbxl, code15, sph, ludb, ptb, challenge, wfdb_folder  # noqa: E402,F401
