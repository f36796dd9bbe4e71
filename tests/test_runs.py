"""The run store: folder contract, index, reuse by config hash, recovery, concurrency."""

from __future__ import annotations

import json
import multiprocessing
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from ecgcore.checkpoint import Checkpoint
from ecgcore.errors import EcgcoreError
from ecgcore.runs import (
    HISTORY_COLUMNS,
    LIST_COLUMNS,
    RESULT_KEYS,
    TEST_KEYS,
    RunFolder,
    RunStore,
    canonical_json,
    config_hash,
)
from ecgcore.runs.run_config import (
    DataConfig,
    ModelConfig,
    RunConfig,
    SourceConfig,
    StrategyConfig,
)

CONFIG = {
    "source": "synthetic-source", "target": "synthetic-target", "task": "superdiagnostic",
    "arch": "tiny_cnn", "strategy": "finetune", "train_fraction": 0.25, "seed": 3,
    "train": {"epochs": 4, "lr": 0.001, "batch_size": 32}, "device": "cpu",
}
CLASSES = ["426783006", "164865005", "164889003"]


def results_for(run_id: str, auc: float = 0.81) -> dict:
    return {
        "n_train": 120, "classes": CLASSES, "best_epoch": 3, "epochs_run": 4,
        "train_seconds": 12.5, "device": "cpu",
        "test": {
            "macro_auc": auc, "macro_auc_ci": [auc - 0.05, auc + 0.04],
            "per_class_auc": {c: auc for c in CLASSES}, "macro_auprc": 0.6, "f1_weighted": 0.55,
        },
    }


def tiny_checkpoint() -> Checkpoint:
    return Checkpoint(
        state_dict={"w": torch.arange(6, dtype=torch.float32).reshape(2, 3)}, model_name="tiny_cnn",
        model_config={"width": 8}, classes=CLASSES, class_names=["NORM", "MI", "AF"],
        prep={"fs": 100, "seconds": 2.5},
    )


def finished_run(store: RunStore, config: dict = CONFIG, kind: str = "target", model: bool = True) -> str:
    run = store.create(dict(config), kind=kind)
    if model:
        run.save_model(tiny_checkpoint())
    store.finish(run.run_id, results_for(run.run_id))
    return run.run_id


# -- config hash ------------------------------------------------------------------------------
def test_config_hash_ignores_key_order_number_spelling_and_machine_keys() -> None:
    digest = config_hash(CONFIG)
    assert len(digest) == 16 and int(digest, 16) >= 0
    reordered = dict(reversed(list(CONFIG.items())))
    reordered["train"] = {"batch_size": 32, "lr": 0.001, "epochs": 4.0}
    assert config_hash(reordered) == digest
    machine = {**CONFIG, "device": "cuda", "notes": "second try", "n_jobs": 8,
               "train": {**CONFIG["train"], "num_workers": 4}}
    assert config_hash(machine) == digest
    assert config_hash({**CONFIG, "train_fraction": 0.1 + 0.15}) == digest
    assert config_hash({**CONFIG, "seed": 4}) != digest
    assert config_hash({**CONFIG, "train": {**CONFIG["train"], "lr": 0.0011}}) != digest
    assert '"device"' not in canonical_json(CONFIG)
    assert config_hash({**CONFIG, "arch": ("a", "b")}) == config_hash({**CONFIG, "arch": ["a", "b"]})


def test_config_hash_rejects_values_that_are_not_json() -> None:
    with pytest.raises(EcgcoreError, match=r"config\.train\.lr"):
        config_hash({**CONFIG, "train": {"lr": object()}})


