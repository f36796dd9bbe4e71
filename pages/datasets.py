"""Datasets: what each dataset in the workspace holds, how two compare, and any record as an ECG.

The view lives in the URL (`?dataset=NAME&record=ID&compare=OTHER&start=S`), so a link
reopens it. Reading is cached on (path, change stamp): the recordset as a resource,
reports and tables as data.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from ecgcore import workspace
from ecgcore.data.dataset_survey import dataset_stamp, inspect_recordset
from ecgcore.data.labels import class_name, overlap_table
from ecgcore.data.recordset import Recordset
from ecgcore.data.sources import detect_layout, open_dataset
from ecgcore.download import CATALOGUE
from ecgcore.download.download_job import (
    DownloadJob,
    DownloadStatus,
    download_jobs,
    submit_download,
)
from ecgcore.errors import EcgcoreError
from ecgcore.jobs import ACTIVE, cancel
from ecgcore.jobs.worker_status import ensure_local_worker
from ecgcore.views.display import escape_markdown
from ecgcore.views.figures import ecg_paper_figure
from pages import require_router

require_router()

# Datasets up to this size have every signal read when shown; larger ones on request.
AUTO_CHECK_RECORDS = 3000


@st.cache_resource(show_spinner="Reading the dataset's headers…", max_entries=8)
def _recordset(path: str, stamp: float) -> Recordset:
    return open_dataset(path)


@st.cache_data(show_spinner="Describing the dataset…", max_entries=32)
def _report(path: str, stamp: float, check_signals: bool) -> dict[str, Any]:
    return inspect_recordset(_recordset(path, stamp), check_signals=check_signals)


@st.cache_data(show_spinner="Counting shared classes…", max_entries=32)
def _overlap(path_a: str, stamp_a: float, path_b: str, stamp_b: float) -> pd.DataFrame:
    return overlap_table(_recordset(path_a, stamp_a).table, _recordset(path_b, stamp_b).table)


def _add_dataset() -> None:
    """Form callback: register a folder under a name (refusing paths that hold no dataset)."""
    raw_path = st.session_state.get("add_path", "").strip()
    name = st.session_state.get("add_name", "").strip() or Path(raw_path).name
    try:
        layout = detect_layout(Path(raw_path).expanduser())
        workspace.add_dataset(name, Path(raw_path).expanduser())
    except (EcgcoreError, ValueError, OSError) as err:
        st.session_state["add_error"] = f"Not added: {err}"
        return
    st.session_state["add_error"] = ""
    st.session_state["add_done"] = f"Added {name} ({layout} layout)."
    st.session_state["dataset"] = name
    st.session_state.pop("record", None)


def _add_form(expanded: bool) -> None:
    with st.expander("Add a dataset by path", expanded=expanded):
        with st.form("add_dataset", clear_on_submit=False):
            st.text_input("Folder", key="add_path",
                          help="A dataset folder as downloaded, e.g. /data/physionet/ptb-xl/1.0.3")
            st.text_input("Name (default: the folder's name)", key="add_name")
            st.form_submit_button("Add", on_click=_add_dataset)
        if st.session_state.get("add_error"):
            st.error(st.session_state["add_error"])
        elif st.session_state.get("add_done"):
            st.success(st.session_state["add_done"])


def _start_download() -> None:
    """Button callback: queue the chosen catalogue dataset's download as a job, and make sure
    a worker runs it (the app starts one on this machine when none is alive)."""
    name = st.session_state.get("dl_name") or next(iter(CATALOGUE))
    folder = st.session_state.get("dl_folder", "").strip() or str(workspace.datasets_dir() / name)
    base_url = st.session_state.get("dl_base_url", "").strip() or None
    try:
        submit_download(DownloadJob.of(name, folder, base_url=base_url, add_as=name))
        worker = ensure_local_worker()
    except (EcgcoreError, OSError, ValueError) as err:
        st.session_state["dl_error"] = f"Not started: {err}"
        return
    st.session_state["dl_error"] = ""
    st.session_state["dl_note"] = "" if worker else (
        "Queued, but no worker runs it: automatic start is off here (ECGCORE_AUTO_WORKER=0). "
        "Start one on the Jobs page or with `python -m ecgcore worker`.")
    st.session_state["dl_open"] = True  # keep the section open in this session to show the outcome


def _download_line(item: DownloadStatus) -> None:
    """One download job: a progress bar while it is queued or runs, then what came of it."""
    where = f"**{item.job.title}** → `{item.job.to}`"
    if item.state in ACTIVE:
        counts = f", {item.summary}" if item.progress.files_total else ""
        st.progress(float(item.progress.fraction), text=f"{where}: {item.stage}{counts}")
        st.button("Stop", key=f"dl_stop:{item.job_id}", on_click=cancel, args=(item.job_id,),
                  disabled=item.state == "cancelling",
                  help="Stops after the current piece; starting again resumes.")
    elif item.state == "done":
        st.success(f"{where}: every file verified ({item.summary}); in the workspace as "
                   f"**{item.progress.added_as or item.job.add_as or item.job.dataset}**.")
    elif item.state == "cancelled":
        st.warning(f"{where}: stopped ({item.summary}). Start it again to resume.")
    else:
        st.error(f"{where}: {item.state}. {escape_markdown(item.message)}")


def _download_section() -> None:
    """Download a catalogue dataset as a job of the queue; its progress is read from the job
    by a fragment that refreshes every second while a download is queued or runs."""
    running = any(item.state in ACTIVE for item in download_jobs())
    with st.expander("Download a public dataset (PhysioNet, Zenodo)",
                     expanded=running or st.session_state.get("dl_open", False)):
        names = list(CATALOGUE)
        st.radio("Dataset to download", names, key="dl_name",
                 format_func=lambda n: f"{CATALOGUE[n].title} {CATALOGUE[n].version} ({CATALOGUE[n].approx_size})")
        entry = CATALOGUE[st.session_state.get("dl_name") or names[0]]
        st.caption(escape_markdown(f"{entry.records}. Licence: {entry.licence}. Files are checked against the "
                                   f"source's {entry.checksums}; a download resumes where it stopped, and files "
                                   f"already verified are not fetched again. " + " ".join(entry.notes)))
        st.text_input("Download into folder", key="dl_folder",
                      help=f"Created if missing. Left empty: {workspace.datasets_dir() / entry.name}")
        st.text_input("Mirror (base URL, optional)", key="dl_base_url",
                      help=f"A server holding the files in the source's layout. Left empty: {entry.base_url}")
        st.button("Start download", key="dl_start", on_click=_start_download)
        if st.session_state.get("dl_error"):
            st.error(st.session_state["dl_error"])
        elif st.session_state.get("dl_note"):
            st.warning(st.session_state["dl_note"])

        @st.fragment(run_every=1.0 if running else None)
        def status() -> None:
            current = download_jobs(limit=5)
            for item in current:
                _download_line(item)
            if running and not any(item.state in ACTIVE for item in current):
                st.rerun()  # finished: the whole page again, so the new dataset is listed

        status()


def _overview(report: dict[str, Any]) -> None:
    cols = st.columns(4)
    cols[0].metric("Readable records", report["n_records"])
    cols[1].metric("Unreadable", report["n_unreadable"])
    cols[2].metric("Patients", report["patients"])
    cols[3].metric("Layout", report["layout"])
    lengths = report["lengths"]
    facts = {
        "sampling rates": ", ".join(f"{rate} Hz × {n}" for rate, n in report["sampling_rates"].items()),
        "lengths": (f"{lengths['min_seconds']:g}–{lengths['max_seconds']:g} s, median "
                    f"{lengths['median_seconds']:g} s" if lengths["min_seconds"] is not None else "—"),
        "lead sets": "; ".join(f"{leads} × {n}" for leads, n in report["lead_sets"].items()),
        "sources": ", ".join(f"{s or '?'} × {n}" for s, n in report["sources"].items()),
        "official folds": ", ".join(f"{f}: {n}" for f, n in report["folds"].items()) or "none",
        "sex": ", ".join(f"{s} × {n}" for s, n in report["sex"].items()),
        "age": (f"{report['age']['min']:g}–{report['age']['max']:g} (median {report['age']['median']:g}),"
                f" known for {report['age']['known']}" if report["age"]["known"] else "unknown"),
    }
    st.dataframe(pd.DataFrame({"": list(facts), "value": list(facts.values())}),
                 hide_index=True, width="stretch")
    if not report["signals_checked"]:
        st.caption("Signals not read yet: only header-level problems are listed as unreadable.")


def _label_chart(report: dict[str, Any]) -> None:
    counts = report["label_counts"]
    if not counts:
        st.info("No SNOMED-mapped labels in this dataset.")
    else:
        names = [f"{class_name(code)} ({code})" for code in counts]
        fig = go.Figure(go.Bar(x=list(counts.values())[::-1], y=names[::-1], orientation="h",
                               marker_color="#c0392b", hovertemplate="%{y}: %{x} records<extra></extra>"))
        fig.update_layout(height=max(220, 22 * len(counts) + 60), margin=dict(l=8, r=8, t=8, b=8),
                          xaxis_title="records", yaxis=dict(automargin=True))
        st.plotly_chart(fig, width="stretch", key="label_chart")
    st.caption(f"{report['unlabelled']} records carry no label at all.")
    if report["unmapped_labels"]:
        st.markdown("**Labels with no SNOMED CT code** (kept as text)")
        st.dataframe(pd.DataFrame(list(report["unmapped_labels"].items()), columns=["label", "records"]),
                     hide_index=True, width="stretch")


def _record_view(name: str, recordset: Recordset) -> None:
    ids = recordset.record_ids
    if not ids:
        st.info("No readable record to draw.")
        return
    record_id = st.selectbox("Record", ids, key="record", bind="query-params")
    row = recordset.table.loc[record_id]
    labels = [class_name(code) for code in row["labels"]]
    facts = [f"**Labels:** {', '.join(labels) or 'none'}"]
    if len(row["unmapped"]):
        facts.append(f"**Unmapped:** {', '.join(map(str, row['unmapped']))}")
    age = "unknown" if pd.isna(row["age"]) else f"{row['age']:g}"
    facts.append(f"**Age:** {age} · **Sex:** {row['sex'] or 'unknown'} · **Source:** {row['source'] or '—'}"
                 f" · **Patient:** {row['patient_id'] or '—'} · {row['fs']:g} Hz ·"
                 f" {row['n_samples'] / row['fs']:.1f} s")
    st.markdown("  \n".join(facts))
    try:
        signal = recordset.read(record_id)
    except EcgcoreError as err:
        st.error(f"Cannot draw this record: {err}")
        return
    start = 0.0
    if signal.seconds > 10.0:
        start = st.slider("Start of the 10 s page (s)", 0.0, float(int(signal.seconds - 10.0)), 0.0, 0.5,
                          key="start", bind="query-params")
    fig = ecg_paper_figure(signal.data, signal.fs, signal.leads, title=f"{name} / {record_id}", start=start)
    st.plotly_chart(fig, width="stretch", key="ecg", theme=None, config={"displaylogo": False})


def _compare(name: str, entries: dict[str, Path]) -> None:
    others = [other for other in entries if other != name]
    if not others:
        st.caption("Add a second dataset to compare label spaces.")
        return
    other = st.selectbox("Compare with", others, index=None, key="compare",
                         bind="query-params")
    if other is None:
        return
    path_a, path_b = entries[name], entries[other]
    try:
        table = _overlap(str(path_a), dataset_stamp(path_a), str(path_b), dataset_stamp(path_b))
    except EcgcoreError as err:
        st.error(f"Cannot compare: {err}")
        return
    shared = int(table["shared"].sum())
    st.markdown(f"**{shared}** classes in both **{name}** and **{other}** "
                f"(after the Challenge equivalences), of {len(table)} in either.")
    st.dataframe(table.rename(columns={"count_a": name, "count_b": other}), hide_index=True,
                 width="stretch")


st.title("Datasets")
entries = {entry.name: entry.path for entry in workspace.list_datasets()}
_add_form(expanded=not entries)
_download_section()
if not entries:
    st.info("The workspace has no datasets yet. Write the embedded demo data with the button on the "
            "Home page (or run `python -m ecgcore demo-data`), or add a folder above.")
    st.page_link("pages/home.py", label="Go to the Home page", icon=":material/home:")
    st.stop()

name = st.selectbox("Dataset", list(entries), key="dataset", bind="query-params")
path = entries[name]
stamp = dataset_stamp(path)
try:
    recordset = _recordset(str(path), stamp)
    first_look = _report(str(path), stamp, False)
except EcgcoreError as err:
    st.error(f"{name}: {err}")
    st.stop()

check = len(recordset) <= AUTO_CHECK_RECORDS or st.session_state.get(f"checked:{path}", False)
report = _report(str(path), stamp, True) if check else first_look
st.caption(f"{path} — {report['layout_description']}")
_overview(report)
if not check and st.button(f"Read all {len(recordset)} signals to find unreadable ones"):
    st.session_state[f"checked:{path}"] = True
    st.rerun()

st.subheader("Record")
_record_view(name, recordset)

st.subheader("Labels")
_label_chart(report)

st.subheader(f"Unreadable records ({report['n_unreadable']})")
if report["unreadable"]:
    st.dataframe(pd.DataFrame(report["unreadable"]), hide_index=True, width="stretch")
else:
    st.caption("Every record reads." if report["signals_checked"] else "No header-level problems.")

st.subheader("Overlap with another dataset")
_compare(name, entries)
