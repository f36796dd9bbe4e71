"""What a source publishes about its files, parsed into `RemoteFile`s: one lister per host.

PhysioNet: `SHA256SUMS.txt` (lines `<sha256> <path>`); Zenodo: the record JSON, whose
`files` hold `key`, `size`, `checksum` ("md5:<hex>") and `links` (older records:
`filename`, `filesize`). Every path is sanitised here, before anything is written: a
path that is absolute, climbs out with `..`, or holds a backslash or NUL is refused
(kept in the listing as `unsafe` with the reason, so the run reports it and writes
nothing for it).
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePosixPath
from urllib.parse import quote

from ecgcore.download.catalogue import CatalogueEntry
from ecgcore.errors import EcgcoreError

_SUM_LINE = re.compile(r"^([0-9a-fA-F]{64})\s+\*?(.+?)\s*$")


@dataclass(frozen=True)
class RemoteFile:
    path: str             # relative to the destination folder ('/'-separated), or the raw path if unsafe
    url: str
    algorithm: str        # "sha256" | "md5"
    digest: str           # lower-case hex
    size: int | None = None
    unsafe: str = ""      # why the path was refused ("" when safe)


@dataclass(frozen=True)
class Listing:
    url: str              # where the listing came from
    filename: str         # the listing saved beside the files (provenance), e.g. SHA256SUMS.txt
    text: str
    files: list[RemoteFile]


def unsafe_reason(path: str) -> str:
    """Why `path` may not be written under the destination ("" when it may)."""
    if not path or path.strip() != path:
        return "empty or padded path"
    if "\\" in path or "\x00" in path:
        return "backslash or NUL in path"
    if path.startswith("/") or re.match(r"^[A-Za-z]:", path):
        return "absolute path"
    parts = PurePosixPath(path).parts
    if any(part == ".." for part in parts):
        return "'..' in path"
    if not parts or parts[-1] in (".", "") or path.endswith("/"):
        return "not a file path"
    return ""


def project_url(entry: CatalogueEntry, base_url: str, version: str) -> str:
    """The folder URL of one version: `<base>/<slug>/<version>` for PhysioNet."""
    return f"{base_url.rstrip('/')}/{entry.project}/{version}"


def parse_sha256sums(text: str, files_url: str) -> list[RemoteFile]:
    """`SHA256SUMS.txt` -> files (URL = folder URL + quoted path). A line that is not
    `<64 hex> <path>` is an error: it usually means an HTML page came back instead."""
    files: list[RemoteFile] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        match = _SUM_LINE.match(line)
        if match is None:
            raise EcgcoreError(f"{files_url}/SHA256SUMS.txt line {number}: not '<sha256> <path>' "
                               f"({line[:60]!r}); is the base URL right?")
        digest, path = match.group(1).lower(), match.group(2)
        files.append(RemoteFile(path=path, url=f"{files_url}/{quote(path)}", algorithm="sha256",
                                digest=digest, unsafe=unsafe_reason(path)))
    return files


def parse_zenodo_record(text: str, entry: CatalogueEntry, base_url: str) -> list[RemoteFile]:
    """A Zenodo record's JSON -> files checked by their published MD5 and size."""
    try:
        record = json.loads(text)
        items = record["files"]
        if isinstance(items, dict):  # InvenioRDM's /files endpoint shape: {"entries": [...]}
            items = items["entries"]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise EcgcoreError(f"Zenodo record {entry.project}: no file list in its JSON ({err})") from None
    files: list[RemoteFile] = []
    for item in items:
        key = item.get("key") or item.get("filename") or ""
        algorithm, _, digest = str(item.get("checksum", "")).partition(":")
        if algorithm.lower() != "md5" or not re.fullmatch(r"[0-9a-fA-F]{32}", digest):
            raise EcgcoreError(f"Zenodo record {entry.project}: file {key!r} has no 'md5:<hex>' checksum")
        links = item.get("links") or {}
        url = (links.get("content") or links.get("self") or links.get("download")
               or f"{base_url.rstrip('/')}/records/{entry.project}/files/{quote(key)}")
        size = item.get("size", item.get("filesize"))
        files.append(RemoteFile(path=key, url=url, algorithm="md5", digest=digest.lower(),
                                size=int(size) if size is not None else None,
                                unsafe=unsafe_reason(key)))
    return files


Fetch = Callable[[str], bytes]


def list_physionet(entry: CatalogueEntry, base_url: str, version: str, fetch: Fetch) -> Listing:
    folder = project_url(entry, base_url, version)
    url = f"{folder}/SHA256SUMS.txt"
    text = fetch(url).decode("utf-8", errors="replace")
    return Listing(url, "SHA256SUMS.txt", text, parse_sha256sums(text, folder))


def list_zenodo(entry: CatalogueEntry, base_url: str, version: str, fetch: Fetch) -> Listing:
    url = f"{base_url.rstrip('/')}/api/records/{version}"
    text = fetch(url).decode("utf-8", errors="replace")
    return Listing(url, f"zenodo_record_{version}.json", text, parse_zenodo_record(text, entry, base_url))


LISTERS: dict[str, Callable[[CatalogueEntry, str, str, Fetch], Listing]] = {
    "physionet": list_physionet,
    "zenodo": list_zenodo,
}


def select(files: list[RemoteFile], *pattern_sets: tuple[str, ...]) -> list[RemoteFile]:
    """Files whose path matches at least one pattern of every non-empty pattern set."""
    def wanted(path: str) -> bool:
        return all(any(fnmatch.fnmatchcase(path, p) for p in patterns)
                   for patterns in pattern_sets if patterns)
    return [f for f in files if wanted(f.path)]
