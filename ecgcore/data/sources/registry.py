"""The readers, one per on-disk layout, in detection order; `open_dataset` and
`detect_layout`.

The list is written out here (rather than each reader registering itself on import) so
the readers import nothing back from their package, and the order detection tries them
in is read in one place: files only one layout has first, then header contents, then any
WFDB folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ecgcore.data.recordset import Recordset
from ecgcore.data.sources.base import DatasetSource
from ecgcore.data.sources.challenge import ChallengeSource
from ecgcore.data.sources.code15 import Code15Source, CodeTestSource
from ecgcore.data.sources.ludb import LudbSource
from ecgcore.data.sources.mimic_iv_ecg import MimicIvEcgSource
from ecgcore.data.sources.ptb import PtbSource
from ecgcore.data.sources.ptbxl import PtbxlSource
from ecgcore.data.sources.sph import SphSource
from ecgcore.data.sources.wfdb_folder import WfdbFolderSource
from ecgcore.errors import NotADatasetError

READERS: tuple[type[DatasetSource[Any]], ...] = (
    PtbxlSource, Code15Source, CodeTestSource, SphSource, MimicIvEcgSource, LudbSource,
    PtbSource, ChallengeSource, WfdbFolderSource,
)
LAYOUTS: dict[str, type[DatasetSource[Any]]] = {reader.layout: reader for reader in READERS}


def detect_layout(path: Path | str) -> str:
    """The first layout (in `READERS` order) whose `detect` accepts the folder."""
    root = Path(path)
    if not root.exists():
        raise NotADatasetError(f"{root}: no such file or folder")
    if not root.is_dir():
        raise NotADatasetError(f"{root}: not a folder (a dataset is a folder of records)")
    for name, cls in LAYOUTS.items():
        if cls.detect(root):
            return name
    raise NotADatasetError(
        f"{root}: no dataset found (no PTB-XL, Challenge, LUDB, PTB, CODE-15%, SPH, MIMIC-IV-ECG or WFDB records)"
    )


def open_dataset(path: Path | str, layout: str | None = None, name: str | None = None,
                 **options: Any) -> Recordset:
    """Read a dataset folder into a Recordset (layout detected unless given)."""
    layout = layout or detect_layout(path)
    if layout not in LAYOUTS:
        raise NotADatasetError(f"unknown layout {layout!r}; known: {', '.join(LAYOUTS)}")
    return LAYOUTS[layout](Path(path), **options).load(name=name)
