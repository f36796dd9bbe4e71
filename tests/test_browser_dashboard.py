"""The researcher's path in a real browser: `streamlit run app.py` on a workspace with the
demo data (5 % scale), launch a tiny grid (small_cnn, 1 epoch, scratch + finetune) from the
Launch page, watch it finish on the Jobs page (run by the worker the app starts itself),
open Compare and find the per-class AUC chart and the data-efficiency curve drawn by
plotly.js. A screenshot is saved in tmp_path when a step fails. Everything the test
started (server, worker, job processes) is stopped at the end.
"""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import pytest
from browser import BROWSER_MARKS, app_env, chromium_page, streamlit_server

from ecgcore import jobs
from ecgcore.data.synthetic import write_demo_data
from ecgcore.jobs.worker_status import alive_workers

pytestmark = BROWSER_MARKS

GRID = "min_pos=5&strategy=scratch&strategy=finetune&arch=small_cnn&fraction=1&seed=0"


def _stop_worker_and_jobs() -> None:
    """The worker the app started and any job process still running (each is the leader
    of its own session: signal the whole group)."""
    groups = [w["pid"] for w in alive_workers()]
    groups += [j["pid"] for j in jobs.list_jobs() if j["pid"] and j["state"] in ("running", "cancelling")]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in groups:
            try:
                os.killpg(pid, sig)
            except (ProcessLookupError, PermissionError):
                continue
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(jobs.queue.pid_alive(pid) for pid in groups):
            time.sleep(0.2)


def test_launch_watch_and_compare_in_chromium(workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from playwright.sync_api import expect

    write_demo_data(workspace / "datasets", scale=0.05)
    monkeypatch.setenv("ECGCORE_AUTO_WORKER", "1")  # the app starts its worker, as for a user
    log = tmp_path / "streamlit.log"
    try:
        with streamlit_server(app_env(workspace), log) as url, chromium_page(height=1100) as page:
            try:
                main = page.locator("[data-testid='stMain']")
                # Launch: the grid from a link, the epochs typed in, the summary, Submit.
                page.goto(f"{url}/launch?{GRID}", wait_until="domcontentloaded")
                expect(main.get_by_role("heading", name="Launch")).to_be_visible(timeout=60_000)
                epochs = main.get_by_label("Epochs (at most; early stopping)")
                epochs.fill("1")
                epochs.press("Enter")
                expect(page).to_have_url(re.compile(r"epochs=1"), timeout=30_000)
                runs = main.locator("[data-testid='stMetric']").filter(has_text="Runs in the grid")
                expect(runs).to_contain_text("3", timeout=60_000)
                expect(main.get_by_text("LQT — prolonged qt interval").first).to_be_attached()
                # engine text keeps its characters (escaped Markdown): no italics eat lr*lr_low's star
                main.get_by_text("The other strategies").click()
                expect(main.get_by_text("at lr*lr_low .. lr*lr_high", exact=False)).to_be_visible(timeout=10_000)
                main.get_by_role("button", name="Submit 3 new runs").click()
                expect(main.get_by_text("Queued 3 job(s)")).to_be_visible(timeout=30_000)
                assert [j["spec"]["config"]["train"]["epochs"] for j in jobs.list_jobs()] == [1, 1, 1]

                # Jobs: the worker the app started runs them; the fragment shows them finish.
                main.get_by_role("link", name="Watch them on the Jobs page").click()
                expect(main.get_by_role("heading", name="Jobs")).to_be_visible(timeout=30_000)
                expect(page.locator("[data-testid='stSidebar']")).to_contain_text("local worker pid",
                                                                                  timeout=30_000)
                done = main.locator("[data-testid='stMetric']").filter(has_text="Done")
                expect(done).to_contain_text("3", timeout=150_000)
                expect(main.locator("[data-testid='stMetric']").filter(has_text="Failed")).to_contain_text("0")
                assert {j["state"] for j in jobs.list_jobs()} == {"done"}

                # Compare: the per-class AUC chart and the data-efficiency curve.
                page.locator("[data-testid='stSidebar']").get_by_role("link", name="Compare").click()
                expect(main.get_by_role("heading", name="Compare")).to_be_visible(timeout=30_000)
                for key in ("compare-per-class-auc", "compare-data-efficiency", "compare-roc"):
                    chart = main.locator(f".st-key-{key} .js-plotly-plot")
                    expect(chart.first).to_be_visible(timeout=60_000)
                    expect(chart.first.locator("g.trace").first).to_be_attached()
                # the ROC legend names each run with its AUC (drawn by plotly.js, not just in the spec)
                roc_legend = main.locator(".st-key-compare-roc .legendtext")
                expect(roc_legend.first).to_contain_text("AUC")
                assert roc_legend.count() == 2, "scratch and finetune, once each"
                page.screenshot(path=str(tmp_path / "compare.png"), full_page=True)
            except Exception:
                page.screenshot(path=str(tmp_path / "failure.png"), full_page=True)
                print(f"screenshot: {tmp_path / 'failure.png'}; server log: {log}")
                raise
    finally:
        _stop_worker_and_jobs()
    assert not alive_workers()
