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
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_browser_datasets import (
    CHROMIUM,
    CHROMIUM_ARGS,
    REPO,
    _free_port,
    _wait_healthy,
)

from ecgcore import jobs
from ecgcore.data.synthetic import write_demo_data
from ecgcore.jobs.workers import alive_workers

IN_CI = os.environ.get("CI", "").lower() == "true"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists() and not IN_CI,
                       reason="Chromium not installed at /usr/bin/chromium (required in CI)"),
]

GRID = "min_pos=5&strategy=scratch&strategy=finetune&arch=small_cnn&fraction=1&seed=0"


def _stop_everything_started(server: subprocess.Popen) -> None:
    """The server, then the worker the app started and any job process still running
    (each is the leader of its own session: signal the whole group)."""
    server.terminate()
    try:
        server.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait(timeout=10)
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
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        if IN_CI:
            pytest.fail("playwright is not installed (required in CI)")
        pytest.skip("playwright is not installed")

    write_demo_data(workspace / "datasets", scale=0.05)
    monkeypatch.setenv("ECGCORE_AUTO_WORKER", "1")  # the app starts its worker, as for a user
    env = {**os.environ, "ECGCORE_HOME": str(workspace), "PYTHONPATH": str(REPO)}
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "streamlit.log"
    with log.open("w") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
             "--server.address", "127.0.0.1", "--server.headless", "true",
             "--server.fileWatcherType", "none", "--browser.gatherUsageStats", "false"],
            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
        )
    page = None
    try:
        _wait_healthy(url, server, log)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1100})
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
                for key in ("compare-per-class-auc", "compare-data-efficiency"):
                    chart = main.locator(f".st-key-{key} .js-plotly-plot")
                    expect(chart.first).to_be_visible(timeout=60_000)
                    expect(chart.first.locator("g.trace").first).to_be_attached()
                page.screenshot(path=str(tmp_path / "compare.png"), full_page=True)
            except Exception:
                if page is not None:
                    page.screenshot(path=str(tmp_path / "failure.png"), full_page=True)
                    print(f"screenshot: {tmp_path / 'failure.png'}; server log: {log}")
                raise
            finally:
                browser.close()
    finally:
        _stop_everything_started(server)
    assert not alive_workers()
