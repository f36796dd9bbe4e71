"""The on-disk cache of prepared arrays: key, layout, atomic completion, loading.

One cache entry is a folder `<cache_dir>/<key>/` holding
  X.npy           float32 (n_kept, n_leads, T), opened as a read-only memmap
  record_ids.json the record of each row of X
  status.csv      one row per input record: ok/dropped, reason, padding, NaN repair, missing leads
  lead_mask.npy   bool (n_kept, n_leads): real signal present (False = zero-filled)
  lengths.npy     int (n_kept,): samples of real signal per row (the rest is zero padding)
  meta.json       config, key, shapes, creation time -- written LAST
An entry is built in a `.tmp-*` folder and renamed into place only when complete,
so a crashed or killed build never leaves a folder that looks finished; a `<key>`
folder without a valid meta.json is treated as absent and rebuilt. Nothing is
fsync'ed (a cache is cheap to rebuild, and syncing 2 GB would cost seconds): after
an OS crash or power loss, delete the cache folder. Temp folders older than a day
are removed by the next build.

The key hashes each record file's path, size and modification time (os.stat, not the
bytes: hashing ~2 GB of PTB-XL would cost more than preparing it), the record ids,
the layout and its options, and the PrepConfig. Editing, replacing or touching a file
gives a new key. `key_mode="content"` hashes file bytes and paths relative to the
dataset root instead: slower, but stable when a dataset is copied elsewhere.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ecgcore.data.prepare.config import PrepConfig
from ecgcore.data.recordset import Recordset

# Kept by hand, not joblib.Memory: an entry is a read-only memmap plus status tables, published atomically.
CACHE_FORMAT = 1  # bump when the entry layout or the pipeline's output changes
KEY_MODES: tuple[str, ...] = ("metadata", "content")
# status.csv: one row per input record. row = row in X (-1 when dropped); fs_in and
# n_samples_in as read (NaN / -1 when dropped); n_valid = real samples in the window;
# nan_leads / missing_leads = lead names joined by "|".
STATUS_DTYPES: dict[str, type] = {
    "record_id": str, "status": str, "reason": str, "row": int, "fs_in": float,
    "n_samples_in": int, "n_valid": int, "padded": bool, "truncated": bool,
    "nan_interpolated": int, "nan_leads": str, "missing_leads": str,
}
STATUS_COLUMNS: tuple[str, ...] = tuple(STATUS_DTYPES)
TEMP_PREFIX = ".tmp-"
STALE_TEMP_SECONDS = 24 * 3600.0


@dataclass(frozen=True)
class Prepared:
    """A prepared dataset: rows of `X` are `record_ids`, in the recordset's order."""

    X: np.ndarray  # np.memmap, read-only, float32 (n_records, n_leads, T)
    record_ids: list[str]
    dropped: dict[str, str]  # record -> reason
    config: PrepConfig
    key: str
    path: Path
    status: pd.DataFrame = field(repr=False)
    lead_mask: np.ndarray = field(repr=False)
    lengths: np.ndarray = field(repr=False)
    meta: dict[str, Any] = field(repr=False, default_factory=dict)

    def __len__(self) -> int:
        return len(self.record_ids)

    @property
    def leads(self) -> tuple[str, ...]:
        return self.config.leads

    def rows(self, record_ids: list[str]) -> np.ndarray:
        """Row numbers in X of the given records (KeyError names a record not kept)."""
        position = {rid: i for i, rid in enumerate(self.record_ids)}
        missing = [rid for rid in record_ids if rid not in position]
        if missing:
            reasons = [f"{rid} ({self.dropped.get(rid, 'not in this dataset')})" for rid in missing[:5]]
            raise KeyError(f"{len(missing)} records not in the prepared array: {', '.join(reasons)}")
        return np.array([position[rid] for rid in record_ids], dtype=np.int64)


# ------------------------------------------------------------------ key