# -- folder contract ----------------------------------------------------------------------------
def test_folder_holds_exactly_the_contract_files_and_results_round_trip(workspace: Path) -> None:
    store = RunStore()
    assert store.home == workspace.resolve()
    run = store.create(CONFIG)
    assert run.path == workspace.resolve() / "runs" / run.run_id
    date, hhmm, hash8, rand = run.run_id.split("-")
    assert len(date) == 8 and len(hhmm) == 4 and hash8 == config_hash(CONFIG)[:8] and len(rand) == 4
    assert run.config == CONFIG
    assert run.results() is None and store.list().loc[0, "status"] == "running"
    run.append_history(
        {"epoch": 1, "train_loss": 0.7, "val_loss": 0.6, "val_macro_auc": 0.7, "lr": 1e-3, "seconds": 2.0}
    )
    run.write_predictions(["a", "b"], np.array([[1, 0, 0], [0, 1, 1]]), np.full((2, 3), 0.5), CLASSES)
    run.save_model(tiny_checkpoint())
    run.log("epoch 1 done")
    store.finish(run.run_id, results_for(run.run_id))
    names = sorted(p.name for p in run.path.iterdir())
    assert names == sorted(["config.json", "history.csv", "results.json", "predictions.npz", "model.pt", "log.txt",
                            "checksums.json"])  # written last by finish (ecgcore/runs/verify_runs.py)

    on_disk = json.loads((run.path / "results.json").read_text())
    assert on_disk == run.results()
    for key in RESULT_KEYS:
        assert key in on_disk, key
    for key in TEST_KEYS:
        assert key in on_disk["test"], key
    assert on_disk["run_id"] == run.run_id and on_disk["status"] == "done"
    assert on_disk["test"]["macro_auc"] == pytest.approx(0.81)
    assert on_disk["arch"] == "tiny_cnn" and on_disk["seed"] == 3  # filled in from the config
    loaded = store.get(run.run_id).load_model()
    assert loaded.classes == CLASSES and torch.equal(loaded.state_dict["w"], tiny_checkpoint().state_dict["w"])

    row = store.list().iloc[0]
    assert list(store.list().columns) == list(LIST_COLUMNS)
    assert row["status"] == "done" and row["arch"] == "tiny_cnn" and row["task"] == "superdiagnostic"
    assert row["macro_auc"] == pytest.approx(0.81) and row["macro_auc_low"] == pytest.approx(0.76)
    assert row["macro_auc_high"] == pytest.approx(0.85) and row["best_epoch"] == 3
    assert row["config_hash"] == config_hash(CONFIG) and row["path"] == str(run.path)
    assert row["created"] < row["finished"] or row["created"] == row["finished"]
    assert "epoch 1 done" in run.log_path.read_text()


def test_finish_refuses_results_missing_contract_keys(workspace: Path) -> None:
    store = RunStore()
    run = store.create(CONFIG)
    incomplete = results_for(run.run_id)
    del incomplete["test"]["macro_auc_ci"], incomplete["n_train"]
    with pytest.raises(EcgcoreError, match=r"n_train.*test\.macro_auc_ci"):
        store.finish(run.run_id, incomplete)
    assert run.results() is None and store.list().loc[0, "status"] == "running"


def test_predictions_round_trip_without_pickle(workspace: Path) -> None:
    run = RunStore().create(CONFIG)
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 2, size=(5, 3)).astype(np.int8)
    y_score = rng.random((5, 3)).astype(np.float32)
    ids = ["ptbxl/00001", "ptbxl/00002", "é-3", "4", "5"]
    run.write_predictions(ids, y_true, y_score, CLASSES)
    with np.load(run.path / "predictions.npz", allow_pickle=False) as raw:
        assert sorted(raw.files) == ["classes", "record_ids", "y_score", "y_true"]
        assert raw["record_ids"].dtype.kind == "U" and raw["classes"].dtype.kind == "U"
    back = run.predictions()
    assert back["record_ids"].tolist() == ids and back["classes"].tolist() == CLASSES
    np.testing.assert_array_equal(back["y_true"], y_true)
    np.testing.assert_array_equal(back["y_score"], y_score)
    with pytest.raises(EcgcoreError, match="y_score has shape"):
        run.write_predictions(ids, y_true, y_score[:, :2], CLASSES)
    assert run.predictions()["y_score"].shape == (5, 3)  # the failed write left the file alone
    assert not [p for p in run.path.iterdir() if p.name.startswith(".")]


def test_history_continues_across_restarts(workspace: Path) -> None:
    run = RunStore().create(CONFIG)
    assert list(run.history().columns) == list(HISTORY_COLUMNS) and run.history().empty
    run.append_history({"epoch": 1, "train_loss": 0.9, "val_loss": 0.8, "val_macro_auc": 0.6,
                        "lr": 1e-3, "seconds": 1.5, "val_f1": 0.3})
    first_bytes = run.history_path.read_bytes()
    restarted = RunFolder(run.path)
    restarted.append_history({"epoch": 2, "train_loss": 0.5, "val_loss": 0.6, "val_macro_auc": 0.7,
                              "lr": 5e-4, "seconds": 1.4, "val_f1": 0.4})
    restarted.append_history({"epoch": 3, "train_loss": 0.4})
    assert run.history_path.read_bytes().startswith(first_bytes)  # appended, never rewritten
    history = RunFolder(run.path).history()
    assert list(history.columns) == list(HISTORY_COLUMNS) + ["val_f1"]
    assert history["epoch"].tolist() == [1, 2, 3]
    assert history["val_f1"].tolist()[:2] == [0.3, 0.4] and np.isnan(history["val_f1"].iloc[2])
    with pytest.raises(EcgcoreError, match="brand_new"):
        restarted.append_history({"epoch": 4, "brand_new": 1})


