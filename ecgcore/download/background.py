"""Downloads in the background, for the app: each runs as its own process
(`python -m ecgcore download … --json-progress FILE --add NAME`, in its own session), so a
Streamlit script never waits on the network. The page reads the progress file; the
process itself adds the finished dataset to the workspace, so closing the browser tab
loses nothing.

Files under `$ECGCORE_HOME/downloads/`: `<id>.json` (progress, written by the process),
`<id>.meta.json` (pid, command, destination; written here), `<id>.log` (its output).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ecgcore import workspace
from ecgcore.download.catalogue import get_entry
from ecgcore.download.download_progress import Progress, describe, write_json_atomic
from ecgcore.errors import EcgcoreError
from ecgcore.package_paths import child_cwd, child_env
from ecgcore.processes import child_or_pid_alive

ACTIVE = ("starting", "listing", "downloading")


def downloads_dir() -> Path:
    folder = workspace.home() / "downloads"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _read(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def status(download_id: str) -> dict[str, Any]:
    """Meta + latest progress of one download; `state` is 'ended' (with the log's last line as
    `message`) when the process is gone without having written a final state."""
    folder = downloads_dir()
    meta = _read(folder / f"{download_id}.meta.json")
    if not meta:
        raise EcgcoreError(f"download {download_id!r}: unknown")
    progress = _read(folder / f"{download_id}.json")
    info: dict[str, Any] = {**meta, **progress, "id": download_id, "pid": meta["pid"]}
    info.setdefault("state", "starting")
    fields = {k: progress[k] for k in Progress.__dataclass_fields__ if k in progress}
    info["summary"] = describe(Progress(**fields)) if "dataset" in fields else ""
    info.setdefault("fraction", 0.0)
    if info["state"] in ACTIVE and not child_or_pid_alive(meta["pid"]):
        log = folder / f"{download_id}.log"
        lines = log.read_text(errors="replace").strip().splitlines() if log.exists() else []
        info["state"] = "ended"
        info["message"] = lines[-1] if lines else "the download process ended without a word"
    return info


def list_downloads() -> list[dict[str, Any]]:
    """Every download started from this workspace, newest first."""
    metas = sorted(downloads_dir().glob("*.meta.json"), key=lambda p: p.stat().st_mtime, reverse=True)
    return [status(p.name.removesuffix(".meta.json")) for p in metas]


def start_download(name: str, to: Path | str, *, base_url: str | None = None,
                   include: tuple[str, ...] = (), add_as: str | None = None) -> str:
    """Start downloading catalogue dataset `name` into `to` in a background process; returns
    its id. Refused while another download into the same folder is still running."""
    entry = get_entry(name)
    dest = Path(to).expanduser().resolve()
    for other in list_downloads():
        if other["state"] in ACTIVE and other.get("to") == str(dest):
            raise EcgcoreError(f"{dest}: download {other['id']} is already writing there")
    download_id = f"{name}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{time.monotonic_ns() % 10**6}"
    folder = downloads_dir()
    progress_file = folder / f"{download_id}.json"
    command = [sys.executable, "-m", "ecgcore", "download", name, "--to", str(dest),
               "--json-progress", str(progress_file), "--add", add_as or name]
    if base_url:
        command += ["--base-url", base_url]
    for pattern in include:
        command += ["--include", pattern]
    with (folder / f"{download_id}.log").open("wb") as log:
        process = subprocess.Popen(command, cwd=child_cwd(), env=child_env(), stdin=subprocess.DEVNULL,
                                   stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    write_json_atomic(folder / f"{download_id}.meta.json", {
        "dataset": name, "title": entry.title, "to": str(dest), "pid": process.pid,
        "command": command, "started": time.time(), "add_as": add_as or name})
    return download_id


def stop_download(download_id: str) -> None:
    """Ask a running download to stop (SIGTERM to the process started for it); its `.part`
    files stay, so starting it again resumes."""
    info = status(download_id)
    if info["state"] in ACTIVE:
        try:
            os.kill(int(info["pid"]), signal.SIGTERM)
        except ProcessLookupError:
            pass
