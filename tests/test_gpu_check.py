"""The device check (benchmarks/gpu_check.sh): its CPU smoke run end to end, and the parts
that decide what it measures (the synthetic cache, the sizing of each measurement)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from gpu_check_data import CLASS_HZ, CLASSES, synthetic_dataset
from gpu_check_speed import MAX_TIMED_EPOCHS, Sizing, rows_and_epochs

from ecgcore.data.prepare import fit_standard_scaler

ARCHS = {"xresnet1d101", "inception1d", "lstm", "small_cnn"}
PRESETS = {"ptbxl_benchmark", "nguyen2025_grid [paper_exact]", "nguyen2025_grid [ours]",
           "nguyen2025_size_sweep [paper_exact]", "nguyen2025_size_sweep [ours]", "avetisyan2024"}


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, str]:
    """`bash benchmarks/gpu_check.sh --cpu-smoke --out DIR`, once: (the JSON, stdout)."""
    out = tmp_path_factory.mktemp("gpu_check")
    env = {**os.environ, "ECGCORE_HOME": str(out / "home")}
    done = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_check.sh"), "--cpu-smoke", "--out", str(out)],
                          capture_output=True, text=True, env=env, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((out / "gpu_check.json").read_text()), done.stdout


def test_cpu_smoke_reports_the_machine_and_the_synthetic_cache(smoke: tuple[dict, str]) -> None:
    report, _ = smoke
    assert report["mode"] == "cpu-smoke"
    assert report["machine"]["device"] == "cpu" and report["machine"]["gpu"] is None
    assert report["machine"]["torch"]
    cache = report["synthetic_cache"]
    assert cache["shape"] == [256, 12, 1000] and cache["dtype"] == "float32" and cache["classes"] == list(CLASSES)
    assert report["complete"] is True
    assert set(report["section_seconds"]) == {"architectures", "presets", "switches", "quickstart"}


def test_cpu_smoke_measures_every_architecture_against_the_bare_loop(smoke: tuple[dict, str]) -> None:
    report, stdout = smoke
    rows = report["architectures"]
    assert {(r["arch"], r["precision"]) for r in rows} == {(a, "float32") for a in ARCHS}  # no autocast on CPU
    for r in rows:
        ours, bare = r["ours"]["samples_per_s"], r["bare"]["samples_per_s"]
        assert ours > 0 and bare > 0
        assert r["ratio"] == pytest.approx(ours / bare)
        assert r["below_target"] == (r["ratio"] < report["target_ratio"])
        assert r["ours"]["peak_gpu_memory_bytes"] is None and r["bare"]["peak_gpu_memory_bytes"] is None
        assert r["input_samples"] == 250 and r["rows"] % r["batch_size"] == 0
        assert r["ours"]["speed"]["data_placement"] == "host"  # "auto" on a CPU
        assert np.isfinite(r["ours"]["train_loss_last"])
        assert r["arch"] in stdout


def test_cpu_smoke_measures_the_speed_settings_against_the_defaults(smoke: tuple[dict, str]) -> None:
    report, stdout = smoke
    rows = report["switches"]
    settings = ["defaults", "deterministic=false", "cudnn_benchmark"]  # compiling is skipped on the CPU smoke
    assert [(r["arch"], r["setting"]) for r in rows] == [(a, s) for a in ("xresnet1d101", "small_cnn") for s in settings]
    for r in rows:
        assert r["samples_per_s"] > 0 and r["speed"]["compile"] is False
        assert r["speed"]["cudnn_benchmark"] is False  # switched on only on CUDA: results.json says what ran
    assert [r["ratio_to_defaults"] for r in rows if r["setting"] == "defaults"] == [1.0, 1.0]
    assert "small_cnn cudnn_benchmark" in stdout


def test_cpu_smoke_times_the_quickstart_with_one_and_two_slots(smoke: tuple[dict, str]) -> None:
    report, stdout = smoke
    rounds = report["quickstart"]["rounds"]
    assert [r["slots"] for r in rounds] == [1, 2]
    assert [r["worker_arguments"] for r in rounds] == [["--slots", "1"], ["--slots", "2"]]  # no GPU here
    assert all(r["devices"] == ["cpu"] for r in rounds)
    for r in rounds:
        assert r["jobs"] == 2 and r["wall_seconds"] > 0 and r["job_seconds_sum"] > 0
    assert "quickstart through the job worker" in stdout


def test_cpu_smoke_projects_every_paper_preset(smoke: tuple[dict, str]) -> None:
    report, stdout = smoke
    projection = report["presets"]["projection"]
    assert set(projection) == PRESETS
    assert projection["ptbxl_benchmark"]["runs"] == 36  # 6 tasks x 6 models, from the experiments code
    for name, p in projection.items():
        assert p["runs"] > 0 and p["sample_epochs"] > 0 and p["hours"] > 0, name
        assert name in stdout
    speeds = report["presets"]["speeds"]
    assert all(s["samples_per_s"] > 0 for s in speeds)
    reused = {s["arch"] for s in speeds if s["from"] == "architectures"}
    assert reused == {"xresnet1d101", "inception1d", "lstm"}  # the benchmark's 2.5 s crops, batch 128
    assert {"resnet1d18", "ecglib_densenet1d121"} <= {s["arch"] for s in speeds if s["from"] == "measured"}


def test_synthetic_cache_is_a_prepared_memmap_with_a_learnable_task(tmp_path: Path) -> None:
    data = synthetic_dataset(tmp_path, 300, seed=1)
    assert isinstance(data.X, np.memmap) and not data.X.flags.writeable
    assert data.X.shape == (300, 12, 1000) and data.y.shape == (300, len(CLASSES))
    assert data.y.any(axis=1).all() and not (data.y[:, 0] & data.y[:, 1:].any(axis=1)).any()  # NORM alone
    assert data.split.val.size == 0 and data.split.train.size == 240  # folds 1-8 of 10
    assert data.table.loc[data.record_ids, "patient_id"].nunique() == 150
    mean, std = fit_standard_scaler(data.X, data.split.train)
    np.testing.assert_allclose(data.scaler[0], mean, atol=1e-6)
    np.testing.assert_allclose(data.scaler[1], std, rtol=1e-6)
    # each class is its own frequency: its spectral power is far higher in records that have it
    power = np.abs(np.fft.rfft(np.asarray(data.X), axis=2)).mean(axis=1)  # (n, 501) at 0.1 Hz bins
    for k, hz in enumerate(CLASS_HZ):
        at = power[:, round(hz * 10)]
        assert at[data.y[:, k] == 1].mean() > 5 * at[data.y[:, k] == 0].mean(), CLASSES[k]


def test_measurements_are_sized_to_their_budget() -> None:
    sizing = Sizing(epoch_seconds=2.0, timed_seconds=3.0, probe_seconds=0.5, probe_steps=3)
    # xresnet1d101-like: an epoch of ~2 s in whole batches, two timed epochs for ~3 s
    assert rows_and_epochs(4000.0, 17439, 128, sizing) == (7936, 2)
    # small_cnn-like: the whole training split (whole batches), epochs capped
    assert rows_and_epochs(80000.0, 17439, 128, sizing) == (17408, MAX_TIMED_EPOCHS)
    # very slow: at least min_batches batches and one timed epoch
    assert rows_and_epochs(10.0, 17439, 128, sizing) == (256, 1)
    # a split smaller than a batch: all of it, as many epochs as the timed budget takes
    assert rows_and_epochs(10.0, 12, 128, sizing) == (12, 3)
