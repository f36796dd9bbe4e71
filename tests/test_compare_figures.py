"""The Compare figure builders on the trained store of test_compare.py: classes named,
codes in the hover, one trace per run/line, CI whiskers and bands from the data."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from test_compare import trained_store

from ecgcore.views import compare
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
    assert len(by_epoch.data) == 3 * len(done) + 2, "val AUC, val loss and train loss per run; 2 line styles"
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
    long = "finetune · small_cnn · 0.5 · s0 · 20261206-1307-31ce4b95-a96a"
    title = compare.head_to_head_figure(h2h, long, long.replace("finetune", "scratch")).layout.xaxis.title
    assert all(len(line) * title.font.size * CHAR_EM <= WIDTH_PX - 200 for line in title.text.split("<br>")), \
        "the axis title fits under the plot (it was clipped at 900 px)"
    forest = compare.head_to_head_figure(h2h, "A", "B").data[0]
    assert forest.y[0] == "macro" and list(forest.y[1:]) == list(h2h.per_class.dropna(subset=["diff"]).name)
    assert forest.x[0] == pytest.approx(h2h.macro["macro_auc_diff"])

    curves = {labels[r]: compare.roc_curves(compare.predictions(store, r)) for r in done.run_id[:3]}
    roc = compare.roc_figure(curves)
    titles = [a.hovertext for a in roc.layout.annotations if not a.text.startswith("AUC")]
    assert titles == [f"{c.name} ({c.code})" for c in curves[labels[done.run_id.iloc[0]]]], "full names on hover"
    named = [t for t in roc.data if t.showlegend]
    assert [t.legendgroup for t in named] == list(curves), "each run once in the legend"
    assert len([t for t in roc.data if t.legendgroup in curves]) == sum(len(c) for c in curves.values())


# The Compare page's chart width at a 1400 px window with the sidebar open (the main column is
# ~940 px); text widths are estimated at 0.6 em per character (sans-serif averages ~0.5).
WIDTH_PX = 900
CHAR_EM = 0.6


def _plot_area(fig) -> tuple[float, float, float, float]:
    """(left, top, width, height) of the plotting area in pixels at WIDTH_PX."""
    m = fig.layout.margin
    return m.l, m.t, WIDTH_PX - m.l - m.r, fig.layout.height - m.t - m.b


def _text_box(ann, fig) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1) of a paper-referenced annotation's text in pixels from the top left."""
    left, top, width, height = _plot_area(fig)
    lines = [re.sub(r"<[^>]+>", "", line) for line in ann.text.split("<br>")]
    size = ann.font.size or 12
    w, h = max(len(line) for line in lines) * size * CHAR_EM, len(lines) * size * 1.25
    x, y = left + ann.x * width, top + (1 - ann.y) * height
    x0 = {"left": x, "center": x - w / 2, "right": x - w}[ann.xanchor or "center"]
    y0 = {"top": y, "middle": y - h / 2, "bottom": y - h}[ann.yanchor or "middle"]
    return x0, y0, x0 + w, y0 + h


def _panel_box(fig, axis: str) -> tuple[float, float, float, float]:
    """A panel's pixel box grown by its tick labels and axis titles (left 45 px, below 40 px)."""
    left, top, width, height = _plot_area(fig)
    xd, yd = fig.layout[f"xaxis{axis}"].domain, fig.layout[f"yaxis{axis}"].domain
    return (left + xd[0] * width - 45, top + (1 - yd[1]) * height, left + xd[1] * width,
            top + (1 - yd[0]) * height + 40)


def _overlap(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def test_roc_grid_layout_titles_axes_gaps_and_legend(store: RunStore, done: pd.DataFrame,
                                                     labels: dict[str, str]) -> None:
    curves = {labels[r]: compare.roc_curves(compare.predictions(store, r)) for r in done.run_id}
    roc = compare.roc_figure(curves)
    axes = [k[5:] for k in roc.layout.to_plotly_json() if re.fullmatch(r"xaxis\d*", k)]
    panels = [a for a in axes if any(t.xaxis == f"x{a}" and t.legendgroup in curves for t in roc.data)]
    n_classes = len({c.code for run in curves.values() for c in run})
    assert len(panels) == n_classes
    for a in panels:  # every panel says what its axes are
        assert roc.layout[f"xaxis{a}"].title.text and roc.layout[f"yaxis{a}"].title.text, a

    titles = [ann for ann in roc.layout.annotations if not ann.text.startswith("AUC")]
    assert len(titles) == n_classes
    boxes = [_text_box(ann, roc) for ann in titles]
    for ann, box in zip(titles, boxes):  # inside the figure, clear of every other title and panel
        assert box[0] >= 0 and box[2] <= WIDTH_PX, f"clipped: {ann.text!r}"
        assert box[1] >= 0, f"clipped at the top: {ann.text!r}"
        assert not any(_overlap(box, other) for other in boxes if other is not box), ann.text
        own = panels[titles.index(ann)]
        assert not any(_overlap(box, _panel_box(roc, a)) for a in panels if a != own), ann.text
    # no large blank gaps: panels about square at WIDTH_PX, rows close together
    left, top, width, height = _plot_area(roc)
    x0, x1 = roc.layout.xaxis.domain
    y0, y1 = roc.layout.yaxis.domain
    w_px, h_px = (x1 - x0) * width, (y1 - y0) * height
    assert 0.7 <= h_px / w_px <= 1.3, (w_px, h_px)
    rows = sorted({tuple(roc.layout[f"yaxis{a}"].domain) for a in panels}, reverse=True)
    for upper, lower in zip(rows, rows[1:]):
        assert (upper[0] - lower[1]) * height <= 110, "blank gap between rows"
    # the legend carries each run's AUC
    named = [t for t in roc.data if t.showlegend]
    assert len(named) == len(curves) and all("AUC" in t.name for t in named), [t.name for t in named]


def test_learning_curves_explain_line_styles_and_axes(store: RunStore, done: pd.DataFrame,
                                                      labels: dict[str, str]) -> None:
    fig = compare.learning_curves_figure(compare.histories(store, list(done.run_id)), labels)
    styles = {t.name: (t.line.dash or "solid") for t in fig.data
              if t.showlegend is not False and t.legendgroup == "line style"}
    assert set(styles.values()) == {"solid", "dot"}, "a legend entry for each line style"
    assert any("training" in name for name, dash in styles.items() if dash == "dot")
    assert any("validation" in name for name, dash in styles.items() if dash == "solid")
    assert fig.layout.yaxis.title.text and fig.layout.yaxis2.title.text


def test_heatmap_is_colour_blind_safe(store: RunStore, done: pd.DataFrame, labels: dict[str, str]) -> None:
    from plotly.colors import sequential

    heat = compare.auc_heatmap(compare.per_class_auc(store, list(done.run_id)), labels).data[0]
    colours = [c for _, c in heat.colorscale]
    safe = {name: [c for _, c in __import__("plotly.colors", fromlist=["make_colorscale"]).make_colorscale(
        getattr(sequential, name))] for name in ("Cividis", "Viridis")}
    assert any(colours == scale for scale in safe.values()), "not red-green: cividis or viridis"
