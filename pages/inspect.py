"""Inspect: a run's test records one by one, on ECG paper, with what the model looked at.

Pick a run, narrow its test records by true class, outcome (TP/FP/FN/TN at the run's
threshold) and confidence, and step through them. Each record is drawn at 25 mm/s and
10 mm/mV with the chosen class's saliency as a band behind the leads, beside the
predicted probabilities and the true labels. The view lives in the URL
(`?run=…&cls=…&record=…&method=…`), so a link reopens it. Everything shown comes
from the run folder (predictions.npz, results.json, config.json) and the target
dataset it names. The run's provenance, the research-use line and (synthetic training
data) a warning come first; a record whose called rhythms exclude each other says so.
"""

from __future__ import annotations

import json
from pathlib import Path

import streamlit as st

from ecgcore.data.labels import class_name
from ecgcore.data.recordset import Recordset
from ecgcore.data.sources import open_dataset
from ecgcore.errors import EcgcoreError
from ecgcore.explain import list_methods
from ecgcore.views.explanations import Explanation, explain_signal
from ecgcore.views.figures.ecg_paper import ecg_paper_figure, lead_importance_figure
from ecgcore.views.calls import calls_note, rhythm_conflict
from ecgcore.views.display import escape_markdown
from ecgcore.views.run_records import (
    OUTCOMES, RunPredictions, TestRecord, filter_records, load_run_predictions, neighbour,
    read_test_record, record_calls, record_summary, run_choices, true_labels,
)
from ecgcore.views.scoring import LoadedRun, load_run
from ecgcore.views.provenance import Provenance, run_provenance
from ecgcore.views.record_report import METHOD_NAMES, ReportContent, report_bytes, saliency_on_signal
from ecgcore.runs import RunStore
from pages import report_downloads, require_router, show_provenance

require_router()

ANY = "any"
DEFAULT_METHOD = "ig"  # Integrated Gradients works for every architecture


def _stamp(*paths: Path) -> str:
    """Cache key part for files of a run folder: their paths and change times (a run copied
    to another workspace, or a rewritten config.json, is read afresh)."""
    return ";".join(f"{p}@{p.stat().st_mtime if p.exists() else 0.0}" for p in paths)


@st.cache_data(show_spinner="Reading the run's predictions…", max_entries=16)
def _predictions(run_id: str, stamp: str) -> RunPredictions:
    return load_run_predictions(run_id)


@st.cache_data(show_spinner=False, max_entries=16)
def _provenance(run_id: str, stamp: str) -> Provenance:
    return run_provenance(run_id)


@st.cache_resource(show_spinner="Reading the target dataset…", max_entries=4)
def _recordset(path: str, options: str) -> Recordset:
    return open_dataset(path, **json.loads(options))


@st.cache_resource(show_spinner="Loading the model…", max_entries=4)
def _model(run_id: str, stamp: str) -> LoadedRun:
    return load_run(run_id)


@st.cache_data(show_spinner="Computing the attribution…", max_entries=64)
def _explain(run_id: str, stamp: str, record_id: str, class_code: str, method: str,
             _record: TestRecord) -> Explanation:
    return explain_signal(_model(run_id, stamp), _record.signal, class_code, method, record=record_id)


def _url_choice(where, widget: str, label: str, options: list[str], key: str,
                default: str | None = None, **kwargs):
    """A selectbox/radio whose value is kept in the URL as the option itself (`?key=value`).

    Streamlit's own binding writes the *displayed* label into the URL; these links must
    hold run ids, record ids and class codes instead, so the page reads the parameter on
    the first run and writes the value back on every run. A value that is no longer an
    option (e.g. after a filter changed) falls back to `default`, else the first option."""
    wanted = st.session_state.get(key, st.query_params.get(key))
    fallback = default if default in options else options[0]
    st.session_state[key] = wanted if wanted in options else fallback
    value = getattr(where, widget)(label, options, key=key, **kwargs)
    st.query_params[key] = value
    return value


def _step(ids: list[str], step: int) -> None:
    st.session_state["record"] = neighbour(ids, st.session_state.get("record"), step)


def _filters(preds: RunPredictions) -> tuple[str, list[str]]:
    classes = list(preds.classes)
    cols = st.columns([3, 3, 2, 3])
    code = _url_choice(cols[0], "selectbox", "Class", classes, "cls", format_func=class_name,
                       help="The class whose outcome, confidence and saliency are shown")
    true = _url_choice(cols[1], "selectbox", "True class", [ANY, *classes], "true",
                       format_func=lambda c: "any" if c == ANY else class_name(c))
    outcome = _url_choice(cols[2], "selectbox", "Outcome", [ANY, *OUTCOMES], "outcome",
                          format_func=lambda o: "any" if o == ANY else OUTCOMES[o])
    low, high = cols[3].slider("Probability of the class", 0.0, 1.0, (0.0, 1.0), 0.01, key="conf")
    ids = filter_records(preds, code, true_class=None if true == ANY else true,
                         outcome=None if outcome == ANY else outcome, confidence=(low, high))
    return code, ids