# -- reuse, failure, recovery ---------------------------------------------------------------------
def test_find_done_ignores_failed_incomplete_and_runs_without_model(workspace: Path) -> None:
    store = RunStore()
    digest = config_hash(CONFIG)
    assert store.find_done(digest) is None
    failed = store.create(CONFIG)
    failed.save_model(tiny_checkpoint())
    store.fail(failed.run_id, "CUDA out of memory")
    store.create(CONFIG).save_model(tiny_checkpoint())  # still running
    no_model = finished_run(store, model=False)
    assert store.find_done(digest) is None
    good = finished_run(store)
    assert store.find_done(digest) == good
    assert store.find_done(digest, kind="pretrain") is None
    newer = finished_run(store, kind="pretrain")
    assert store.find_done(digest) == newer and store.find_done(digest, kind="target") == good
    (workspace / "runs" / newer / "model.pt").unlink()
    assert store.find_done(digest) == good
    (workspace / "runs" / good / "results.json").unlink()
    assert store.find_done(digest) is None
    assert store.find_done(config_hash({**CONFIG, "seed": 99})) is None
    assert no_model in set(store.list(status="done")["run_id"])


def test_fail_keeps_the_partial_folder(workspace: Path) -> None:
    store = RunStore()
    run = store.create(CONFIG)
    run.append_history({"epoch": 1, "train_loss": 0.9})
    run.save_model(tiny_checkpoint())
    store.fail(run.run_id, "stopped by user", status="cancelled")
    assert {"config.json", "history.csv", "model.pt", "log.txt", "results.json"} <= {p.name for p in run.path.iterdir()}
    results = run.results()
    assert results["status"] == "cancelled" and results["error"] == "stopped by user"
    assert results["run_id"] == run.run_id and results["arch"] == "tiny_cnn"
    assert len(run.history()) == 1 and "cancelled: stopped by user" in run.log_path.read_text()
    row = store.list(run_id=run.run_id).iloc[0]
    assert row["status"] == "cancelled" and row["error"] == "stopped by user"
    with pytest.raises(EcgcoreError, match="not 'exploded'"):
        store.fail(run.run_id, "x", status="exploded")
    done = finished_run(store)
    with pytest.raises(EcgcoreError, match="already finished"):
        store.fail(done, "late cancel", status="cancelled")
    assert store.get(done).results()["status"] == "done"
    assert store.list(run_id=done).loc[0, "status"] == "done"


def test_reindex_after_deleting_the_index_recovers_the_runs(workspace: Path) -> None:
    store = RunStore()
    done = finished_run(store, kind="pretrain")
    failed = store.create({**CONFIG, "seed": 5})
    store.fail(failed.run_id, "diverged")
    crashed = store.create({**CONFIG, "seed": 6})
    before = store.list().set_index("run_id")
    for suffix in ("", "-wal", "-shm"):
        Path(f"{workspace}/store.sqlite{suffix}").unlink(missing_ok=True)

    assert set(RunStore().list()["run_id"]) == set(before.index)  # rebuilt on first open
    Path(workspace / "store.sqlite").unlink()
    with sqlite3.connect(workspace / "store.sqlite") as conn:
        conn.execute("CREATE TABLE unrelated (x)")  # an index file without runs: explicit reindex
    store = RunStore()
    assert store.list().empty
    assert store.reindex() == 3
    after = store.list().set_index("run_id")
    assert after.loc[done, "status"] == "done" and after.loc[done, "kind"] == "pretrain"
    assert after.loc[done, "macro_auc"] == pytest.approx(0.81)
    for column in ("config_hash", "created", "finished", "arch", "macro_auc_low", "best_epoch"):
        assert after.loc[done, column] == before.loc[done, column], column
    assert after.loc[failed.run_id, "status"] == "failed" and after.loc[failed.run_id, "error"] == "diverged"
    assert after.loc[crashed.run_id, "status"] == "incomplete"
    assert after.loc[crashed.run_id, "config_hash"] == config_hash({**CONFIG, "seed": 6})
    assert store.find_done(config_hash(CONFIG), kind="pretrain") == done


def test_reindex_keeps_runs_the_index_knows_as_running(workspace: Path) -> None:
    store = RunStore()
    running = store.create(CONFIG)
    assert store.reindex() == 1
    assert store.list().loc[0, "status"] == "running"
    assert store.status(running.run_id) == "running"


def test_unknown_run_id_and_bad_filters_are_clear_errors(workspace: Path) -> None:
    store = RunStore()
    for bad in ("20261122-0530-deadbeef-0000", "../etc", ""):
        with pytest.raises(EcgcoreError, match="unknown run id"):
            store.get(bad)
    with pytest.raises(EcgcoreError, match="unknown run id"):
        store.finish("nope", {})
    with pytest.raises(EcgcoreError, match="cannot filter runs by"):
        store.list(colour="red")


