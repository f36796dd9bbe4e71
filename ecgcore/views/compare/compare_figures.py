"""Plotly figures of the Compare view: data in, `go.Figure` out (no reads, no Streamlit).

Classes are shown by their readable name (ecgcore.data.labels.class_name); the SNOMED code
is in the hover text. Runs are shown by the labels the caller passes ({run_id: label}).
Where runs of several source kinds meet (macro AUC, data efficiency), the colour says the
kind: greys for no source, cool hues for own pretraining, warm hues for a checkpoint
(`KIND_COLOURS`), one hue per line or run within a kind, and a marker shape per kind.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative

from ecgcore.views.compare.head_to_head import HeadToHead, RocCurve

PALETTE: tuple[str, ...] = tuple(qualitative.Plotly) + tuple(qualitative.D3)
_MARGIN = {"l": 8, "r": 8, "t": 48, "b": 8}


def colour(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


#: Hues per source kind (ecgcore.runs.run_config.SOURCE_KINDS): warm against cool reads apart for
#: red-green colour-blind eyes too (orange vs blue first).
KIND_COLOURS: dict[str, tuple[str, ...]] = {
    "none": ("#4d4d4d", "#969696", "#1a1a1a", "#bdbdbd"),
    "pretraining": ("#1f77b4", "#17becf", "#9467bd", "#393b79", "#2ca02c"),
    "checkpoint": ("#ff7f0e", "#d62728", "#8c564b", "#e377c2", "#bcbd22"),
}
KIND_SYMBOLS: dict[str, str] = {"none": "circle", "pretraining": "square", "checkpoint": "diamond"}
KIND_NAMES: dict[str, str] = {"none": "no source", "pretraining": "own pretraining", "checkpoint": "checkpoint"}


def kind_colours(kinds: Sequence[str], keys: Sequence[object] | None = None) -> list[str]:
    """A colour per item: its source kind's hues in turn, one hue per distinct key (a line's
    name, a run's setting) within the kind, in order of first appearance."""
    keys = list(keys) if keys is not None else list(range(len(kinds)))
    seen: dict[str, dict[object, int]] = {}
    out = []
    for kind, key in zip(kinds, keys):
        hues = KIND_COLOURS.get(kind, KIND_COLOURS["none"])
        index = seen.setdefault(kind, {}).setdefault(key, len(seen[kind]))
        out.append(hues[index % len(hues)])
    return out


def _kinds(frame: pd.DataFrame) -> list[str]:
    from ecgcore.views.compare.table import source_kinds

    return source_kinds(frame)


def _kind_legend(kinds: Sequence[str]) -> str:
    present = [k for k in KIND_COLOURS if k in set(kinds)]
    return "colour: " + ", ".join(f"{'greys' if k == 'none' else 'warm' if k == 'checkpoint' else 'cool'} "
                                  f"= {KIND_NAMES[k]}" for k in present)


def _rgba(hex_colour: str, alpha: float) -> str:
    red, green, blue = (int(hex_colour.lstrip("#")[i:i + 2], 16) for i in (0, 2, 4))
    return f"rgba({red},{green},{blue},{alpha})"


def _figure(data: Sequence[Any], layout: dict[str, Any], title: str, height: int) -> go.Figure:
    """The figure in one construction: plotly validates the layout once, where each later
    update_layout call on a figure with many axes costs ~0.1 s (see benchmarks/bench_compare.py)."""
    base = {"title": {"text": title}, "height": height, "margin": _MARGIN, "hoverlabel": {"namelength": -1}}
    return go.Figure(data=list(data), layout={**base, **layout})


