"""Launch: choose a comparison (source dataset and/or foundation-model checkpoints, target,
task, architectures, strategies, target fractions, seeds, training settings), see what it
will do, and queue it. A chosen checkpoint shows its input contract, licence (marked when
not for commercial use), provenance, SHA-256 and any leakage with the target; the time
estimate prices it from its measured speed at its contract's shape.

Every choice lives in the URL (`bind="query-params"`), so a link reopens the same form.
The page only reads and submits: `ecgcore.views.launch` turns the choices into an experiment
config, prices its runs and puts them in the job queue; a worker trains them.
"""

from __future__ import annotations

import streamlit as st

from ecgcore import workspace
from ecgcore.data.dataset_survey import dataset_stamp
from ecgcore.data.labels import list_tasks
from ecgcore.data.recordset import Recordset
from ecgcore.data.sources import open_dataset
from ecgcore.errors import EcgcoreError
from ecgcore.models import list_models
from ecgcore.runs import RunStore
from ecgcore.train.config import DEVICES
from ecgcore.transfer import list_strategies
from ecgcore.views.display import escape_markdown, for_display
from ecgcore.views.launch import (
    EXPERIMENT_TASKS,
    ClassPlan,
    DatasetOverlap,
    LaunchChoices,
    LaunchError,
    LaunchPlan,
    Throughput,
    best_throughput,
    class_plan,
    dataset_overlap,
    launch_problems,
    plan_launch,
    records_to_fingerprint,
    submit_launch,
)
from ecgcore.views.launch.checkpoint_sources import card
from ecgcore.views.launch.choices import registered_checkpoints
from ecgcore.views.launch.measured_speed import ModelSpeed, model_speed
from ecgcore.views.launch.record_overlap import READ_WITHOUT_ASKING, SCOPE
from ecgcore.views.launch.submit import submit_label
from pages import require_router

require_router()

NO_SOURCE = "none"
FRACTIONS = (0.05, 0.1, 0.25, 0.5, 1.0)
SEEDS = tuple(range(10))
BATCH_SIZES = (16, 32, 64, 128, 256)


@st.cache_resource(show_spinner="Reading the dataset's headers…", max_entries=8)
def _recordset(path: str, stamp: float) -> Recordset:
    return open_dataset(path)


@st.cache_data(show_spinner="Matching the classes…", max_entries=64)
def _classes(target: str, t_stamp: float, target_task: str, source: str | None, s_stamp: float,
             source_task: str, min_positives: int) -> ClassPlan:
    target_rs = _recordset(target, t_stamp)
    source_rs = _recordset(source, s_stamp) if source else None
    return class_plan(target_rs, target_task, source_rs, source_task, min_positives)


@st.cache_data(show_spinner="Measuring training speed…", max_entries=64)
def _throughput(arch: str, device_type: str, input_samples: int, n_classes: int, n_done: int) -> Throughput:
    """Cached per architecture and input; `n_done` (finished runs) refreshes it."""
    return best_throughput(arch, device_type, input_samples, n_classes)


@st.cache_data(show_spinner="Measuring the model's speed at its input shape (once; cached)…", max_entries=32)
def _speed(arch: str, device_type: str, input_samples: int, n_leads: int) -> ModelSpeed:
    return model_speed(arch, n_leads, input_samples, device_type)


@st.cache_data(show_spinner="Looking for the target's recordings in the source…", max_entries=32)
def _overlap(source: str, s_stamp: float, target: str, t_stamp: float, signals: bool) -> DatasetOverlap:
    return dataset_overlap(_recordset(source, s_stamp), _recordset(target, t_stamp), signals)


@st.cache_data(show_spinner=False, max_entries=32)
def _to_fingerprint(source: str, s_stamp: float, target: str, t_stamp: float) -> int:
    return records_to_fingerprint(_recordset(source, s_stamp), _recordset(target, t_stamp))


def _show_overlap(source: str, target: str) -> None:
    """The target's records the source holds (by name, and by signal unless that means
    reading many records not yet fingerprinted: then a button asks first)."""
    s_stamp, t_stamp = dataset_stamp(source), dataset_stamp(target)
    asked = f"signals:{source}:{target}"
    try:
        pending = _to_fingerprint(source, s_stamp, target, t_stamp)
        signals = pending <= READ_WITHOUT_ASKING or bool(st.session_state.get(asked))
        overlap = _overlap(source, s_stamp, target, t_stamp, signals)
    except (EcgcoreError, OSError, ValueError) as err:
        st.error(f"Cannot compare the source's records with the target's: {err}")
        return
    st.metric("Target records in the source", overlap.n_overlap)
    (st.warning if overlap.n_overlap else st.caption)(overlap.summary())
    st.caption(f"Checked: {SCOPE}.")
    if not signals:
        st.button(f"Compare signals too (reads {pending} records once)", key="compare_signals",
                  on_click=lambda: st.session_state.__setitem__(asked, True))


