"""What the browser tests share: `streamlit run app.py` on a free 127.0.0.1 port, and a
headless Debian Chromium page driven by Playwright.

In CI (CI=true) a missing Chromium or Playwright fails the test instead of skipping it:
the browser tests are part of what CI proves.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]
IN_CI = os.environ.get("CI", "").lower() == "true"
# Command-line settings of a test server (the repo's .streamlit/config.toml gives the rest).
SERVER_ARGS = ("--server.address", "127.0.0.1", "--server.headless", "true",
               "--browser.gatherUsageStats", "false")

BROWSER_MARKS = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists() and not IN_CI,
                       reason="Chromium not installed at /usr/bin/chromium (required in CI)"),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_healthy(url: str, server: subprocess.Popen, log: Path, timeout: float = 30.0) -> None:
    """Until Streamlit answers its health check; the server's log in the error otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"streamlit exited with {server.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as reply:
                if reply.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"streamlit did not become healthy in {timeout} s:\n{log.read_text()}")


@contextmanager
def streamlit_server(env: Mapping[str, str], log: Path, args: Sequence[str] = SERVER_ARGS,
                     timeout: float = 60.0) -> Iterator[str]:
    """`streamlit run app.py` from the repo with `env`, healthy; yields its URL, then stops it."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with log.open("w") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
             "--server.fileWatcherType", "none", *args],
            cwd=REPO, env=dict(env), stdout=out, stderr=subprocess.STDOUT,
        )
    try:
        wait_healthy(url, server, log, timeout=timeout)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)


def app_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of a test server on the workspace `home`."""
    return {**os.environ, "ECGCORE_HOME": str(home), "PYTHONPATH": str(REPO), **extra}


@contextmanager
def chromium_page(width: int = 1400, height: int = 1000) -> Iterator[Any]:
    """A Playwright page in Debian's headless Chromium; closed afterwards."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if IN_CI:
            pytest.fail("playwright is not installed (required in CI)")
        pytest.skip("playwright is not installed")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser.new_page(viewport={"width": width, "height": height})
        finally:
            browser.close()
