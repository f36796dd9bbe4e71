"""Browsing a run's test records: outcomes at the run's thresholds, filters, stepping,
and reading a test record back from the target dataset the run's config names."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from ecgcore.errors import EcgcoreError
from ecgcore.views.run_records import (
    OUTCOMES, filter_records, load_run_predictions, neighbour, open_target, outcomes,
    read_test_record, record_summary, records_table, run_choices, true_labels,
)
from ecgcore.runs import RunStore


def test_outcomes_follow_the_tuned_thresholds(run_workspace) -> None:
    preds = load_run_predictions(run_workspace.run_id)
    results = json.loads((run_workspace.home / "runs" / run_workspace.run_id / "results.json").read_text())
    assert preds.classes == tuple(results["classes"]) and len(preds.classes) == 12
    assert preds.threshold_source == "tuned on validation"
    np.testing.assert_allclose(preds.thresholds, [results["test"]["thresholds"][c] for c in preds.classes])
    assert preds.names[preds.classes.index("426783006")] == "NSR — sinus rhythm"
    seen = set()
    for j, code in enumerate(preds.classes):
        result = outcomes(preds, code)
        called = preds.y_score[:, j] >= preds.thresholds[j]
        true = preds.y_true[:, j] == 1
        assert (result == "TP").sum() == (called & true).sum()
        assert (result == "FP").sum() == (called & ~true).sum()
        assert (result == "FN").sum() == (~called & true).sum()
        assert (result == "TN").sum() == (~called & ~true).sum()
        seen |= set(result)
    assert seen == set(OUTCOMES)  # the tiny run makes every kind of call somewhere


def test_filters_and_stepping(run_workspace) -> None:
    preds = load_run_predictions(run_workspace.run_id)
    code = "426783006"
    j = preds.column(code)
    everything = filter_records(preds, code)
    assert everything == list(preds.record_ids)
    for outcome in OUTCOMES:
        ids = filter_records(preds, code, outcome=outcome)
        assert all(outcomes(preds, code)[preds.row(r)] == outcome for r in ids)
    fp = filter_records(preds, code, outcome="FP")
    assert all(preds.y_true[preds.row(r), j] == 0 and preds.y_score[preds.row(r), j] >= preds.thresholds[j]
               for r in fp)
    with_nsr = filter_records(preds, code, true_class=code)
    assert with_nsr and all(code in true_labels(preds, r) for r in with_nsr)
    assert len(with_nsr) == int(preds.y_true[:, j].sum())
    low, high = np.quantile(preds.y_score[:, j], [0.25, 0.75])
    middle = filter_records(preds, code, confidence=(low, high))
    assert 0 < len(middle) < len(everything)
    assert all(low <= preds.y_score[preds.row(r), j] <= high for r in middle)
    af = "164889003"
    both = filter_records(preds, code, true_class=af, outcome="TN", confidence=(0.0, 0.5))
    assert set(both) <= set(filter_records(preds, code, true_class=af))

    ids = ["a", "b", "c"]
    assert [neighbour(ids, "b", 1), neighbour(ids, "b", -1)] == ["c", "a"]
    assert [neighbour(ids, "c", 1), neighbour(ids, "a", -1)] == ["c", "a"]  # clamped at the ends
    assert neighbour(ids, "gone", 1) == "a" and neighbour([], "a", 1) is None

    with pytest.raises(EcgcoreError, match="no class 'nope'"):
        filter_records(preds, "nope")
    with pytest.raises(EcgcoreError, match="unknown outcome"):
        filter_records(preds, code, outcome="maybe")


def test_summary_table_and_test_record(run_workspace) -> None:
    preds = load_run_predictions(run_workspace.run_id)
    record_id = preds.record_ids[3]
    summary = record_summary(preds, record_id)
    assert list(summary["probability"]) == sorted(summary["probability"], reverse=True)
    assert set(summary["class"]) == set(preds.classes) and summary["name"].str.contains(" — ").all()
    assert set(summary.loc[summary["true label"], "class"]) == set(true_labels(preds, record_id))
    table = records_table(preds, "426783006", list(preds.record_ids[:5]))
    assert list(table["record"]) == list(preds.record_ids[:5])
    assert set(table["outcome"]) <= set(OUTCOMES.values())

    recordset = open_target(preds)
    record = read_test_record(recordset, record_id)
    row = recordset.table.loc[record_id]
    assert record.signal.data.shape == (12, row["n_samples"]) and record.signal.fs == row["fs"]
    assert record.sex == row["sex"] and (record.age is None or record.age == row["age"])
    with pytest.raises(EcgcoreError, match="not among run"):
        preds.row("no-such-record")
    with pytest.raises(EcgcoreError, match="not in dataset"):
        read_test_record(recordset, "no-such-record")
    assert run_workspace.run_id in run_choices()
    assert run_workspace.run_id in run_choices(need="model.pt")


def test_without_tuned_thresholds_0_5_is_used_and_said(run_workspace, tmp_path: Path) -> None:
    home = tmp_path / "copy"
    shutil.copytree(run_workspace.home / "runs" / run_workspace.run_id, home / "runs" / run_workspace.run_id)
    results_path = home / "runs" / run_workspace.run_id / "results.json"
    results = json.loads(results_path.read_text())
    del results["test"]["thresholds"]
    results_path.write_text(json.dumps(results))
    preds = load_run_predictions(run_workspace.run_id, RunStore(home))
    assert preds.threshold_source == "0.5 (no tuned thresholds in results.json)"
    assert (preds.thresholds == 0.5).all()
    j = preds.column("426783006")
    assert ((outcomes(preds, "426783006") == "TP") == ((preds.y_score[:, j] >= 0.5) & (preds.y_true[:, j] == 1))).all()
