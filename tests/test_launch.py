"""ecgcore.views.launch: Launch form choices -> experiment config -> runs -> jobs; class matching;
time estimates; the Jobs page's rows, retry and log; the quickstart launch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ecgcore import jobs, workspace
from ecgcore.data.sources import open_dataset
from ecgcore.experiments import plan_experiment
from ecgcore.jobs.payload import RunJob
from ecgcore.views.launch import (
    ClassPlan,
    LaunchChoices,
    LaunchError,
    TaskClasses,
    Throughput,
    choice_problems,
    class_plan,
    experiment_config,
    format_seconds,
    job_log,
    job_overhead,
    job_row,
    launch_problems,
    measure_throughput,
    plan_launch,
    retry_job,
    store_throughput,
    submit_launch,
)
from ecgcore.views.launch.estimate import EVAL_WEIGHT
from ecgcore.views.launch.quickstart import (
    QUICKSTART,
    grid_seconds,
    grid_summary,
    launch_quickstart,
)
from ecgcore.runs import RunStore
from ecgcore.train import device as device_module

REPO = Path(__file__).resolve().parents[1]
LQT = "111975006"  # the target site labels it, the source never does


def fixed_rate(arch: str, device: str, samples: int, n_classes: int) -> Throughput:
    return Throughput(arch, 0.01, "test rate")


def names() -> list[str]:
    return [entry.name for entry in workspace.list_datasets()]


def plan_of(home: Path, choices: LaunchChoices) -> ClassPlan:
    target = open_dataset(home / "datasets" / choices.target)
    source = open_dataset(home / "datasets" / choices.source) if choices.source else None
    return class_plan(target, choices.target_task, source, choices.source_task, choices.min_positives)


CHOICES = LaunchChoices(target="target_challenge", source="source_ptbxl", min_positives=5, epochs=1,
                        strategies=("scratch", "finetune"), fractions=(0.5, 1.0))


def test_form_and_experiment_file_mean_the_same_runs(demo_home: Path):
    """The quickstart's settings chosen in the form give the quickstart file's exact run hashes."""
    choices = LaunchChoices(target="target_challenge", source="source_ptbxl", name="quickstart",
                            epochs=30, pretrain_epochs=20, strategies=("scratch", "linear_probe", "finetune", "lp_ft"),
                            fractions=(0.1, 0.25, 0.5, 1.0))
    config = experiment_config(choices)
    assert config["grid"]["strategy"] == ["scratch", "linear_probe", "finetune", "lp_ft"]
    plan = plan_launch(choices, plan_of(demo_home, choices), throughput=fixed_rate)
    from_file = plan_experiment(QUICKSTART)
    assert [s.hash for s in plan.specs] == [s.hash for s in from_file]
    assert plan.count() == 17 and plan.count("new") == 17


def test_choice_problems_are_explained(demo_home: Path, monkeypatch: pytest.MonkeyPatch):
    ok = choice_problems(CHOICES, names())
    assert ok == []
    no_source = choice_problems(LaunchChoices(target="target_challenge", strategies=("scratch", "finetune",
                                                                                     "source_only")), names())
    assert len(no_source) == 1 and "finetune, source_only" in no_source[0] and "source is 'none'" in no_source[0]
    assert "scratch and random_frozen" in no_source[0]
    bad = choice_problems(LaunchChoices(target="nope", source="target_challenge", fractions=(0.0, 1.5),
                                        seeds=(), archs=("vgg",), epochs=0), names())
    text = " ".join(bad)
    for part in ("Target 'nope' is not a dataset", "Unknown architecture vgg", "(0, 1]", "at least one seed",
                 "Epochs must be >= 1"):
        assert part in text, part
    same = choice_problems(LaunchChoices(target="target_challenge", source="target_challenge"), names())
    assert "test records" in same[0]
    monkeypatch.setitem(device_module.AVAILABLE, "cuda", lambda: False)
    assert "not available" in choice_problems(LaunchChoices(target="target_challenge", device="cuda", strategies=("scratch",)),
                                              names())[0]
    with pytest.raises(LaunchError, match=r"\[grid\] arch"):
        experiment_config(LaunchChoices(target="target_challenge", archs=()))


def test_class_plan_says_what_is_shared_and_what_happens(demo_home: Path):
    classes = plan_of(demo_home, CHOICES)
    assert classes.target is not None and classes.source is not None
    assert LQT in classes.target.classes and LQT in classes.target_only and LQT not in classes.shared
    assert set(classes.shared) | set(classes.target_only) == set(classes.target.classes)
    assert classes.source_only and not set(classes.source_only) & set(classes.target.classes)
    assert classes.target.n_records == 50
    table = classes.table().set_index("class")
    assert table.loc[LQT, "where"] == "target only" and "source_only cannot score" in table.loc[LQT, "what happens"]
    shared = classes.shared[0]
    assert table.loc[shared, "where"] == "shared" and table.loc[shared, "source records"] > 0
    assert table.loc[classes.source_only[0], "where"] == "source only"
    assert table.loc[LQT, "name"].startswith("LQT")
    assert launch_problems(CHOICES, names(), classes) == []


def test_target_without_labels_and_nothing_shared_are_refused(demo_home: Path):
    choices = LaunchChoices(target="target_challenge", min_positives=10_000, strategies=("scratch",))
    classes = plan_of(demo_home, choices)
    problems = launch_problems(choices, names(), classes)
    assert classes.target is None and len(problems) == 1 and "no usable labels" in problems[0]
    with pytest.raises(LaunchError, match="no usable labels"):
        submit_launch(choices, names(), classes, plan_launch(CHOICES, plan_of(demo_home, CHOICES),
                                                             throughput=fixed_rate))
    assert jobs.list_jobs() == []
    disjoint = ClassPlan(TaskClasses("t", ("a",), (5,), 5), TaskClasses("s", ("b",), (5,), 5), shared=())
    refused = disjoint.problems(("source_only",), has_source=True)
    assert len(refused) == 1 and "share no class" in refused[0]
    assert disjoint.problems(("finetune",), has_source=True) == []


def test_plan_counts_reused_and_queued_runs_and_prices_the_rest(demo_home: Path):
    classes = plan_of(demo_home, CHOICES)
    plan = plan_launch(CHOICES, classes, throughput=fixed_rate)
    assert [r.kind for r in plan.runs] == ["pretrain", "target", "target", "target", "target"]
    assert plan.count("new") == 5
    # target run at fraction 1.0: 50 records * 0.55 train, 50 * 0.15 validation, 1 epoch
    overhead = plan.runs[0].seconds - 0.01 * (100 * 0.8 + EVAL_WEIGHT * 100 * 0.1)
    assert overhead == pytest.approx(6.0)
    assert plan.runs[2].seconds == pytest.approx(overhead + 0.01 * (50 * 0.55 + EVAL_WEIGHT * 50 * 0.15))
    assert plan.seconds == pytest.approx(sum(r.seconds for r in plan.runs))
    assert "test rate" in plan.basis[0] and "default" in plan.basis[-1]

    # A finished pretraining in the store is reused; queued jobs count as in the queue.
    store = RunStore()
    pre = plan.specs[0]
    folder = store.create(pre.config, kind="pretrain")
    folder.model_path.write_bytes(b"weights")
    store.finish(folder.run_id, {
        "source": None, "target": "source_ptbxl", "arch": "small_cnn", "strategy": "scratch",
        "train_fraction": 1.0, "n_train": 80, "n_val": 10, "seed": 0, "classes": ["a"], "best_epoch": 0,
        "epochs_run": 2, "train_seconds": 4.4, "device": "cpu",
        "test": {"macro_auc": 0.5, "macro_auc_ci": [0.4, 0.6], "per_class_auc": {"a": 0.5},
                 "macro_auprc": 0.5, "f1_weighted": 0.5}})
    job_ids = submit_launch(CHOICES, names(), classes, plan)
    assert len(job_ids) == 5
    states = {j["job_id"]: j["state"] for j in jobs.list_jobs()}
    assert states[job_ids[0]] == "done" and {states[j] for j in job_ids[1:]} == {"queued"}
    again = plan_launch(CHOICES, classes, throughput=fixed_rate)
    assert (again.count("reused"), again.count("in queue"), again.count("new")) == (1, 4, 0)
    assert again.seconds == 0 and again.runs[0].run_id == folder.run_id

    # The stored run is also the throughput to learn from (same input length only; ranges
    # and other input sizes in test_estimate.py).
    rate = store_throughput(store, "small_cnn", "cpu", 250)
    assert rate is not None and rate.n_runs == 1 and "finished" in rate.basis
    assert rate.seconds_per_sample == pytest.approx(4.4 / (2 * (80 + EVAL_WEIGHT * 10)))
    assert store_throughput(store, "small_cnn", "cpu", 1000) is None
    assert store_throughput(store, "small_cnn", "cuda", 250) is None
    assert store_throughput(store, "resnet1d18", "cpu", 250) is None


def test_measured_throughput_and_job_overhead():
    threads = torch.get_num_threads()
    rate = measure_throughput("small_cnn", 250, n_classes=5)
    assert 0 < rate.seconds_per_sample < 1 and rate.rough and rate.basis.startswith("rough prior")
    assert torch.get_num_threads() == threads
    done = [{"state": "done", "started": 100.0, "finished": 130.0, "run_id": "r1"},
            {"state": "done", "started": 100.0, "finished": 112.0, "run_id": "r2"},
            {"state": "done", "started": 100.0, "finished": 150.0, "run_id": "r3"},
            {"state": "failed", "started": 100.0, "finished": 500.0, "run_id": "r4"}]
    value, basis = job_overhead(done, {"r1": 20.0, "r2": 4.0, "r3": 40.0, "r4": 1.0})
    assert value == pytest.approx(10.0) and "3 finished" in basis
    assert job_overhead([], {})[0] == 6.0
    assert [format_seconds(s) for s in (42, 200, 7500)] == ["42 s", "3 min 20 s", "2 h 05 min"]


def _job(state: str, **extra) -> dict:
    config = {"strategy": extra.pop("strategy", "finetune"), "train": {"epochs": 4}}
    spec = RunJob(run_kind="target", config=config, hash="h").to_payload()
    return {"job_id": "job-1", "label": "a run", "state": state, "spec": spec, "attempts": 1,
            "run_id": None, "error": None, "started": 1000.0, **extra}


def test_job_rows_progress_best_auc_and_time_left():
    running = _job("running", progress={"epoch": 1, "step": 5, "n_steps": 10,
                                        "metrics": {"val_macro_auc": 0.7, "seconds": 10.0}})
    row = job_row(running, now=1030.0, history=[{"val_macro_auc": 0.8}, {"val_macro_auc": float("nan")},
                                                 {"val_macro_auc": 0.7}])
    assert row["progress"] == pytest.approx(1.5 / 4) and row["epoch"] == "2/4"
    assert row["best val AUC"] == pytest.approx(0.8) and row["time left (s)"] == 25
    first = _job("running", progress={"epoch": 0, "step": 2, "n_steps": 10, "metrics": None})
    assert job_row(first, now=1010.0)["time left (s)"] == round(10 * 0.95 / 0.05)
    assert job_row(_job("queued"), now=0)["progress"] == 0 and job_row(_job("queued"), now=0)["time left (s)"] is None
    assert job_row(_job("done", progress={"epoch": 2, "metrics": {"val_macro_auc": 0.6}}), now=0)["progress"] == 1
    assert job_row(_job("cancelling", progress={"epoch": 0}), now=0)["state"] == "cancelling"
    assert job_row(_job("running", strategy="source_only"), now=0)["epoch"] == ""


def test_retry_resubmits_failed_work_and_its_dead_pretraining(demo_home: Path):
    classes = plan_of(demo_home, CHOICES)
    job_ids = submit_launch(CHOICES, names(), classes, plan_launch(CHOICES, classes, throughput=fixed_rate))
    pretrain, finetune = job_ids[0], job_ids[3]
    assert jobs.get(finetune)["depends_on"] == pretrain
    with pytest.raises(Exception, match="only failed or cancelled"):
        retry_job(finetune)
    for job_id in job_ids:
        jobs.cancel(job_id)
    new = retry_job(finetune)
    assert len(new) == 2 and pretrain not in new and finetune not in new
    fresh = {j["job_id"]: j for j in jobs.list_jobs()}
    assert fresh[new[0]]["kind"] == "pretrain" and fresh[new[0]]["state"] == "queued"
    assert fresh[new[1]]["state"] == "waiting" and fresh[new[1]]["depends_on"] == new[0]
    assert fresh[new[1]]["config_hash"] == fresh[finetune]["config_hash"]
    assert job_log(fresh[new[1]]) == "(no output yet)"
    jobs.job_log_path(new[1]).write_text("epoch 0 done\n")
    assert "epoch 0 done" in job_log(jobs.get(new[1]))


def test_quickstart_summary_and_launch_through_the_queue(demo_home: Path):
    grid = grid_summary()
    assert (grid.n_pretrain, grid.n_target, grid.n_runs) == (1, 16, 17)
    assert grid.fractions == (0.1, 0.25, 0.5, 1.0) and grid.archs == ("small_cnn",)
    # Priced before any data exists, from the demo sites' sizes (2,000 source, 1,000 target).
    assert grid_seconds(Throughput("small_cnn", 0.0, "x"), overhead=5.0) == pytest.approx(17 * 5.0)
    per_fraction = sum(1000 * 0.55 * f + EVAL_WEIGHT * 150 for f in grid.fractions)
    expected = 0.001 * (20 * (2000 * 0.8 + EVAL_WEIGHT * 200) + 4 * 30 * per_fraction)
    assert grid_seconds(Throughput("small_cnn", 0.001, "x"), overhead=0.0) == pytest.approx(expected)
    written: list[bool] = []
    job_ids = launch_quickstart(write_demo=lambda: written.append(True))
    assert written == [] and len(job_ids) == 17  # demo sites present: not written again
    queued = jobs.list_jobs()
    assert [j["kind"] for j in queued].count("pretrain") == 1
    assert sum(j["state"] == "waiting" for j in queued) == 12  # linear_probe, finetune, lp_ft x 4
    assert np.all([j["spec"]["config"]["experiment"] == "quickstart" for j in queued])


NORMAL = "426783006"  # SNOMED sinus rhythm, the normal label nguyen_code_test derives


def test_task_classes_counts_the_labels_a_task_derives_as_the_run_does(demo_home: Path):
    """nguyen_code_test gives NORM to every record with none of the six CODE abnormalities;
    the Launch page's counts must be those the run trains on (execute derives them first)."""
    from ecgcore.data.labels import resolve, with_derived_labels
    from ecgcore.data.labels.named_tasks import task_targets
    from ecgcore.data.sources import open_dataset
    from ecgcore.views.launch.shared_classes import task_classes

    import dataclasses

    opened = open_dataset(demo_home / "datasets" / "target_challenge")
    table = opened.table.copy()  # no record says "normal": the task must derive it
    table["labels"] = [tuple(code for code in labels if code != NORMAL) for labels in table["labels"]]
    recordset = dataclasses.replace(opened, table=table)
    derived = with_derived_labels("nguyen_code_test", recordset)
    task = resolve("nguyen_code_test", derived, None, 1)
    targets, keep = task_targets(derived.table, task)
    shown = task_classes(recordset, "nguyen_code_test", None, 1)
    assert shown.counts[task.classes.index(NORMAL)] > 0
    assert shown.classes == tuple(task.classes)
    assert shown.counts == tuple(int(n) for n in targets[keep].sum(axis=0))
    assert shown.n_records == int(keep.sum())


def test_a_download_job_row_shows_the_downloads_own_fraction():
    """A download reports bytes/files done as `fraction`; its row shows that, not 0 epochs."""
    from ecgcore.download.download_job import DownloadJob

    spec = DownloadJob(dataset="ptbxl", version="1.0.3", to="/tmp/ptbxl").to_payload()
    job = {"job_id": "job-2", "label": "download PTB-XL", "state": "running", "spec": spec,
           "attempts": 1, "run_id": None, "error": None, "started": 1000.0,
           "progress": {"state": "downloading", "files_done": 3, "files_total": 12, "fraction": 0.25}}
    row = job_row(job, now=1030.0)
    assert row["progress"] == pytest.approx(0.25) and row["epoch"] == ""
    assert row["time left (s)"] == 90, "30 s for a quarter: 90 s for the rest"
    assert job_row({**job, "state": "done"}, now=0)["progress"] == 1
