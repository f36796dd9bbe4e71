"""Downloads as jobs of the queue (the Datasets page submits one, a worker runs it), and
cancelling and resuming one, against the local mirror of test_download.py serving real
LUDB records. Workers run as `python -m ecgcore worker --once` subprocesses, as a user's
would (the suite turns the app's automatic worker off)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest
from test_download import LUDB_FILES, Mirror, build_ludb_tree

from ecgcore import jobs
from ecgcore import workspace as ws
from ecgcore.download import CATALOGUE
from ecgcore.download.download_job import DownloadJob, download_jobs, submit_download
from ecgcore.errors import EcgcoreError
from ecgcore.jobs.job_types import payload_of

REPO = Path(__file__).resolve().parents[1]
LUDB = "/files/ludb/1.0.1/"


def _worker(once: bool = True) -> subprocess.Popen:
    """A local worker on the test's workspace (ECGCORE_HOME, set by the fixture)."""
    return subprocess.Popen([sys.executable, "-m", "ecgcore", "worker", *(["--once"] if once else [])],
                            cwd=REPO, env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def _finish(worker: subprocess.Popen, timeout: float = 120.0) -> str:
    """Wait for a `--once` worker to empty the queue and exit; its output."""
    out, _ = worker.communicate(timeout=timeout)
    assert worker.returncode == 0, out
    return out


def _wait_for(job_id: str, done: Callable[[dict], bool], timeout: float = 60.0) -> dict:
    """The job once `done(job)` holds (an AssertionError with the job after `timeout` s)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = jobs.get(job_id)
        if done(job):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} after {timeout} s: {job}")


def test_a_download_job_round_trips_and_one_folder_takes_one_download(tmp_path: Path, workspace: Path):
    job = DownloadJob.of("ludb", tmp_path / "ludb", base_url="http://127.0.0.1:9/files",
                         include=("data/*",), add_as="mine")
    assert job.version == CATALOGUE["ludb"].version and job.to == str((tmp_path / "ludb").resolve())
    assert payload_of(json.loads(json.dumps(job.to_payload()))) == job  # as stored in the queue
    first = submit_download(job)
    assert submit_download(DownloadJob.of("ludb", tmp_path / "ludb")) == first  # same download: same job
    assert DownloadJob.of("ludb", tmp_path / "other").config_hash != job.config_hash
    with pytest.raises(EcgcoreError, match=f"download job {first} \\(ludb\\) is already writing there"):
        submit_download(DownloadJob.of("ptbdb", tmp_path / "ludb"))
    [row] = jobs.list_jobs()
    assert (row["kind"], row["state"], row["label"]) == ("download", "queued", job.label)
    [status] = download_jobs()
    assert (status.job_id, status.stage, status.progress.files_total) == (first, "queued", 0)


def test_datasets_page_queues_the_download_and_lists_the_dataset_when_a_worker_ran_it(
        shared_data: Path, tmp_path: Path, workspace: Path):
    build_ludb_tree(shared_data, tmp_path / "mirror")
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=60)
    at.switch_page("pages/datasets.py").run()
    assert not at.exception
    assert at.radio(key="dl_name").options == [
        f"{e.title} {e.version} ({e.approx_size})" for e in CATALOGUE.values()]
    assert at.button(key="dl_start").label == "Start download"
    with Mirror(tmp_path / "mirror") as mirror:
        at.radio(key="dl_name").set_value("ludb")
        at.text_input(key="dl_folder").input(str(tmp_path / "downloads" / "ludb"))
        at.text_input(key="dl_base_url").input(f"{mirror.url}/files")
        at.button(key="dl_start").click().run()
        assert not at.exception and not at.error
        assert "no worker runs it" in at.warning[0].value  # the suite turned the automatic worker off
        [item] = download_jobs()
        assert item.state == "queued" and item.job.dataset == "ludb" and item.job.add_as == "ludb"
        assert item.job.to == str((tmp_path / "downloads" / "ludb").resolve())
        assert any("queued" in p.proto.text for p in at.get("progress"))
        _finish(_worker())
        assert jobs.get(item.job_id)["state"] == "done", jobs.get(item.job_id)
        assert sorted(p for p, _ in mirror.file_requests()) == sorted(LUDB + f for f in LUDB_FILES)
    log = jobs.job_log_path(item.job_id).read_text()
    assert "every file verified" in log and "added to the workspace as ludb" in log
    at.run()
    assert not at.exception
    assert any("every file verified" in s.value and "7/7 files" in s.value and "**ludb**" in s.value
               for s in at.success)
    assert "ludb" in at.selectbox(key="dataset").options
    at.selectbox(key="dataset").set_value("ludb").run()
    assert not at.exception
    assert {m.label: m.value for m in at.metric}["Layout"] == "ludb"
    assert {m.label: m.value for m in at.metric}["Readable records"] == "3"


def test_a_cancelled_download_job_keeps_its_part_and_a_new_submission_resumes(
        shared_data: Path, tmp_path: Path, workspace: Path):
    folder = build_ludb_tree(shared_data, tmp_path / "mirror")
    big = LUDB + "data/1.dat"
    dest = tmp_path / "ludb"
    part = dest / "data" / "1.dat.part"
    with Mirror(tmp_path / "mirror") as mirror:
        mirror.stall_once[big] = 4000  # sends 4000 bytes, then holds the connection
        job = DownloadJob.of("ludb", dest, base_url=f"{mirror.url}/files", add_as="ludb-bg")
        first = submit_download(job)
        worker = _worker()
        deadline = time.monotonic() + 60
        while not (part.exists() and part.stat().st_size == 4000) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert part.exists() and part.stat().st_size == 4000
        running = _wait_for(first, lambda j: (j["progress"] or {}).get("state") == "downloading")
        assert running["state"] == "running" and running["progress"]["files_total"] == len(LUDB_FILES)
        assert jobs.cancel(first) == "cancelling"
        ended = _wait_for(first, lambda j: j["state"] in jobs.ENDED)
        assert ended["state"] == "cancelled", ended
        # It stopped itself (well within the worker's grace before SIGTERM), and said so.
        assert "still running" not in _finish(worker)
        assert "download stopped" in jobs.job_log_path(first).read_text()
        assert part.stat().st_size == 4000 and not (dest / "data" / "1.dat").exists()
        assert "ludb-bg" not in [e.name for e in ws.list_datasets()]
        complete = {p for p, _ in mirror.file_requests()} - {big}
        assert complete, "files other than the stalled one finished before the cancel"

        second = submit_download(job)
        assert second != first  # the cancelled job is over: a new job, which resumes
        _finish(_worker())
        assert jobs.get(second)["state"] == "done", jobs.get(second)
        assert [r for p, r in mirror.requests if p == big] == [None, "bytes=4000-"]
        fetched = Counter(p for p, _ in mirror.file_requests())
        assert all(fetched[p] == 1 for p in complete), fetched  # verified files: not fetched again
        assert set(fetched) == {LUDB + f for f in LUDB_FILES}
    assert (dest / "data" / "1.dat").read_bytes() == (folder / "data" / "1.dat").read_bytes()
    assert {e.name: e.path for e in ws.list_datasets()}["ludb-bg"] == dest.resolve()
    assert json.loads((dest / ".ecgcore-download.json").read_text())["ok"]
    assert [d.job_id for d in download_jobs()] == [second, first]
    assert [d.state for d in download_jobs()] == ["done", "cancelled"]


def test_download_hint_keeps_its_globs(workspace: Path):
    """The catalogue's notes are engine text: escaped for Markdown, so '*' globs stay '*' (not italics)."""
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=60)
    at.switch_page("pages/datasets.py").run()
    assert not at.exception and at.radio(key="dl_name").value == "ptb-xl"
    hint = next(c.value for c in at.caption if "Licence" in c.value)
    assert "--include 'records100/\\*' --include '\\*.csv'" in hint, hint


