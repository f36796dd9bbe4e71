"""`download_dataset`: list a catalogue dataset's files, fetch what is missing (resuming
`.part` files, several at a time), check each against the published sum, and optionally
add the finished dataset to the workspace.

Policy for a file that fails its check: the received copy is deleted and the file is
fetched once more from byte 0 (a resumed `.part` could hold the start of an older
version of the file); if that copy fails too, the file is reported as corrupt, nothing
is kept for it, and the other files carry on. The run then ends with a non-zero exit
(CLI) listing every failed file; running it again fetches only what is still missing.
A checkpoint entry's finished download is registered as a checkpoint
(`ecgcore.foundation.checkpoints.add_checkpoint`) rather than added as a dataset.
A file is renamed from `.part` to its name only once it matched, so a name without
`.part` under the destination always means "verified".
"""

from __future__ import annotations

import fcntl
import os
import re
import threading
from collections.abc import Iterator
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ecgcore.download.catalogue import CatalogueEntry, get_entry
from ecgcore.download.download_progress import (
    Callback,
    Tracker,
    describe,
    write_json_atomic,
)
from ecgcore.download.listing import LISTERS, RemoteFile, select
from ecgcore.download.remote import (
    DownloadStopped,
    OfflineError,
    StopSwitch,
    TransferError,
    fetch_bytes,
    fetch_to_part,
)
from ecgcore.download.verify_download import (
    ChecksumError,
    VerifiedLog,
    check,
    unpack_zip,
)
from ecgcore.errors import EcgcoreError


@dataclass
class DownloadResult:
    dataset: str
    version: str
    listing_url: str
    to: str
    root: str
    checksums: str
    files_total: int = 0
    fetched: int = 0
    skipped: int = 0
    bytes_received: int = 0
    failed: list[dict[str, str]] = field(default_factory=list)
    added_as: str = ""

    @property
    def ok(self) -> bool:
        return not self.failed

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


@dataclass
class _Job:
    entry: CatalogueEntry
    dest: Path
    log: VerifiedLog
    tracker: Tracker
    stop: StopSwitch
    retries: int


def _part_path(target: Path) -> Path:
    return target.with_name(target.name + ".part")


def _fetch_checked(job: _Job, remote: RemoteFile, target: Path) -> None:
    """Fetch into .part and check; on a mismatch delete it and fetch once more from byte 0."""
    part = _part_path(target)
    # complete before a crash, never renamed (without a published sum nothing says it is
    # complete: it is resumed instead, and the server ends a whole one with 416)
    if part.is_file() and remote.algorithm != "none" \
            and (remote.size is None or part.stat().st_size == remote.size) and not check(part, remote):
        os.replace(part, target)
        job.log.record(target, remote)
        return
    problem = ""
    for attempt in (1, 2):
        fetch_to_part(remote.url, part, lambda n: job.tracker.add(bytes_done=n), job.stop,
                      retries=job.retries)
        problem = check(part, remote)
        if not problem:
            os.replace(part, target)
            job.log.record(target, remote)
            return
        part.unlink()
    raise ChecksumError(f"corrupt twice ({problem}); the bad copy was removed. Run again, and "
                        f"tell the source if it persists")


def _one_file(job: _Job, remote: RemoteFile) -> str:
    """Bring one file to 'verified' (and unpacked, for zips to unpack): 'fetched' or 'skipped'."""
    if job.stop.is_set():
        raise DownloadStopped("download stopped; run it again to resume")
    target = job.dest / remote.path
    unpack = job.entry.unpack_zip and remote.path.lower().endswith(".zip")
    if unpack and job.log.is_unpacked(job.dest, remote):
        return "skipped"
    outcome = "skipped"
    if not job.log.is_verified(target, remote):
        job.tracker.update(current=remote.path)
        if target.is_file() and not check(target, remote):
            job.log.record(target, remote)  # already there and right: keep it
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            _fetch_checked(job, remote, target)
            outcome = "fetched"
    if unpack:
        job.log.record_unpacked(remote, unpack_zip(target, job.dest))
        target.unlink()
    return outcome


