"""ecgcore.views.compare on a store of really trained tiny runs (demo data, small_cnn, 2 epochs).

The store (`trained_store`) is trained once per test session and shared with
test_app_compare.py: smoke.toml with scratch and finetune at fractions 0.5 and 1.0 (seed
0), one more scratch seed at 1.0, and one run left "running" (created, never finished).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from worker_shared import shared_workspace

from ecgcore.views import compare
from ecgcore.views.compare import RunFilters
from ecgcore.data.labels import class_name
from ecgcore.errors import EcgcoreError
from ecgcore.runs import RunStore

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "experiments" / "smoke.toml"
TINY = ["train.epochs=2", "pretrain.epochs=1", "source.train_fraction=0.3", "target.min_positives=10"]


def trained_store(base: Path) -> Path:
    """ECGCORE_HOME of the shared trained store under `base` (trained once per session,
    copied once per xdist worker: `worker_shared`)."""
    return shared_workspace(base, "compare_store", _train_store)


def _train_store(home: Path) -> None:
    from ecgcore.data.synthetic import write_demo_data
    from ecgcore.experiments import run_experiment

    previous = os.environ.get("ECGCORE_HOME")
    os.environ["ECGCORE_HOME"] = str(home)
    try:
        write_demo_data(home / "datasets", seed=0, scale=0.1)
        run_experiment(SMOKE, [*TINY, "grid.train_fraction=[0.5, 1.0]"])
        run_experiment(SMOKE, [*TINY, 'grid.strategy=["scratch"]', "grid.train_fraction=[1.0]", "grid.seed=[1]"])
        RunStore(home).create({"kind": "target", "arch": "small_cnn", "strategy": "scratch", "seed": 9,
                               "train_fraction": 0.25, "target": "target_challenge"})
    finally:
        if previous is None:
            os.environ.pop("ECGCORE_HOME", None)
        else:
            os.environ["ECGCORE_HOME"] = previous


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return trained_store(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="module")
def store(home: Path) -> RunStore:
    return RunStore(home)


@pytest.fixture(scope="module")
def table(store: RunStore) -> pd.DataFrame:
    return compare.runs_table(store)


def _results(store: RunStore, run_id: str) -> dict:
    return json.loads((store.runs_dir / run_id / "results.json").read_text())


def _target(table: pd.DataFrame, strategy: str, fraction: float, seed: int) -> str:
    done = compare.finished(table)
    match = done[(done.strategy == strategy) & np.isclose(done.train_fraction, fraction) & (done.seed == seed)]
    assert len(match) == 1, (strategy, fraction, seed)
    return str(match.run_id.iloc[0])


def test_runs_table_has_every_run_with_results_columns(store: RunStore, table: pd.DataFrame) -> None:
    assert list(table.columns) == list(compare.TABLE_COLUMNS)
    assert len(table) == 7 and table.run_id.is_unique
    assert table.status.value_counts().to_dict() == {"done": 6, "running": 1}
    assert table.kind.value_counts().to_dict() == {"target": 6, "pretrain": 1}
    assert list(table.created) == sorted(table.created, reverse=True), "newest first"
    for row in table[table.status == "done"].to_dict("records"):
        results = _results(store, row["run_id"])
        assert row["n_train"] == results["n_train"] and row["n_test"] == results["n_test"]
        assert row["macro_auc"] == pytest.approx(results["test"]["macro_auc"])
        assert row["macro_auprc"] == pytest.approx(results["test"]["macro_auprc"])
    scratch = table[(table.strategy == "scratch") & (table.kind == "target")]
    assert set(scratch.source) == {compare.NO_SOURCE}
    running = table[table.status == "running"].iloc[0]
    assert pd.isna(running.macro_auc) and pd.isna(running.n_train)
    half = table[(table.kind == "target") & (table.status == "done") & np.isclose(table.train_fraction, 0.5)]
    full = table[(table.kind == "target") & np.isclose(table.train_fraction, 1.0)]
    assert half.n_train.max() < full.n_train.min(), "half the target's training records"


def test_filters(table: pd.DataFrame) -> None:
    options = compare.filter_options(table)
    assert options["strategies"] == ["finetune", "scratch"]
    assert options["fractions"] == [0.25, 0.3, 0.5, 1.0], "0.3: the pretraining run"
    assert options["seeds"] == [0, 1, 9]
    assert options["statuses"] == ["done", "running"] and options["kinds"] == ["pretrain", "target"]
    assert options["sources"] == ["none", "source_ptbxl"]
    assert len(compare.apply_filters(table, RunFilters())) == len(table)
    scratch_full = compare.apply_filters(table, RunFilters(strategies=("scratch",), fractions=(1.0,),
                                                          kinds=("target",)))
    assert sorted(scratch_full.seed.tolist()) == [0, 1]
    assert len(compare.apply_filters(table, RunFilters(statuses=("running",)))) == 1
    assert len(compare.apply_filters(table, RunFilters(seeds=(1,)))) == 1
    finetune = compare.apply_filters(table, RunFilters(sources=("source_ptbxl",)))
    assert set(finetune.strategy) == {"finetune"} and len(finetune) == 2
    assert compare.apply_filters(table, RunFilters(archs=("resnet1d18",))).empty


def test_reads_are_cached_on_file_stamps(home: Path, tmp_path: Path) -> None:
    copy = tmp_path / "ws"
    shutil.copytree(home, copy)
    store = RunStore(copy)
    compare.runs_table(store)
    misses = compare.stamp_cache.RESULTS.misses
    again = compare.runs_table(store)
    assert compare.stamp_cache.RESULTS.misses == misses, "a warm table reads no results.json"
    run_id = str(compare.finished(again).run_id.iloc[0])
    path = copy / "runs" / run_id / "results.json"
    results = json.loads(path.read_text())
    results["n_train"] = 12345
    path.write_text(json.dumps(results))
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    changed = compare.runs_table(store)
    assert compare.stamp_cache.RESULTS.misses == misses + 1, "only the changed file is read again"
    assert changed.set_index("run_id").loc[run_id, "n_train"] == 12345
    before = compare.histories(store, [run_id])
    with open(copy / "runs" / run_id / "history.csv", "a") as out:
        out.write(f"{int(before.epoch.max()) + 1},0.1,0.2,0.9,0.001,1.5\n")
    after = compare.histories(store, [run_id])
    assert len(after) == len(before) + 1 and after.val_macro_auc.iloc[-1] == pytest.approx(0.9)


def test_per_class_auc_matches_results_and_names_classes(store: RunStore, table: pd.DataFrame) -> None:
    ids = list(compare.finished(table).run_id)
    frame = compare.per_class_auc(store, ids + ["no-such-run"])
    assert set(frame.run_id) == set(ids)
    for run_id, part in frame.groupby("run_id"):
        test = _results(store, run_id)["test"]
        assert list(part.code) == list(test["per_class_auc"])
        for row in part.to_dict("records"):
            assert row["name"] == class_name(row["code"]) and row["name"] != row["code"]
            assert row["auc"] == pytest.approx(test["per_class_auc"][row["code"]])
            assert row["low"] <= row["auc"] <= row["high"]
            assert row["positives"] == test["positives"][row["code"]]
    assert frame.code.nunique() >= 3, "min_positives=10 keeps several demo classes"


def test_seed_summary_and_data_efficiency(table: pd.DataFrame) -> None:
    summary = compare.seed_summary(table)
    assert len(summary) == 4, "2 strategies x 2 fractions (pretraining and running runs left out)"
    two = summary[(summary.strategy == "scratch") & np.isclose(summary.train_fraction, 1.0)].iloc[0]
    runs = table.set_index("run_id").loc[two.run_ids]
    assert two.n_seeds == 2 and sorted(runs.seed.tolist()) == [0, 1]
    assert two.macro_auc_mean == pytest.approx(runs.macro_auc.mean())
    assert two.macro_auc_std == pytest.approx(runs.macro_auc.std(ddof=1))
    assert two.ci_method == "t-interval of the mean over 2 seeds (1 df)"
    assert two.ci_low < two.macro_auc_mean < two.ci_high and sorted(two.seeds) == [0, 1]
    single = summary[summary.n_seeds == 1]
    assert len(single) == 3 and single.macro_auc_std.isna().all()
    one = single.iloc[0]
    run = table.set_index("run_id").loc[one.run_ids[0]]
    assert (one.ci_low, one.ci_high) == (run.macro_auc_low, run.macro_auc_high), "one seed: its bootstrap CI"

    curve = compare.data_efficiency(table)
    assert set(curve.line) == {"finetune", "scratch"}, "one line per strategy; one arch, one real source"
    for _, part in curve.groupby("line"):
        assert part.train_fraction.tolist() == [0.5, 1.0]
        assert (part.ci_low <= part.macro_auc_mean).all() and (part.macro_auc_mean <= part.ci_high).all()
    assert compare.data_efficiency(table[table.status == "running"]).empty


def test_protocols_are_never_pooled(table: pd.DataFrame) -> None:
    """A paper-exact and an 'ours' run of one setting are two settings and two curve lines."""
    assert table.protocol.isna().all(), "smoke.toml names no protocol"
    relabelled = table.copy()
    relabelled["protocol"] = np.where(relabelled.seed == 1, "paper_exact", "ours")
    summary = compare.seed_summary(relabelled)
    assert len(summary) == 5 and (summary.n_seeds == 1).all()
    assert set(compare.filter_options(relabelled)["protocols"]) == {"ours", "paper_exact"}
    kept = compare.apply_filters(relabelled, compare.RunFilters(protocols=("paper_exact",)))
    assert set(kept.seed) == {1}
    lines = set(compare.data_efficiency(relabelled).line)
    assert lines == {"finetune · ours", "scratch · ours", "scratch · paper_exact"}


def test_histories_and_convergence(store: RunStore, table: pd.DataFrame) -> None:
    ids = list(compare.finished(table).run_id)
    history = compare.histories(store, ids)
    assert set(history.run_id) == set(ids)
    conv = compare.convergence(history).set_index("run_id")
    for run_id in ids:
        raw = pd.read_csv(store.runs_dir / run_id / "history.csv")
        row = conv.loc[run_id]
        assert row.epochs_run == len(raw) == _results(store, run_id)["epochs_run"]
        best = raw.val_macro_auc.max()
        assert row.best_val_auc == pytest.approx(best) and row.target_auc == pytest.approx(0.95 * best)
        reached = raw.val_macro_auc.to_numpy() >= 0.95 * best
        assert row.epochs_to_target == int(np.argmax(reached)) + 1 <= row.best_epoch
        assert row.seconds_to_target == pytest.approx(raw.seconds.iloc[: int(row.epochs_to_target)].sum())
    strict = compare.convergence(history, share=1.0).set_index("run_id")
    assert (strict.epochs_to_target == strict.best_epoch).all()
    with pytest.raises(ValueError, match="share"):
        compare.convergence(history, share=0.0)


def test_head_to_head_on_shared_records(store: RunStore, table: pd.DataFrame) -> None:
    a_id, b_id = _target(table, "finetune", 1.0, 0), _target(table, "scratch", 1.0, 0)
    a, b = compare.predictions(store, a_id), compare.predictions(store, b_id)
    h2h = compare.head_to_head(a, b)
    results_a, results_b = _results(store, a_id), _results(store, b_id)
    assert h2h.n_records == results_a["n_test"] and h2h.only_a_records == h2h.only_b_records == 0
    assert h2h.classes == results_a["classes"] and h2h.dropped_classes == []
    assert h2h.macro["macro_auc_a"] == pytest.approx(results_a["test"]["macro_auc"])
    assert h2h.macro["macro_auc_b"] == pytest.approx(results_b["test"]["macro_auc"])
    low, high = h2h.macro["macro_auc_diff_ci"]
    assert low <= h2h.macro["macro_auc_diff"] <= high and 0.0 < h2h.macro["p_value"] <= 1.0
    assert list(h2h.per_class.name) == [class_name(c) for c in h2h.classes]
    for row in h2h.per_class.to_dict("records"):
        assert row["auc_a"] == pytest.approx(results_a["test"]["per_class_auc"][row["code"]])
        assert row["diff"] == pytest.approx(row["auc_a"] - row["auc_b"])
    flipped = compare.head_to_head(b, a)
    np.testing.assert_allclose(flipped.per_class["diff"], -h2h.per_class["diff"])

    # B scored on a subset of the records, in another order, and on fewer classes.
    keep = np.arange(len(b["record_ids"]))[::-2]
    subset = {"record_ids": b["record_ids"][keep], "y_true": b["y_true"][keep][:, 1:],
              "y_score": b["y_score"][keep][:, 1:], "classes": b["classes"][1:]}
    partial = compare.head_to_head(a, subset)
    assert partial.n_records == len(keep) and partial.only_a_records == len(a["record_ids"]) - len(keep)
    assert partial.classes == [str(c) for c in a["classes"][1:]] and partial.dropped_classes == [str(a["classes"][0])]


def test_head_to_head_refuses_what_cannot_be_compared(store: RunStore, table: pd.DataFrame) -> None:
    target = compare.predictions(store, _target(table, "scratch", 1.0, 0))
    pretrain_id = str(table[table.kind == "pretrain"].run_id.iloc[0])
    with pytest.raises(EcgcoreError, match="share no test record"):
        compare.head_to_head(target, compare.predictions(store, pretrain_id))
    first_only = {**target, "y_true": target["y_true"][:, :1], "y_score": target["y_score"][:, :1],
                  "classes": target["classes"][:1]}
    others = {**target, "y_true": target["y_true"][:, 1:], "y_score": target["y_score"][:, 1:],
              "classes": target["classes"][1:]}
    with pytest.raises(EcgcoreError, match="share no class"):
        compare.head_to_head(first_only, others)
    relabelled = {**target, "y_true": target["y_true"].copy()}
    relabelled["y_true"][3] = 1 - relabelled["y_true"][3]
    with pytest.raises(EcgcoreError, match=f"record {target['record_ids'][3]}: the two runs disagree"):
        compare.head_to_head(target, relabelled)
    with pytest.raises(EcgcoreError, match="unknown run id"):
        compare.predictions(store, "no-such-run")


def test_roc_curves_agree_with_results(store: RunStore, table: pd.DataFrame) -> None:
    run_id = _target(table, "finetune", 0.5, 0)
    curves = compare.roc_curves(compare.predictions(store, run_id))
    test = _results(store, run_id)["test"]
    assert [c.code for c in curves] == [c for c, auc in test["per_class_auc"].items() if auc is not None]
    for curve in curves:
        assert curve.auc == pytest.approx(test["per_class_auc"][curve.code])
        assert curve.fpr[0] == curve.tpr[0] == 0.0 and curve.fpr[-1] == curve.tpr[-1] == 1.0
        assert (np.diff(curve.fpr) >= 0).all() and (np.diff(curve.tpr) >= 0).all()
        assert curve.name == class_name(curve.code)
