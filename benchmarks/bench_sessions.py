"""Many users at once: page render time with ten browser sessions while a job trains.

    python benchmarks/bench_sessions.py [--sessions 10] [--rounds 2] [--json]

Sets up a temporary workspace (demo data at scale 0.1, one finished tiny run of
experiments/smoke.toml), submits a long training job and starts one worker for it, then
starts `streamlit run app.py` on a free 127.0.0.1 port. With the job training
throughout, it measures, in headless Chromium (Playwright, one browser context = one
Streamlit session per user):
  (a) baseline: one session cycling --rounds times through Home, Datasets, Jobs,
      Compare, Inspect (sidebar links, as a user does)
  (b) load: --sessions sessions doing the same at the same time
A page's render time runs from the click on its sidebar link until its title is visible
in the main area and no "Running" indicator is shown (Jobs, whose table refreshes
itself every 2 s: until its last section's heading is visible). It prints p50/p95 of both and their
ratio (load / baseline), per page and overall, and fails (exit 1) if any page showed a
Streamlit exception element, never rendered, or the job was not training throughout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from statistics import quantiles
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]
# (sidebar link, the page's st.title)
PAGES = [("Home", "ECG transfer workbench"), ("Datasets", "Datasets"), ("Jobs", "Jobs"),
         ("Compare", "Compare"), ("Inspect", "Inspect")]
# Pages whose fragments rerun by themselves every few seconds (Jobs: the table every 2 s)
# show "Running" periodically by design; they count as rendered once the heading written
# after those fragments (the script's last section) is visible.
LAST_SECTION = {"Jobs": "One job: log, cancel, retry"}
SMOKE = str(REPO / "experiments" / "smoke.toml")
TINY_RUN = ["--set", "train.epochs=1", "--set", 'grid.strategy=["scratch"]',
            "--set", "grid.train_fraction=[1.0]", "--set", "target.min_positives=5"]
# A different seed (not reused from the finished run) and enough epochs to outlast the benchmark.
LONG_JOB = [*TINY_RUN, "--set", "train.epochs=500", "--set", "train.early_stopping_patience=1000",
            "--set", "grid.seed=[7]"]
TIMEOUT_MS = 120_000


def _cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "ecgcore", *args], capture_output=True, text=True,
                          cwd=REPO, env=env, timeout=900)
    if done.returncode != 0:
        raise SystemExit(f"ecgcore {' '.join(args)} failed:\n{done.stderr}")
    return done.stdout


def _job_state(env: dict[str, str], job_id: str) -> str:
    return next(j["state"] for j in json.loads(_cli(env, "jobs", "--json")) if j["job_id"] == job_id)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_healthy(url: str, server: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"streamlit exited with {server.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as reply:
                if reply.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise SystemExit(f"streamlit did not become healthy in {timeout} s")


async def _rendered(page: Any, link: str, title: str) -> None:
    """Until the page's title is visible in the main area and nothing shows "Running"."""
    from playwright.async_api import expect

    main = page.locator("[data-testid='stMain']")
    await expect(main.get_by_role("heading", name=title, exact=True)).to_be_visible(timeout=TIMEOUT_MS)
    if link in LAST_SECTION:
        await expect(main.get_by_role("heading", name=LAST_SECTION[link], exact=True)).to_be_visible(
            timeout=TIMEOUT_MS)
        return
    running = page.locator("[data-testid='stStatusWidget']").filter(has_text="Running")
    await expect(running).to_have_count(0, timeout=TIMEOUT_MS)


async def _user(browser: Any, url: str, rounds: int, times: dict[str, list[float]],
                problems: list[str]) -> None:
    """One session: open the app, then click through every page `rounds` times."""
    from playwright.async_api import Error as PlaywrightError

    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(TIMEOUT_MS)
    page = await context.new_page()
    try:
        await page.goto(url, wait_until="domcontentloaded")
        await _rendered(page, *PAGES[0])
        sidebar = page.locator("[data-testid='stSidebar']")
        for _ in range(rounds):
            for link, title in [*PAGES[1:], PAGES[0]]:
                start = time.monotonic()
                try:
                    await sidebar.get_by_role("link", name=link, exact=True).click()
                    await _rendered(page, link, title)
                except (AssertionError, PlaywrightError) as error:
                    problems.append(f"{link}: did not render ({str(error).splitlines()[0]})")
                    continue
                times[link].append(time.monotonic() - start)
                if await page.locator("[data-testid='stException']").count():
                    problems.append(f"{link}: exception shown: "
                                    f"{await page.locator('[data-testid=stException]').first.inner_text()}")
    finally:
        await context.close()


