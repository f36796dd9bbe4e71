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
