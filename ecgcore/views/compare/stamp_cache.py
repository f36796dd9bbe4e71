"""Reads of run files cached on what changed: (mtime_ns, size) of the file itself.

The Compare views read the same results.json, history.csv and predictions.npz on every
rerun, and a workspace holds hundreds of runs. A file is parsed again only when its
stamp changed (a run finished, a history row was appended), so a warm read of 500 runs
costs 500 `stat` calls. Run files are written atomically or append-only (see
ecgcore.runs.folder), so a changed file always has a new stamp. The caches are bounded
(least recently used out) and safe to share between the app's session threads.
Callers must treat returned values as read-only: they are shared.
"""

# Kept by hand, not functools.lru_cache: entries are keyed on the file's (mtime_ns, size), which
# lru_cache cannot invalidate, and hit/miss counts are read by tests and the benchmark.

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any, Generic, TypeVar

import numpy as np

from ecgcore.runs.folder import read_json, read_predictions

T = TypeVar("T")
Stamp = tuple[int, int]


def file_stamp(path: Path) -> Stamp | None:
    """(mtime_ns, size) of a file, or None when it does not exist."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return None
    return info.st_mtime_ns, info.st_size


#: Every cache made with `StampCache` registers here, so `clear_caches` reaches them all.
ALL_CACHES: list[StampCache[Any]] = []


class StampCache(Generic[T]):
    """`get(path)` parses a file with `reader` once per stamp; keeps `max_entries` files."""

    def __init__(self, reader: Callable[[Path], T], max_entries: int) -> None:
        self.reader = reader
        self.max_entries = max_entries
        self._entries: OrderedDict[str, tuple[Stamp, T]] = OrderedDict()
        self._lock = threading.Lock()
        self.misses = 0
        ALL_CACHES.append(self)

    def get(self, path: Path) -> T | None:
        """The parsed file, or None when it does not exist."""
        key = str(path)
        stamp = file_stamp(path)
        if stamp is None:
            return None
        with self._lock:
            found = self._entries.get(key)
            if found is not None and found[0] == stamp:
                self._entries.move_to_end(key)
                return found[1]
        value = self.reader(path)
        with self._lock:
            self.misses += 1
            self._entries[key] = (stamp, value)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return value

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.misses = 0


RESULTS: StampCache[dict[str, Any]] = StampCache(read_json, max_entries=20_000)
# config.json of runs without results yet (running): what they start from.
CONFIGS: StampCache[dict[str, Any]] = StampCache(read_json, max_entries=2_000)
# Predictions are the large files (records x classes x 2); few are compared at once.
PREDICTIONS: StampCache[dict[str, np.ndarray]] = StampCache(read_predictions, max_entries=64)


def clear_caches() -> None:
    """Forget every cached read (the benchmark's cold start)."""
    for cache in ALL_CACHES:
        cache.clear()