def _descriptions(what: str, chosen: list[str], all_items: dict[str, str]) -> None:
    """One line per chosen item under the widget; the others in an expander."""
    if chosen:
        st.markdown("\n".join(f"- **{name}**: {escape_markdown(all_items[name])}" for name in chosen))
    others = [name for name in all_items if name not in chosen]
    if others:
        with st.expander(f"The other {what}", expanded=False):
            st.markdown("\n".join(f"- **{name}**: {escape_markdown(all_items[name])}" for name in others))


def _submit(choices: LaunchChoices, names: list[str], classes: ClassPlan | None, plan: LaunchPlan) -> None:
    """Button callback: queue the plan's runs (refused with the reasons when not launchable)."""
    try:
        job_ids = submit_launch(choices, names, classes, plan)
    except (LaunchError, EcgcoreError) as err:
        st.session_state["launch_error"] = str(err)
        return
    st.session_state["launch_error"] = ""
    st.session_state["launched"] = job_ids


st.title("Launch")
st.markdown("Choose a comparison and queue it: a background worker trains the runs, the Jobs "
            "page shows them live, the Compare page compares them. Runs already finished with "
            "the same settings are reused, not trained again.")

entries = {entry.name: entry.path for entry in workspace.list_datasets()}
if not entries:
    st.info("The workspace has no datasets yet. Write the embedded demo data on the Home page "
            "(or run `python -m ecgcore demo-data`), or add a folder on the Datasets page.")
    st.page_link("pages/home.py", label="Go to the Home page", icon=":material/home:")
    st.stop()
names = list(entries)
default_target = "target_challenge" if "target_challenge" in names else names[-1]
default_source = "source_ptbxl" if "source_ptbxl" in names else NO_SOURCE
task_options = {**EXPERIMENT_TASKS, **list_tasks()}

st.subheader("Data")
left, right = st.columns(2)
target = left.selectbox("Target dataset", names, index=names.index(default_target), key="target",
                        bind="query-params", help="The dataset the comparison is about.")
source_name = right.selectbox("Source dataset (pretraining)", [NO_SOURCE, *names],
                              index=[NO_SOURCE, *names].index(default_source), key="source",
                              bind="query-params", help="'none': only strategies without pretraining.")
source = None if source_name == NO_SOURCE else source_name
registered = registered_checkpoints()
cards = {name: card(record, target) for name, record in registered.items()}
chosen_checkpoints = right.multiselect(
    "Foundation-model checkpoints (sources)", list(cards), key="checkpoint", bind="query-params", placeholder="none",
    help="Registered checkpoints (python -m ecgcore checkpoints): strategies that need a source start "
         "from each of them too, with the architecture it loads into; 'none' keeps only the source dataset.")
if not registered:
    right.caption("No checkpoint registered yet: `python -m ecgcore add-checkpoint FILE --model NAME`, a "
                  "checkpoint download, or an experiment with `demo = true` that names the demo checkpoints.")
for name in chosen_checkpoints:
    shown = cards[name]
    with right.expander(shown.summary(), expanded=True):
        if not shown.commercial_use:
            st.warning(shown.licence)
        st.markdown("\n".join(f"- {escape_markdown(line)}" for line in shown.markdown_lines()))
        if shown.leakage:
            st.error(shown.leakage)
target_task = left.selectbox("Target task (label set)", list(task_options), key="task",
                             bind="query-params", help="\n".join(f"{k}: {v}" for k, v in EXPERIMENT_TASKS.items()))
source_task = right.selectbox("Source task", list(task_options), index=list(task_options).index("shared"),
                              key="source_task",
                              bind="query-params", disabled=source is None,
                              help="'shared' pretrains on the classes both datasets label.")
min_positives = int(left.number_input("Records a class needs (dataset_labels)", 1, 100_000, 20, key="min_pos",
                                      bind="query-params"))
left.caption(task_options.get(target_task, ""))

classes: ClassPlan | None = None
try:
    t_path = entries[target]
    s_path = entries[source] if source else None
    classes = _classes(str(t_path), dataset_stamp(t_path), target_task, str(s_path) if s_path else None,
                       dataset_stamp(s_path) if s_path else 0.0, source_task, min_positives)
except (EcgcoreError, OSError, ValueError) as err:
    st.error(f"Cannot read the labels: {err}")
