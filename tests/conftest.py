"""Shared fixtures: the real records in ../shared/data and an isolated workspace."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _require_shared_data() -> Path:
    """Skip when ../shared/data is absent, except in CI (CI=true) where it must exist."""
    if SHARED_DATA.is_dir():
        return SHARED_DATA
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true but the real records are missing at {SHARED_DATA}")
    pytest.skip(f"real records not found at {SHARED_DATA}")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return _require_shared_data()


@pytest.fixture()
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh ECGCORE_HOME per test."""
    home = tmp_path / "workspace"
    monkeypatch.setenv("ECGCORE_HOME", str(home))
    return home


@pytest.fixture(autouse=True)
def _no_automatic_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    """The app starts a background worker when none is alive (ecgcore.jobs.workers); tests
    (and the `streamlit run` they start, which inherits this) must not leave one running.
    A test of that start sets ECGCORE_AUTO_WORKER=1 itself and stops the worker."""
    monkeypatch.setenv("ECGCORE_AUTO_WORKER", "0")
