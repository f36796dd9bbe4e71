"""Predict: upload an ECG, pick a trained run, see its probabilities and what drove them.

Accepted uploads (see `ecgcore.uploads`): a WFDB record (`.hea` with its `.dat` or
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

from ecgcore.data.labels import class_name
from ecgcore.errors import EcgcoreError
from ecgcore.explain import Explanation, explain_signal, list_methods
from ecgcore.figures.ecg_paper import ecg_paper_figure, lead_importance_figure
from ecgcore.inspect_run import run_choices
from ecgcore.predict import LoadedRun, load_run
from ecgcore.report import METHOD_NAMES, Prediction, ReportContent, report_bytes, saliency_on_signal
from ecgcore.runs import RunStore
from ecgcore.uploads import SUPPORTED, UploadedRecord, read_uploads, score_upload
from pages import report_downloads, require_router

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


def _probability_table(probabilities: dict[str, float]) -> pd.DataFrame:
    table = pd.DataFrame({"class": list(probabilities), "name": [class_name(c) for c in probabilities],
                          "probability": list(probabilities.values())})
    return table.sort_values("probability", ascending=False, kind="stable").reset_index(drop=True)


def _report(run_id: str, upload: UploadedRecord, probabilities: dict[str, float],
            explanation: Explanation, saliency, fmt: str) -> bytes:
    content = ReportContent(
        title=f"Uploaded record {upload.record}", signal=upload.signal,
        predictions=[Prediction(c, p) for c, p in probabilities.items()], saliency=saliency,
        saliency_caption=f"saliency: {METHOD_NAMES.get(explanation.method, explanation.method)} "
                         f"for {explanation.class_name}",
        lead_importance=explanation.lead_importance,
        facts={"run": run_id, "files": ", ".join(upload.files), "format": upload.format,
               "calls": "at 0.5"})
    return report_bytes(content, fmt)


def _result(run_id: str, stamp: str, digest: str, upload: UploadedRecord) -> None:
    run = _model(run_id, stamp)
    try:
        probabilities = score_upload(run, upload)
    except EcgcoreError as err:
        st.error(f"Cannot score {upload.record}: {err}")
        return
    table = _probability_table(probabilities)
    signal = upload.signal
    st.markdown(f"**{upload.record}** ({upload.format}: {', '.join(upload.files)}) · {signal.fs:g} Hz · "
                f"{signal.seconds:.1f} s · leads {', '.join(signal.leads)}")
    if upload.note:
        st.caption(upload.note)
    st.markdown(f"Most likely: **{table['name'][0]}** (p = {table['probability'][0]:.3f}) · every class "
                "is listed below the tracing")
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
        st.error(f"Cannot explain {upload.record}: {err}")
        return
    saliency = saliency_on_signal(explanation.attribution, explanation.leads, run.prep, signal)
    title = (f"{upload.record} · {METHOD_NAMES.get(method, method)} for {class_name(code)} · "
             f"p = {probabilities[code]:.3f}")
    fig = ecg_paper_figure(signal.data, signal.fs, signal.leads, saliency=saliency, title=title)
    st.plotly_chart(fig, width="stretch", key="ecg", theme=None, config={"displaylogo": False})

    left, right = st.columns([3, 2])
    left.dataframe(table[["name", "probability"]], hide_index=True, width="stretch", height="content",
                   key="probabilities", column_config={"probability": st.column_config.ProgressColumn(
                       "probability", min_value=0.0, max_value=1.0, format="%.3f")})
    right.plotly_chart(lead_importance_figure(explanation.lead_importance, "Lead importance"),
                       width="stretch", key="importance")
    report_downloads(right, f"{upload.record}_{code.replace('|', '-')}",
                     lambda fmt: _report(run_id, upload, probabilities, explanation, saliency, fmt))


st.title("Predict")
choices = run_choices(need="model.pt")
if not choices:
    st.info("No trained run yet. Train one on the Launch page, or run "
            "`python -m ecgcore run experiments/smoke.toml`, then come back to score your own ECG.")
    st.stop()

# The run id itself is kept in the URL (?run=…): Streamlit's own binding would write the label.
wanted = st.session_state.get("predict_run", st.query_params.get("run"))
st.session_state["predict_run"] = wanted if wanted in choices else next(iter(choices))
run_id = st.selectbox("Run", list(choices), format_func=choices.get, key="predict_run")
st.query_params["run"] = run_id
model_path = RunStore().get(run_id).model_path
stamp = f"{model_path}@{model_path.stat().st_mtime}"  # cache key: which model file, which version
files = st.file_uploader(f"ECG files: {SUPPORTED}", type=UPLOAD_TYPES, accept_multiple_files=True,
                         key="files")
fs = st.number_input("Sampling rate of CSV and .h5 uploads (Hz)", min_value=1.0, max_value=20_000.0,
                     value=500.0, step=50.0, key="fs",
                     help="WFDB headers carry their own rate; CSV files do not, and SPH .h5 files are "
                          "500 Hz")
if not files:
    st.info("Upload a record to score it with this run. CSV files: one column per lead, the lead "
            "names in the first row (I, II, …, V6), values in mV.")
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
_result(run_id, stamp, digest, by_name[name])
