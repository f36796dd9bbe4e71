"""Shared fixtures: the real records in ../shared/data and an isolated workspace."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from worker_shared import build_once, session_root, shared_workspace

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

# The app starts a background worker when none is alive (ecgcore.jobs.worker_status); tests, their
# session fixtures and the `streamlit run` they start (which inherits this) must not leave
# one running. A test of that start sets ECGCORE_AUTO_WORKER=1 itself and stops the worker.
os.environ["ECGCORE_AUTO_WORKER"] = "0"


def _require_shared_data() -> Path:
    """Skip when ../shared/data is absent, except in CI (CI=true) where it must exist."""
    if SHARED_DATA.is_dir():
        return SHARED_DATA
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true but the real records are missing at {SHARED_DATA}")
    pytest.skip(f"real records not found at {SHARED_DATA}")


FOUNDATION_FIXTURES = SHARED_DATA.parent / "fixtures" / "foundation"


def foundation_fixture(model: str, name: str) -> Any:
    """One conformance fixture of ../shared/fixtures/foundation/<model>/ (`small.pt` loaded with
    weights_only=True, `full_keys.json` parsed); skips when absent, except in CI (CI=true)."""
    folder = FOUNDATION_FIXTURES / model
    if not folder.is_dir():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true but the foundation-model fixtures are missing at {folder}")
        pytest.skip(f"foundation-model fixtures not found at {folder}")
    path = folder / name
    if path.suffix != ".pt":
        return json.loads(path.read_text())
    import torch

    return torch.load(path, weights_only=True)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return _require_shared_data()


@pytest.fixture()
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh ECGCORE_HOME per test."""
    home = tmp_path / "workspace"
    monkeypatch.setenv("ECGCORE_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def demo_sites_012(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo sites at 12 % scale, written once per session (shared by the xdist workers)."""
    from ecgcore.data.synthetic import write_demo_data

    def write(folder: Path) -> None:
        write_demo_data(folder / "datasets", scale=0.12)

    return build_once(session_root(tmp_path_factory.getbasetemp()) / "demo_sites_012", write) / "datasets"


@pytest.fixture()
def demo_ws(workspace: Path, demo_sites_012: Path) -> Path:
    """A fresh workspace with the synthetic demo sites (scale 0.12) in its datasets/: hard
    links to one written copy (0.02 s instead of 2 s per test; tests only read the records,
    and a file replaced in one workspace is not replaced in the others)."""
    shutil.copytree(demo_sites_012, workspace / "datasets", copy_function=os.link)
    return workspace


# One tiny finished run shared by the upload, Inspect and Predict tests (trained once per
# session: scratch small_cnn, one epoch, the demo target's 12 classes with >= 5 positives).
TINY_RUN_SETTINGS = ["--set", "train.epochs=1", "--set", 'grid.strategy=["scratch"]',
                     "--set", "grid.train_fraction=[1.0]", "--set", "target.min_positives=5"]


@dataclass(frozen=True)
class TrainedRun:
    home: Path
    run_id: str


def _train_tiny_run(home: Path) -> None:
    """Demo data (scale 0.1) and one finished run of experiments/smoke.toml in `home`; the
    run id in `home/run_id`."""
    from ecgcore.data.synthetic import write_demo_data

    root = Path(__file__).resolve().parents[1]
    write_demo_data(home / "datasets", seed=0, scale=0.1)
    env = {**os.environ, "ECGCORE_HOME": str(home), "ECGCORE_AUTO_WORKER": "0"}
    done = subprocess.run([sys.executable, "-m", "ecgcore", "run", str(root / "experiments" / "smoke.toml"),
                           *TINY_RUN_SETTINGS, "--json"], capture_output=True, text=True, cwd=root,
                          env=env, timeout=600)
    assert done.returncode == 0, done.stderr
    (home / "run_id").write_text(json.loads(done.stdout)[-1])


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> TrainedRun:
    """A workspace with demo data and one finished run: trained once per session, each
    xdist worker using its own copy (`worker_shared`)."""
    home = shared_workspace(tmp_path_factory.getbasetemp(), "trained_run", _train_tiny_run)
    return TrainedRun(home, (home / "run_id").read_text())


@pytest.fixture()
def run_workspace(trained_run: TrainedRun, monkeypatch: pytest.MonkeyPatch) -> TrainedRun:
    """ECGCORE_HOME set to the trained run's workspace for this test."""
    monkeypatch.setenv("ECGCORE_HOME", str(trained_run.home))
    return trained_run


@pytest.fixture(scope="session")
def demo_sites(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo sites at 5 % scale (100 source, 50 target records), written once."""
    from ecgcore.data.synthetic import write_demo_data

    datasets = tmp_path_factory.mktemp("demo_sites") / "datasets"
    write_demo_data(datasets, scale=0.05)
    return datasets


@pytest.fixture(scope="session")
def superdiagnostic_ds(demo_sites: Path, tmp_path_factory: pytest.TempPathFactory):
    """The 5 % demo source as `ptbxl_superdiagnostic` (100 Hz, 10 s, standard-scaled), split by
    patient: the small real dataset the trainer and strategy tests train on. Read-only."""
    from ecgcore.data.pipeline import SplitConfig, build_dataset
    from ecgcore.data.prepare.config import PrepConfig

    return build_dataset(demo_sites / "source_ptbxl", "ptbxl_superdiagnostic",
                         PrepConfig(fs=100, seconds=10, normalize="standard"),
                         SplitConfig(method="patient", val=0.25, test=0.15, seed=0),
                         tmp_path_factory.mktemp("superdiagnostic_cache"), n_jobs=1)


@pytest.fixture()
def demo_home(demo_sites: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """ECGCORE_HOME with the shared 5 % demo sites linked in and its own empty run store and queue."""
    home = tmp_path / "workspace"
    (home / "datasets").mkdir(parents=True)
    for site in demo_sites.iterdir():
        (home / "datasets" / site.name).symlink_to(site)
    monkeypatch.setenv("ECGCORE_HOME", str(home))
    return home
