"""Predict: upload an ECG, score it with a trained run, see its calls and what drove them.

The run is by default the best finished run for the record's leads and sampling rate
(`ecgcore.views.run_choice`: real training data first, then test macro AUC), and the page says
why; a run named in the link (`?run=`) or picked here is kept. Every result starts with
the model's provenance and the research-use line (`ecgcore.views.provenance`), with a warning
when the model learnt from synthetic data; classes are called at the run's thresholds
tuned on validation, rhythms that exclude each other are flagged (`ecgcore.views.calls`), and
the record's own header (age, sex, recorded diagnoses) is shown beside the calls.

Accepted uploads (see `ecgcore.views.uploads`): a WFDB record (`.hea` with its `.dat` or
`.mat`, uploaded together), a zip of such files, an SPH `.h5`, or a CSV with one column
per lead (lead names in the header, values in mV) at the sampling rate given here.
The record is preprocessed exactly as the run's training data was and scored as
`python -m ecgcore predict` would. A file that cannot be used gets a one-line message
naming it and the reason; nothing in an upload is executed, and the bytes are written
only to a private folder under $ECGCORE_HOME/uploads that is removed after reading.
"""

from __future__ import annotations

import hashlib

import pandas as pd
import streamlit as st

from ecgcore.views.calls import Thresholds, make_calls, rhythm_conflict, run_thresholds
from ecgcore.data.labels import class_name
from ecgcore.views.display import escape_markdown
from ecgcore.errors import EcgcoreError
from ecgcore.explain import list_methods
from ecgcore.views.explanations import Explanation, explain_signal
from ecgcore.views.figures.ecg_paper import ecg_paper_figure, lead_importance_figure
from ecgcore.views.run_records import run_choices
from ecgcore.views.scoring import LoadedRun, load_run
from ecgcore.views.provenance import Provenance, run_provenance
from ecgcore.views.record_report import METHOD_NAMES, ReportContent, report_bytes, saliency_on_signal
from ecgcore.views.run_choice import RunChoice, choose_run
from ecgcore.runs import RunStore
from ecgcore.views.uploads import SUPPORTED, UploadedRecord, read_uploads, score_upload
from pages import report_downloads, require_router, show_provenance

require_router()

DEFAULT_METHOD = "ig"  # Integrated Gradients works for every architecture
UPLOAD_TYPES = ["hea", "dat", "mat", "zip", "h5", "hdf5", "csv"]


@st.cache_resource(show_spinner="Loading the model…", max_entries=4)
def _model(run_id: str, stamp: str) -> LoadedRun:
    return load_run(run_id)


@st.cache_data(show_spinner="Reading the upload…", max_entries=8)
def _read(digest: str, fs: float, _files: list[tuple[str, bytes]]) -> list[UploadedRecord]:
    return read_uploads(_files, fs=fs)


@st.cache_data(show_spinner="Computing the attribution…", max_entries=32)
def _explain(run_id: str, stamp: str, digest: str, record: str, class_code: str, method: str,
             _upload: UploadedRecord) -> Explanation:
    return explain_signal(_model(run_id, stamp), _upload.signal, class_code, method, record=record)


@st.cache_data(show_spinner=False, max_entries=16)
def _run_facts(run_id: str, stamp: str) -> tuple[Provenance, dict]:
    """The run's provenance and its results.json (for the tuned thresholds)."""
    return run_provenance(run_id), RunStore().get(run_id).results() or {}


@st.cache_data(show_spinner="Choosing a run for this record…", max_entries=16)
def _choice(leads: tuple[str, ...], fs: float, runs: tuple[str, ...]) -> RunChoice | None:
    return choose_run(leads, fs)