async def _phase(url: str, sessions: int, rounds: int) -> tuple[dict[str, list[float]], list[str], float]:
    from playwright.async_api import async_playwright

    times: dict[str, list[float]] = {link: [] for link, _ in PAGES}
    problems: list[str] = []
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            start = time.monotonic()
            await asyncio.gather(*(_user(browser, url, rounds, times, problems) for _ in range(sessions)))
            wall = time.monotonic() - start
        finally:
            await browser.close()
    return times, problems, wall


def _p(values: list[float], q: int) -> float:
    """The q-th percentile (inclusive method; the value itself for one sample)."""
    if len(values) == 1:
        return values[0]
    return quantiles(values, n=100, method="inclusive")[q - 1]


def summarise(base: dict[str, list[float]], load: dict[str, list[float]]) -> dict[str, Any]:
    rows = {}
    for name in [*base, "all pages"]:
        b = [t for v in base.values() for t in v] if name == "all pages" else base[name]
        m = [t for v in load.values() for t in v] if name == "all pages" else load[name]
        if not b or not m:
            continue
        rows[name] = {"n_base": len(b), "n_load": len(m), "base_p50": _p(b, 50), "base_p95": _p(b, 95),
                      "load_p50": _p(m, 50), "load_p95": _p(m, 95)}
        rows[name]["ratio_p50"] = rows[name]["load_p50"] / rows[name]["base_p50"]
        rows[name]["ratio_p95"] = rows[name]["load_p95"] / rows[name]["base_p95"]
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    from ecgcore.data.synthetic import write_demo_data

    with tempfile.TemporaryDirectory(prefix="bench_sessions_") as tmp:
        home = Path(tmp) / "workspace"
        env = {**os.environ, "ECGCORE_HOME": str(home), "ECGCORE_AUTO_WORKER": "0",
               "PYTHONPATH": str(REPO)}
        write_demo_data(home / "datasets", seed=0, scale=0.1)
        print("training the finished tiny run …", file=sys.stderr)
        _cli(env, "run", SMOKE, *TINY_RUN, "--json")
        (job_id,) = json.loads(_cli(env, "submit", SMOKE, *LONG_JOB, "--json"))
        worker = subprocess.Popen([sys.executable, "-m", "ecgcore", "worker", "--slots", "1"], cwd=REPO,
                                  env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        server = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
             "--server.address", "127.0.0.1", "--server.headless", "true",
             "--server.fileWatcherType", "none", "--browser.gatherUsageStats", "false"],
            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            _wait_healthy(url, server)
            deadline = time.monotonic() + 120
            while _job_state(env, job_id) != "running" and time.monotonic() < deadline:
                time.sleep(1)
            states = [_job_state(env, job_id)]
            print("baseline: 1 session …", file=sys.stderr)
            base, base_problems, base_wall = asyncio.run(_phase(url, 1, args.rounds))
            states.append(_job_state(env, job_id))
            print(f"load: {args.sessions} sessions …", file=sys.stderr)
            load, load_problems, load_wall = asyncio.run(_phase(url, args.sessions, args.rounds))
            states.append(_job_state(env, job_id))
        finally:
            server.terminate()
            _cli(env, "cancel", job_id)
            worker.terminate()
            for proc in (server, worker):
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()

    rows = summarise(base, load)
    problems = base_problems + load_problems
    if any(state != "running" for state in states):
        problems.append(f"the training job was not running throughout: {states}")
    expected = args.rounds * len(PAGES)
    report = {"sessions": args.sessions, "rounds": args.rounds, "job_states": states,
              "renders": {"base": sum(map(len, base.values())), "load": sum(map(len, load.values())),
                          "expected_base": expected, "expected_load": expected * args.sessions},
              "wall_s": {"base": base_wall, "load": load_wall}, "pages": rows, "problems": problems,
              "cpu_count": os.cpu_count(), "loadavg": os.getloadavg()}
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"{args.sessions} sessions × {args.rounds} rounds × {len(PAGES)} pages while a job trains "
              f"(job: {' → '.join(states)}); renders {report['renders']}; loadavg {report['loadavg']}")
        print(f"{'page':<10} {'base p50':>9} {'base p95':>9} {'load p50':>9} {'load p95':>9} "
              f"{'×p50':>6} {'×p95':>6}")
        for name, r in rows.items():
            print(f"{name:<10} {r['base_p50']:9.2f} {r['base_p95']:9.2f} {r['load_p50']:9.2f} "
                  f"{r['load_p95']:9.2f} {r['ratio_p50']:6.2f} {r['ratio_p95']:6.2f}")
        for problem in problems:
            print("PROBLEM:", problem)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
