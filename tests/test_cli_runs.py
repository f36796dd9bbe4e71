"""The experiment CLI end to end on tiny synthetic data: run, reuse, runs, show, predict."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ecgcore.data.synthetic import write_demo_data

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--set", "train.epochs=1", "--set", "pretrain.epochs=1", "--set", "source.train_fraction=0.5",
        "--set", "grid.train_fraction=[1.0]"]


def _cli(workspace: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "ECGCORE_HOME": str(workspace)}
    return subprocess.run([sys.executable, "-m", "ecgcore", *args], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=600)


@pytest.fixture(scope="module")
def tiny_workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("ws")
    write_demo_data(home / "datasets", seed=0, scale=0.12)
    return home


def test_run_reuse_runs_show_predict(tiny_workspace: Path, shared_data: Path) -> None:
    smoke = str(ROOT / "experiments" / "smoke.toml")
    weights = shared_data / "labels" / "challenge2021" / "weights.csv"
    tiny = [*TINY, "--set", f"target.challenge_weights={weights}"]
    plan = _cli(tiny_workspace, "run", smoke, *tiny, "--dry-run", "--json")
    assert plan.returncode == 0, plan.stderr
    specs = json.loads(plan.stdout)
    assert [s["kind"] for s in specs] == ["pretrain", "target", "target"]
    assert {s["config"]["strategy"] for s in specs[1:]} == {"scratch", "finetune"}
    finetune = next(s for s in specs if s["config"].get("strategy") == "finetune")
    assert finetune["depends_on"] == specs[0]["config_hash"] and not any(s["done_run"] for s in specs)

    done = _cli(tiny_workspace, "run", smoke, *tiny, "--json")
    assert done.returncode == 0, done.stderr
    run_ids = json.loads(done.stdout)
    assert len(run_ids) == 3

    again = _cli(tiny_workspace, "run", smoke, *tiny, "--json")
    assert json.loads(again.stdout) == run_ids, "finished runs are reused, not trained again"
    assert "reusing" in again.stderr

    listed = json.loads(_cli(tiny_workspace, "runs", "--json").stdout)
    assert {r["run_id"] for r in listed} == set(run_ids)
    assert all(r["status"] == "done" for r in listed)

    target_id = run_ids[-1]
    results = json.loads(_cli(tiny_workspace, "show", target_id, "--json").stdout)
    for key in ("run_id", "status", "source", "target", "arch", "strategy", "train_fraction", "n_train",
                "seed", "classes", "best_epoch", "epochs_run", "train_seconds", "device"):
        assert key in results, key
    assert results["strategy"] == "finetune" and results["source"] == "source_ptbxl"
    assert 0.0 <= results["test"]["macro_auc"] <= 1.0
    # NSR is among the demo classes, but not every scored class: a subset score, labelled so.
    assert results["test"]["challenge_score"] is None and results["test"]["challenge_score_missing_classes"]
    assert -1.0 <= results["test"]["challenge_score_subset"] <= 1.0
    assert 0.0 <= results["test"]["brier"] <= 1.0 and 0.0 <= results["test"]["ece"] <= 1.0
    assert results["training_notes"] is not None and results["leakage"]["overlap"] == []
    speed = results["speed"]  # how it ran: the CPU keeps host batches; no GPU memory to report
    assert speed["data_placement"] == "host" and speed["precision"] == "float32"
    assert speed["samples_per_second"] > 0 and speed["peak_gpu_memory_bytes"] is None
    assert "training rows on the host" in _cli(tiny_workspace, "show", target_id).stdout
    low, high = results["test"]["macro_auc_ci"]
    assert low <= results["test"]["macro_auc"] <= high
    folder = tiny_workspace / "runs" / target_id
    for name in ("config.json", "history.csv", "results.json", "predictions.npz", "model.pt", "log.txt"):
        assert (folder / name).is_file(), name
    predictions = np.load(folder / "predictions.npz", allow_pickle=False)
    assert list(predictions["classes"]) == results["classes"]
    assert predictions["y_score"].shape == predictions["y_true"].shape == (results["n_test"],
                                                                           len(results["classes"]))

    # source_only: the source model scores the target classes it knows; the rest are listed.
    only = _cli(tiny_workspace, "run", smoke, *tiny, "--set", 'grid.strategy=["source_only"]', "--json")
    assert only.returncode == 0, only.stderr
    source_only = json.loads(_cli(tiny_workspace, "show", json.loads(only.stdout)[-1], "--json").stdout)
    assert source_only["epochs_run"] == 0 and source_only["training_notes"] == ["no target training"]
    assert source_only["classes"] and set(source_only["classes"]) <= set(results["classes"])
    assert set(source_only["unscored_classes"]) == set(results["classes"]) - set(source_only["classes"])

    record = next((tiny_workspace / "datasets" / "target_challenge").rglob("*.hea"))
    scored = _cli(tiny_workspace, "predict", "--run", target_id, str(record), "--json")
    assert scored.returncode == 0, scored.stderr
    (item,) = json.loads(scored.stdout)
    assert item["record"] == record.stem and set(item["probabilities"]) == set(results["classes"])
    assert all(0.0 <= p <= 1.0 for p in item["probabilities"].values())
    assert set(item["names"]) == set(results["classes"])
    # The same record scored through the run's predictions (same preprocessing) agrees.
    ids = list(predictions["record_ids"])
    if record.stem in ids:
        row = predictions["y_score"][ids.index(record.stem)]
        np.testing.assert_allclose([item["probabilities"][c] for c in results["classes"]], row, atol=1e-5)


@pytest.mark.parametrize("override, message", [
    ("grid.arch=[\"no_such_net\"]", "unknown architecture 'no_such_net'"),
    ("grid.strategy=[\"no_such\"]", "unknown strategy 'no_such'"),
    ("train.no_such_key=1", "[train]"),
    ("target.min_positives=100000", "the target has no usable labels"),
])
def test_bad_input_gets_one_line_and_non_zero_exit(tiny_workspace: Path, override: str,
                                                   message: str) -> None:
    args = ["run", str(ROOT / "experiments" / "smoke.toml"), *TINY, "--set", override]
    if "target." not in override:
        args.append("--dry-run")
    failed = _cli(tiny_workspace, *args)
    assert failed.returncode != 0
    last = failed.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and message in last


def test_one_failed_run_does_not_stop_the_grid(tiny_workspace: Path) -> None:
    def done_scratch_runs() -> int:
        runs = json.loads(_cli(tiny_workspace, "runs", "--json").stdout)
        return sum(r["kind"] == "target" and r["strategy"] == "scratch" and r["status"] == "done"
                   for r in runs)

    # A setting the model cannot take is refused when the grid is planned, before any training.
    refused = _cli(tiny_workspace, "run", str(ROOT / "experiments" / "smoke.toml"), *TINY, "--dry-run",
                   "--set", 'grid.strategy=["partial_freeze", "scratch"]', "--set", "strategy_options.freeze_groups=99")
    assert refused.returncode != 0 and len(refused.stderr.strip().splitlines()) == 1
    assert "freeze_groups=99" in refused.stderr

    # A run that fails only once it reads its data (a crop longer than the prepared window):
    # its folder keeps the error and the next run still runs.
    before = done_scratch_runs()
    args = ["run", str(ROOT / "experiments" / "smoke.toml"), *TINY, "--set", "train.epochs=1",
            "--set", 'grid.strategy=["scratch"]', "--set", 'grid.arch=["fcn_wang", "small_cnn"]',
            "--set", "archs.fcn_wang.train.crop_seconds=60"]
    failed = _cli(tiny_workspace, *args)
    assert failed.returncode != 0
    last = failed.stderr.strip().splitlines()[-1]
    assert last.startswith("error: 1 of 2 runs failed; first: fcn_wang scratch")
    runs = json.loads(_cli(tiny_workspace, "runs", "--json").stdout)
    (broken,) = [r for r in runs if r["arch"] == "fcn_wang"]
    assert broken["status"] == "failed" and "crop of 60" in broken["error"]
    assert done_scratch_runs() == before + 1, "the run after the failed one still ran"
