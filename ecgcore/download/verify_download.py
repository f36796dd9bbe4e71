"""Checking files against published sums, remembering what was verified, unpacking zips.

The record of verified files is an append-only JSON-lines file in the destination
(`.ecgcore-verified.jsonl`): one line per file (path, algorithm, digest, size, mtime).
A later run skips a file whose size and mtime still match its line without reading it
again, so re-running over 80,000 verified files costs one `stat` each; a file present
but not recorded is hashed once and recorded when it matches.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import zipfile
from pathlib import Path
from typing import Any

from ecgcore.download.listing import RemoteFile, unsafe_reason
from ecgcore.errors import EcgcoreError

LOG_NAME = ".ecgcore-verified.jsonl"


class ChecksumError(EcgcoreError):
    """A file's content does not match the sum its source publishes."""


def file_digest(path: Path, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with path.open("rb") as f:
        while block := f.read(1024 * 1024):
            digest.update(block)
    return digest.hexdigest()


def check(path: Path, remote: RemoteFile) -> str:
    """'' when `path` matches `remote`'s published size and digest, else why not (a source
    that publishes no sum, algorithm "none", is checked by size only, when it gives one)."""
    size = path.stat().st_size
    if remote.size is not None and size != remote.size:
        return f"size {size} bytes, published {remote.size}"
    if remote.algorithm == "none":
        return ""
    got = file_digest(path, remote.algorithm)
    if got != remote.digest:
        return f"{remote.algorithm} {got[:16]}…, published {remote.digest[:16]}…"
    return ""


class VerifiedLog:
    """What earlier runs verified (and unpacked) in one destination folder."""

    def __init__(self, dest: Path) -> None:
        self.path = dest / LOG_NAME
        self._lock = threading.Lock()
        self.files: dict[str, dict[str, Any]] = {}
        self.unpacked: dict[str, dict[str, Any]] = {}
        if self.path.exists():
            for line in self.path.read_text().splitlines():
                try:
                    item = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut by a crash: that file is simply hashed again
                if "unpacked" in item:
                    self.unpacked[item["unpacked"]] = item
                elif "path" in item:
                    self.files[item["path"]] = item

    def _append(self, item: dict[str, Any]) -> None:
        with self._lock, self.path.open("a") as out:
            out.write(json.dumps(item) + "\n")

    def is_verified(self, target: Path, remote: RemoteFile) -> bool:
        """True when `target` is recorded as verified with this digest and is unchanged since."""
        item = self.files.get(remote.path)
        if item is None or item.get("digest") != remote.digest or not target.is_file():
            return False
        stat = target.stat()
        return item.get("size") == stat.st_size and item.get("mtime_ns") == stat.st_mtime_ns

    def record(self, target: Path, remote: RemoteFile) -> None:
        stat = target.stat()
        item = {"path": remote.path, "algorithm": remote.algorithm, "digest": remote.digest,
                "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
        with self._lock:
            self.files[remote.path] = item
        self._append(item)

    def is_unpacked(self, dest: Path, remote: RemoteFile) -> bool:
        """True when this zip (same digest) was unpacked and every member is still there."""
        item = self.unpacked.get(remote.path)
        if item is None or item.get("digest") != remote.digest:
            return False
        return all((dest / name).is_file() and (dest / name).stat().st_size == size
                   for name, size in item["members"].items())

    def record_unpacked(self, remote: RemoteFile, members: dict[str, int]) -> None:
        item = {"unpacked": remote.path, "digest": remote.digest, "members": members}
        with self._lock:
            self.unpacked[remote.path] = item
        self._append(item)


def unpack_zip(archive: Path, dest: Path) -> dict[str, int]:
    """Extract every file member of `archive` under `dest` (each written to a temporary name
    and renamed, so a cut leaves no half member); members with unsafe paths are refused."""
    members: dict[str, int] = {}
    try:
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                if info.is_dir():
                    continue
                reason = unsafe_reason(info.filename)
                if reason:
                    raise EcgcoreError(f"{archive.name}: member {info.filename!r} refused ({reason})")
                target = dest / info.filename
                target.parent.mkdir(parents=True, exist_ok=True)
                tmp = target.with_name(target.name + ".unpacking")
                with zf.open(info) as src, tmp.open("wb") as out:
                    while block := src.read(1024 * 1024):
                        out.write(block)
                os.replace(tmp, target)
                members[info.filename] = info.file_size
    except zipfile.BadZipFile as err:
        raise ChecksumError(f"{archive.name}: not a readable zip ({err})") from None
    return members
