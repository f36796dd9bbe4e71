"""inspect-data: the report's keys on the real records, bad records, non-datasets, --help."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import wfdb

from ecgcore import cli
from ecgcore.data import dataset_survey as inspect_module
from ecgcore.data.dataset_survey import find_unreadable_signals, format_report, inspect_dataset
from ecgcore.data.sources import open_dataset
from ecgcore.errors import NotADatasetError

REPO = Path(__file__).resolve().parents[1]
SCRIPT_KEYS = ("layout", "n_records", "n_unreadable", "unreadable", "sampling_rates",
               "label_counts", "unmapped_labels")


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "ecgcore", *args], capture_output=True, text=True,
                          cwd=REPO, env=env, timeout=120)


def test_cli_json_on_the_challenge_records_of_every_source(shared_data: Path):
    done = _cli("inspect-data", str(shared_data / "ecg" / "cinc2021"), "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    for key in SCRIPT_KEYS:
        assert key in report
    assert report["layout"] == "challenge"
    assert set(report["sources"]) == {"CPSC2018", "CPSC-Extra", "Chapman-Shaoxing/Ningbo",
                                      "Georgia", "PTB", "PTB-XL"}
    assert report["n_records"] == 70 and report["signals_checked"] is True
    # INCART ships headers only: every one is unreadable, with a reason naming the missing file.
    incart = [u for u in report["unreadable"] if u["record"].startswith("I")]
    assert len(incart) == 10 == report["n_unreadable"]
    assert all(f"{u['record']}.mat" in u["reason"] and "missing" in u["reason"] for u in incart)
    assert report["sampling_rates"] == {"500": 60, "1000": 10}
    assert sum(report["sources"].values()) == report["n_records"]
    assert report["lengths"]["max_seconds"] > 100 and report["lengths"]["min_seconds"] == 10.0
    assert all(code.isdigit() for code in report["label_counts"])
    assert report["label_counts"]["164889003"] >= 1  # AF is in CPSC2018
    assert report["label_names"]["164889003"].startswith("AF")
    assert report["lead_sets"] == {"I,II,III,aVR,aVL,aVF,V1,V2,V3,V4,V5,V6": 70}


def test_cli_text_on_ludb(shared_data: Path):
    done = _cli("inspect-data", str(shared_data / "ecg" / "ludb"))
    assert done.returncode == 0, done.stderr
    assert "layout: ludb" in done.stdout and "200 readable, 0 unreadable" in done.stdout
    assert "unmapped labels" in done.stdout


def test_ludb_report_in_process(shared_data: Path):
    report = inspect_dataset(shared_data / "ecg" / "ludb", check_signals=False)
    assert report["layout"] == "ludb" and report["n_records"] == 200 and report["n_unreadable"] == 0
    assert report["sampling_rates"] == {"500": 200}
    assert report["lengths"]["histogram"] == {"10-10.5 s": 200}
    assert report["unmapped_labels"] and all(isinstance(n, int) for n in report["unmapped_labels"].values())
    assert sum(report["sex"].values()) == 200
    json.dumps(report)  # plain JSON


@pytest.mark.parametrize("make", [lambda p: p / "nothing-here", lambda p: p])
def test_not_a_dataset_exits_non_zero_with_one_line(tmp_path: Path, make):
    target = make(tmp_path)
    done = _cli("inspect-data", str(target), "--json")
    assert done.returncode != 0
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and str(target) in lines[0]
    with pytest.raises(NotADatasetError):
        inspect_dataset(target)


def _write_folder(root: Path, n_good: int, nan_record: bool) -> None:
    """A plain WFDB folder: sine records, optionally one with a NaN sample (format 16 stores
    it as the invalid value, which reads back as NaN)."""
    root.mkdir(parents=True, exist_ok=True)
    t = np.arange(1000) / 500.0
    base = np.stack([np.sin(2 * np.pi * (1 + i) * t) for i in range(12)], axis=1)
    names = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]
    records = [(f"r{i:03d}", base) for i in range(n_good)]
    if nan_record:
        broken = base.copy()
        broken[10, 2] = np.nan
        records.append(("bad", broken))
    for name, signal in records:
        wfdb.wrsamp(name, fs=500, units=["mV"] * 12, sig_name=names, p_signal=signal,
                    fmt=["16"] * 12, adc_gain=[1000.0] * 12, baseline=[0] * 12, write_dir=str(root))


def test_signal_check_reports_nan_records_and_keeps_them(tmp_path: Path):
    root = tmp_path / "mine"
    _write_folder(root, n_good=5, nan_record=True)
    (root / "cut.dat").write_bytes((root / "r000.dat").read_bytes())
    (root / "cut.hea").write_text((root / "r000.hea").read_text().replace("r000", "cut"))
    with open(root / "cut.dat", "r+b") as handle:  # shorter than its header says
        handle.truncate(100)
    headers_only = inspect_dataset(root, check_signals=False)
    assert headers_only["n_unreadable"] == 1 and headers_only["nonfinite"] == []
    report = inspect_dataset(root)
    assert report["n_records"] == 6 and report["n_unreadable"] == 1
    assert report["unreadable"][0]["record"] == "cut"
    (gappy,) = report["nonfinite"]
    assert gappy["record"] == "bad" and "NaN" in gappy["reason"] and "III (1)" in gappy["reason"]
    assert report["sampling_rates"] == {"500": 6}
    text = format_report(report)
    assert "bad: 1 NaN/inf samples" in text and "6 readable, 1 unreadable" in text


def test_signal_check_in_parallel_chunks_matches_in_process(tmp_path: Path):
    root = tmp_path / "many"
    _write_folder(root, n_good=9, nan_record=True)
    recordset = open_dataset(root)
    calls: list[tuple[int, int]] = []
    parallel = find_unreadable_signals(recordset, n_jobs=2, chunk_size=3,
                                       progress=lambda done, total: calls.append((done, total)))
    serial = find_unreadable_signals(recordset, n_jobs=1)
    assert [u.record for u in parallel] == [u.record for u in serial] == ["bad"]
    assert calls == [(3, 10), (6, 10), (9, 10), (10, 10)]


def test_signal_check_goes_parallel_when_the_first_chunk_is_slow(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch):
    root = tmp_path / "slow"
    _write_folder(root, n_good=6, nan_record=True)
    recordset = open_dataset(root)
    monkeypatch.setattr(inspect_module, "PARALLEL_AFTER_SECONDS", 0.0)  # any work "is slow"
    started: list[int] = []
    real_parallel = inspect_module.Parallel

    def spy(*args, **kwargs):
        started.append(kwargs.get("n_jobs"))
        return real_parallel(*args, **kwargs)

    monkeypatch.setattr(inspect_module, "Parallel", spy)
    bad = find_unreadable_signals(recordset, chunk_size=2)
    assert [u.record for u in bad] == ["bad"] and started == [-1]
    monkeypatch.setattr(inspect_module, "PARALLEL_AFTER_SECONDS", 3600.0)
    assert [u.record for u in find_unreadable_signals(recordset, chunk_size=2)] == ["bad"]
    assert started == [-1]  # fast enough: no workers the second time


def test_every_command_has_help(capsys: pytest.CaptureFixture[str]):
    done = _cli("--help")
    assert done.returncode == 0 and "inspect-data" in done.stdout
    assert cli.COMMANDS, "no commands registered"
    for name in cli.COMMANDS:
        with pytest.raises(SystemExit) as stop:
            cli.main([name, "--help"])
        assert stop.value.code == 0
        out = capsys.readouterr().out
        assert f"python -m ecgcore {name}" in out and "--help" in out, name
