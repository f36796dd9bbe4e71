"""The Compare figure builders on the trained store of test_compare.py: classes named,
codes in the hover, one trace per run/line, CI whiskers and bands from the data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from test_compare import trained_store

from ecgcore import compare
from ecgcore.data.labels import class_name
from ecgcore.runs import RunStore


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> RunStore:
    return RunStore(trained_store(tmp_path_factory.getbasetemp()))


@pytest.fixture(scope="module")
def done(store: RunStore) -> pd.DataFrame:
    return compare.finished(compare.runs_table(store))


@pytest.fixture(scope="module")
def labels(store: RunStore) -> dict[str, str]:
    return compare.run_labels(compare.runs_table(store))


def test_per_class_bars_and_heatmap(store: RunStore, done: pd.DataFrame, labels: dict[str, str]) -> None:
    frame = compare.per_class_auc(store, list(done.run_id))
    bars = compare.per_class_auc_figure(frame, labels)
    assert [trace.name for trace in bars.data] == [labels[r] for r in done.run_id]
    first = frame[frame.run_id == done.run_id.iloc[0]]
    trace = bars.data[0]
    assert list(trace.y) == [class_name(c) for c in first.code]
    assert [row[0] for row in trace.customdata] == list(first.code), "codes in the hover"
    np.testing.assert_allclose(np.asarray(trace.x) - np.asarray(trace.error_x.arrayminus), first.low)
    np.testing.assert_allclose(np.asarray(trace.x) + np.asarray(trace.error_x.array), first.high)

    heat = compare.auc_heatmap(frame, labels).data[0]
    assert list(heat.x) == [labels[r] for r in done.run_id]
    assert set(heat.y) == {class_name(c) for c in frame.code}
    z = np.asarray(heat.z, dtype=float)
    assert z.shape == (frame.code.nunique(), len(done))
    row, col = list(heat.y).index(first.name.iloc[0]), 0
    assert z[row, col] == pytest.approx(first.auc.iloc[0])


def test_macro_learning_curves_and_data_efficiency(store: RunStore, done: pd.DataFrame,
                                                   labels: dict[str, str]) -> None:
    macro = compare.macro_auc_figure(done, labels).data[0]
    assert sorted(macro.x) == sorted(done.macro_auc) and len(macro.y) == len(done)

    history = compare.histories(store, list(done.run_id))
    by_epoch = compare.learning_curves_figure(history, labels)
    assert len(by_epoch.data) == 3 * len(done), "val AUC, val loss and train loss per run"
    assert by_epoch.layout.xaxis2.title.text == "epoch"
    by_time = compare.learning_curves_figure(history, labels, x="wall_seconds")
    first = history[history.run_id == done.run_id.iloc[0]]
    np.testing.assert_allclose(by_time.data[0].x, first.wall_seconds)

    curve = compare.data_efficiency(compare.runs_table(store))
    fig = compare.data_efficiency_figure(curve)
    lines = [t for t in fig.data if t.mode == "lines+markers"]
    bands = [t for t in fig.data if t.fill == "toself"]
    assert [t.name for t in lines] == ["finetune", "scratch"] and len(bands) == 2
    scratch = curve[curve.line == "scratch"]
    np.testing.assert_allclose(lines[1].y, scratch.macro_auc_mean)
    np.testing.assert_allclose(bands[1].y, np.r_[scratch.ci_high, scratch.ci_low[::-1]])


def test_head_to_head_and_roc_figures(store: RunStore, done: pd.DataFrame, labels: dict[str, str]) -> None:
    a, b = (compare.predictions(store, r) for r in done.run_id[:2])
    h2h = compare.head_to_head(a, b)
    forest = compare.head_to_head_figure(h2h, "A", "B").data[0]
    assert forest.y[0] == "macro" and list(forest.y[1:]) == list(h2h.per_class.dropna(subset=["diff"]).name)
    assert forest.x[0] == pytest.approx(h2h.macro["macro_auc_diff"])

    curves = {labels[r]: compare.roc_curves(compare.predictions(store, r)) for r in done.run_id[:3]}
    roc = compare.roc_figure(curves)
    titles = [a.text for a in roc.layout.annotations]
    assert titles == [c.name for c in curves[labels[done.run_id.iloc[0]]]]
    named = [t for t in roc.data if t.showlegend]
    assert [t.name for t in named] == list(curves), "each run once in the legend"
    assert len([t for t in roc.data if t.name in curves]) == sum(len(c) for c in curves.values())
