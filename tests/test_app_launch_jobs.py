"""Home, Launch and Jobs through Streamlit's AppTest, on an empty and on a demo workspace:
no exception, the key widgets, and launching puts the expected jobs in the queue."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest
from test_launch import CHOICES, LQT, fixed_rate, names, plan_of

from ecgcore import jobs
from ecgcore.models import MODELS, list_models
from ecgcore.transfer import list_strategies
from ecgcore.views.display import escape_markdown
from ecgcore.views.launch import plan_launch, submit_launch

REPO = Path(__file__).resolve().parents[1]
TIMEOUT = 120


def _app(page: str | None = None, **params: str) -> AppTest:
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=TIMEOUT)
    if page:
        at.switch_page(page)
    for key, value in params.items():
        at.query_params[key] = value
    return at.run()


def _metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def _texts(at: AppTest, *kinds: str) -> str:
    return "\n".join(str(e.value) for kind in kinds for e in getattr(at, kind))


def test_empty_workspace(workspace: Path):
    at = _app()
    assert not at.exception
    assert _metrics(at) == {"Datasets": "0", "Finished runs": "0", "Jobs running": "0", "Jobs waiting": "0"}
    assert any(b.key == "quickstart" and "17 runs" in b.label for b in at.button)
    assert "experiments/quickstart.toml" in _texts(at, "markdown")
    # no finished run yet: the quickstart is priced as a range from the labelled rough prior
    assert "on this machine (fast end" in _texts(at, "markdown") and " – " in _texts(at, "markdown")
    assert "Speed: rough prior" in _texts(at, "caption")

    at = _app("pages/launch.py")
    assert not at.exception and at.title[0].value == "Launch"
    assert "no datasets yet" in _texts(at, "info") and not at.button

    at = _app("pages/jobs.py")
    assert not at.exception and at.title[0].value == "Jobs"
    assert "No jobs yet" in _texts(at, "info") and "No worker is running" in _texts(at, "warning")
    at.button(key="start_worker").click().run()  # the suite sets ECGCORE_AUTO_WORKER=0
    assert not at.exception and "Automatic start is off" in _texts(at, "error")


def test_launch_shows_classes_and_summary_then_queues_the_grid(demo_home: Path):
    at = _app("pages/launch.py", min_pos="5", epochs="1")
    assert not at.exception, at.exception
    assert [at.selectbox(key=k).value for k in ("target", "source", "task", "source_task")] == [
        "target_challenge", "source_ptbxl", "dataset_labels", "shared"]
    assert at.multiselect(key="strategy").value == ["scratch", "finetune"]
    lines = _texts(at, "markdown")
    assert f"**finetune**: {escape_markdown(list_strategies()['finetune'])}" in lines  # one line per strategy
    assert f"**small_cnn**: {escape_markdown(list_models()['small_cnn'])}" in lines
    # engine text keeps its characters: discriminative_lr's 'lr*lr_low' is escaped, not italics
    assert "lr\\*lr\\_low .. lr\\*lr\\_high" in lines and "lr*lr_low" not in lines
    classes = at.dataframe[0].value.set_index("class")
    assert classes.loc[LQT, "where"] == "target only"
    assert classes.loc[LQT, "source records"] == "not in the source", "a gap says why, never None"
    assert not classes.isna().any().any()
    assert (classes["where"] == "shared").sum() == 4
    assert _metrics(at)["Runs in the grid"] == "3" and _metrics(at)["Already done (reused)"] == "0"
    captions = _texts(at, "caption")  # the estimate is a range and says what it assumes (issue 14)
    assert "one after another" in captions and "rough prior: no finished small_cnn run" in captions
    assert at.button(key="submit").label == "Submit 3 new runs"
    at.button(key="submit").click().run()
    assert not at.exception
    # nothing has run yet: the button must not claim that everything is reused
    assert at.button(key="submit").label == "Nothing new to submit: 3 runs already in the queue"
    assert at.button(key="submit").disabled
    queued = jobs.list_jobs()
    assert [(j["kind"], j["spec"]["config"].get("strategy"), j["state"]) for j in queued] == [
        ("pretrain", None, "queued"), ("target", "scratch", "queued"), ("target", "finetune", "waiting")]
    assert all(j["spec"]["config"]["train"]["epochs"] == 1 for j in queued)
    assert "Queued 3 job(s)" in _texts(at, "success")
    assert _metrics(at)["Already in the queue"] == "3"  # the summary now sees them


def test_launch_reads_the_grid_from_the_url(demo_home: Path):
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=TIMEOUT)
    at.switch_page("pages/launch.py")
    at.query_params.update(min_pos="5", fraction=["0.25", "1"], seed=["0", "2"], lr="0.001", batch="32")
    at.run()
    assert not at.exception
    assert at.multiselect(key="fraction").value == [0.25, 1.0] and at.multiselect(key="seed").value == [0, 2]
    assert at.number_input(key="lr").value == 0.001 and at.selectbox(key="batch").value == 32
    assert _metrics(at)["Runs in the grid"] == "10"  # a pretraining per seed + 2 x 2 x 2 target runs


def test_launch_explains_invalid_choices_and_offers_no_submit(demo_home: Path):
    at = _app("pages/launch.py", source="none", strategy="finetune", min_pos="5")
    assert not at.exception
    errors = _texts(at, "error")
    assert "source is 'none'" in errors and "finetune" in errors
    assert not any(b.key == "submit" for b in at.button)
    at = _app("pages/launch.py", min_pos="100000")
    assert "no usable labels" in _texts(at, "error") and not any(b.key == "submit" for b in at.button)
    assert jobs.list_jobs() == []


def test_jobs_page_lists_cancels_and_retries(demo_home: Path):
    job_ids = submit_launch(CHOICES, names(), plan_of(demo_home, CHOICES),
                            plan_launch(CHOICES, plan_of(demo_home, CHOICES), throughput=fixed_rate))
    at = _app("pages/jobs.py")
    assert not at.exception
    assert {k: _metrics(at)[k] for k in ("Queued", "Waiting", "Running", "Done")} == {
        "Queued": "3", "Waiting": "2", "Running": "0", "Done": "0"}
    table = at.dataframe[0].value
    queued = [j["job_id"] for j in jobs.list_jobs() if j["state"] == "queued"]
    waiting = [j["job_id"] for j in jobs.list_jobs() if j["state"] == "waiting"]
    assert list(table["job_id"]) == queued + waiting, "the queue in the order it will run"
    assert at.selectbox(key="job").value == queued[0], "the picker opens on the table's first job"
    at.selectbox(key="job").set_value(job_ids[0]).run()
    at.button(key="cancel_job").click().run()
    assert not at.exception and jobs.get(job_ids[0])["state"] == "cancelled"
    assert f"{job_ids[0]}: cancelled" in _texts(at, "info")
    at.button(key="retry_job").click().run()
    assert not at.exception and "resubmitted as" in _texts(at, "info")
    assert len(jobs.list_jobs()) == len(job_ids) + 1 and jobs.list_jobs()[-1]["kind"] == "pretrain"


def test_home_counts_and_launches_the_quickstart(demo_home: Path):
    at = _app()
    assert not at.exception and _metrics(at)["Datasets"] == "2"
    at.button(key="quickstart").click().run()
    assert not at.exception
    assert len(jobs.list_jobs()) == 17 and "Queued 17 jobs" in _texts(at, "success")
    assert _metrics(at)["Jobs waiting"] == "17"


def test_jobs_table_running_first_no_none_and_one_state(demo_home: Path):
    """The running job heads the table and is the picker's default; the columns people watch come
    first (so 1400 px shows them); no None; the picker's job shows the table's state."""
    from ecgcore.jobs import queue

    job_ids = submit_launch(CHOICES, names(), plan_of(demo_home, CHOICES),
                            plan_launch(CHOICES, plan_of(demo_home, CHOICES), throughput=fixed_rate))
    running = queue.claim(1)[0]["job_id"]
    queue.beat(running, {"epoch": 0, "step": 5, "n_steps": 10, "metrics": {}})
    at = _app("pages/jobs.py")
    assert not at.exception
    table = at.dataframe[0].value
    assert list(table.columns[:6]) == ["state", "run", "progress", "epoch", "best val AUC", "time left"]
    assert table["job_id"].iloc[0] == running and table["state"].iloc[0] == "running"
    assert list(table["job_id"]) == [running] + [j for j in job_ids if j != running]
    assert not table.isna().any().any(), "missing values read '—', never None"
    assert set(table["best val AUC"]) == {"—"} and set(table["time left"].iloc[1:]) == {"—"}
    assert table["time left"].iloc[0].endswith(" s"), "a duration people read, not seconds"
    picker = at.selectbox(key="job")
    assert picker.value == running
    assert all(state not in option for option in picker.options for state in ("queued", "waiting", "running"))
    states = dict(zip(table["job_id"], table["state"]))
    for job_id in (running, job_ids[-1]):
        picker.set_value(job_id).run()
        assert f"State: {states[job_id]}" in _texts(at, "markdown"), "one state, the table's"
        assert at.query_params["job"] == job_id, "the URL holds the job id, not a label with a state"
    # a link to one job opens it, whatever state it is in by then
    at = _app("pages/jobs.py", job=job_ids[-1])
    assert at.selectbox(key="job").value == job_ids[-1]



HOME_FIRST_LOAD = r"""
import sys
import streamlit as st
from streamlit.testing.v1 import AppTest

