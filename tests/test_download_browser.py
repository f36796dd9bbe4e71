"""The download section in a real browser: `streamlit run app.py` + headless Chromium.

What AppTest cannot show: the app starts a worker by itself, which runs the download job;
the status fragment refreshes every second while the job runs, and reruns the page when it
is done, so the new dataset is listed without the user doing anything.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from browser import BROWSER_MARKS, app_env, chromium_page, streamlit_server
from test_download import Mirror, build_ludb_tree

from ecgcore.jobs.worker_status import alive_workers
from ecgcore.processes import pid_alive

pytestmark = BROWSER_MARKS


@contextmanager
def _workers_stopped_after() -> Iterator[None]:
    """Stop the worker the app starts (the leader of its own session) when the block ends."""
    try:
        yield
    finally:
        pids = [w["pid"] for w in alive_workers()]
        for pid in pids:
            try:
                os.killpg(pid, signal.SIGTERM)
            except (ProcessLookupError, PermissionError):
                continue
        deadline = time.monotonic() + 10
        while any(pid_alive(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.2)


def test_download_section_shows_progress_and_lists_the_dataset_when_done(
        shared_data: Path, tmp_path: Path, workspace: Path, monkeypatch: pytest.MonkeyPatch):
    from playwright.sync_api import expect

    build_ludb_tree(shared_data, tmp_path / "mirror")
    monkeypatch.setenv("ECGCORE_AUTO_WORKER", "1")  # the app starts its worker, as for a user
    with Mirror(tmp_path / "mirror") as mirror, _workers_stopped_after():
        mirror.stall_once["/files/ludb/1.0.1/data/2.dat"] = 3000  # long enough to see it running
        with streamlit_server(app_env(workspace), tmp_path / "streamlit.log") as url, chromium_page() as page:
            page.goto(f"{url}/datasets", wait_until="domcontentloaded")
            main = page.locator("[data-testid='stMain']")
            main.get_by_text("Download a public dataset").click()
            main.get_by_text("Lobachevsky University ECG Database").click()
            main.get_by_role("textbox", name="Download into folder").fill(str(tmp_path / "ludb"))
            main.get_by_role("textbox", name="Mirror (base URL, optional)").fill(f"{mirror.url}/files")
            main.get_by_role("textbox", name="Mirror (base URL, optional)").press("Enter")
            main.get_by_role("button", name="Start download").click()
            # Running in the worker's job: a progress bar the fragment keeps refreshing, and Stop.
            expect(main.get_by_role("button", name="Stop")).to_be_visible(timeout=30_000)
            expect(main.get_by_text("downloading,")).to_be_visible(timeout=60_000)
            page.screenshot(path=str(tmp_path / "downloading.png"), full_page=True)
            mirror.released.set()  # let the stalled transfer end: it is resumed and checked
            expect(main.get_by_text("every file verified")).to_be_visible(timeout=60_000)
            # The page reran by itself: the dataset is listed and drawn, the outcome stays.
            metric = main.locator("[data-testid='stMetric']").filter(has_text="Layout")
            expect(metric).to_contain_text("ludb", timeout=30_000)
            expect(main.get_by_text("every file verified")).to_be_visible()
            page.screenshot(path=str(tmp_path / "done.png"), full_page=True)
    assert (tmp_path / "ludb" / "data" / "2.dat").stat().st_size == \
        (shared_data / "ecg" / "ludb" / "data" / "2.dat").stat().st_size