def _calls_table(probabilities: dict[str, float], thresholds: Thresholds) -> pd.DataFrame:
    calls = make_calls(probabilities, thresholds)
    conflict = rhythm_conflict(calls)
    clash = set(conflict.codes) if conflict else set()
    return pd.DataFrame({
        "class": [c.code for c in calls], "name": [c.name for c in calls],
        "probability": [c.probability for c in calls], "threshold": [c.threshold for c in calls],
        "call": [("yes*" if c.code in clash else "yes") if c.called else "no" for c in calls]})


def _report(upload: UploadedRecord, provenance: Provenance, thresholds: Thresholds,
            probabilities: dict[str, float], explanation: Explanation, saliency, fmt: str) -> bytes:
    facts = {"files": ", ".join(upload.files), "format": upload.format}
    facts.update(upload.facts.facts() if upload.facts else {"record header": "no age, sex or Dx"})
    content = ReportContent(
        title=f"Uploaded record {upload.record}", signal=upload.signal,
        predictions=make_calls(probabilities, thresholds), saliency=saliency,
        saliency_caption=f"saliency: {METHOD_NAMES.get(explanation.method, explanation.method)} "
                         f"for {explanation.class_name}",
        lead_importance=explanation.lead_importance, facts=facts,
        provenance=provenance.lines(), warning=provenance.headline, calls_note=thresholds.note)
    return report_bytes(content, fmt)


def _result(run_id: str, stamp: str, digest: str, upload: UploadedRecord) -> None:
    run = _model(run_id, stamp)
    results_path = RunStore().get(run_id).results_path
    provenance, results = _run_facts(run_id, f"{results_path}@{results_path.stat().st_mtime}")
    show_provenance(st, provenance)
    try:
        probabilities = score_upload(run, upload)
    except EcgcoreError as err:
        st.error(f"Cannot score {upload.record}: {escape_markdown(err)}")
        return
    thresholds = run_thresholds(results, list(probabilities))
    table = _calls_table(probabilities, thresholds)
    signal = upload.signal
    st.markdown(f"**{escape_markdown(upload.record)}** ({upload.format}: "
                f"{escape_markdown(', '.join(upload.files))}) · {signal.fs:g} Hz · "
                f"{signal.seconds:.1f} s · leads {', '.join(signal.leads)}")
    if upload.note:
        st.caption(upload.note)
    st.markdown(escape_markdown(upload.facts.line()) if upload.facts else
                "The record carries no age, sex or recorded diagnoses.")
    called = [name for name, call in zip(table["name"], table["call"]) if call != "no"]
    st.markdown(f"Most likely: **{table['name'][0]}** (p = {table['probability'][0]:.3f}) · called: "
                f"{escape_markdown(', '.join(called)) or 'none'} · every class is listed below the tracing")
    conflict = rhythm_conflict(make_calls(probabilities, thresholds))
    if conflict:
        st.warning(escape_markdown(conflict.sentence()))
    cols = st.columns(2)
    code = cols[0].selectbox("Saliency for class", list(table["class"]), format_func=class_name,
                             key="predict_cls")
    methods = list_methods()
    method = cols[1].radio("Attribution method", methods, key="predict_method", horizontal=True,
                           index=methods.index(DEFAULT_METHOD) if DEFAULT_METHOD in methods else 0,
                           format_func=lambda m: METHOD_NAMES.get(m, m))
    try:
        explanation = _explain(run_id, stamp, digest, upload.record, code, method, upload)
    except EcgcoreError as err:
        st.error(f"Cannot explain {upload.record}: {escape_markdown(err)}")
        return
    saliency = saliency_on_signal(explanation.attribution, explanation.leads, run.prep, signal)
    title = (f"{upload.record} · {METHOD_NAMES.get(method, method)} for {class_name(code)} · "
             f"p = {probabilities[code]:.3f}")
    fig = ecg_paper_figure(signal.data, signal.fs, signal.leads, saliency=saliency, title=title)
    st.plotly_chart(fig, width="stretch", key="ecg", theme=None, config={"displaylogo": False})

    left, right = st.columns([3, 2])
    left.dataframe(table[["name", "probability", "threshold", "call"]], hide_index=True, width="stretch",
                   height="content", key="probabilities", column_config={
                       "probability": st.column_config.ProgressColumn(
                           "probability", min_value=0.0, max_value=1.0, format="%.3f"),
                       "threshold": st.column_config.NumberColumn(format="%.3f")})
    left.caption(f"Calls: {escape_markdown(thresholds.note)}."
                 + (" \\* rhythms that exclude each other (see the rhythm conflict above)." if conflict else ""))
    right.plotly_chart(lead_importance_figure(explanation.lead_importance, "Lead importance"),
                       width="stretch", key="importance")
    report_downloads(right, f"{upload.record}_{code.replace('|', '-')}",
                     lambda fmt: _report(upload, provenance, thresholds, probabilities, explanation,
                                         saliency, fmt))