events = []
for name in ("title", "spinner"):
    def wrap(*args, _name=name, _orig=getattr(st, name), **kwargs):
        events.append((_name, "torch" in sys.modules))
        return _orig(*args, **kwargs)
    setattr(st, name, wrap)
at = AppTest.from_file(sys.argv[1], default_timeout=120).run()
assert not at.exception, at.exception
print(events[:3])
"""


def test_home_first_load_shows_its_title_and_a_spinner_before_loading_the_engine(workspace: Path):
    """A fresh server's first Home view: the title is on screen, and a spinner turns, before the
    engine (torch: seconds on a busy machine) is imported; not a blank page for 5-9 s."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", HOME_FIRST_LOAD, str(REPO / "app.py")], capture_output=True,
                          text=True, timeout=300, cwd=REPO)
    assert done.returncode == 0, done.stderr[-3000:]
    events = eval(done.stdout.strip().splitlines()[-1])  # noqa: S307 (our own repr)
    assert events[0] == ("title", False), f"title after the engine was imported: {events}"
    assert ("spinner", False) in events, f"no spinner before the engine import: {events}"


def test_launch_offers_a_registered_checkpoint_with_its_card_and_a_measured_estimate(demo_home: Path,
                                                                                    tmp_path: Path):
    """A registered checkpoint is a source beside the datasets: its card (input contract,
    licence, SHA-256), a grid that starts from it, and a cost estimate from the model's
    measured speed at its contract's shape (seeded in the cache here: a very slow machine)."""
    import dataclasses
    import json
    import os

    import torch
    from test_views_checkpoints import _register_demo_net1d, _speed

    from ecgcore.views.launch.measured_speed import speed_path

    record = _register_demo_net1d(tmp_path)
    contract = MODELS["net1d_small"].contract
    slow = _speed("net1d_small", forward=0.02, train=0.01, samples=contract.n_samples)
    slow = dataclasses.replace(slow, torch_version=torch.__version__, cpu_count=os.cpu_count() or 1)
    path = speed_path("net1d_small", len(contract.leads), contract.n_samples, "cpu")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dataclasses.asdict(slow)))
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=TIMEOUT)
    at.switch_page("pages/launch.py")
    at.query_params.update(source="none", checkpoint="demo_net1d", arch="net1d_small", min_pos="5",
                           strategy=["scratch", "embedding_probe"], epochs="1")
    at.run()
    assert not at.exception, at.exception
    assert at.multiselect(key="checkpoint").value == ["demo_net1d"]
    card = _texts(at, "markdown")
    assert f"input: {contract.fs} Hz × {contract.n_samples} samples" in card and f"SHA-256 {record.sha256[:12]}…" in card
    assert not _texts(at, "error")
    assert _metrics(at)["Runs in the grid"] == "2"
    warnings = _texts(at, "warning")
    assert "Slow: the run " in warnings and "0.02 samples/s forward" in warnings
    at.button(key="submit").click().run()
    queued = jobs.list_jobs()
    probe = next(j for j in queued if j["spec"]["config"].get("strategy") == "embedding_probe")
    assert probe["spec"]["config"]["source_checkpoint"] == {"name": "demo_net1d", "sha256": record.sha256,
                                                           "arch": "net1d_small"}
