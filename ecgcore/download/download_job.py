"""Downloads as jobs of the queue: the app submits a `DownloadJob`, a worker runs it in a
job process like any run (heartbeat, progress, cancel, a new attempt when it is lost), and
the job adds the finished dataset to the workspace. The job's output is its job log.

Progress is the download's `Progress` snapshot (files and bytes done and total, the file
being fetched, state, message), reported as the job's progress. Cancelling stops the
transfers within a second (a watcher asks the job process, and the stop cuts the open
connections); the `.part` files stay, and a new attempt or a new submission of the same
download resumes them and skips every file already verified (`fetch`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ecgcore.download.catalogue import get_entry
from ecgcore.download.download_progress import ENDED, Progress, describe
from ecgcore.download.fetch import download_dataset, register_download
from ecgcore.download.remote import DownloadStopped
from ecgcore.errors import EcgcoreError
from ecgcore.jobs import queue
from ecgcore.jobs.payload import TYPE_KEY, JobContext, JobPayload, job_type

log = logging.getLogger(__name__)

#: How often the running download asks whether its job was cancelled.
CANCEL_POLL_SECONDS = 0.5


@job_type("download")
@dataclass(frozen=True)
class DownloadJob(JobPayload):
    """Download catalogue dataset `dataset` (version `version`) into folder `to` (absolute),
    then add it to the workspace as `add_as` (None: do not add); a checkpoint entry's file
    is registered as checkpoint `add_as`."""

    dataset: str
    version: str
    to: str
    base_url: str | None = None
    include: tuple[str, ...] = ()
    workers: int = 4
    add_as: str | None = None

    @classmethod
    def of(cls, name: str, to: Path | str, *, version: str | None = None, base_url: str | None = None,
           include: tuple[str, ...] = (), workers: int = 4, add_as: str | None = None) -> DownloadJob:
        """The job for catalogue dataset `name` (its default version unless given) into `to`."""
        entry = get_entry(name)
        return cls(dataset=name, version=version or entry.version, to=str(Path(to).expanduser().resolve()),
                   base_url=base_url or None, include=tuple(include), workers=workers, add_as=add_as)

    @property
    def title(self) -> str:
        return get_entry(self.dataset).title

    @property
    def label(self) -> str:
        return f"download {self.dataset} {self.version} -> {self.to}"

    @property
    def config_hash(self) -> str:
        """Same dataset, version and folder: the same download (a second submission while
        one is active reuses that job)."""
        key = json.dumps([self.dataset, self.version, self.to])
        return "download-" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]

    def to_payload(self) -> dict[str, Any]:
        return {TYPE_KEY: self.job_type, "dataset": self.dataset, "version": self.version, "to": self.to,
                "base_url": self.base_url, "include": list(self.include), "workers": self.workers,
                "add_as": self.add_as, "label": self.label}

    @classmethod
    def from_payload(cls, data: dict[str, Any]) -> DownloadJob:
        return cls(dataset=data["dataset"], version=data["version"], to=data["to"],
                   base_url=data.get("base_url"), include=tuple(data.get("include") or ()),
                   workers=int(data.get("workers") or 4), add_as=data.get("add_as"))

    def perform(self, context: JobContext) -> str | None:
        """Download in this process (resuming what an earlier attempt left); raises the job
        process's cancellation when cancelled, an EcgcoreError when a file failed."""
        if context.attempt > 1:
            log.info(f"attempt {context.attempt}: resuming; verified files are not fetched again")
        stop = threading.Event()
        cancelled: list[BaseException] = []
        watcher = threading.Thread(target=_watch_cancel, args=(context, stop, cancelled),
                                   name="download-cancel", daemon=True)
        watcher.start()
        try:
            result = download_dataset(self.dataset, self.to, version=self.version, base_url=self.base_url,
                                      include=self.include, workers=self.workers,
                                      # on a cluster node the dispatcher adds it (record_in_index)
                                      add_as=self.add_as if context.indexed else None,
                                      progress=_Reporter(context), stop=stop)
        except DownloadStopped:
            if cancelled:
                raise cancelled[0] from None
            raise
        finally:
            stop.set()
            watcher.join()
        if not result.ok:
            raise EcgcoreError(f"{len(result.failed)} file(s) failed: " + "; ".join(
                f"{f['path']}: {f['reason']}" for f in result.failed))
        if result.added_as:
            log.info(f"added to the workspace as {result.added_as}")
        return None

    def record_in_index(self) -> None:
        """Done on a cluster node, which cannot write the index: add the dataset here (a
        checkpoint download: register its file as a checkpoint)."""
        if self.add_as:
            entry = get_entry(self.dataset)
            root = Path(self.to) / entry.root if entry.root else Path(self.to)
            name = register_download(entry, root, self.add_as)
            log.info(f"{self.dataset}: added to the workspace as {name}")