def _pick_run(choices: dict[str, str], upload: UploadedRecord) -> str:
    """The run picker: the run named in the link or picked here, else the best finished run
    for this record's leads and rate (`ecgcore.views.run_choice`), with the reason shown."""
    if "predict_pick" not in st.session_state:  # first view: a run in the link counts as picked
        linked = st.query_params.get("run")
        st.session_state["predict_pick"] = linked if linked in choices else None
    picked = st.session_state["predict_pick"]
    choice = _choice(tuple(upload.signal.leads), float(upload.signal.fs), tuple(choices))
    default = picked if picked in choices else (choice.run_id if choice and choice.run_id in choices
                                                else next(iter(choices)))
    st.session_state["predict_run"] = default

    def _picked() -> None:
        st.session_state["predict_pick"] = st.session_state["predict_run"]

    run_id = st.selectbox("Run", list(choices), format_func=choices.get, key="predict_run",
                          on_change=_picked)
    if picked in choices:
        st.query_params["run"] = run_id
        better = f" For this record the default would be {choice.run_id}: {choice.reason}" if (
            choice and choice.run_id != run_id) else ""
        st.caption(escape_markdown(f"Chosen in the link or here.{better}"))
    else:
        st.query_params.pop("run", None)
        st.caption(escape_markdown(choice.reason if choice else ""))
    return run_id


st.title("Predict")
choices = run_choices(need="model.pt")
if not choices:
    st.info("No trained run yet. Train one on the Launch page, or run "
            "`python -m ecgcore run experiments/smoke.toml`, then come back to score your own ECG.")
    st.stop()

files = st.file_uploader(f"ECG files: {SUPPORTED}", type=UPLOAD_TYPES, accept_multiple_files=True,
                         key="files")
fs = st.number_input("Sampling rate of CSV and .h5 uploads (Hz)", min_value=1.0, max_value=20_000.0,
                     value=500.0, step=50.0, key="fs",
                     help="WFDB headers carry their own rate; CSV files do not, and SPH .h5 files are "
                          "500 Hz")
if not files:
    st.info("Upload a record to score it with a trained run: the best finished run for the record's "
            "leads and sampling rate is chosen, and you can pick another. CSV files: one column per "
            "lead, the lead names in the first row (I, II, …, V6), values in mV.")
    st.stop()

pairs = [(f.name, f.getvalue()) for f in files]
digest = hashlib.sha256(b"".join(hashlib.sha256(name.encode() + b"\0" + data).digest()
                                 for name, data in pairs)).hexdigest()
try:
    records = _read(digest, float(fs), pairs)
except EcgcoreError as err:
    st.error(f"Upload refused: {err}")
    st.stop()

by_name = {r.record: r for r in records}
name = st.selectbox("Record", list(by_name), key="predict_record") if len(by_name) > 1 else next(iter(by_name))
upload = by_name[name]
run_id = _pick_run(choices, upload)
model_path = RunStore().get(run_id).model_path
stamp = f"{model_path}@{model_path.stat().st_mtime}"  # cache key: which model file, which version
_result(run_id, stamp, digest, upload)