def test_list_filters(workspace: Path) -> None:
    store = RunStore()
    a = finished_run(store)
    b = finished_run(store, {**CONFIG, "strategy": "scratch", "seed": 4})
    store.create({**CONFIG, "strategy": "lp_ft"})
    assert len(store.list()) == 3
    assert store.list(strategy="scratch")["run_id"].tolist() == [b]
    assert set(store.list(strategy=["finetune", "scratch"], status="done")["run_id"]) == {a, b}
    assert store.list(seed=4)["run_id"].tolist() == [b]
    assert store.list(strategy=[]).empty
    assert isinstance(store.list(arch="none"), pd.DataFrame) and store.list(arch="none").empty


def test_a_run_config_is_indexed_by_its_parts(workspace: Path) -> None:
    """A running run's row names what its results will: datasets by folder name, the
    strategy, the training fraction; its failed results.json says the same."""
    config = RunConfig(
        kind="target", experiment="e", model=ModelConfig("resnet1d18"), seed=1,
        data=DataConfig("/d/target_challenge", task="superdiagnostic"),
        strategy=StrategyConfig("finetune"), train_fraction=0.5,
        source=SourceConfig(DataConfig("/d/source_ptbxl", task="shared"), pretrain_hash="ab" * 8))
    store = RunStore()
    run = store.create(config.to_dict())
    row = store.list(run_id=run.run_id).iloc[0]
    assert (row["source"], row["target"], row["task"], row["arch"], row["strategy"]) == (
        "source_ptbxl", "target_challenge", "superdiagnostic", "resnet1d18", "finetune")
    assert row["train_fraction"] == 0.5 and row["seed"] == 1 and row["device"] == "auto"
    assert pd.isna(row["macro_auc"])
    store.fail(run.run_id, "boom")
    failed = run.results()
    assert (failed["source"], failed["target"], failed["strategy"]) == ("source_ptbxl", "target_challenge",
                                                                        "finetune")
    # Runs that failed before RunConfig wrote the source section itself into results.json.
    (run.path / "results.json").write_text(json.dumps({**failed, "source": config.to_dict()["source"]}))
    store.reindex()
    assert store.list(run_id=run.run_id).iloc[0]["source"] == "source_ptbxl"


def test_a_config_that_is_not_a_run_config_is_indexed_by_its_top_level_keys(workspace: Path) -> None:
    store = RunStore()
    run = store.create({"arch": "small_cnn", "seed": 7, "target": "t", "model": {"arch": "other"}})
    row = store.list(run_id=run.run_id).iloc[0]
    assert (row["arch"], row["seed"], row["target"]) == ("small_cnn", 7, "t")
    assert row["strategy"] is None and row["source"] is None


# -- concurrency --------------------------------------------------------------------------------
def _finish_many(home: str, run_ids: list[str], n_new: int) -> None:
    store = RunStore(Path(home))
    for run_id in run_ids:
        store.finish(run_id, results_for(run_id))
    for i in range(n_new):
        run = store.create({**CONFIG, "seed": 1000 + i, "worker": run_ids[0]})
        store.finish(run.run_id, results_for(run.run_id))


def test_two_processes_finishing_runs_at_once_lose_no_index_row(workspace: Path) -> None:
    store = RunStore()
    created = [store.create({**CONFIG, "seed": i}).run_id for i in range(24)]
    context = multiprocessing.get_context("fork")
    workers = [
        context.Process(target=_finish_many, args=(str(workspace), created[k::2], 8)) for k in range(2)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
        assert worker.exitcode == 0
    table = store.list()
    assert len(table) == 24 + 16 and set(created) <= set(table["run_id"])
    assert (table["status"] == "done").all()
    assert table["macro_auc"].notna().all()
    assert store.reindex() == 40 and (store.list()["status"] == "done").all()


def test_torn_files_never_sink_the_store(workspace: Path) -> None:
    store = RunStore()
    run = store.create(CONFIG)
    run.append_history({"epoch": 1, "train_loss": 0.9})
    with open(run.history_path, "a") as out:
        out.write("2,0.8")  # a crash in the middle of a row
    RunFolder(run.path).append_history({"epoch": 3, "train_loss": 0.7})
    assert run.history()["epoch"].tolist() == [1, 2, 3]
    assert run.history_path.read_text().endswith("3,0.7,,,,\n")
    (run.path / "results.json").write_text('{"status": "do')
    assert store.reindex() == 1
    row = store.list().iloc[0]
    assert row["status"] == "incomplete" and "not valid JSON" in row["error"]
    assert store.find_done(config_hash(CONFIG)) is None
