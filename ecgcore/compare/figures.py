"""Plotly figures of the Compare view: data in, `go.Figure` out (no reads, no Streamlit).

Classes are shown by their readable name (ecgcore.data.labels.class_name); the SNOMED code
is in the hover text. Runs are shown by the labels the caller passes ({run_id: label}).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from ecgcore.compare.paired import HeadToHead, RocCurve

PALETTE: tuple[str, ...] = tuple(qualitative.Plotly) + tuple(qualitative.D3)
_MARGIN = dict(l=8, r=8, t=48, b=8)


def colour(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def _rgba(hex_colour: str, alpha: float) -> str:
    red, green, blue = (int(hex_colour.lstrip("#")[i:i + 2], 16) for i in (0, 2, 4))
    return f"rgba({red},{green},{blue},{alpha})"


def _layout(fig: go.Figure, title: str, height: int) -> go.Figure:
    fig.update_layout(title=title, height=height, margin=_MARGIN, legend=dict(orientation="h", y=-0.15),
                      hoverlabel=dict(namelength=-1))
    return fig


def per_class_auc_figure(per_class: pd.DataFrame, labels: Mapping[str, str]) -> go.Figure:
    """Grouped horizontal bars: one bar per (class, run), whiskers = bootstrap CI."""
    fig = go.Figure()
    names = list(dict.fromkeys(per_class["name"]))
    for i, (run_id, part) in enumerate(per_class.groupby("run_id", sort=False)):
        fig.add_bar(
            y=part["name"], x=part["auc"], orientation="h", name=labels.get(str(run_id), str(run_id)),
            marker_color=colour(i), customdata=np.stack([part["code"], part["low"], part["high"]], axis=1),
            error_x=dict(type="data", symmetric=False, array=(part["high"] - part["auc"]).clip(lower=0),
                         arrayminus=(part["auc"] - part["low"]).clip(lower=0), thickness=1.2),
            hovertemplate="%{y} (%{customdata[0]})<br>AUC %{x:.3f} [%{customdata[1]:.3f}, %{customdata[2]:.3f}]"
                          "<extra>%{fullData.name}</extra>",
        )
    fig.update_layout(barmode="group", xaxis=dict(title="test ROC-AUC (95 % bootstrap CI)", range=[0, 1.02]),
                      yaxis=dict(categoryorder="array", categoryarray=names[::-1], automargin=True))
    n_runs = max(per_class["run_id"].nunique(), 1)
    return _layout(fig, "Per-class AUC", max(260, 24 * len(names) * min(n_runs, 6) // 2 + 140))


def auc_heatmap(per_class: pd.DataFrame, labels: Mapping[str, str]) -> go.Figure:
    """Class x run heatmap of test AUC (NaN for classes a run does not score)."""
    grid = per_class.pivot_table(index="name", columns="run_id", values="auc", aggfunc="first", sort=False)
    codes = per_class.drop_duplicates("name").set_index("name")["code"]
    run_ids = list(dict.fromkeys(per_class["run_id"]))
    grid = grid.reindex(columns=run_ids)
    text = [[("" if math.isnan(v) else f"{v:.2f}") for v in row] for row in grid.to_numpy(dtype=float)]
    fig = go.Figure(go.Heatmap(
        z=grid.to_numpy(dtype=float), x=[labels.get(r, r) for r in run_ids], y=list(grid.index),
        text=text, texttemplate="%{text}", colorscale="RdYlGn", zmin=0.5, zmax=1.0,
        customdata=[[codes[name]] * len(run_ids) for name in grid.index],
        colorbar=dict(title="AUC"), hovertemplate="%{y} (%{customdata})<br>%{x}<br>AUC %{z:.3f}<extra></extra>",
    ))
    fig.update_yaxes(automargin=True, autorange="reversed")
    fig.update_xaxes(automargin=True, tickangle=-30)
    return _layout(fig, "Per-class AUC, class × run", max(260, 28 * len(grid.index) + 160))


def macro_auc_figure(runs: pd.DataFrame, labels: Mapping[str, str]) -> go.Figure:
    """Macro AUC of each run with its bootstrap CI (one row per run)."""
    order = runs.sort_values("macro_auc", kind="mergesort")
    names = [labels.get(r, r) for r in order["run_id"]]
    fig = go.Figure(go.Scatter(
        x=order["macro_auc"], y=names, mode="markers", marker=dict(size=10, color=colour(0)),
        error_x=dict(type="data", symmetric=False, array=(order["macro_auc_high"] - order["macro_auc"]).clip(lower=0),
                     arrayminus=(order["macro_auc"] - order["macro_auc_low"]).clip(lower=0)),
        customdata=np.stack([order["macro_auc_low"], order["macro_auc_high"], order["run_id"]], axis=1),
        hovertemplate="%{y}<br>macro AUC %{x:.3f} [%{customdata[0]:.3f}, %{customdata[1]:.3f}]"
                      "<br>%{customdata[2]}<extra></extra>",
    ))
    fig.update_xaxes(title="test macro ROC-AUC (95 % bootstrap CI)")
    fig.update_yaxes(automargin=True)
    return _layout(fig, "Macro AUC", max(240, 30 * len(order) + 120))


def learning_curves_figure(history: pd.DataFrame, labels: Mapping[str, str], x: str = "epochs_done") -> go.Figure:
    """Validation macro AUC (top) and loss (bottom; validation solid, training dotted) per run,
    against epochs (`epochs_done`) or training time (`wall_seconds`)."""
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        subplot_titles=("validation macro AUC", "loss"))
    for i, (run_id, part) in enumerate(history.groupby("run_id", sort=False)):
        name = labels.get(str(run_id), str(run_id))
        line = dict(color=colour(i))
        fig.add_scatter(x=part[x], y=part["val_macro_auc"], name=name, legendgroup=name, mode="lines+markers",
                        line=line, row=1, col=1)
        fig.add_scatter(x=part[x], y=part["val_loss"], name=name, legendgroup=name, showlegend=False,
                        mode="lines", line=line, row=2, col=1)
        fig.add_scatter(x=part[x], y=part["train_loss"], name=f"{name} (train)", legendgroup=name,
                        showlegend=False, mode="lines", line={**line, "dash": "dot"}, row=2, col=1)
    fig.update_xaxes(title="epoch" if x == "epochs_done" else "training time (s)", row=2, col=1)
    return _layout(fig, "Learning curves", 560)


def data_efficiency_figure(curve: pd.DataFrame) -> go.Figure:
    """Macro AUC against target fraction, one line per `line` with its CI band."""
    fig = go.Figure()
    for i, (line, part) in enumerate(curve.groupby("line", sort=True)):
        part = part.sort_values("train_fraction")
        band = part.dropna(subset=["ci_low_mean", "ci_high_mean"])
        if not band.empty:
            fig.add_scatter(x=np.r_[band["train_fraction"], band["train_fraction"][::-1]],
                            y=np.r_[band["ci_high_mean"], band["ci_low_mean"][::-1]], fill="toself",
                            fillcolor=_rgba(colour(i), 0.15), line=dict(width=0), hoverinfo="skip",
                            legendgroup=str(line), showlegend=False, name=f"{line} CI")
        std = part["macro_auc_std"].fillna(0.0)
        fig.add_scatter(
            x=part["train_fraction"], y=part["macro_auc_mean"], mode="lines+markers", name=str(line),
            legendgroup=str(line), line=dict(color=colour(i)),
            customdata=np.stack([std, part["n_seeds"], part["ci_low_mean"], part["ci_high_mean"]], axis=1),
            hovertemplate="fraction %{x:g}<br>macro AUC %{y:.3f} ± %{customdata[0]:.3f} (%{customdata[1]} seeds)"
                          "<br>CI [%{customdata[2]:.3f}, %{customdata[3]:.3f}]<extra>%{fullData.name}</extra>",
        )
    fig.update_xaxes(title="fraction of the target's training records", type="log")
    fig.update_yaxes(title="test macro ROC-AUC (mean over seeds; band: 95 % CI)")
    return _layout(fig, "Data efficiency", 460)


def head_to_head_figure(h2h: HeadToHead, label_a: str, label_b: str) -> go.Figure:
    """Forest plot of AUC differences (A - B) per class and macro, with CIs and p-values."""
    frame = h2h.per_class.dropna(subset=["diff"])
    macro = h2h.macro
    low, high = (float("nan") if v is None else v for v in macro["macro_auc_diff_ci"])
    names = ["macro"] + list(frame["name"])
    diffs = np.r_[_num(macro["macro_auc_diff"]), frame["diff"]]
    lows, highs = np.r_[low, frame["low"]], np.r_[high, frame["high"]]
    pvals = np.r_[_num(macro["p_value"]), frame["p_value"]]
    codes = ["macro"] + list(frame["code"])
    fig = go.Figure(go.Scatter(
        x=diffs, y=names, mode="markers", marker=dict(size=10, color=[colour(1)] + [colour(0)] * len(frame)),
        error_x=dict(type="data", symmetric=False, array=np.clip(highs - diffs, 0, None),
                     arrayminus=np.clip(diffs - lows, 0, None)),
        customdata=np.stack([lows, highs, pvals, codes], axis=1),
        hovertemplate="%{y} (%{customdata[3]})<br>ΔAUC %{x:+.3f} [%{customdata[0]:.3f}, %{customdata[1]:.3f}]"
                      "<br>p = %{customdata[2]:.3g}<extra></extra>",
    ))
    fig.add_vline(x=0, line_dash="dash", line_color="grey")
    fig.update_yaxes(autorange="reversed", automargin=True)
    fig.update_xaxes(title=f"AUC difference: {label_a} minus {label_b}")
    return _layout(fig, f"Head to head on {h2h.n_records} shared test records", max(240, 30 * len(names) + 140))


def _num(value: object) -> float:
    return float("nan") if value is None else float(value)  # type: ignore[arg-type]


def roc_figure(curves: Mapping[str, Sequence[RocCurve]], max_cols: int = 3) -> go.Figure:
    """One panel per class, one ROC line per run ({run label: curves}), chance diagonal dashed."""
    names: dict[str, str] = {}
    for run_curves in curves.values():
        for curve in run_curves:
            names.setdefault(curve.code, curve.name)
    codes = list(names)
    n_cols = max(1, min(max_cols, len(codes)))
    n_rows = max(1, math.ceil(len(codes) / n_cols))
    fig = make_subplots(rows=n_rows, cols=n_cols, subplot_titles=[names[c] for c in codes] or ["no curve"],
                        horizontal_spacing=0.06, vertical_spacing=0.12 if n_rows > 1 else 0.1)
    shown: set[str] = set()
    for panel, code in enumerate(codes):
        row, col = panel // n_cols + 1, panel % n_cols + 1
        fig.add_scatter(x=[0, 1], y=[0, 1], mode="lines", line=dict(dash="dash", color="lightgrey"),
                        showlegend=False, hoverinfo="skip", row=row, col=col)
        for i, (label, run_curves) in enumerate(curves.items()):
            for curve in run_curves:
                if curve.code != code:
                    continue
                fig.add_scatter(x=curve.fpr, y=curve.tpr, mode="lines", name=label, legendgroup=label,
                                showlegend=label not in shown, line=dict(color=colour(i)),
                                hovertemplate=f"{curve.name} ({code})<br>{label}: AUC {curve.auc:.3f}"
                                              "<br>FPR %{x:.2f}, TPR %{y:.2f}<extra></extra>", row=row, col=col)
                shown.add(label)
    fig.update_xaxes(range=[0, 1], title_text="false positive rate", row=n_rows)
    fig.update_yaxes(range=[0, 1.02])
    return _layout(fig, "ROC curves per class", 300 * n_rows + 120)