def _run_all(job: _Job, files: list[RemoteFile], workers: int, result: DownloadResult) -> None:
    """Every file through `_one_file` on a thread pool; stops everything on offline/stop."""
    fatal: list[BaseException] = []
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures: dict[Future[str], RemoteFile] = {pool.submit(_one_file, job, f): f for f in files}
        pending = set(futures)
        try:
            while pending:
                done, pending = wait(pending, timeout=0.5, return_when=FIRST_EXCEPTION)
                if job.stop.is_set():
                    job.stop.cut_connections()
                for future in done:
                    _tally(job, futures[future], future, result, fatal)
        except BaseException:  # an interrupt in this thread (a job process's SIGTERM): stop the
            job.stop.set()     # transfers too, or leaving the pool would wait for them to end
            job.stop.cut_connections()
            raise
    if fatal:
        offline = [e for e in fatal if isinstance(e, OfflineError)]
        raise (offline or fatal)[0]  # offline stops the others too: report the cause


def _tally(job: _Job, remote: RemoteFile, future: Future[str], result: DownloadResult,
           fatal: list[BaseException]) -> None:
    """Count one finished file; offline/stopped stops the others (kept in `fatal`)."""
    try:
        outcome = future.result()
    except (OfflineError, DownloadStopped) as err:
        job.stop.set()
        fatal.append(err)
        return
    except (ChecksumError, TransferError, EcgcoreError, OSError) as err:
        result.failed.append({"path": remote.path, "reason": str(err)})
        job.tracker.add(files_failed=1)
        return
    if outcome == "skipped":
        result.skipped += 1
        job.tracker.add(files_done=1, files_skipped=1)
        if remote.size and job.tracker.snapshot.bytes_total is not None:
            job.tracker.add(bytes_total=-remote.size)  # the bar counts what is to fetch
    else:
        result.fetched += 1
        job.tracker.add(files_done=1)


@contextmanager
def _exclusive(dest: Path) -> Iterator[None]:
    """One download per destination folder at a time: two writers would fight over the same
    `.part` files. An flock, so a killed process never leaves a stale lock behind."""
    lock_path = dest / ".ecgcore-download.lock"
    with lock_path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise EcgcoreError(f"{dest}: another download is writing there now "
                               f"(it holds {lock_path.name})") from None
        yield


def register_download(entry: CatalogueEntry, root: Path | str, add_as: str) -> str:
    """Add a finished download to the workspace: a dataset folder under `add_as`, or a
    checkpoint entry's file as registered checkpoint `add_as`. Returns the name."""
    if entry.is_checkpoint:
        from ecgcore.foundation.checkpoints import add_checkpoint

        return add_checkpoint(Path(root) / entry.checkpoint_file, entry.checkpoint_model, name=add_as).name
    from ecgcore import workspace

    return workspace.add_dataset(add_as, root).name


def _add_to_workspace(entry: CatalogueEntry, root: Path, add_as: str, result: DownloadResult,
                      unchecked: bool) -> None:
    """`register_download`. A checkpoint file that is refused fails the result; when its
    source published no sum (`unchecked`), loading it was its only check, so the refused
    file is deleted and a run again fetches it anew. A file that matched a published sum
    is kept. A name already taken by another checkpoint fails the result too."""
    if not entry.is_checkpoint:
        result.added_as = register_download(entry, root, add_as)
        return
    from ecgcore.foundation.checkpoints import CheckpointFileError

    try:
        result.added_as = register_download(entry, root, add_as)
    except CheckpointFileError as err:
        if unchecked:
            (root / entry.checkpoint_file).unlink(missing_ok=True)
        result.failed.append({"path": entry.checkpoint_file, "reason": f"not registered: {err}"
                              + (" (the file was deleted: its source publishes no sum)" if unchecked else "")})
    except EcgcoreError as err:
        result.failed.append({"path": entry.checkpoint_file, "reason": f"not registered: {err}"})