if classes is not None and classes.target is not None:
    if source and classes.source is not None:
        st.markdown(f"**{len(classes.shared)}** of the target's {len(classes.target.classes)} classes are "
                    f"shared with {source}; **{len(classes.target_only)}** only the target has; "
                    f"**{len(classes.source_only)}** only the source has.")
    else:
        st.markdown(f"The target task has **{len(classes.target.classes)}** classes "
                    f"({classes.target.n_records} labelled records).")
    gaps = {"source records": "not in the source" if source else "no source", "target records": "not in the target"}
    st.dataframe(for_display(classes.table(), missing=gaps), hide_index=True, width="stretch", key="launch-classes")

st.subheader("Grid")
models, strategies = list_models(), list_strategies()
archs = st.multiselect("Architectures", list(models), default=["small_cnn"], key="arch", bind="query-params")
_descriptions("architectures", archs, models)
default_strategies = ["scratch", "finetune"] if source or chosen_checkpoints else ["scratch"]
chosen_strategies = st.multiselect("Strategies", list(strategies), default=default_strategies,
                                   key="strategy", bind="query-params")
_descriptions("strategies", chosen_strategies, strategies)
cols = st.columns(2)
fractions = cols[0].multiselect("Target fractions (share of the target's training records; 1 = all)",
                                FRACTIONS, default=[1.0], format_func=lambda f: f"{f:g}", key="fraction",
                                bind="query-params")
seeds = cols[1].multiselect("Seeds", SEEDS, default=[0], key="seed", bind="query-params")

st.subheader("Training")
cols = st.columns(4)
epochs = int(cols[0].number_input("Epochs (at most; early stopping)", 1, 1000, 10, key="epochs",
                                  bind="query-params"))
lr = float(cols[1].number_input("Learning rate", 1e-6, 1.0, 0.003, step=0.0005, format="%.4f", key="lr",
                                bind="query-params"))
batch_size = int(cols[2].selectbox("Batch size", BATCH_SIZES, index=BATCH_SIZES.index(64), key="batch",
                                   bind="query-params"))
device = cols[3].selectbox("Device", DEVICES, key="device", bind="query-params",
                           help="auto: CUDA, then MPS, then the CPU of the machine the worker runs on.")
st.caption("Fixed for launched grids (as experiments/quickstart.toml): 100 Hz, 10 s windows, per-record "
           "z-score; patient-disjoint split 55/15/30 %; random 2.5 s crops, max over sliding windows at "
           "evaluation, early stopping after 6 epochs without a better validation AUC. An architecture with "
           "an input contract (a foundation model's) is prepared by its contract instead and trains on its "
           "whole contract window.")

choices = LaunchChoices(target=target, source=source, target_task=target_task, source_task=source_task,
                        min_positives=min_positives, archs=tuple(archs), strategies=tuple(chosen_strategies),
                        fractions=tuple(sorted(fractions)), seeds=tuple(sorted(seeds)), epochs=epochs,
                        lr=lr, batch_size=batch_size, device=device, checkpoints=tuple(chosen_checkpoints))

st.subheader("Summary")
problems = launch_problems(choices, names, classes, registered)
if problems:
    for problem in problems:
        st.error(problem)
    st.caption("Nothing is submitted until these are fixed.")
    st.stop()
if classes is None:  # the labels could not be read (said above)
    st.stop()

n_done = len(RunStore().list(status="done"))
try:
    with st.spinner("Planning the runs…"):
        plan = plan_launch(choices, classes, throughput=lambda a, d, s, n: _throughput(a, d, s, n, n_done),
                           speed=_speed)
except (LaunchError, EcgcoreError) as err:
    st.error(f"Cannot plan this grid: {err}")
    st.stop()

cols = st.columns(4)
cols[0].metric("Runs in the grid", plan.count())
cols[1].metric("Already done (reused)", plan.count("reused"))
cols[2].metric("Already in the queue", plan.count("in queue"))
cols[3].metric("Estimated time", plan.time_text())
st.caption(plan.assumptions())
for warning in plan.warnings:
    st.warning(warning)
with st.expander(f"The {plan.count()} runs", expanded=plan.count() <= 12):
    st.dataframe(plan.rows(), hide_index=True, width="stretch", key="launch-runs")

if source:
    _show_overlap(str(entries[source]), str(entries[target]))

new = plan.count("new")
label, enabled = submit_label(new, plan.count("reused"), plan.count("in queue"))
st.button(label, type="primary", key="submit", on_click=_submit, disabled=not enabled,
          args=(choices, names, classes, plan))
if st.session_state.get("launch_error"):
    st.error(st.session_state["launch_error"])
launched = st.session_state.get("launched")
if launched:
    st.success(f"Queued {len(launched)} job(s): {', '.join(launched)}.")
    st.page_link("pages/jobs.py", label="Watch them on the Jobs page", icon=":material/pending_actions:")