def per_class_auc_figure(per_class: pd.DataFrame, labels: Mapping[str, str]) -> go.Figure:
    """Grouped horizontal bars: one bar per (class, run), whiskers = bootstrap CI."""
    names = list(dict.fromkeys(per_class["name"]))
    traces = []
    for i, (run_id, part) in enumerate(per_class.groupby("run_id", sort=False)):
        auc, low, high = (part[c].to_numpy(dtype=float) for c in ("auc", "low", "high"))
        traces.append({
            "type": "bar", "y": part["name"].tolist(), "x": auc, "orientation": "h",
            "name": labels.get(str(run_id), str(run_id)), "marker": {"color": colour(i)},
            "customdata": list(zip(part["code"], low, high)),
            "error_x": {"type": "data", "symmetric": False, "array": np.clip(high - auc, 0, None),
                        "arrayminus": np.clip(auc - low, 0, None), "thickness": 1.2},
            "hovertemplate": "%{y} (%{customdata[0]})<br>AUC %{x:.3f} [%{customdata[1]:.3f}, %{customdata[2]:.3f}]"
                             "<extra>%{fullData.name}</extra>",
        })
    n_runs = max(per_class["run_id"].nunique(), 1)
    layout = {"barmode": "group", "xaxis": {"title": {"text": "test ROC-AUC (95 % bootstrap CI)"}, "range": [0, 1.02]},
              "yaxis": {"categoryorder": "array", "categoryarray": names[::-1], "automargin": True}}
    return _figure(traces, layout, "Per-class AUC", max(260, 24 * len(names) * min(n_runs, 6) // 2 + 140))


def auc_heatmap(per_class: pd.DataFrame, labels: Mapping[str, str]) -> go.Figure:
    """Class x run heatmap of test AUC (NaN for classes a run does not score), on cividis: a
    scale that reads the same to red-green colour-blind eyes (no red against green)."""
    grid = per_class.pivot_table(index="name", columns="run_id", values="auc", aggfunc="first", sort=False)
    codes = per_class.drop_duplicates("name").set_index("name")["code"]
    run_ids = list(dict.fromkeys(per_class["run_id"]))
    grid = grid.reindex(columns=run_ids)
    text = [[("" if math.isnan(v) else f"{v:.2f}") for v in row] for row in grid.to_numpy(dtype=float)]
    heat = go.Heatmap(
        z=grid.to_numpy(dtype=float), x=[labels.get(r, r) for r in run_ids], y=list(grid.index),
        text=text, texttemplate="%{text}", colorscale="Cividis", zmin=0.5, zmax=1.0,
        customdata=[[codes[name]] * len(run_ids) for name in grid.index],
        colorbar={"title": "AUC"}, hovertemplate="%{y} (%{customdata})<br>%{x}<br>AUC %{z:.3f}<extra></extra>",
    )
    layout = {"yaxis": {"automargin": True, "autorange": "reversed"}, "xaxis": {"automargin": True, "tickangle": -30}}
    return _figure([heat], layout, "Per-class AUC, class × run", max(260, 28 * len(grid.index) + 160))


def macro_auc_figure(runs: pd.DataFrame, labels: Mapping[str, str]) -> go.Figure:
    """Macro AUC of each run with its bootstrap CI (one row per run)."""
    order = runs.sort_values("macro_auc", kind="mergesort")
    names = [labels.get(r, r) for r in order["run_id"]]
    auc, low, high = (order[c].to_numpy(dtype=float) for c in ("macro_auc", "macro_auc_low", "macro_auc_high"))
    kinds = _kinds(order)
    points = go.Scatter(
        x=auc, y=names, mode="markers",
        marker={"size": 10, "color": kind_colours(kinds, [k if k == "none" else s for k, s in
                                                          zip(kinds, order["source"].tolist())]),
                "symbol": [KIND_SYMBOLS[k] for k in kinds]},
        error_x={"type": "data", "symmetric": False, "array": np.clip(high - auc, 0, None),
                     "arrayminus": np.clip(auc - low, 0, None)},
        customdata=list(zip(low, high, order["run_id"])),
        hovertemplate="%{y}<br>macro AUC %{x:.3f} [%{customdata[0]:.3f}, %{customdata[1]:.3f}]"
                      "<br>%{customdata[2]}<extra></extra>",
    )
    layout = {"xaxis": {"title": {"text": "test macro ROC-AUC (95 % bootstrap CI); " + _kind_legend(kinds)}},
              "yaxis": {"automargin": True}}
    return _figure([points], layout, "Macro AUC", max(240, 30 * len(order) + 120))


def _unit(value: float) -> float:
    """A domain bound in [0, 1] (float error may put 1 - 3 * (1/3) just below 0)."""
    return min(1.0, max(0.0, round(value, 6)))


def _panels(n_rows: int, n_cols: int, titles: Sequence[str], gap_x: float = 0.06,
            gap_y: float = 0.12) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """Layout of a grid of panels (axes domains and panel titles) and each panel's (xaxis,
    yaxis) trace references, row by row. Written out rather than with make_subplots, whose
    update helpers cost ~0.1 s per call (see benchmarks/bench_compare.py)."""
    layout: dict[str, Any] = {"annotations": []}
    refs: list[tuple[str, str]] = []
    width = (1 - gap_x * (n_cols - 1)) / n_cols
    height = (1 - gap_y * (n_rows - 1)) / n_rows
    for panel in range(n_rows * n_cols):
        row, col = divmod(panel, n_cols)
        suffix = "" if panel == 0 else str(panel + 1)
        x0 = col * (width + gap_x)
        y1 = 1 - row * (height + gap_y)
        layout[f"xaxis{suffix}"] = {"domain": [_unit(x0), _unit(x0 + width)], "anchor": f"y{suffix}"}
        layout[f"yaxis{suffix}"] = {"domain": [_unit(y1 - height), _unit(y1)], "anchor": f"x{suffix}"}
        refs.append((f"x{suffix}", f"y{suffix}"))
        if panel < len(titles):
            layout["annotations"].append({"text": titles[panel], "x": x0 + width / 2, "y": y1, "xref": "paper",
                                          "yref": "paper", "xanchor": "center", "yanchor": "bottom",
                                          "showarrow": False, "font": {"size": 14}})
    return layout, refs


def learning_curves_figure(history: pd.DataFrame, labels: Mapping[str, str], x: str = "epochs_done") -> go.Figure:
    """Validation macro AUC (top) and loss (bottom; validation solid, training dotted: two grey
    legend entries say so) per run, against epochs (`epochs_done`) or training time (`wall_seconds`)."""
    layout, ((x1, y1), (x2, y2)) = _panels(2, 1, ("validation macro AUC", "loss: validation solid, training dotted"),
                                           gap_y=0.08)
    layout["xaxis"].update(matches="x2", showticklabels=False)
    layout["xaxis2"]["title"] = {"text": "epoch" if x == "epochs_done" else "training time (s)"}
    layout["yaxis"]["title"] = {"text": "val macro AUC"}
    layout["yaxis2"]["title"] = {"text": "loss"}
    layout["margin"] = {**_MARGIN, "l": 64}
    traces: list[dict[str, Any]] = []
    for i, (run_id, part) in enumerate(history.groupby("run_id", sort=False)):
        name = labels.get(str(run_id), str(run_id))
        line = {"color": colour(i)}
        xs = part[x].to_numpy(dtype=float)
        common = {"type": "scatter", "x": xs, "legendgroup": name}
        traces += [
            {**common, "y": part["val_macro_auc"].to_numpy(dtype=float), "name": name, "mode": "lines+markers",
             "line": line, "xaxis": x1, "yaxis": y1},
            {**common, "y": part["val_loss"].to_numpy(dtype=float), "name": f"{name} (validation loss)",
             "showlegend": False, "mode": "lines", "line": line, "xaxis": x2, "yaxis": y2},
            {**common, "y": part["train_loss"].to_numpy(dtype=float), "name": f"{name} (training loss)",
             "showlegend": False, "mode": "lines", "line": {**line, "dash": "dot"}, "xaxis": x2, "yaxis": y2},
        ]
    # what the two line styles of the loss panel mean: legend entries only (no data)
    for style, dash in (("validation loss (solid)", "solid"), ("training loss (dotted)", "dot")):
        traces.append({"type": "scatter", "x": [None], "y": [None], "mode": "lines", "name": style,
                       "legendgroup": "line style", "legendgrouptitle": {"text": "line style"},
                       "line": {"color": "grey", "dash": dash}, "xaxis": x2, "yaxis": y2, "hoverinfo": "skip"})
    return _figure(traces, layout, "Learning curves", 560)


#: What each pretraining method's loss is, for its panel's title.
PRETRAINING_LOSSES: dict[str, str] = {"supervised": "BCE on the labels", "simclr": "NT-Xent",
                                      "clocs": "CLOCS contrastive loss", "masked": "MSE of the hidden samples"}


def pretraining_loss_figure(history: pd.DataFrame, methods: Mapping[str, str],
                            labels: Mapping[str, str]) -> go.Figure:
    """Pretraining runs' loss per epoch, one panel per method (`methods`: run id -> method),
    since the methods' losses are on unrelated scales (BCE, NT-Xent, masked MSE): validation
    solid, training dotted, one colour per run (its seed's line across both)."""
    order = list(dict.fromkeys(methods[str(r)] for r in history["run_id"].unique() if str(r) in methods))
    titles = [f"{m} ({PRETRAINING_LOSSES.get(m, 'its own loss')})" for m in order]
    layout, refs = _panels(max(len(order), 1), 1, titles, gap_y=0.1)
    panel_of = {method: ref for method, ref in zip(order, refs)}
    for i in range(len(order)):
        suffix = "" if i == 0 else str(i + 1)
        layout[f"yaxis{suffix}"]["title"] = {"text": "loss"}
    layout[f"xaxis{'' if len(order) <= 1 else len(order)}"]["title"] = {"text": "epoch"}
    layout["margin"] = {**_MARGIN, "l": 64}
    traces: list[dict[str, Any]] = []
    for i, (run_id, part) in enumerate(history.groupby("run_id", sort=False)):
        method = methods.get(str(run_id))
        if method not in panel_of:
            continue
        xaxis, yaxis = panel_of[method]
        name = labels.get(str(run_id), str(run_id))
        line = {"color": colour(i)}
        common = {"type": "scatter", "x": part["epochs_done"].to_numpy(dtype=float), "legendgroup": name,
                  "xaxis": xaxis, "yaxis": yaxis}
        traces += [
            {**common, "y": part["val_loss"].to_numpy(dtype=float), "name": name, "mode": "lines+markers",
             "line": line},
            {**common, "y": part["train_loss"].to_numpy(dtype=float), "name": f"{name} (training loss)",
             "showlegend": False, "mode": "lines", "line": {**line, "dash": "dot"}},
        ]
    return _figure(traces, layout, "Pretraining loss: validation solid, training dotted", 220 + 200 * len(order))


def data_efficiency_figure(curve: pd.DataFrame) -> go.Figure:
    """Macro AUC against target fraction, one line per `line` with its CI band: the t-interval of
    the seed mean where a point has several seeds, the run's bootstrap CI where it has one
    (`ci_method` in the hover)."""
    traces = []
    lines = [(line, part.sort_values("train_fraction")) for line, part in curve.groupby("line", sort=True)]
    line_kinds = [_kinds(part)[0] for _, part in lines]
    hues = kind_colours(line_kinds)
    # numpy arrays, not Series: plotly converts each Series through narwhals (~1 ms apiece).
    for (line, part), kind, hue in zip(lines, line_kinds, hues):
        x = part["train_fraction"].to_numpy(dtype=float)
        mean = part["macro_auc_mean"].to_numpy(dtype=float)
        low, high = part["ci_low"].to_numpy(dtype=float), part["ci_high"].to_numpy(dtype=float)
        band = np.isfinite(low) & np.isfinite(high)
        if band.any():
            traces.append({
                "type": "scatter", "x": np.r_[x[band], x[band][::-1]], "y": np.r_[high[band], low[band][::-1]],
                "fill": "toself", "mode": "lines", "fillcolor": _rgba(hue, 0.15), "line": {"width": 0},
                "hoverinfo": "skip", "legendgroup": str(line), "showlegend": False, "name": f"{line} CI"})
        std = np.nan_to_num(part["macro_auc_std"].to_numpy(dtype=float), nan=0.0)
        traces.append({
            "type": "scatter", "x": x, "y": mean, "mode": "lines+markers", "name": str(line),
            "legendgroup": str(line), "line": {"color": hue},
            "legendrank": 1000 + list(KIND_COLOURS).index(kind),  # the legend lists a kind's lines together
            "marker": {"symbol": KIND_SYMBOLS.get(kind, "circle"), "size": 8},
            "customdata": list(zip(std, part["n_seeds"].to_numpy(dtype=float), low, high, part["ci_method"])),
            "hovertemplate": "fraction %{x:g}<br>macro AUC %{y:.3f} ± %{customdata[0]:.3f} (%{customdata[1]} seeds)"
                             "<br>95 % CI [%{customdata[2]:.3f}, %{customdata[3]:.3f}]: %{customdata[4]}"
                             "<extra>%{fullData.name}</extra>",
        })
    layout = {"xaxis": {"title": {"text": "fraction of the target's training records"}, "type": "log"},
              "yaxis": {"title": {"text": "test macro ROC-AUC, mean over seeds"}},
              # the band's method under the plot: a two-line axis title is clipped at the left edge
              "legend": {"title": {"text": _kind_legend(line_kinds)}},
              "annotations": [{"text": "band: 95 % CI, t-interval of the seed mean (one seed: the run's "
                                       "bootstrap CI over test records)", "xref": "paper", "yref": "paper",
                               "x": 0, "y": -0.22, "showarrow": False, "xanchor": "left",
                               "font": {"size": 11}}],
              "margin": {**_MARGIN, "b": 90}}
    return _figure(traces, layout, "Data efficiency", 480)


def head_to_head_figure(h2h: HeadToHead, label_a: str, label_b: str) -> go.Figure:
    """Forest plot of AUC differences (A - B) per class and macro, with CIs and p-values."""
    frame = h2h.per_class.dropna(subset=["diff"])
    macro = h2h.macro
    low, high = (float("nan") if v is None else v for v in macro["macro_auc_diff_ci"])
    names = ["macro"] + list(frame["name"])
    diffs = np.r_[_num(macro["macro_auc_diff"]), frame["diff"]]
    lows, highs = np.r_[low, frame["low"]], np.r_[high, frame["high"]]
    # p as text: '< 0.005 (1/200)' at the bootstrap floor; per class with its Holm adjustment.
    pvals = [h2h.p_text] + [f"{p}, Holm {q}" for p, q in zip(frame["p"], frame["p Holm"])]
    codes = ["macro"] + list(frame["code"])
    points = go.Scatter(
        x=diffs, y=names, mode="markers", marker={"size": 10, "color": [colour(1)] + [colour(0)] * len(frame)},
        error_x={"type": "data", "symmetric": False, "array": np.clip(highs - diffs, 0, None),
                     "arrayminus": np.clip(diffs - lows, 0, None)},
        customdata=list(zip(lows, highs, pvals, codes)),
        hovertemplate="%{y} (%{customdata[3]})<br>ΔAUC %{x:+.3f} [%{customdata[0]:.3f}, %{customdata[1]:.3f}]"
                      "<br>p %{customdata[2]}<extra></extra>",
    )
    layout = {"shapes": [{"type": "line", "x0": 0, "x1": 0, "y0": 0, "y1": 1, "yref": "paper",
                          "line": {"dash": "dash", "color": "grey"}}],
              "yaxis": {"autorange": "reversed", "automargin": True},
              # A and B by name under the axis, one per line: one line of both was clipped at 900 px
              "xaxis": {"title": {"text": f"AUC difference, A − B<br>A: {label_a}<br>B: {label_b}",
                                  "font": {"size": 12}}, "automargin": True}}
    seeds = h2h.result.get("n_seeds_a", 1), h2h.result.get("n_seeds_b", 1)
    title = f"Head to head on {h2h.n_records} shared test records" + (
        f", {seeds[0]} vs {seeds[1]} seeds" if max(seeds) > 1 else "")
    return _figure([points], layout, title, max(240, 30 * len(names) + 140))


def _num(value: object) -> float:
    return float("nan") if value is None else float(value)  # type: ignore[arg-type]


#: The width the Compare page's charts are laid out for: the main column at a 1400 px window with
#: the sidebar open (~940 px). Text that must fit (panel titles, the legend) is sized for it.
NOMINAL_WIDTH = 900
_CHAR_EM = 0.6  # a conservative average character width of the sans-serif font, in em


def _wrap(text: str, max_chars: int, max_lines: int = 2) -> str:
    """`text` on at most `max_lines` lines of at most `max_chars` characters ("<br>" between
    them), cut with "…" when longer."""
    lines: list[str] = []
    line = ""
    for word in text.split():
        candidate = f"{line} {word}".strip()
        if len(candidate) <= max_chars:
            line = candidate
            continue
        if line:
            lines.append(line)
        line = word if len(word) <= max_chars else word[:max_chars - 1] + "…"
    if line:
        lines.append(line)
    if len(lines) > max_lines:
        last = lines[max_lines - 1]
        lines = lines[:max_lines - 1] + [(last if len(last) < max_chars else last[:max_chars - 1]) + "…"]
    return "<br>".join(lines)


def _legend_rows(names: Sequence[str], width: float, size: int) -> int:
    """Rows a horizontal legend of `names` takes at `width` px (plotly: ~40 px of symbol and gap each)."""
    rows, used = 1, 0.0
    for name in names:
        item = len(name) * size * _CHAR_EM + 40
        if used and used + item > width:
            rows, used = rows + 1, 0.0
        used += item
    return rows


def roc_figure(curves: Mapping[str, Sequence[RocCurve]], max_cols: int = 3) -> go.Figure:
    """One panel per class, one ROC line per run ({run label: curves}), chance diagonal dashed.

    Laid out in pixels for NOMINAL_WIDTH: panels about square, every panel with both axis titles,
    class names wrapped to two lines that fit over their panel (the full name in the title's
    hover), rows as close as their titles allow. The legend (above the grid) names each run with
    its AUC (the mean over the classes drawn; one class: that class's AUC); each panel lists the
    runs' AUCs for its class in the runs' colours (up to 8 runs)."""
    names: dict[str, str] = {}
    for run_curves in curves.values():
        for curve in run_curves:
            names.setdefault(curve.code, curve.name)
    codes = list(names)
    n_cols = max(1, min(max_cols, len(codes)))
    n_rows = max(1, math.ceil(len(codes) / n_cols))
    title_size, small = 12, 10
    margin = {"l": 56, "r": 12, "b": 52}
    gap_x_px = 62  # the next panel's tick labels and y-axis title
    plot_w = NOMINAL_WIDTH - margin["l"] - margin["r"]
    panel_w = (plot_w - gap_x_px * (n_cols - 1)) / n_cols
    panel_h = min(max(panel_w, 200.0), 320.0)
    max_chars = max(8, int(panel_w / (title_size * _CHAR_EM)))
    titles = {code: _wrap(names[code], max_chars) for code in codes} or {"": "no curve"}
    title_lines = max(t.count("<br>") + 1 for t in titles.values())
    title_px = title_lines * title_size * 1.3 + 6
    gap_y_px = 46 + title_px  # x tick labels and axis title, then the next row's title
    means = {label: float(np.mean([c.auc for c in run_curves])) if run_curves else float("nan")
             for label, run_curves in curves.items()}
    legend_names = {label: f"{label} — AUC {means[label]:.3f}" for label in curves}
    legend_title = (f"{names[codes[0]]}:" if len(codes) == 1 else
                    f"AUC: the mean over the {len(codes)} classes; each panel lists its class's")
    legend_px = 24 * _legend_rows(list(legend_names.values()), plot_w, small + 1) + 20
    margin["t"] = round(36 + legend_px + title_px)
    plot_h = n_rows * panel_h + (n_rows - 1) * gap_y_px
    height = round(plot_h + margin["t"] + margin["b"])
    layout: dict[str, Any] = {"annotations": [], "margin": margin,
                              "title": {"text": "ROC curves per class", "x": 0.01, "xanchor": "left",
                                        "yref": "container", "y": 1 - 8 / height, "yanchor": "top"},
                              "legend": {"orientation": "h", "yref": "container", "y": 1 - 34 / height,
                                         "yanchor": "top", "x": 0, "xanchor": "left", "font": {"size": small + 1},
                                         "title": {"text": legend_title, "side": "top"}}}
    refs: list[tuple[str, str]] = []
    width_f, gap_x = panel_w / plot_w, gap_x_px / plot_w
    height_f, gap_y = panel_h / plot_h, gap_y_px / plot_h
    axis_title = {"font": {"size": small + 1}, "standoff": 4}
    for panel in range(n_rows * n_cols):
        row, col = divmod(panel, n_cols)
        suffix = "" if panel == 0 else str(panel + 1)
        x0, y1 = col * (width_f + gap_x), 1 - row * (height_f + gap_y)
        drawn = panel < len(titles)
        layout[f"xaxis{suffix}"] = {"domain": [_unit(x0), _unit(x0 + width_f)], "anchor": f"y{suffix}",
                                    "range": [0, 1], "visible": drawn, "tickfont": {"size": small},
                                    "title": {"text": "false positive rate", **axis_title}}
        layout[f"yaxis{suffix}"] = {"domain": [_unit(y1 - height_f), _unit(y1)], "anchor": f"x{suffix}",
                                    "range": [0, 1.02], "visible": drawn, "tickfont": {"size": small},
                                    "title": {"text": "true positive rate", **axis_title}}
        refs.append((f"x{suffix}", f"y{suffix}"))
        if drawn:
            code = list(titles)[panel]
            layout["annotations"].append({
                "text": titles[code], "hovertext": f"{names.get(code, code)} ({code})" if code else "",
                "x": x0 + width_f / 2, "y": y1, "xref": "paper", "yref": "paper", "xanchor": "center",
                "yanchor": "bottom", "yshift": 2, "showarrow": False, "font": {"size": title_size}})
    shown: set[str] = set()
    traces: list[dict[str, Any]] = []
    for panel, code in enumerate(codes):
        xref, yref = refs[panel]
        traces.append({"type": "scatter", "x": [0, 1], "y": [0, 1], "mode": "lines", "xaxis": xref, "yaxis": yref,
                       "line": {"dash": "dash", "color": "lightgrey"}, "showlegend": False, "hoverinfo": "skip"})
        listed: list[str] = []
        for i, (label, run_curves) in enumerate(curves.items()):
            for curve in run_curves:
                if curve.code != code:
                    continue
                traces.append({
                    "type": "scatter", "x": curve.fpr, "y": curve.tpr, "mode": "lines", "name": label,
                    "legendgroup": label, "showlegend": label not in shown, "line": {"color": colour(i)},
                    "xaxis": xref, "yaxis": yref,
                    "hovertemplate": f"{curve.name} ({code})<br>{label}: AUC {curve.auc:.3f}"
                                     "<br>FPR %{x:.2f}, TPR %{y:.2f}<extra></extra>"})
                if label not in shown:
                    traces[-1]["name"] = legend_names[label]
                shown.add(label)
                listed.append(f"<span style='color:{colour(i)}'>{curve.auc:.3f}</span>")
        if listed and len(curves) <= 8:
            x_dom, y_dom = layout[f"xaxis{xref[1:]}"]["domain"], layout[f"yaxis{yref[1:]}"]["domain"]
            layout["annotations"].append({
                "text": "AUC<br>" + "<br>".join(listed), "x": x_dom[1], "y": y_dom[0], "xref": "paper",
                "yref": "paper", "xanchor": "right", "yanchor": "bottom", "xshift": -4, "yshift": 4,
                "align": "right", "showarrow": False, "font": {"size": small},
                "bgcolor": "rgba(255,255,255,0.75)"})
    return _figure(traces, layout, "ROC curves per class", height)


def reliability_figure(table: pd.DataFrame, labels: Mapping[str, str]) -> go.Figure:
    """Reliability diagram: per run, the fraction of positives against the mean score of each
    equal-width score bin (every record-class pair pooled; `compare.calibration.reliability`),
    marker area by the bin's count; the diagonal is perfect calibration."""
    traces: list[dict[str, Any]] = [{"type": "scatter", "x": [0, 1], "y": [0, 1], "mode": "lines",
                                     "line": {"dash": "dash", "color": "lightgrey"}, "name": "perfectly calibrated",
                                     "hoverinfo": "skip"}]
    largest = float(table["count"].max()) if len(table) else 1.0
    for i, (run_id, part) in enumerate(table.groupby("run_id", sort=False)):
        count = part["count"].to_numpy(dtype=float)
        traces.append({
            "type": "scatter", "x": part["mean_score"].to_numpy(dtype=float),
            "y": part["fraction_positive"].to_numpy(dtype=float), "mode": "lines+markers",
            "name": labels.get(str(run_id), str(run_id)), "line": {"color": colour(i)},
            "marker": {"size": 6 + 14 * np.sqrt(count / largest), "color": colour(i)},
            "customdata": np.stack([part["bin_low"].to_numpy(dtype=float), part["bin_high"].to_numpy(dtype=float),
                                    count], axis=1),
            "hovertemplate": "scores in (%{customdata[0]:.1f}, %{customdata[1]:.1f}]: %{customdata[2]:.0f} pairs"
                             "<br>mean score %{x:.3f}, fraction positive %{y:.3f}<extra>%{fullData.name}</extra>",
        })
    layout = {"xaxis": {"title": {"text": "mean predicted probability in the bin"}, "range": [0, 1]},
              "yaxis": {"title": {"text": "fraction of positives"}, "range": [0, 1.02]}}
    return _figure(traces, layout, "Reliability diagram (all record-class pairs, equal-width bins)", 460)