def _watch_cancel(context: JobContext, stop: threading.Event, cancelled: list[BaseException]) -> None:
    """Until the download ends: when the job is cancelled, keep the reason and stop it."""
    while not stop.wait(CANCEL_POLL_SECONDS):
        try:
            context.check_cancelled()
        except BaseException as exc:  # noqa: BLE001 -- the job process's cancellation, re-raised by perform
            cancelled.append(exc)
            stop.set()


class _Reporter:
    """Download progress -> the job's progress, and a line in the job log at each stage."""

    def __init__(self, context: JobContext) -> None:
        self.context = context
        self._state = ""
        self._lock = threading.Lock()

    def __call__(self, p: Progress) -> None:
        with self._lock:
            changed, self._state = p.state != self._state, p.state
        self.context.report(p.to_dict(), force=changed)  # a new stage (and the last one) at once
        if changed and p.state in ("listing", *ENDED):
            log.info(p.message)
        elif changed and p.state == "downloading":
            log.info(f"{p.dataset}: {p.files_total} files to bring to verified")


@dataclass(frozen=True)
class DownloadStatus:
    """A download job as the Datasets page shows it: the queue's state and the download's
    latest progress."""

    job_id: str
    state: str               # the queue's: queued, waiting, running, cancelling, done, failed, cancelled
    job: DownloadJob
    progress: Progress
    error: str | None

    @property
    def stage(self) -> str:
        """What a running download is doing (listing, downloading), else the queue's state."""
        return self.progress.state if self.state == "running" and self.progress.state != "starting" \
            else self.state

    @property
    def summary(self) -> str:
        return describe(self.progress)

    @property
    def message(self) -> str:
        """Why it ended as it did: the job's error, else the download's last message."""
        return self.error or self.progress.message


def download_jobs(limit: int | None = None) -> list[DownloadStatus]:
    """The download jobs of this workspace, newest first."""
    items: list[DownloadStatus] = []
    for row in reversed(queue.list_jobs()):
        if row["kind"] != DownloadJob.job_type:
            continue
        job = DownloadJob.from_payload(row["spec"])
        progress = Progress.from_dict(row["progress"] or {"dataset": job.dataset})
        items.append(DownloadStatus(row["job_id"], row["state"], job, progress, row["error"]))
        if limit is not None and len(items) >= limit:
            break
    return items


def submit_download(job: DownloadJob) -> str:
    """Queue `job`; returns its job id (the active job's when the same download is already
    queued or running). Refused while another download is active into the same folder:
    it holds the folder's lock, so this one would fail when it starts."""
    for other in download_jobs():
        if other.state in queue.ACTIVE and other.job.to == job.to and other.job.config_hash != job.config_hash:
            raise EcgcoreError(f"{job.to}: download job {other.job_id} ({other.job.dataset}) "
                               f"is already writing there")
    [job_id] = queue.submit_payloads([job])
    return job_id
