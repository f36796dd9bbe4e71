"""Checksums recorded when a run finishes, and checking a run folder against them.

`RunStore.finish` writes results.json and then, LAST, `checksums.json`: the SHA-256 and
size of every file of the folder that is final at that moment (config.json, history.csv,
results.json, predictions.npz, model.pt, and any other top-level file such as
test_by_epoch.csv). It is written atomically (temp file, then rename), so a folder with
a manifest is a complete one, and a finished run whose files no longer match it was
changed (or damaged) after it finished.

Left out on purpose: `log.txt` (the runner appends its "done" line after finishing, and
it stays append-only), the trainer's `checkpoints/` (its resume state, not the result),
and hidden files (temp files of a write in progress).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ecgcore.errors import EcgcoreError

MANIFEST_FILE = "checksums.json"
MANIFEST_FORMAT = "ecgcore-run-checksums"
MANIFEST_VERSION = 1
#: Appended to after the run finished, so not covered by the manifest.
GROWING_FILES: frozenset[str] = frozenset({"log.txt"})
#: Files every finished run's manifest must cover.
REQUIRED_FILES: tuple[str, ...] = ("config.json", "results.json", "model.pt")
_CHUNK = 1 << 20


def file_digest(path: Path) -> dict[str, Any]:
    """{"sha256": hex digest, "size": bytes} of one file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return {"sha256": digest.hexdigest(), "size": size}


def covered_files(folder: Path) -> list[str]:
    """The files a manifest of this folder covers now (sorted names, top level only)."""
    return sorted(p.name for p in folder.iterdir()
                  if p.is_file() and not p.name.startswith(".")
                  and p.name != MANIFEST_FILE and p.name not in GROWING_FILES)


def build_manifest(folder: Path, run_id: str, created: str) -> dict[str, Any]:
    """The manifest of a folder as it is now (nothing written)."""
    files = {name: file_digest(folder / name) for name in covered_files(folder)}
    return {"format": MANIFEST_FORMAT, "version": MANIFEST_VERSION, "run_id": run_id,
            "created": created, "algorithm": "sha256", "files": files}


def read_manifest(folder: Path) -> dict[str, Any] | None:
    """The folder's manifest, None when it has none; EcgcoreError when it is unreadable."""
    path = folder / MANIFEST_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise EcgcoreError(f"{path}: not valid JSON ({exc})") from exc
    files = data.get("files") if isinstance(data, dict) else None
    if (not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT
            or not isinstance(files, dict)
            or not all(isinstance(v, Mapping) and {"sha256", "size"} <= set(v) for v in files.values())):
        raise EcgcoreError(f"{path}: not a run checksum manifest ({MANIFEST_FORMAT} with files)")
    return data


def _results_status(folder: Path) -> tuple[str | None, list[str]]:
    """(status in results.json or None without one, problems reading it)."""
    path = folder / "results.json"
    if not path.is_file():
        return None, []
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return "unreadable", [f"results.json is not valid JSON ({exc})"]
    if not isinstance(results, dict):
        return "unreadable", ["results.json does not hold a JSON object"]
    return str(results.get("status")), []


def verify_folder(folder: Path) -> list[str]:
    """Problems of one run folder (empty: it is good). A finished ("done") run must have a
    manifest that covers config.json, results.json and model.pt, and every file it lists
    must still have its recorded size and SHA-256. A run that has not finished, or ended
    failed/cancelled, claims no completeness: it is good unless it has a manifest anyway."""
    folder = Path(folder)
    if not folder.is_dir():
        return [f"{folder}: no such run folder"]
    status, problems = _results_status(folder)
    try:
        manifest = read_manifest(folder)
    except EcgcoreError as exc:
        return problems + [str(exc)]
    if manifest is None:
        if status == "done":
            problems.append(f"finished but has no {MANIFEST_FILE} (it stopped while finishing, "
                            "or finished before checksums were recorded)")
        return problems
    if status != "done":
        problems.append(f"has {MANIFEST_FILE} but results.json says status {status!r}, not 'done'")
    if manifest.get("run_id") != folder.name:
        problems.append(f"{MANIFEST_FILE} names run {manifest.get('run_id')!r}, not {folder.name!r}")
    files: dict[str, Mapping[str, Any]] = manifest["files"]
    problems += [f"{name} is not covered by {MANIFEST_FILE}" for name in REQUIRED_FILES if name not in files]
    for name, recorded in sorted(files.items()):
        path = folder / name
        if Path(name).name != name or not path.is_file():
            problems.append(f"{name} is missing (recorded {recorded['size']} bytes)")
            continue
        actual = file_digest(path)
        if actual["size"] != recorded["size"]:
            problems.append(f"{name} has {actual['size']} bytes, {recorded['size']} recorded at finish")
        elif actual["sha256"] != recorded["sha256"]:
            problems.append(f"{name} changed after the run finished (SHA-256 differs from {MANIFEST_FILE})")
    return problems
