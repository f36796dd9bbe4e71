"""Screenshots of every page of the app and of the one-page report, at 1400 px width, for the
README (`docs/img/`). Rerun on the demo data with:

    python docs/screenshots.py                    # a fresh workspace: demo data + the quickstart grid
    python docs/screenshots.py --home WORKSPACE   # a workspace that already has finished runs

It drives the app in Debian's headless Chromium through the browser tests' own server and
page helpers (tests/browser.py): Home, Launch, Jobs, Compare, Inspect (the best finished run),
Predict (a real Georgia record from ../shared/data uploaded) and the report PNG that Predict's
"Report (PNG)" button downloads. Look at the images before committing them.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.browser import app_env, chromium_page, streamlit_server  # noqa: E402

WIDTH = 1400
MAX_HEIGHT = 9000
RECORD = REPO.parent / "shared" / "data" / "ecg" / "cinc2021" / "G12EC" / "E00005"


def ecgcore(home: Path, *args: str) -> str:
    env = {**os.environ, "ECGCORE_HOME": str(home), "ECGCORE_AUTO_WORKER": "0"}
    done = subprocess.run([sys.executable, "-m", "ecgcore", *args], cwd=REPO, env=env, text=True,
                          capture_output=True, check=True)
    return done.stdout


def best_run(home: Path) -> str:
    """The finished target run with the highest test macro AUC."""
    runs = json.loads(ecgcore(home, "runs", "--json"))
    done = [r for r in runs if r.get("kind") == "target" and r.get("status") == "done"]
    if not done:
        raise SystemExit(f"{home}: no finished target run")
    scored = [(json.loads(ecgcore(home, "show", r["run_id"], "--json"))["test"]["macro_auc"] or 0.0, r["run_id"])
              for r in done]
    return max(scored)[1]


def settle(page, wait_ms: int) -> None:
    """Let the page finish its reruns, then size the window to the whole main column, so
    one screenshot holds the page (Streamlit scrolls inside its main block)."""
    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(wait_ms)
    height = page.evaluate("() => document.querySelector(\"[data-testid='stMain']\").scrollHeight")
    page.set_viewport_size({"width": WIDTH, "height": int(min(max(height, 900), MAX_HEIGHT))})
    page.wait_for_timeout(1500)


def shoot(home: Path, out: Path) -> list[Path]:
    from playwright.sync_api import expect

    run_id = best_run(home)
    written: list[Path] = []
    env = app_env(home, ECGCORE_AUTO_WORKER="0")
    with tempfile.TemporaryDirectory() as tmp, streamlit_server(env, Path(tmp) / "streamlit.log") as url, \
            chromium_page(width=WIDTH, height=1000) as page:
        for name, path, wait in (("home", "/", 8000), ("launch", "/launch", 8000), ("jobs", "/jobs", 5000),
                                 ("compare", "/compare", 30000), ("inspect", f"/inspect?run={run_id}", 15000)):
            page.set_viewport_size({"width": WIDTH, "height": 1000})
            page.goto(url + path, wait_until="domcontentloaded")
            settle(page, wait)
            page.screenshot(path=str(out / f"{name}.png"))
            written.append(out / f"{name}.png")

        page.set_viewport_size({"width": WIDTH, "height": 1000})
        page.goto(f"{url}/predict?run={run_id}", wait_until="domcontentloaded")
        main = page.locator("[data-testid='stMain']")
        expect(main.get_by_text("Upload a record to score it")).to_be_visible(timeout=60_000)
        main.locator("input[type='file']").set_input_files([str(RECORD.with_suffix(".hea")),
                                                            str(RECORD.with_suffix(".mat"))])
        expect(main.get_by_text("Most likely:").first).to_be_visible(timeout=120_000)
        settle(page, 10000)
        page.screenshot(path=str(out / "predict.png"))
        written.append(out / "predict.png")
        with page.expect_download(timeout=120_000) as download:
            main.get_by_role("button", name="Report (PNG)").click()
        download.value.save_as(str(out / "report.png"))
        written.append(out / "report.png")
    return written


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, help="a workspace with finished runs (default: a fresh one "
                        "with the demo data and the quickstart grid)")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "img")
    args = parser.parse_args()
    if not RECORD.with_suffix(".hea").is_file():
        raise SystemExit(f"{RECORD}.hea not found: the screenshots upload a real record from ../shared/data")
    args.out.mkdir(parents=True, exist_ok=True)
    home = args.home or Path(tempfile.mkdtemp(prefix="ecgcore-screenshots-"))
    if args.home is None:
        print(f"{home}: demo data and the quickstart grid (about 2-3 minutes on 2 cores)…", file=sys.stderr)
        ecgcore(home, "run", str(REPO / "experiments" / "quickstart.toml"))
        # The same grid submitted to the queue: every job is done at once (its runs are reused),
        # so the Jobs page shows the grid without training it twice.
        ecgcore(home, "submit", str(REPO / "experiments" / "quickstart.toml"))
    for path in shoot(home, args.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