def file_stamp(path: Path) -> str:
    """"path|size|mtime_ns" of one file ("path|missing" when it cannot be stat'ed): what
    a metadata-mode key covers of it."""
    try:
        st = os.stat(path)
    except OSError:
        return f"{path}|missing"
    return f"{path}|{st.st_size}|{st.st_mtime_ns}"


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cache_key(recordset: Recordset, config: PrepConfig, key_mode: str = "metadata") -> str:
    """Hash of what determines X (see the module docstring). Reads no signal."""
    if key_mode not in KEY_MODES:
        raise ValueError(f"key_mode must be one of {KEY_MODES}, got {key_mode!r}")
    digest = hashlib.sha256()
    head = {"format": CACHE_FORMAT, "config": config.to_dict(), "key_mode": key_mode,
            "layout": recordset.layout, "options": recordset.open_options}
    digest.update(json.dumps(head, sort_keys=True, default=str).encode())
    root = Path(recordset.root)
    for rid in recordset.record_ids:  # the files each reader noted while scanning: no header is read
        parts = [rid]
        for path in recordset.files(rid):
            if key_mode == "metadata":
                parts.append(file_stamp(path))
                continue
            try:
                parts.append(f"{_relative(path, root)}|{_file_digest(path)}")
            except OSError:
                parts.append(f"{path}|missing")
        digest.update(("\0".join(parts) + "\n").encode("utf-8", "surrogateescape"))
    return digest.hexdigest()[:24]


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


# ------------------------------------------------------------------ entries

def new_temp_dir(cache_dir: Path, key: str) -> Path:
    path = cache_dir / f"{TEMP_PREFIX}{key}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    path.mkdir(parents=True)
    return path


def open_entry(path: Path) -> Prepared | None:
    """The entry at `path`, or None when it is absent or incomplete (no/invalid meta.json,
    missing or short files)."""
    try:
        meta = json.loads((path / "meta.json").read_text())
        if not meta.get("complete") or meta.get("format") != CACHE_FORMAT or meta.get("key") != path.name:
            return None
        X = np.load(path / "X.npy", mmap_mode="r")
        if list(X.shape) != meta["shape"]:
            return None
        record_ids = json.loads((path / "record_ids.json").read_text())
        status = pd.read_csv(path / "status.csv", dtype=STATUS_DTYPES, keep_default_na=False,
                             na_values={"fs_in": [""]})
        lead_mask = np.load(path / "lead_mask.npy")
        lengths = np.load(path / "lengths.npy")
    except (OSError, ValueError, TypeError, KeyError, json.JSONDecodeError, pd.errors.ParserError):
        return None
    if len(record_ids) != X.shape[0] or len(lead_mask) != X.shape[0] or len(lengths) != X.shape[0]:
        return None
    dropped_rows = status[status["status"] != "ok"]
    return Prepared(
        X=X, record_ids=[str(r) for r in record_ids],
        dropped=dict(zip(dropped_rows["record_id"], dropped_rows["reason"])),
        config=PrepConfig.from_dict(meta["config"]), key=meta["key"], path=path,
        status=status, lead_mask=lead_mask, lengths=lengths, meta=meta,
    )


def write_meta(path: Path, meta: dict[str, Any]) -> None:
    """meta.json marks the entry complete, so it is written last and via rename."""
    meta = {**meta, "format": CACHE_FORMAT, "complete": True, "created": time.time()}
    partial = path / "meta.json.partial"
    partial.write_text(json.dumps(meta, indent=2, default=str))
    os.replace(partial, path / "meta.json")


def publish(temp: Path, final: Path, is_complete: Callable[[Path], bool] | None = None) -> Path:
    """Rename a finished temp folder to its key. If another process finished the same
    key first, keep theirs; an incomplete folder in the way is moved aside and removed.
    `is_complete` tells a finished entry (default: a prepared-array entry `open_entry` reads;
    the embedding cache passes its own)."""
    complete = is_complete or (lambda path: open_entry(path) is not None)
    if final.exists():
        if complete(final):
            shutil.rmtree(temp, ignore_errors=True)
            return final
        aside = final.with_name(f"{TEMP_PREFIX}stale-{final.name}-{uuid.uuid4().hex[:8]}")
        os.rename(final, aside)
        shutil.rmtree(aside, ignore_errors=True)
    try:
        os.rename(temp, final)
    except OSError:
        if not complete(final):
            raise
        shutil.rmtree(temp, ignore_errors=True)
    return final


def remove_stale_temps(cache_dir: Path, older_than: float = STALE_TEMP_SECONDS) -> None:
    """Delete temp folders left by builds that died more than `older_than` seconds ago."""
    now = time.time()
    for entry in cache_dir.glob(f"{TEMP_PREFIX}*"):
        try:
            if entry.is_dir() and now - entry.stat().st_mtime > older_than:
                shutil.rmtree(entry, ignore_errors=True)
        except OSError:
            continue
