"""Download progress: one tracker (thread-safe counters) and two ways to show it — a
tqdm bar for the terminal and a JSON file that another process reads (`--json-progress`).
A download job (`download_job`) reports the same snapshot as its job progress.

The JSON file is replaced atomically (write + rename), so a reader never sees half of it.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, TextIO

from tqdm import tqdm


@dataclass(frozen=True)
class Progress:
    """A snapshot. `state`: starting, listing, downloading, done, failed, stopped."""

    dataset: str
    state: str = "starting"
    files_total: int = 0
    files_done: int = 0        # verified now or before (skipped)
    files_skipped: int = 0     # already there and verified: not fetched again
    files_failed: int = 0
    bytes_done: int = 0        # bytes received in this run
    bytes_total: int | None = None  # known only when the listing gives sizes (Zenodo)
    current: str = ""
    message: str = ""
    root: str = ""
    added_as: str = ""
    pid: int = field(default_factory=os.getpid)
    updated: float = field(default_factory=time.time)

    @property
    def fraction(self) -> float:
        """0..1, by bytes when the total is known, else by files."""
        if self.bytes_total:
            return min(1.0, self.bytes_done / self.bytes_total) if self.state != "done" else 1.0
        if self.files_total:
            return self.files_done / self.files_total
        return 1.0 if self.state == "done" else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "fraction": self.fraction}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Progress:
        """A snapshot back from `to_dict` (a job's progress); unknown keys are ignored."""
        return cls(**{key: data[key] for key in cls.__dataclass_fields__ if key in data})


#: The states a download ends in.
ENDED = ("done", "failed", "stopped")


Callback = Callable[[Progress], None]


class Tracker:
    """Counters shared by the download threads; calls `callback` with a snapshot on each change."""

    def __init__(self, dataset: str, callback: Callback | None = None) -> None:
        self._lock = threading.Lock()
        self._state = Progress(dataset=dataset)
        self._callback = callback

    def update(self, **changes: Any) -> Progress:
        with self._lock:
            self._state = replace(self._state, updated=time.time(), **changes)
            snapshot = self._state
        if self._callback is not None:
            self._callback(snapshot)
        return snapshot

    def add(self, **deltas: int) -> Progress:
        with self._lock:
            changes = {k: getattr(self._state, k) + v for k, v in deltas.items()}
        return self.update(**changes)

    @property
    def snapshot(self) -> Progress:
        with self._lock:
            return self._state


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def describe(p: Progress) -> str:
    """One line: files, bytes, what is happening."""
    total = f" of {_size(p.bytes_total)}" if p.bytes_total else ""
    extra = f", {p.files_skipped} already there" if p.files_skipped else ""
    extra += f", {p.files_failed} failed" if p.files_failed else ""
    return f"{p.files_done}/{p.files_total} files{extra}, {_size(p.bytes_done)}{total} received"


class TqdmBar:
    """The CLI's bar (tqdm on stderr): bytes when the listing gives sizes (Zenodo), else files,
    with the counts of `describe` after it. Snapshots come from several download threads."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self._bar: tqdm | None = None
        self._lock = threading.Lock()

    def __call__(self, p: Progress) -> None:
        with self._lock:
            if p.state == "listing":
                tqdm.write(f"{p.message} …", file=self.stream)
            elif p.state == "downloading" or (self._bar is not None and p.state in ENDED):
                self._draw(p)
            if p.state in ENDED and self._bar is not None:
                self._bar.close()
                self._bar = None

    def _draw(self, p: Progress) -> None:
        by_bytes = p.bytes_total is not None
        total = p.bytes_total if by_bytes else p.files_total
        if self._bar is None:
            # Off a terminal (a log file) a line every 5 s, not a redraw every 0.1 s.
            self._bar = tqdm(total=total, desc=p.dataset, unit="B" if by_bytes else "file",
                             unit_scale=by_bytes, file=self.stream, dynamic_ncols=True,
                             mininterval=0.1 if self.stream.isatty() else 5.0)
        self._bar.total = total
        self._bar.set_postfix_str(describe(p), refresh=False)
        ahead = (p.bytes_done if by_bytes else p.files_done) - self._bar.n
        if ahead > 0:  # snapshots of two threads may arrive out of order: never go back
            self._bar.update(ahead)


class JsonFile:
    """Writes each snapshot (at most every `interval` s, always on a change of state) to `path`."""

    def __init__(self, path: Path, interval: float = 0.25) -> None:
        self.path = Path(path)
        self.interval = interval
        self._last = 0.0
        self._last_state = ""
        self._lock = threading.Lock()

    def __call__(self, p: Progress) -> None:
        with self._lock:
            now = time.monotonic()
            if p.state == self._last_state and now - self._last < self.interval:
                return
            self._last, self._last_state = now, p.state
            write_json_atomic(self.path, p.to_dict())


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(json.dumps(data, indent=1, default=str))
    os.replace(tmp, path)


def chain(*callbacks: Callback | None) -> Callback:
    """One callback calling each of the given ones."""
    live = [c for c in callbacks if c is not None]

    def call(p: Progress) -> None:
        for c in live:
            c(p)
    return call
