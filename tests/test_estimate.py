"""Time estimates learned from finished runs (issue 14, "Estimates that hold"): only runs of
the same architecture, input size, lead count and device count; the estimate is a range
(min–max of the measured rates, p10–p90 once there are ten or more) with early stopping
at the fast end, and it says what it rests on. Without such runs: a labelled rough prior.

The store is written through the real RunStore API (create + finish), with known seconds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ecgcore.views.launch import (
    LaunchChoices,
    class_plan,
    best_throughput,
    plan_launch,
    store_throughput,
)
from ecgcore.data.sources import open_dataset
from ecgcore.views.launch.estimate import EVAL_WEIGHT, PRIOR_FACTORS, PRIOR_EPOCH_SHARE, input_samples_of, run_range
from ecgcore.views.launch.quickstart import grid_range, grid_seconds
from ecgcore.runs import RunStore

LEADS = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]


def finished_run(store: RunStore, *, rate: float, n_train: int = 100, n_val: int = 50, epochs: int = 20,
                 epochs_run: int = 20, arch: str = "small_cnn", crop: float | None = 2.5, fs: int = 100,
                 leads: list[str] = LEADS, device: str = "cpu", kind: str = "target", seed: int = 0) -> str:
    """A finished run whose training took `rate` seconds per training-sample-epoch."""
    config = {"arch": arch, "seed": seed, "prep": {"fs": fs, "seconds": 10, "leads": leads},
              "train": {"epochs": epochs, "crop_seconds": crop}, "data": {"dataset": "d", "task": "t"}}
    folder = store.create(config, kind=kind)
    store.finish(folder.run_id, {
        "source": None, "target": "d", "arch": arch, "strategy": "scratch", "train_fraction": 1.0,
        "n_train": n_train, "n_val": n_val, "seed": seed, "classes": ["a"], "best_epoch": 0,
        "epochs_run": epochs_run, "device": device,
        "train_seconds": rate * epochs_run * (n_train + EVAL_WEIGHT * n_val),
        "test": {"macro_auc": 0.5, "macro_auc_ci": [0.4, 0.6], "per_class_auc": {"a": 0.5},
                 "macro_auprc": 0.5, "f1_weighted": 0.5}})
    return folder.run_id


def test_estimate_is_a_range_from_matching_finished_runs(workspace: Path):
    store = RunStore()
    # Five runs that match: small_cnn, 2.5 s crops at 100 Hz (250 samples), 12 leads, CPU.
    rates = [0.001, 0.002, 0.003, 0.004, 0.005]
    for seed, (rate, ran) in enumerate(zip(rates, [10, 12, 20, 8, 14])):
        finished_run(store, rate=rate, epochs_run=ran, seed=seed)
    # Runs that must not count: another input size (10 s windows), one lead, the GPU, another
    # architecture. Today's estimate scaled the 1,000-sample run down and took the median.
    finished_run(store, rate=0.2, crop=None, seed=10)
    finished_run(store, rate=0.2, leads=["II"], seed=11)
    finished_run(store, rate=1e-6, device="cuda:0", seed=12)
    finished_run(store, rate=0.2, arch="resnet1d18", seed=13)

    found = store_throughput(store, "small_cnn", "cpu", 250, n_leads=12)
    assert found is not None and found.n_runs == 5 and not found.rough
    assert (found.low, found.seconds_per_sample, found.high) == pytest.approx((0.001, 0.003, 0.005))
    assert found.epoch_share == pytest.approx(12 / 20), "median share of the planned epochs the runs ran"
    assert "5 finished small_cnn runs at 250 samples × 12 leads on cpu" in found.basis
    assert "min–max" in found.basis and "12 of 20 epochs" in found.basis

    # A planned run: fast end = fastest rate with early stopping as the runs had it, slow end
    # = slowest rate with every epoch run; the fixed cost of a job on both ends.
    work = 300 + EVAL_WEIGHT * 60
    low, high = run_range(found, 300, 60, epochs=30, overhead=5.0)
    assert low == pytest.approx(5.0 + 0.001 * work * 30 * 0.6)
    assert high == pytest.approx(5.0 + 0.005 * work * 30)
    assert run_range(found, 300, 60, epochs=30, overhead=5.0, trains=False) == (5.0, 5.0)

    # Ten or more runs: p10–p90 of their rates, so one outlier does not stretch the range.
    for seed in range(20, 26):
        finished_run(store, rate=0.003, seed=seed)
    finished_run(store, rate=0.5, seed=30)  # trained while the machine was swamped
    many = store_throughput(store, "small_cnn", "cpu", 250, n_leads=12)
    all_rates = [*rates, *[0.003] * 6, 0.5]
    assert many is not None and many.n_runs == 12 and "p10–p90" in many.basis
    assert many.low == pytest.approx(np.percentile(all_rates, 10))
    assert many.high == pytest.approx(np.percentile(all_rates, 90))
    assert many.high < 0.05

    # Nothing that matches: None from the store, and the fallback is a labelled rough prior.
    assert store_throughput(store, "small_cnn", "cpu", 1000, n_leads=1) is None
    assert store_throughput(store, "small_cnn", "mps", 250, n_leads=12) is None
    prior = best_throughput("small_cnn", "cpu", 500, 5, store=store)
    assert prior.rough and prior.n_runs == 0 and prior.basis.startswith("rough prior")
    assert "no finished small_cnn run at 500 samples × 12 leads on cpu" in prior.basis
    probe = prior.low / PRIOR_FACTORS[0]  # the probe's own rate, widened by the prior's factors
    assert (prior.seconds_per_sample, prior.high) == pytest.approx((probe * PRIOR_FACTORS[1],
                                                                   probe * PRIOR_FACTORS[2]))
    assert prior.low < prior.seconds_per_sample < prior.high
    assert prior.epoch_share == PRIOR_EPOCH_SHARE


def test_launch_plan_and_quickstart_price_a_range_from_the_store(demo_home: Path):
    choices = LaunchChoices(target="target_challenge", source="source_ptbxl", min_positives=5, epochs=10,
                            strategies=("scratch",), fractions=(1.0,))
    target = open_dataset(demo_home / "datasets" / "target_challenge")
    source = open_dataset(demo_home / "datasets" / "source_ptbxl")
    classes = class_plan(target, choices.target_task, source, choices.source_task, choices.min_positives)
    store = RunStore()
    samples = 250
    for seed, rate in enumerate([0.002, 0.004, 0.008]):
        finished_run(store, rate=rate, epochs=10, epochs_run=5, seed=seed)
    plan = plan_launch(choices, classes, store=store, jobs=[])
    spec = plan.specs[0]
    assert input_samples_of(spec.config) == samples and plan.count("new") == 1
    run = plan.runs[0]
    n_train, n_val = 50 * 0.55, 50 * 0.15
    work = n_train + EVAL_WEIGHT * n_val
    assert run.low == pytest.approx(6.0 + 0.002 * work * 10 * 0.5)
    assert run.high == pytest.approx(6.0 + 0.008 * work * 10)
    assert (plan.low, plan.high) == pytest.approx((run.low, run.high))
    assert plan.low < plan.seconds <= plan.high
    text = plan.time_text()
    assert "–" in text and text.endswith("s")
    assumes = plan.assumptions()
    assert "3 finished small_cnn runs at 250 samples × 12 leads on cpu" in assumes
    assert "one after another" in assumes and "early stopping" in assumes

    # Home's quickstart estimate is priced with the same range.
    found = store_throughput(store, "small_cnn", "cpu", samples, n_leads=12)
    assert found is not None
    low, high = grid_range(found, overhead=0.0)
    assert low < grid_seconds(found, overhead=0.0) <= high
    per_sample_epochs_high = grid_seconds(found.__class__("small_cnn", 1.0, "x"), overhead=0.0)
    assert high == pytest.approx(0.008 * per_sample_epochs_high)
