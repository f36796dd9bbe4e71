"""What a source publishes about its files, parsed into `RemoteFile`s: one lister per host.

PhysioNet: `SHA256SUMS.txt` (lines `<sha256> <path>`); Zenodo: the record JSON, whose
`files` hold `key`, `size`, `checksum` ("md5:<hex>") and `links` (older records:
`filename`, `filesize`); Hugging Face: the repository's tree JSON (`path`, `size`, and for
Git LFS files `lfs.oid`, the content's SHA-256); Google Drive: no listing at all, the one
file the catalogue names, with no published sum (algorithm "none"). Every path is
sanitised here, before anything is written: a
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
    algorithm: str        # "sha256" | "md5" | "none" (the source publishes no sum)
    digest: str           # lower-case hex ("" for "none")
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


def parse_huggingface_tree(text: str, entry: CatalogueEntry, base_url: str, revision: str) -> list[RemoteFile]:
    """A Hugging Face tree listing -> its Git LFS files, checked by the SHA-256 Hugging Face
    publishes for each (`lfs.oid`). Files kept in git itself (README.md, .gitattributes) have
    only a git blob id and are left out."""
    try:
        items = json.loads(text)
        if not isinstance(items, list):
            raise TypeError(f"a {type(items).__name__}, not a list")
    except (json.JSONDecodeError, TypeError) as err:
        raise EcgcoreError(f"Hugging Face {entry.project}: no file list in its tree JSON ({err})") from None
    files: list[RemoteFile] = []
    for item in items:
        if not isinstance(item, dict) or item.get("type") != "file":
            continue
        path = str(item.get("path", ""))
        lfs = item.get("lfs") if isinstance(item.get("lfs"), dict) else {}
        digest = str(lfs.get("oid", "")).removeprefix("sha256:")
        if not re.fullmatch(r"[0-9a-fA-F]{64}", digest):
            continue
        size = lfs.get("size", item.get("size"))
        url = f"{base_url.rstrip('/')}/{entry.project}/resolve/{revision}/{quote(path)}"
        files.append(RemoteFile(path=path, url=url, algorithm="sha256", digest=digest.lower(),
                                size=int(size) if size is not None else None, unsafe=unsafe_reason(path)))
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


def list_huggingface(entry: CatalogueEntry, base_url: str, version: str, fetch: Fetch) -> Listing:
    url = f"{base_url.rstrip('/')}/api/models/{entry.project}/tree/{version}"
    text = fetch(url).decode("utf-8", errors="replace")
    return Listing(url, "huggingface_tree.json", text, parse_huggingface_tree(text, entry, base_url, version))


def list_gdrive(entry: CatalogueEntry, base_url: str, version: str, fetch: Fetch) -> Listing:
    """Google Drive lists nothing: the catalogue's one file, fetched by its id with the
    large-file confirmation already given (`confirm=t`), with no sum to check it by."""
    url = f"{base_url.rstrip('/')}/download?id={quote(entry.project)}&export=download&confirm=t"
    text = json.dumps({"file": entry.checkpoint_file, "url": url, "source_version": version,
                       "checksum": None}, indent=2) + "\n"
    remote = RemoteFile(path=entry.checkpoint_file, url=url, algorithm="none", digest="",
                        unsafe=unsafe_reason(entry.checkpoint_file))
    return Listing(url, "gdrive_source.json", text, [remote])


LISTERS: dict[str, Callable[[CatalogueEntry, str, str, Fetch], Listing]] = {
    "physionet": list_physionet,
    "zenodo": list_zenodo,
    "huggingface": list_huggingface,
    "gdrive": list_gdrive,
}


def select(files: list[RemoteFile], *pattern_sets: tuple[str, ...]) -> list[RemoteFile]:
    """Files whose path matches at least one pattern of every non-empty pattern set."""
    def wanted(path: str) -> bool:
        return all(any(fnmatch.fnmatchcase(path, p) for p in patterns)
                   for patterns in pattern_sets if patterns)
    return [f for f in files if wanted(f.path)]
