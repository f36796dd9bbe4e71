"""Calibration on Compare: Brier and ECE per run (from results.json, or computed from
predictions.npz for runs evaluated before they existed) and the reliability diagram, on the
trained store of test_compare.py."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from test_compare import trained_store

from ecgcore.views import compare
from ecgcore.evaluate.calibration import brier_score, expected_calibration_error, reliability_table
from ecgcore.runs import RunStore


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return trained_store(tmp_path_factory.getbasetemp())


def test_brier_and_ece_per_run_old_runs_computed_from_predictions(home: Path, tmp_path: Path) -> None:
    copy = tmp_path / "ws"
    shutil.copytree(home, copy)
    store = RunStore(copy)
    done = list(compare.finished(compare.runs_table(store)).run_id)
    old, new = done[0], done[1]
    path = copy / "runs" / old / "results.json"
    results = json.loads(path.read_text())
    for key in ("brier", "per_class_brier", "ece", "ece_bins", "calibration_note"):
        results["test"].pop(key, None)
    path.write_text(json.dumps(results))
    table = compare.calibration_table(store, [old, new, "no-such-run"]).set_index("run_id")
    arrays = compare.predictions(store, old)
    assert table.loc[old, "source"] == "computed from predictions.npz"
    assert table.loc[old, "brier"] == pytest.approx(brier_score(arrays["y_true"], arrays["y_score"]))
    assert table.loc[old, "ece"] == pytest.approx(expected_calibration_error(arrays["y_true"], arrays["y_score"]))
    stored = json.loads((copy / "runs" / new / "results.json").read_text())["test"]
    assert table.loc[new, "source"] == "results.json" and table.loc[new, "brier"] == stored["brier"]
    assert table.loc[new, "ece"] == stored["ece"]
    assert np.isnan(table.loc["no-such-run", "brier"]) and table.loc["no-such-run", "source"] == "no predictions.npz"

    bins = compare.reliability(store, [old, new])
    assert set(bins.run_id) == {old, new}
    part = bins[bins.run_id == old].drop(columns="run_id").reset_index(drop=True)
    expected = reliability_table(arrays["y_true"], arrays["y_score"])
    np.testing.assert_allclose(part.to_numpy(dtype=float), expected.to_numpy(dtype=float))
    assert part["count"].sum() == arrays["y_true"].size, "every record-class pair in one bin"

    fig = compare.reliability_figure(bins, {old: "old run"})
    assert [t.name for t in fig.data] == ["perfectly calibrated", "old run", new]
    np.testing.assert_allclose(fig.data[1].x, expected.mean_score)
    np.testing.assert_allclose(fig.data[1].y, expected.fraction_positive)
