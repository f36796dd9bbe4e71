"""Compare: which strategy, architecture and amount of target data work best, run by run.

A runs table with filters and a selection; for the runs in view: per-class AUC (bars with
CIs and a class x run heatmap), macro AUC (mean ± std over seeds), learning curves, the
data-efficiency curve, convergence, two runs head to head and ROC curves. Every filter,
the selection and the head-to-head pair live in the URL (`?strategy=finetune&runs=…&a=…`),
so a link reopens the same view. Reads go through ecgcore.compare, cached on file stamps.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from ecgcore import compare
from ecgcore.compare import RunFilters
from ecgcore.errors import EcgcoreError
from ecgcore.runs import RunStore
from pages import require_router

require_router()

# Runs drawn one by one (bars, curves, ROC) when nothing is selected: the newest finished ones.
DEFAULT_VIEW = 8
# (query parameter, label, RunFilters field); PARSE turns the shown text back into a value.
FILTERS: tuple[tuple[str, str, str], ...] = (
    ("source", "Source dataset", "sources"), ("target", "Target dataset", "targets"),
    ("arch", "Architecture", "archs"), ("strategy", "Strategy", "strategies"),
    ("fraction", "Target fraction", "fractions"), ("seed", "Seed", "seeds"),
    ("state", "State", "statuses"), ("kind", "Kind", "kinds"), ("protocol", "Protocol", "protocols"),
)
PARSE: dict[str, Callable[[str], Any]] = {"fractions": float, "seeds": int}
TABLE_CONFIG = {
    "macro_auc": st.column_config.NumberColumn("macro AUC", format="%.3f"),
    "macro_auc_low": st.column_config.NumberColumn("CI low", format="%.3f"),
    "macro_auc_high": st.column_config.NumberColumn("CI high", format="%.3f"),
    "macro_auprc": st.column_config.NumberColumn("macro AUPRC", format="%.3f"),
    "f1_weighted": st.column_config.NumberColumn("F1 (weighted)", format="%.3f"),
    "train_fraction": st.column_config.NumberColumn("fraction", format="%g"),
    "train_seconds": st.column_config.NumberColumn("train s", format="%.1f"),
    "n_leaked": st.column_config.NumberColumn(
        "leaked", help="Test records the source model was trained on (same recording by name or by "
        "signal, results.json 'leakage'); empty without a source. Above 0, the test score is optimistic."),
}


def _show(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _filters(table: pd.DataFrame) -> RunFilters:
    """One multiselect per filter, bound to its query parameter; empty = any value."""
    options = compare.filter_options(table)
    chosen: dict[str, tuple[Any, ...]] = {}
    columns = st.columns(4)
    for i, (param, label, field) in enumerate(FILTERS):
        shown = [_show(v) for v in options[field]]
        picked = columns[i % 4].multiselect(label, shown, key=param, bind="query-params", placeholder="any")
        parse = PARSE.get(field, str)
        chosen[field] = tuple(parse(v) for v in picked)
    return RunFilters(**chosen)


def _download_html(fig: go.Figure, key: str) -> None:
    """A self-contained interactive HTML file (plotly.js inside: it opens offline), built
    only when the button is clicked."""
    st.download_button("Download figure (HTML)", data=lambda: fig.to_html(include_plotlyjs=True),
                       file_name=f"{key}.html", mime="text/html", key=f"{key}-html", on_click="ignore")


def _download_csv(frame: pd.DataFrame, key: str, label: str = "Download (CSV)") -> None:
    st.download_button(label, data=lambda: frame.to_csv(index=False), file_name=f"{key}.csv",
                       mime="text/csv", key=f"{key}-csv", on_click="ignore")


def _chart(fig: go.Figure, key: str) -> None:
    st.plotly_chart(fig, width="stretch", key=f"{key}-chart", config={"displaylogo": False})
    _download_html(fig, key)


def _runs_table(shown: pd.DataFrame) -> None:
    columns = [c for c in compare.TABLE_COLUMNS if c not in ("created", "device", "experiment", "task")]
    st.dataframe(shown[columns], hide_index=True, width="stretch", height=min(420, 36 * len(shown) + 40),
                 column_config=TABLE_CONFIG, key="runs-table")
    _download_csv(shown, "runs", "Download the table (CSV)")


def _per_class(store: RunStore, view: list[str], labels: dict[str, str]) -> None:
    frame = compare.per_class_auc(store, view)
    with st.container(key="compare-per-class-auc"):
        st.subheader("Per-class AUC")
        if frame.empty:
            st.info("None of these runs has per-class results.")
        else:
            _chart(compare.per_class_auc_figure(frame, labels), "per-class-auc")
    with st.container(key="compare-heatmap"):
        if not frame.empty:
            _chart(compare.auc_heatmap(frame, labels), "heatmap")


def _macro(rows: pd.DataFrame, group_rows: pd.DataFrame, labels: dict[str, str]) -> None:
    with st.container(key="compare-macro"):
        st.subheader("Macro AUC")
        _chart(compare.macro_auc_figure(rows, labels), "macro-auc")
        summary = compare.seed_summary(group_rows)
        summary["macro AUC (mean ± std)"] = [
            f"{m:.3f}" + ("" if pd.isna(s) else f" ± {s:.3f}") for m, s in zip(summary.macro_auc_mean,
                                                                           summary.macro_auc_std)]
        st.caption("Per setting, over its seeds (std shown where several seeds exist):")
        shown = summary.drop(columns=["run_ids", "task"])
        st.dataframe(shown, hide_index=True, width="stretch", column_config=TABLE_CONFIG, key="seed-table")
        _download_csv(shown, "macro-auc-by-setting")


def _learning_curves(store: RunStore, view: list[str], labels: dict[str, str]) -> pd.DataFrame:
    history = compare.histories(store, view)
    with st.container(key="compare-learning-curves"):
        st.subheader("Learning curves")
        axis = st.radio("Against", ["epoch", "training time"], key="curve_x", bind="query-params", horizontal=True)
        if history.empty:
            st.info("No epoch history for these runs.")
        else:
            x = "epochs_done" if axis == "epoch" else "wall_seconds"
            _chart(compare.learning_curves_figure(history, labels, x=x), "learning-curves")
    return history


def _data_efficiency(group_rows: pd.DataFrame) -> None:
    with st.container(key="compare-data-efficiency"):
        st.subheader("Data efficiency")
        curve = compare.data_efficiency(group_rows)
        if curve.empty:
            st.info("No finished target runs to draw.")
            return
        if curve.train_fraction.nunique() < 2:
            st.caption("Only one target fraction among these runs: each strategy is a single point.")
        _chart(compare.data_efficiency_figure(curve), "data-efficiency")


def _convergence(history: pd.DataFrame, labels: dict[str, str]) -> None:
    with st.container(key="compare-convergence"):
        st.subheader("Convergence")
        st.caption("Epochs (and training seconds) each run needed to first reach 95 % of its best "
                   "validation macro AUC.")
        if history.empty:
            st.info("No epoch history for these runs.")
            return
        table = compare.convergence(history)
        table.insert(1, "run", [labels.get(r, r) for r in table.run_id])
        st.dataframe(table, hide_index=True, width="stretch", key="convergence-table",
                     column_config={c: st.column_config.NumberColumn(format="%.3f")
                                    for c in ("best_val_auc", "target_auc")})
        _download_csv(table, "convergence")


@st.cache_data(show_spinner="Paired bootstrap…", max_entries=32)
def _head_to_head(home: str, run_a: str, run_b: str, stamps: tuple[Any, ...]) -> compare.HeadToHead:
    store = RunStore(home)
    return compare.head_to_head(compare.predictions(store, run_a), compare.predictions(store, run_b))


def _stamp(store: RunStore, run_id: str) -> Any:
    return compare.file_stamp(store.runs_dir / run_id / "predictions.npz")


def _pair(store: RunStore, done: list[str], labels: dict[str, str], full: dict[str, str]) -> None:
    with st.container(key="compare-head-to-head"):
        st.subheader("Head to head")
        if len(done) < 2:
            st.info("Two finished runs are needed for a head-to-head comparison.")
            return
        name = lambda run_id: labels.get(run_id, run_id)
        left, right = st.columns(2)
        long_name = lambda run_id: full.get(run_id, run_id)
        run_a = left.selectbox("Run A", done, index=0, format_func=long_name, key="a", bind="query-params")
        run_b = right.selectbox("Run B", done, index=1, format_func=long_name, key="b", bind="query-params")
        if run_a == run_b:
            st.info("Pick two different runs.")
            return
        try:
            h2h = _head_to_head(str(store.home), run_a, run_b, (_stamp(store, run_a), _stamp(store, run_b)))
        except EcgcoreError as err:
            st.warning(f"These two runs cannot be compared: {err}")
            return
        macro = h2h.macro
        low, high = macro["macro_auc_diff_ci"]
        cols = st.columns(3)
        cols[0].metric("Macro AUC, A", f"{macro['macro_auc_a']:.3f}")
        cols[1].metric("Macro AUC, B", f"{macro['macro_auc_b']:.3f}")
        cols[2].metric("A − B (95 % CI)", f"{macro['macro_auc_diff']:+.3f}",
                       help=f"CI [{low:.3f}, {high:.3f}], p = {macro['p_value']:.3g} (paired bootstrap)")
        st.caption(f"On {h2h.n_records} shared test records and {len(h2h.classes)} shared classes; CI "
                   f"[{low:.3f}, {high:.3f}], p = {macro['p_value']:.3g}."
                   + (f" Classes scored by only one run, left out: {', '.join(h2h.dropped_classes)}."
                      if h2h.dropped_classes else ""))
        _chart(compare.head_to_head_figure(h2h, name(run_a), name(run_b)), "head-to-head")
        st.dataframe(h2h.per_class, hide_index=True, width="stretch", key="h2h-table",
                     column_config={c: st.column_config.NumberColumn(format="%.3f")
                                    for c in ("auc_a", "auc_b", "diff", "low", "high", "p_value")})
        _download_csv(h2h.per_class, "head-to-head")


def _roc(store: RunStore, done: list[str], labels: dict[str, str]) -> None:
    with st.container(key="compare-roc"):
        st.subheader("ROC curves per class")
        curves = {}
        for run_id in done:
            try:
                curves[labels.get(run_id, run_id)] = compare.run_roc_curves(store, run_id)
            except EcgcoreError as err:
                st.caption(f"{labels.get(run_id, run_id)}: {err}")
        if not any(curves.values()):
            st.info("No test predictions to draw ROC curves from.")
            return
        _chart(compare.roc_figure(curves), "roc")


def main() -> None:
    st.title("Compare")
    store = RunStore()
    table = compare.runs_table(store)
    if table.empty:
        st.info("No runs in this workspace yet. Launch a grid on the Launch page (or the quickstart from "
                "the Home page), or run `python -m ecgcore run experiments/quickstart.toml`; finished "
                "runs appear here.")
        return
    with st.expander("Filters", expanded=True):
        filters = _filters(table)
    shown = compare.apply_filters(table, filters)
    labels = compare.run_labels(table)
    # Selection widgets show (and put in the URL) the full, stable label of a run.
    full = compare.full_labels(table)
    st.caption(f"{len(shown)} of {len(table)} runs match the filters.")
    _runs_table(shown)
    selected = st.multiselect("Runs to compare (empty: the newest finished runs of the table)",
                              list(shown.run_id), format_func=lambda r: full.get(r, r), key="runs",
                              bind="query-params")
    rows = compare.finished(shown[shown.run_id.isin(selected)] if selected else shown)
    if selected:  # in the order they were picked
        rows = rows.sort_values("run_id", key=lambda ids: ids.map(selected.index), kind="mergesort")
    if rows.empty:
        st.info("No finished target run among these runs: nothing to compare yet.")
        return
    group_rows = rows
    if not selected and len(rows) > DEFAULT_VIEW:
        rows = rows.head(DEFAULT_VIEW)
        st.caption(f"Drawing the {DEFAULT_VIEW} newest finished runs run by run; macro AUC by setting and "
                   "the data-efficiency curve use every finished run that matches.")
    view = list(rows.run_id)
    _per_class(store, view, labels)
    _macro(rows, group_rows, labels)
    history = _learning_curves(store, view, labels)
    _data_efficiency(group_rows)
    _convergence(history, labels)
    _pair(store, view, labels, full)
    _roc(store, view, labels)


main()
