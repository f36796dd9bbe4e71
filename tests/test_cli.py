"""CLI conventions: reader options pass through; malformed arguments exit non-zero in one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ecgcore.cli import parse_options

ROOT = Path(__file__).resolve().parents[1]


def test_parse_options_reads_numbers_and_text() -> None:
    assert parse_options(["fs=500", "name=site a", "scale=0.5"]) == {"fs": 500, "name": "site a",
                                                                     "scale": 0.5}
    with pytest.raises(ValueError, match="'fs' is not KEY=VALUE"):
        parse_options(["fs"])


def test_inspect_data_headers_only_and_bad_option(shared_data: Path) -> None:
    ludb = str(shared_data / "ecg" / "ludb")
    ok = subprocess.run([sys.executable, "-m", "ecgcore", "inspect-data", ludb, "--no-signals"],
                        capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert ok.returncode == 0 and "200 readable" in ok.stdout and "signals not read" in ok.stdout
    bad = subprocess.run([sys.executable, "-m", "ecgcore", "inspect-data", ludb, "--option", "fs"],
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert bad.returncode != 0
    assert bad.stderr.strip().splitlines() == ["error: option 'fs' is not KEY=VALUE"]


def test_prepare_data_labels_preprocesses_and_splits(shared_data: Path, workspace: Path) -> None:
    """The user story end to end: a real folder in, a cached, split, labelled array out."""
    import json
    import os

    import numpy as np

    georgia = str(shared_data / "ecg" / "cinc2021" / "G12EC")
    cmd = [sys.executable, "-m", "ecgcore", "prepare-data", georgia, "--task", "nguyen_georgia",
           "--fs", "100", "--normalize", "zscore", "--split", "paper", "--json"]
    env = {**os.environ, "ECGCORE_HOME": str(workspace)}
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    described = json.loads(done.stdout)
    assert described["task"] == "nguyen_georgia" and len(described["classes"]) == 10
    assert described["split"]["method"] == "paper" and "patients may leak" in described["split"]["notes"]
    sizes = described["split"]["sizes"]
    assert sizes["train"] + sizes["test"] == described["n_records"] == 10 - described["n_dropped"]
    cache = Path(described["cache"])
    assert cache.parent == workspace.resolve() / "cache"
    X = np.load(cache / "X.npy", mmap_mode="r")
    assert X.shape == (described["n_records"], 12, 1000)
    np.testing.assert_allclose(X.mean(axis=2), 0.0, atol=1e-4)  # per-record per-lead z-score

    unknown = subprocess.run([*cmd[:6], "no_such_task"], capture_output=True, text=True, cwd=ROOT,
                             env=env, timeout=120)
    assert unknown.returncode != 0 and len(unknown.stderr.strip().splitlines()) == 1
    assert "unknown task 'no_such_task'" in unknown.stderr
