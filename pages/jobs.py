"""Jobs: the queue, live. Two fragments refresh themselves every few seconds (the table
with per-state counts, and the chosen job's log and actions); the rest of the page does
not rerun. Nothing trains here: a worker process runs the jobs (the app starts one on
this machine when none is alive).
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import pandas as pd
import streamlit as st

from ecgcore import jobs as job_queue
from ecgcore.errors import EcgcoreError
from ecgcore.jobs.worker_status import alive_workers, describe, ensure_local_worker
from ecgcore.runs import RunStore
from ecgcore.views.launch import (
    job_choice,
    job_log,
    job_state,
    jobs_table,
    queue_order,
    retry_job,
)
from ecgcore.views.launch.actions import RETRYABLE
from ecgcore.views.launch.job_rows import held_reason
from pages import require_router

require_router()

REFRESH_SECONDS = 2.0
LOG_REFRESH_SECONDS = 5.0  # the log view: slower, so its widgets are rarely caught mid-rerun
STATE_LABELS: dict[str, str] = {"running": "Running", "queued": "Queued", "waiting": "Waiting",
                                "done": "Done", "failed": "Failed", "cancelled": "Cancelled"}


@st.cache_data(max_entries=512, show_spinner=False)
def _history(path: str, stamp: float) -> list[dict[str, Any]]:
    """A run's history.csv rows; `stamp` (the file's mtime) refreshes the cache."""
    return pd.read_csv(path).to_dict("records")


def _history_of(store: RunStore, job: dict[str, Any]) -> list[dict[str, Any]]:
    if not job.get("run_id"):
        return []
    path = store.runs_dir / job["run_id"] / "history.csv"
    try:
        return _history(str(path), path.stat().st_mtime)
    except (OSError, ValueError, pd.errors.EmptyDataError):
        return []


def _workers() -> None:
    workers = alive_workers()
    if workers:
        for worker in workers:
            st.caption("Worker: " + describe(worker))
        return
    st.warning("No worker is running, so queued jobs wait. The app starts one on this machine by "
               "itself; you can also run `python -m ecgcore worker` in a terminal.")
    if st.button("Start a local worker", key="start_worker"):
        started = ensure_local_worker()
        if started is None:
            st.error("Automatic start is off here (ECGCORE_AUTO_WORKER=0): run "
                     "`python -m ecgcore worker` yourself.")
        else:
            st.success("Started: " + describe(started))


@st.fragment(run_every=REFRESH_SECONDS)
def _live_table() -> None:
    jobs = job_queue.list_jobs()
    if not jobs:
        st.info("No jobs yet: launch a comparison on the Launch page (or `python -m ecgcore submit`).")
        st.page_link("pages/launch.py", label="Go to the Launch page", icon=":material/rocket_launch:")
        return
    counts = Counter("running" if job_state(j) == "cancelling" else job_state(j) for j in jobs)
    cols = st.columns(len(STATE_LABELS))
    for col, (state, label) in zip(cols, STATE_LABELS.items()):
        col.metric(label, counts.get(state, 0))
    store = RunStore()
    table = jobs_table(jobs, time.time(), lambda job: _history_of(store, job))  # running first, then the queue
    st.dataframe(table, hide_index=True, width="stretch", key="jobs-table", column_config={
        "progress": st.column_config.ProgressColumn("progress", min_value=0.0, max_value=1.0, format="percent",
                                                    width="small"),
        "best val AUC": st.column_config.TextColumn(alignment="right", help="best validation macro AUC so far"),
        "time left": st.column_config.TextColumn(alignment="right", width=96,
                                                 help="at the current pace; early stopping may end sooner"),
        "GPU": st.column_config.TextColumn(width="small", help="where the job runs: cuda:N (the machine's GPU N), "
                                           "cpu or ray; a queued job a worker holds back until its GPU "
                                           "memory fits says so (pick it below for why)"),
    })
    st.caption(f"Refreshed every {REFRESH_SECONDS:g} s at {time.strftime('%H:%M:%S')}; only this part "
               "of the page reruns.")


def _act(action: str, job_id: str) -> None:
    """Button callback: cancel or retry, with the outcome kept for the next run."""
    try:
        if action == "cancel":
            st.session_state["job_message"] = f"{job_id}: {job_queue.cancel(job_id)}"
        else:
            st.session_state["job_message"] = f"{job_id} resubmitted as {', '.join(retry_job(job_id))}"
    except EcgcoreError as err:
        st.session_state["job_message"] = f"{job_id}: {err}"


@st.fragment(run_every=LOG_REFRESH_SECONDS)
def _one_job() -> None:
    jobs = {job["job_id"]: job for job in queue_order(job_queue.list_jobs())}  # the table's order
    if not jobs:
        return
    # The URL holds the job id itself (?job=job-…): Streamlit's own binding would write the shown
    # label, and a label that changes (it once held the state) stops matching. Default: first row.
    wanted = st.session_state.get("job", st.query_params.get("job"))
    st.session_state["job"] = wanted if wanted in jobs else next(iter(jobs))
    job_id = st.selectbox("Job", list(jobs), key="job", format_func=lambda j: job_choice(jobs[j]))
    st.query_params["job"] = job_id
    job = jobs[job_id]
    held = held_reason(job)
    st.markdown(f"State: {job_state(job)}" + (f" — {held}" if held else "")
                + (f" on {job['device']}" if job.get("device") and job["state"] in ("running", "cancelling") else ""))
    cols = st.columns([1, 1, 4])
    cols[0].button("Cancel", key="cancel_job", on_click=_act, args=("cancel", job_id),
                   disabled=job["state"] not in job_queue.ACTIVE or job["state"] == "cancelling")
    cols[1].button("Retry", key="retry_job", on_click=_act, args=("retry", job_id),
                   disabled=job["state"] not in RETRYABLE)
    if st.session_state.get("job_message"):
        cols[2].info(st.session_state["job_message"])
    if job.get("error"):
        st.error(job["error"])
    st.code(job_log(job), language=None, height=360)


st.title("Jobs")
_workers()
_live_table()
st.subheader("One job: log, cancel, retry")
_one_job()
