"""Making uploaded bytes safe to put on disk: names, sizes, zip archives, a private folder.

An upload comes from a browser, so every part of it is untrusted: its file names (may
hold `..`, absolute paths, NUL bytes), its size, and the members of a zip (absolute
paths, `..`, symlinks, thousands of entries, or a few kilobytes that inflate to
gigabytes). Everything here refuses such input with an `UploadError` naming the file
and the reason; nothing an upload holds is executed or unpickled, and files are only
ever written inside a fresh private folder under `$ECGCORE_HOME/uploads/`.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import stat
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ecgcore import workspace
from ecgcore.errors import RecordError

MB = 1024 * 1024
# Matches .streamlit/config.toml `server.maxUploadSize = 50` (MB): the CLI and tests get
# the same limit the browser enforces.
MAX_UPLOAD_BYTES = 50 * MB
# What the files of one upload, zips unpacked, may add up to (a zip bomb stops here).
MAX_UNPACKED_BYTES = 100 * MB
MAX_ZIP_MEMBERS = 200
MAX_NAME_LENGTH = 128
UPLOADS_DIR = "uploads"

_UNSAFE_CHARS = re.compile(r"[^A-Za-z0-9._+-]")
# Files a zip tool adds beside the real ones (macOS resource forks, Finder metadata).
_ZIP_NOISE_PREFIXES = ("__MACOSX/", "._")
_ZIP_NOISE_NAMES = frozenset({".DS_Store", "Thumbs.db"})
_CHUNK = 1 * MB


class UploadError(RecordError):
    """An uploaded file cannot be used; the message names the file and the reason."""


@dataclass(frozen=True)
class UploadedFile:
    """One uploaded file: the name the browser sent and its bytes."""

    name: str
    data: bytes


def safe_name(name: str) -> str:
    """A plain file name for an uploaded name: the last path component, characters other
    than letters, digits and `._+-` replaced by `_`, no leading dot (so no hidden or
    special names such as `..`). Raises UploadError when nothing usable is left."""
    if "\x00" in name:
        raise UploadError(repr(name), "file name contains a NUL byte")
    base = re.split(r"[\\/]", name.strip())[-1]
    cleaned = _UNSAFE_CHARS.sub("_", base).lstrip(".")
    if not cleaned or cleaned.strip("_") == "":
        raise UploadError(repr(name), "not a usable file name")
    if len(cleaned) > MAX_NAME_LENGTH:
        stem, dot, suffix = cleaned.rpartition(".")
        keep = MAX_NAME_LENGTH - len(suffix) - 1
        cleaned = f"{stem[:keep]}.{suffix}" if dot and keep > 0 else cleaned[:MAX_NAME_LENGTH]
    return cleaned


def check_upload_size(files: list[UploadedFile], limit: int = MAX_UPLOAD_BYTES) -> None:
    """Refuse an upload whose files add up to more than `limit` bytes."""
    total = sum(len(f.data) for f in files)
    if total > limit:
        largest = max(files, key=lambda f: len(f.data))
        raise UploadError(largest.name, f"upload is {total / MB:.1f} MB, more than the "
                                        f"{limit / MB:g} MB limit")


def _member_problem(info: zipfile.ZipInfo) -> str | None:
    """Why a zip member must not be unpacked, or None."""
    raw = info.filename
    posix = raw.replace("\\", "/")
    if posix.startswith("/") or re.match(r"^[A-Za-z]:", posix) or PurePosixPath(posix).is_absolute():
        return f"member {raw!r} has an absolute path"
    if ".." in posix.split("/"):
        return f"member {raw!r} points outside the archive (`..`)"
    if stat.S_ISLNK(info.external_attr >> 16):
        return f"member {raw!r} is a symbolic link"
    if info.flag_bits & 0x1:
        return f"member {raw!r} is encrypted"
    return None


def _is_noise(member: str) -> bool:
    posix = member.replace("\\", "/")
    base = posix.rsplit("/", 1)[-1]
    return posix.startswith(_ZIP_NOISE_PREFIXES[0]) or base.startswith(_ZIP_NOISE_PREFIXES[1]) \
        or base in _ZIP_NOISE_NAMES


def expand_zip(upload: UploadedFile, budget: int = MAX_UNPACKED_BYTES) -> list[UploadedFile]:
    """The files inside a zip upload (folders flattened to plain names), refusing absolute
    paths, `..`, symlinks, encrypted or nested archives, more than MAX_ZIP_MEMBERS members,
    and more than `budget` bytes unpacked — counted on the bytes actually inflated, since
    a zip's own size fields can lie."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(upload.data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, NotImplementedError, EOFError,
            OSError) as exc:  # NotImplementedError: a damaged "version needed" field
        raise UploadError(upload.name, f"not a readable zip archive ({exc})") from exc
    with archive:
        infos = archive.infolist()
        if len(infos) > MAX_ZIP_MEMBERS:
            raise UploadError(upload.name, f"zip holds {len(infos)} entries, more than "
                                           f"{MAX_ZIP_MEMBERS}")
        for info in infos:
            problem = _member_problem(info)
            if problem:
                raise UploadError(upload.name, problem)
        declared = sum(info.file_size for info in infos)
        if declared > budget:
            raise UploadError(upload.name, f"zip would unpack to {declared / MB:.1f} MB, more "
                                           f"than the {budget / MB:g} MB limit")
        members: list[UploadedFile] = []
        used = 0
        for info in infos:
            if info.is_dir() or _is_noise(info.filename):
                continue
            if info.filename.lower().endswith(".zip"):
                raise UploadError(upload.name, f"member {info.filename!r} is a zip inside the "
                                               "zip; nested archives are not unpacked")
            data, used = _inflate(archive, info, upload.name, budget, used)
            members.append(UploadedFile(info.filename, data))
    return members


def _inflate(archive: zipfile.ZipFile, info: zipfile.ZipInfo, zip_name: str, budget: int,
             used: int) -> tuple[bytes, int]:
    """One member's bytes, read in chunks so a lying size field cannot exceed the budget."""
    parts: list[bytes] = []
    try:
        with archive.open(info) as member:
            while chunk := member.read(_CHUNK):
                used += len(chunk)
                if used > budget:
                    raise UploadError(zip_name, f"zip unpacks to more than the {budget / MB:g} MB "
                                                "limit")
                parts.append(chunk)
    except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError, RuntimeError) as exc:
        raise UploadError(zip_name, f"member {info.filename!r} cannot be unpacked ({exc})") from exc
    return b"".join(parts), used


def uploads_root() -> Path:
    """$ECGCORE_HOME/uploads: the only place upload bytes are ever written."""
    root = workspace.home() / UPLOADS_DIR
    root.mkdir(parents=True, exist_ok=True)
    return root


@contextmanager
def staging_dir() -> Iterator[Path]:
    """A fresh private folder (mode 0700) under $ECGCORE_HOME/uploads, removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="upload-", dir=uploads_root()))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def write_file(folder: Path, name: str, data: bytes) -> Path:
    """Write `data` as `folder/name` where `name` must already be a safe plain name: the
    target is checked to sit directly in `folder`, must not exist, and is never a symlink
    (O_EXCL | O_NOFOLLOW), so nothing outside the folder can be created or overwritten."""
    if safe_name(name) != name:
        raise UploadError(name, "not a plain file name")
    target = folder / name
    if target.resolve().parent != folder.resolve():
        raise UploadError(name, "would be written outside the upload folder")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(target, flags, 0o600)
    except FileExistsError as exc:
        raise UploadError(name, "uploaded twice (two files with the same name)") from exc
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    return target
