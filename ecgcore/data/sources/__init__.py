"""Readers, one per on-disk layout, over a shared base (`base`, `wfdb_reader`).

`open_dataset(path)` detects the layout (the first reader of `registry.READERS` whose
`detect` accepts the folder, most specific first) and returns a Recordset.
"""

from ecgcore.data.sources.registry import LAYOUTS, READERS, detect_layout, open_dataset

__all__ = ["LAYOUTS", "READERS", "detect_layout", "open_dataset"]
