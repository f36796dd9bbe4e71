"""Expensive workspaces built once per test session, however many pytest-xdist workers run.

Each xdist worker has its own `tmp_path_factory.getbasetemp()` (`…/pytest-N/popen-gwK`), so
a session fixture is built once per worker. Their common parent `…/pytest-N` is new for
every session and shared by its workers: a workspace there, built under an exclusive lock
and marked ready when complete, is built by the first worker that needs it; every worker
then works in its own copy, so tests that write into it (uploads, new runs) never meet
another worker's writes. Without xdist the workspace is built in the base folder and used
as it is.
"""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Callable
from pathlib import Path

READY = ".ready"


def session_root(basetemp: Path) -> Path:
    """The temp folder every worker of this session shares (`basetemp` itself without xdist)."""
    return basetemp.parent if os.environ.get("PYTEST_XDIST_WORKER") else basetemp


def shared_workspace(basetemp: Path, name: str, build: Callable[[Path], None]) -> Path:
    """The workspace `name` for this worker: built by `build(folder)` once per session
    (`basetemp` is `tmp_path_factory.getbasetemp()`), copied once per worker."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return build_once(basetemp / name, build)
    mine = basetemp / name
    if not (mine / READY).is_file():
        shutil.rmtree(mine, ignore_errors=True)
        worker_copy(build_once(session_root(basetemp) / name, build), mine)
    return mine


def build_once(folder: Path, build: Callable[[Path], None]) -> Path:
    """`folder`, built by `build(folder)` unless a process already finished it. The lock
    file sits beside the folder; a build that raised leaves no ready mark, so the next
    caller starts again from an empty folder (and meets the same error)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f"{folder.name}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not (folder / READY).is_file():
                shutil.rmtree(folder, ignore_errors=True)
                folder.mkdir()
                build(folder)
                (folder / READY).write_text("ok\n")
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return folder


def worker_copy(built: Path, copy: Path) -> Path:
    """A copy of a built workspace: each dataset site linked (tests only read them),
    everything else (runs, store, cache) copied; marked ready last."""
    (copy / "datasets").mkdir(parents=True)
    for entry in built.iterdir():
        if entry.name == "datasets":
            for site in entry.iterdir():
                (copy / "datasets" / site.name).symlink_to(site.resolve())
        elif entry.is_dir():
            shutil.copytree(entry, copy / entry.name, symlinks=True)
        elif entry.name != READY:
            shutil.copy2(entry, copy / entry.name)
    (copy / READY).write_text("ok\n")
    return copy