def download_dataset(name: str, to: Path | str, *, version: str | None = None,
                     base_url: str | None = None, include: tuple[str, ...] = (), workers: int = 4,
                     retries: int = 5, add_as: str | None = None, progress: Callback | None = None,
                     stop: threading.Event | None = None) -> DownloadResult:
    """Download catalogue dataset `name` into folder `to`; see the module docstring.

    `include`: glob patterns over the listed paths (e.g. 'records100/*'); `add_as`: register
    the dataset's folder in the workspace under this name once every file is verified (for
    a checkpoint entry: its file as a registered checkpoint, see `register_download`).
    Raises OfflineError when the host cannot be reached, DownloadStopped when `stop` is set;
    returns a result whose `failed` lists the files that could not be fetched or checked.
    """
    entry = get_entry(name)
    version = version or entry.version
    if not re.fullmatch(r"[\w.\-]+", version):
        raise EcgcoreError(f"version {version!r}: not a version name (e.g. {entry.version})")
    dest = Path(to).expanduser().resolve()
    dest.mkdir(parents=True, exist_ok=True)
    with _exclusive(dest):
        return _download(entry, version, dest, base_url=base_url, include=include, workers=workers,
                         retries=retries, add_as=add_as, progress=progress, stop=stop)


def _download(entry: CatalogueEntry, version: str, dest: Path, *, base_url: str | None,
              include: tuple[str, ...], workers: int, retries: int, add_as: str | None,
              progress: Callback | None, stop: threading.Event | None) -> DownloadResult:
    name = entry.name
    root = dest / entry.root if entry.root else dest
    tracker = Tracker(name, progress)
    tracker.update(state="listing", root=str(root), message=f"{entry.title} {version}: reading the list of files")
    switch = StopSwitch(stop)
    try:
        listing = LISTERS[entry.host](entry, base_url or entry.base_url, version, fetch_bytes)
        result = DownloadResult(dataset=name, version=version, listing_url=listing.url, to=str(dest),
                                root=str(root), checksums=entry.checksums)
        (dest / listing.filename).write_text(listing.text)  # provenance: the sums as published
        chosen = select(listing.files, entry.include, tuple(include))
        if not chosen:
            raise EcgcoreError(f"{name}: no file in {listing.url} matches {list(entry.include + include)}")
        result.files_total = len(chosen)
        for remote in (f for f in chosen if f.unsafe):
            result.failed.append({"path": remote.path, "reason": f"refused: {remote.unsafe}"})
        safe = [f for f in chosen if not f.unsafe]
        sizes = [f.size for f in safe]
        tracker.update(state="downloading", files_total=len(chosen), files_failed=len(result.failed),
                       bytes_total=sum(s for s in sizes if s is not None) if None not in sizes else None)
        job = _Job(entry, dest, VerifiedLog(dest), tracker, switch, retries)
        _run_all(job, safe, workers, result)
    except DownloadStopped as err:
        tracker.update(state="stopped", message=str(err), current="")
        raise
    except EcgcoreError as err:
        tracker.update(state="failed", message=str(err), current="")
        raise
    result.bytes_received = tracker.snapshot.bytes_done
    if result.ok and add_as:
        _add_to_workspace(entry, root, add_as, result, unchecked=any(f.algorithm == "none" for f in safe))
    summary = describe(tracker.snapshot)
    if result.ok:
        tracker.update(state="done", current="", added_as=result.added_as,
                       message=f"{entry.title} {version}: every file verified ({summary})")
    else:
        tracker.update(state="failed", current="",
                       message=f"{len(result.failed)} file(s) failed: " + "; ".join(
                           f"{f['path']}: {f['reason']}" for f in result.failed[:3]))
    write_json_atomic(dest / ".ecgcore-download.json", result.to_dict())
    return result
