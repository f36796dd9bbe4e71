"""Home: what is in the workspace (datasets, runs, jobs), and on a bare machine one button
that writes the embedded demo data and queues the quickstart comparison.

The title shows first and the engine is imported under a spinner (the first view of a fresh
server would otherwise be blank for seconds)."""

from __future__ import annotations

from typing import Any

import streamlit as st

from pages import require_router

require_router()

# The title and a spinner before anything else: the engine's imports (torch among them) take seconds
# on a freshly started server, 5-9 s on a busy machine, and a blank page meanwhile reads as broken.
st.title("ECG transfer workbench")
st.markdown(
    "Does pretraining on one ECG dataset help on another, with which model and how much target "
    "data? This workspace holds the datasets the comparisons run on."
)
with st.spinner("Loading the workbench (the first view after a start loads the training engine)…"):
    import pandas as pd
    from ecgcore import jobs as job_queue
    from ecgcore import workspace
    from ecgcore.data.dataset_survey import dataset_stamp, inspect_dataset
    from ecgcore.data.synthetic import SITES, write_demo_data
    from ecgcore.errors import EcgcoreError
    from ecgcore.jobs.worker_status import ensure_local_worker
    from ecgcore.views.launch import Throughput, best_throughput, format_seconds
    from ecgcore.views.launch.estimate import input_samples_of
    from ecgcore.views.launch.quickstart import (
        DEMO_WRITE_SECONDS,
        QUICKSTART,
        estimate_markdown,
        grid_summary,
        launch_quickstart,
    )
    from ecgcore.runs import RunStore


@st.cache_data(show_spinner="Reading dataset headers…", max_entries=64)
def _summary(path: str, stamp: float) -> dict[str, Any]:
    """Header-level report of one dataset (no signal reads); `stamp` refreshes the cache."""
    try:
        return inspect_dataset(path, check_signals=False)
    except EcgcoreError as err:
        return {"error": str(err)}


def _workspace_table() -> pd.DataFrame:
    rows = []
    for entry in workspace.list_datasets():
        report = _summary(str(entry.path), dataset_stamp(entry.path))
        rows.append({
            "dataset": entry.name,
            "layout": report.get("layout", "—"),
            "records": report.get("n_records"),
            "unreadable": report.get("n_unreadable"),
            "added by path": entry.registered,
            "path": str(entry.path),
            "problem": report.get("error", ""),
        })
    return pd.DataFrame(rows)


def _write_demo(scale: float) -> None:
    """Write the synthetic sites into the workspace's datasets folder, then rerun so the
    table above shows them."""
    try:
        with st.spinner("Writing the synthetic hospitals…"):
            st.session_state["demo_written"] = write_demo_data(workspace.datasets_dir(), scale=scale)
    except (EcgcoreError, OSError, ValueError) as err:
        st.error(f"Could not write the demo data: {err}")
        return
    st.rerun()


def _launch_quickstart() -> None:
    """Button callback: demo data (when missing), then the quickstart grid into the queue,
    and a local worker to run it."""
    try:
        with st.spinner("Writing the demo data (when missing) and queueing the quickstart…"):
            job_ids = launch_quickstart()
            ensure_local_worker()
    except (EcgcoreError, OSError, ValueError) as err:
        st.session_state["quickstart_error"] = f"Not launched: {err}"
        return
    st.session_state["quickstart_error"] = ""
    st.session_state["quickstart_jobs"] = job_ids


@st.cache_data(show_spinner="Measuring training speed…", max_entries=8)
def _throughput(n_done: int) -> Throughput:
    """small_cnn on this machine for the quickstart's inputs; `n_done` (finished runs)
    refreshes it once the store has runs to learn from."""
    from ecgcore.experiments.spec import load_experiment
    from ecgcore.train.device import select_device

    samples = input_samples_of(load_experiment(QUICKSTART))
    return best_throughput("small_cnn", select_device("auto").type, samples, n_classes=13)


def _counts() -> None:
    runs = RunStore().list()
    jobs = job_queue.list_jobs()
    cols = st.columns(4)
    cols[0].metric("Datasets", len(workspace.list_datasets()))
    cols[1].metric("Finished runs", int((runs["status"] == "done").sum()))
    cols[2].metric("Jobs running", sum(1 for j in jobs if j["state"] in ("running", "cancelling")))
    cols[3].metric("Jobs waiting", sum(1 for j in jobs if j["state"] in ("queued", "waiting")))


def _quickstart() -> None:
    grid = grid_summary()
    throughput = _throughput(int((RunStore().list()["status"] == "done").sum()))
    st.subheader("First comparison: the quickstart")
    st.markdown(
        f"One click writes the embedded demo data (when it is missing; about "
        f"{format_seconds(DEMO_WRITE_SECONDS)}) and queues `experiments/quickstart.toml`: "
        f"{grid.n_pretrain} pretraining of {', '.join(grid.archs)} on the source site "
        f"({grid.pretrain_epochs} epochs at most), then {grid.n_target} runs on the target site — "
        f"{', '.join(grid.strategies)} at {', '.join(f'{f:.0%}' for f in grid.fractions)} of its "
        f"training records ({grid.epochs} epochs at most, early stopping). {estimate_markdown(throughput)} "
        "Follow it on the Jobs page, compare the strategies on the Compare page.")
    st.caption(f"Speed: {throughput.basis}.")
    st.button(f"Write demo data and launch the quickstart ({grid.n_runs} runs)", type="primary",
              key="quickstart", on_click=_launch_quickstart)
    if st.session_state.get("quickstart_error"):
        st.error(st.session_state["quickstart_error"])
    launched = st.session_state.get("quickstart_jobs")
    if launched:
        st.success(f"Queued {len(launched)} jobs (finished runs are reused).")
        st.page_link("pages/jobs.py", label="Watch them on the Jobs page", icon=":material/pending_actions:")



_counts()
_quickstart()

table = _workspace_table()
st.subheader("Datasets in the workspace")
if table.empty:
    st.info("No datasets yet. Write the embedded demo data below (or run "
            "`python -m ecgcore demo-data`), or add a folder on the Datasets page.")
else:
    if not table["problem"].any():
        table = table.drop(columns="problem")
    st.dataframe(table, hide_index=True, width="stretch")
    st.page_link("pages/datasets.py", label="Open the Datasets page", icon=":material/database:")

st.subheader("Embedded demo data")
st.markdown(
    "Two synthetic hospitals written in real formats (a PTB-XL-layout source and a "
    "Challenge-layout target) so everything works without downloads. They are a teaching "
    "and testing default, not clinical data."
)
full = sum(site.n_records for site in SITES.values())
sizes = {1.0: f"full ({full:,} records)", 0.1: f"quick look ({round(full * 0.1):,} records)"}
scale = st.radio("Size", list(sizes), format_func=sizes.get, horizontal=True, key="demo_scale")
st.caption("Existing demo sites in the workspace are replaced; datasets added by path are never touched.")
if st.button("Write demo data", type="primary", key="write_demo"):
    _write_demo(scale)
written = st.session_state.get("demo_written")
if written:
    st.success("Written: " + "; ".join(
        f"{site['name']} ({site['n_records']} records, {site['layout']}, "
        f"{site['records_per_second']:g} records/s)" for site in written["sites"]))