def _facts(preds: RunPredictions, record: TestRecord) -> str:
    labels = [class_name(c) for c in true_labels(preds, record.record_id)]
    age = "unknown" if record.age is None else f"{record.age:g}"
    sex = {"M": "male", "F": "female"}.get(record.sex, "unknown")
    signal = record.signal
    recorded = "; ".join(record.facts.diagnosis_names) or "none"
    return (f"**True labels:** {escape_markdown(', '.join(labels) or 'none of the run’s classes')}  \n"
            f"**Age:** {age} · **Sex:** {sex} · {signal.fs:g} Hz · {signal.seconds:.1f} s · "
            f"{len(signal.leads)} leads  \n"
            f"**Recorded diagnoses** (the dataset's labels, all of them): {escape_markdown(recorded)}")


def _report(preds: RunPredictions, record: TestRecord, provenance: Provenance,
            explanation: Explanation, saliency, start: float, fmt: str) -> bytes:
    content = ReportContent(
        title=f"Test record {record.record_id}", signal=record.signal,
        predictions=record_calls(preds, record.record_id), saliency=saliency,
        lead_importance=explanation.lead_importance, start=start,
        facts={"dataset": preds.dataset.rstrip("/").rsplit("/", 1)[-1], **record.facts.facts()},
        provenance=provenance.lines(), warning=provenance.headline,
        calls_note=calls_note(preds.threshold_source),
        saliency_caption=f"saliency: {METHOD_NAMES.get(explanation.method, explanation.method)} "
                         f"for {explanation.class_name}")
    return report_bytes(content, fmt)


def _record_view(run_id: str, preds: RunPredictions, provenance: Provenance, code: str,
                 record: TestRecord) -> None:
    st.markdown(_facts(preds, record))
    conflict = rhythm_conflict(record_calls(preds, record.record_id))
    if conflict:
        st.warning(escape_markdown(conflict.sentence()))
    method = _url_choice(st, "radio", "Attribution method", list_methods(), "method",
                         default=DEFAULT_METHOD, horizontal=True,
                         format_func=lambda m: METHOD_NAMES.get(m, m))
    model_stamp = _stamp(RunStore().get(run_id).model_path)
    try:
        explanation = _explain(run_id, model_stamp, record.record_id, code, method, record)
    except EcgcoreError as err:
        st.error(f"Cannot explain this record: {err}")
        return
    saliency = saliency_on_signal(explanation.attribution, explanation.leads,
                                  _model(run_id, model_stamp).prep, record.signal)
    signal = record.signal
    start = 0.0
    if signal.seconds > 10.0:
        start = st.slider("Start of the 10 s page (s)", 0.0, float(int(signal.seconds - 10.0)), 0.0,
                          0.5, key="start")
    title = (f"{record.record_id} · {METHOD_NAMES.get(method, method)} for {class_name(code)}"
             f" · p = {explanation.probability:.3f}")
    fig = ecg_paper_figure(signal.data, signal.fs, signal.leads, saliency=saliency, title=title,
                           start=start)
    st.plotly_chart(fig, width="stretch", key="ecg", theme=None, config={"displaylogo": False})

    left, right = st.columns([3, 2])
    summary = record_summary(preds, record.record_id)
    left.dataframe(summary[["name", "probability", "threshold", "true label", "outcome"]],
                   hide_index=True, width="stretch", height="content", key="probabilities",
                   column_config={"probability": st.column_config.ProgressColumn(
                       "probability", min_value=0.0, max_value=1.0, format="%.3f"),
                       "threshold": st.column_config.NumberColumn(format="%.3f")})
    left.caption(f"Predicted probabilities beside the true labels; thresholds "
                 f"{preds.threshold_source}.")
    right.plotly_chart(lead_importance_figure(explanation.lead_importance, "Lead importance"),
                       width="stretch", key="importance")
    report_downloads(right, f"{record.record_id}_{code.replace('|', '-')}",
                     lambda fmt: _report(preds, record, provenance, explanation, saliency, start, fmt))


st.title("Inspect")
choices = run_choices()
if not choices:
    st.info("No finished run with test predictions yet. Train one on the Launch page, or run "
            "`python -m ecgcore run experiments/smoke.toml`.")
    st.stop()

run_id = _url_choice(st, "selectbox", "Run", list(choices), "run", format_func=choices.get)
folder = RunStore().get(run_id)
try:
    preds = _predictions(run_id, _stamp(folder.predictions_path, folder.results_path, folder.config_path))
except EcgcoreError as err:
    st.error(f"{run_id}: {err}")
    st.stop()
provenance = _provenance(run_id, _stamp(folder.results_path, folder.config_path))
show_provenance(st, provenance)
st.caption(f"{len(preds.record_ids)} test records · {len(preds.classes)} classes · thresholds "
           f"{preds.threshold_source} · signals from {escape_markdown(preds.dataset)}")

code, ids = _filters(preds)
st.caption(f"{len(ids)} of {len(preds.record_ids)} test records match.")
if not ids:
    st.warning("No test record matches these filters.")
    st.stop()

nav = st.columns([1, 6, 1], vertical_alignment="bottom")
nav[0].button("Previous", key="previous", on_click=_step, args=(ids, -1), width="stretch")
record_id = _url_choice(nav[1], "selectbox", "Record", ids, "record")
nav[2].button("Next", key="next", on_click=_step, args=(ids, 1), width="stretch")

try:
    recordset = _recordset(preds.dataset, json.dumps(preds.dataset_options, sort_keys=True))
    record = read_test_record(recordset, record_id)
except EcgcoreError as err:
    st.error(f"Cannot read test record {record_id}: {err}")
    st.stop()
_record_view(run_id, preds, provenance, code, record)