class _Context:
    """A job process's context, in this process: records what the job reports."""

    attempt = 1
    resume_run_id = None
    indexed = True

    def __init__(self) -> None:
        self.reports: list[tuple[dict, bool]] = []

    def on_run(self, run_id: str) -> None:
        raise AssertionError("a download makes no run")

    def report(self, progress: dict, force: bool = False) -> None:
        self.reports.append((dict(progress), force))

    def check_cancelled(self) -> None:
        pass


def test_perform_reports_each_stage_at_once_and_fails_with_the_files_that_failed(
        shared_data: Path, tmp_path: Path, workspace: Path):
    build_ludb_tree(shared_data, tmp_path / "mirror")
    context = _Context()
    with Mirror(tmp_path / "mirror") as mirror:
        mirror.corrupt_always.add(LUDB + "data/2.hea")
        job = DownloadJob.of("ludb", tmp_path / "ludb", base_url=f"{mirror.url}/files", add_as="ludb")
        with pytest.raises(EcgcoreError, match=r"^1 file\(s\) failed: data/2.hea: corrupt twice"):
            job.perform(context)
    forced = [progress["state"] for progress, force in context.reports if force]
    assert forced == ["listing", "downloading", "failed"]
    last, _ = context.reports[-1]
    assert (last["files_total"], last["files_done"], last["files_failed"]) == (7, 6, 1)
    assert "ludb" not in [e.name for e in ws.list_datasets()]  # added only when every file is verified


def test_on_a_cluster_node_the_download_leaves_the_index_to_the_dispatcher(
        shared_data: Path, tmp_path: Path, workspace: Path, monkeypatch: pytest.MonkeyPatch):
    """A job process that may not write the index (a cluster node) downloads without opening
    any SQLite file; the dispatcher, relaying its end, adds the dataset (record_in_index)."""
    import sqlite3

    build_ludb_tree(shared_data, tmp_path / "mirror")
    context = _Context()
    context.indexed = False
    opened: list[str] = []
    real_connect = sqlite3.connect
    with Mirror(tmp_path / "mirror") as mirror:
        job = DownloadJob.of("ludb", tmp_path / "ludb", base_url=f"{mirror.url}/files", add_as="ludb")
        monkeypatch.setattr(sqlite3, "connect", lambda path, *a, **k: opened.append(str(path)) or real_connect(path, *a, **k))
        job.perform(context)
        monkeypatch.setattr(sqlite3, "connect", real_connect)
    assert opened == [], "the node's job process opened the index"
    assert "ludb" not in {entry.name for entry in ws.list_datasets()}
    payload_of(job.to_payload()).record_in_index()  # what the dispatcher does when it ends
    assert "ludb" in {entry.name for entry in ws.list_datasets()}
