"""How a job process that may not open the index (a job on a cluster node) talks with the
dispatcher that owns it: small files in the workspace's `jobs/<job_id>/` folder, one set
per attempt, each written whole and renamed into place (a reader never sees half a file).

    claim-<n>.json   dispatcher -> job: the job as claimed (payload, attempt, earlier run)
    report-<n>.json  job -> dispatcher: heartbeat count, pid, host, progress, run id, and
                     at the end the job's state and error
    cancel-<n>       dispatcher -> job: the job was cancelled (the job stops at its next
                     step; the Ray task on its node signals it after the grace period)
    ack-<n>          dispatcher -> job: the end report is in the index; the job process
                     waits for it before exiting, so an exited job process always means
                     its end is recorded (or the dispatcher was gone: see ACK_SECONDS)

`FileLedger` is the job process's side (`job_process.Ledger`), `Relay` the dispatcher's:
every loop it copies each report into the job table (a new heartbeat count refreshes the
heartbeat, by the dispatcher's own clock), indexes the job's run folder when its run is
named and when it ends (`RunStore.index_run`), and passes cancel requests on.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ecgcore.errors import EcgcoreError
from ecgcore.jobs import queue

log = logging.getLogger(__name__)

#: How long an ended job process waits for the dispatcher to record its end.
ACK_SECONDS = 30.0
ACK_POLL_SECONDS = 0.1


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write `data` as JSON to a temporary file beside `path`, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    temporary.write_text(json.dumps(data, default=str), encoding="utf-8")
    os.replace(temporary, path)


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None


@dataclass(frozen=True)
class AttemptFiles:
    """The files of one attempt of one job (see the module's docstring)."""

    job_id: str
    attempt: int

    @property
    def folder(self) -> Path:
        return queue.jobs_dir() / self.job_id

    @property
    def claim(self) -> Path:
        return self.folder / f"claim-{self.attempt}.json"

    @property
    def report(self) -> Path:
        return self.folder / f"report-{self.attempt}.json"

    @property
    def cancel(self) -> Path:
        return self.folder / f"cancel-{self.attempt}"

    @property
    def ack(self) -> Path:
        return self.folder / f"ack-{self.attempt}"

    @classmethod
    def of_claim(cls, path: Path) -> AttemptFiles:
        """The files beside a claim file `<jobs>/<job_id>/claim-<n>.json`."""
        attempt = path.stem.removeprefix("claim-")
        if path.suffix != ".json" or not path.stem.startswith("claim-") or not attempt.isdigit():
            raise EcgcoreError(f"{path}: not a claim file (<jobs>/<job_id>/claim-<attempt>.json)")
        return cls(path.parent.name, int(attempt))


class FileLedger:
    """The job process's side: the job from its claim file, heartbeats and the end into
    its report file, the cancel request from the cancel file."""

    indexed = False

    def __init__(self, job_id: str, claim: Path) -> None:
        self.files = AttemptFiles.of_claim(Path(claim))
        if self.files.job_id != job_id:
            raise EcgcoreError(f"claim file {claim} is not job {job_id}'s")
        self._seq = 0

    def job(self) -> dict[str, Any]:
        job = read_json(self.files.claim)
        if job is None:
            raise EcgcoreError(f"no claim file {self.files.claim} (the dispatcher writes it before starting the job)")
        return job

    def _write(self, state: str, progress: dict[str, Any], run_id: str | None, error: str | None = None) -> None:
        self._seq += 1
        write_json(self.files.report, {
            "job_id": self.files.job_id, "attempt": self.files.attempt, "seq": self._seq, "state": state,
            "pid": os.getpid(), "host": socket.gethostname(), "progress": progress, "run_id": run_id,
            "error": error})

    def beat(self, progress: dict[str, Any], run_id: str | None) -> str:
        self._write("running", progress, run_id)
        return "cancelling" if self.files.cancel.exists() else "running"

    def end(self, state: str, error: str | None, run_id: str | None) -> None:
        """The end report, then wait (at most ACK_SECONDS) until the dispatcher recorded it."""
        previous = read_json(self.files.report) or {}
        self._write(state, previous.get("progress") or {}, run_id or previous.get("run_id"), error)
        deadline = time.monotonic() + ACK_SECONDS
        while not self.files.ack.exists() and time.monotonic() < deadline:
            time.sleep(ACK_POLL_SECONDS)


class Relay:
    """The dispatcher's side: every running job that reports through files (it has a claim
    file for its current attempt) has its report copied into the job table and its cancel
    request passed on. Jobs whose dispatcher died are relayed by the next one too."""

    def __init__(self) -> None:
        self._seen: dict[tuple[str, int], int] = {}  # (job, attempt) -> last report's seq
        self._store: Any = None

    def claim(self, job: dict[str, Any]) -> AttemptFiles:
        """Write the claim file of a job this dispatcher is about to start."""
        files = AttemptFiles(job["job_id"], int(job["attempts"]))
        write_json(files.claim, job)
        return files

    def sync(self) -> None:
        for job in queue.running_jobs():
            files = AttemptFiles(job["job_id"], int(job["attempts"]))
            if not files.claim.is_file():
                continue  # a job that writes the index itself
            if job["state"] == "cancelling" and not files.cancel.exists():
                files.cancel.parent.mkdir(parents=True, exist_ok=True)
                files.cancel.touch()
            report = read_json(files.report)
            if report is not None:
                self.relay(job, files, report)

    def relay(self, job: dict[str, Any], files: AttemptFiles, report: dict[str, Any]) -> None:
        """One report into the index (nothing when it is the one relayed last time)."""
        key = (files.job_id, files.attempt)
        if self._seen.get(key) == report["seq"]:
            return
        self._seen[key] = report["seq"]
        job_id, run_id = files.job_id, report.get("run_id")
        if report.get("pid") and (report["pid"], report.get("host")) != (job["pid"], job["host"]):
            queue.set_pid(job_id, int(report["pid"]), report.get("host"))
        if run_id and run_id != job["run_id"]:
            self._index(run_id, running=True)
        queue.beat(job_id, report.get("progress"), run_id)  # the last progress too, when it ended
        if report["state"] in queue.ENDED:
            if run_id:
                self._index(run_id, running=False)
            if report["state"] == "done":
                self._record(job)
            queue.end(job_id, report["state"], report.get("error"), run_id)
            files.ack.touch()
            self._seen.pop(key, None)
            log.debug("%s: %s (relayed)", job_id, report["state"])

    @staticmethod
    def _record(job: dict[str, Any]) -> None:
        """What the ended job could not write into the index itself (a download's dataset)."""
        from ecgcore.jobs.job_types import payload_of

        try:
            payload_of(job["spec"]).record_in_index()
        except EcgcoreError as exc:
            log.warning("%s: done, but not recorded in the index: %s", job["job_id"], exc)

    def _index(self, run_id: str, running: bool) -> None:
        from ecgcore.runs import RunStore

        self._store = self._store or RunStore()
        try:
            self._store.index_run(run_id, running=running)
        except EcgcoreError as exc:  # not readable yet: indexed again when the job ends
            log.warning("%s: could not index its run folder: %s", run_id, exc)
