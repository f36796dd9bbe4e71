"""The Inspect and Predict pages through Streamlit's AppTest, on a tiny trained run."""

from __future__ import annotations

import io
import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
from streamlit.testing.v1 import AppTest

from ecgcore.views.calls import make_calls, rhythm_conflict, run_thresholds
from ecgcore.data.labels import class_name
from ecgcore.data.labels.rhythms import EXCLUSIVE_RHYTHMS
from ecgcore.views.display import escape_markdown
from ecgcore.views.run_records import filter_records, load_run_predictions
from ecgcore.views.scoring import predict_files, read_record_file
from ecgcore.views.provenance import RESEARCH_USE, run_provenance
from ecgcore.runs import RunStore

REPO = Path(__file__).resolve().parents[1]
TIMEOUT = 120


def _app(page: str, **params: str) -> AppTest:
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=TIMEOUT)
    at.switch_page(page)
    for key, value in params.items():
        at.query_params[key] = value
    return at.run()


def _chart(at: AppTest, key: str) -> dict:
    charts = [c for c in at.get("plotly_chart") if c.proto.id and c.proto.id.endswith(key)]
    assert len(charts) == 1, f"chart {key} missing"
    return json.loads(charts[0].proto.spec)


def _texts(at: AppTest) -> str:
    return "\n".join(str(e.value) for kind in ("markdown", "info", "error", "caption", "warning")
                     for e in getattr(at, kind))


def test_both_pages_on_an_empty_workspace(workspace: Path) -> None:
    at = _app("pages/inspect.py")
    assert not at.exception and at.title[0].value == "Inspect"
    assert "No finished run with test predictions yet" in _texts(at)
    at = _app("pages/predict.py")
    assert not at.exception and at.title[0].value == "Predict"
    assert "No trained run yet" in _texts(at)
    assert not at.get("file_uploader")


def test_inspect_page_draws_the_record_from_the_url(run_workspace) -> None:
    preds = load_run_predictions(run_workspace.run_id)
    record = preds.record_ids[4]
    at = _app("pages/inspect.py", run=run_workspace.run_id, record=record, cls="164889003")
    assert not at.exception, at.exception
    assert at.selectbox(key="run").value == run_workspace.run_id
    assert at.selectbox(key="record").value == record and at.selectbox(key="cls").value == "164889003"
    spec = _chart(at, "ecg")
    title = spec["layout"]["title"]["text"]
    assert title.startswith(f"{record} · Integrated Gradients for {class_name('164889003')}")
    names = [trace["name"] for trace in spec["data"]]
    assert sum(name.startswith("saliency") for name in names) == 4 and names[-1] == "rhythm II"
    assert {"I", "aVR", "V1", "V6"} <= {a["text"] for a in spec["layout"]["annotations"]}
    bars = _chart(at, "importance")["data"][0]
    assert list(bars["x"]) == ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]
    assert np.isclose(sum(bars["y"]), 1.0, atol=1e-4)
    table = at.dataframe[0].value
    assert len(table) == 12 and class_name("426783006") in set(table["name"])
    row = preds.row(record)
    shown = dict(zip(table["name"], table["probability"]))
    assert shown[class_name("164889003")] == preds.y_score[row, preds.column("164889003")]
    text = _texts(at)
    assert "**True labels:**" in text and "**Age:**" in text and "**Sex:**" in text
    assert "recorded diagnoses" in text.lower()
    assert "thresholds tuned on validation" in text
    assert [b.label for b in at.get("download_button")] == ["Report (PDF)", "Report (PNG)"]
    _assert_provenance(at, run_workspace.run_id)


def _assert_provenance(at: AppTest, run_id: str) -> None:
    """The run's provenance line, the research-use line, and (a demo-data run) the warning."""
    prov = run_provenance(run_id)
    assert prov.synthetic and prov.warning
    text = _texts(at)
    assert escape_markdown(prov.line()) in text and RESEARCH_USE in text
    warning = escape_markdown(prov.warning)
    assert [e.value for e in at.error if e.value == warning] == [warning]


def test_inspect_filters_next_previous_and_method(run_workspace) -> None:
    preds = load_run_predictions(run_workspace.run_id)
    code = "426783006"
    at = _app("pages/inspect.py", run=run_workspace.run_id, cls=code, outcome="FP")
    assert not at.exception, at.exception
    false_positives = filter_records(preds, code, outcome="FP")
    assert len(false_positives) >= 2
    assert at.selectbox(key="record").options == false_positives
    assert f"{len(false_positives)} of {len(preds.record_ids)} test records match" in _texts(at)
    at.button(key="next").click().run()
    assert not at.exception
    assert at.selectbox(key="record").value == false_positives[1]
    assert at.query_params["record"] == false_positives[1]
    assert _chart(at, "ecg")["layout"]["title"]["text"].startswith(false_positives[1])
    at.button(key="previous").click().run()
    at.button(key="previous").click().run()  # clamped at the first record
    assert at.selectbox(key="record").value == false_positives[0]

    at.radio(key="method").set_value("occlusion").run()
    assert not at.exception
    assert "Occlusion for" in _chart(at, "ecg")["layout"]["title"]["text"]
    at.slider(key="conf").set_range(0.999, 1.0).run()
    assert not at.exception
    if not filter_records(preds, code, outcome="FP", confidence=(0.999, 1.0)):
        assert "No test record matches these filters." in [w.value for w in at.warning]


def test_predict_page_scores_uploads_like_predict(run_workspace, shared_data: Path) -> None:
    g12ec = shared_data / "ecg" / "cinc2021" / "G12EC"
    at = _app("pages/predict.py")  # no run in the link: the best run for the record is chosen
    assert not at.exception
    assert "Upload a record" in _texts(at)
    at.file_uploader(key="files").set_value(
        [(name, (g12ec / name).read_bytes(), "application/octet-stream") for name in ("E00003.hea", "E00003.mat")])
    at.run()
    assert not at.exception, at.exception
    assert at.selectbox(key="predict_run").value == run_workspace.run_id
    assert "Chosen for this record: the best test macro AUC" in _texts(at)
    want = predict_files(run_workspace.run_id, [g12ec / "E00003.hea"])[0]["probabilities"]
    table = at.dataframe[0].value
    assert dict(zip(table["name"], table["probability"])) == {class_name(c): p for c, p in want.items()}
    results = json.loads((run_workspace.home / "runs" / run_workspace.run_id / "results.json").read_text())
    tuned = results["test"]["thresholds"]
    assert dict(zip(table["name"], table["threshold"])) == {class_name(c): tuned[c] for c in want}
    assert dict(zip(table["name"], table["call"])) == {
        class_name(c): ("yes" if want[c] >= tuned[c] else "no") for c in want
    } or rhythm_conflict(make_calls(want, run_thresholds(results, list(want)))) is not None
    text = _texts(at)
    assert "threshold per class, tuned on validation" in text
    assert "From the record's header: age unknown · male · recorded diagnoses: NSR — sinus rhythm" in text
    _assert_provenance(at, run_workspace.run_id)
    spec = _chart(at, "ecg")
    top = max(want, key=want.get)
    assert spec["layout"]["title"]["text"].startswith(f"E00003 · Integrated Gradients for {class_name(top)}")
    assert any(trace["name"].startswith("saliency") for trace in spec["data"])
    assert "**E00003** (challenge: E00003.hea, E00003.mat)" in _texts(at)

    # Two records in one zip: a record picker, each scored like predict.
    ludb = shared_data / "ecg" / "ludb" / "data"
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        for path in (g12ec / "E00003.hea", g12ec / "E00003.mat", ludb / "7.hea", ludb / "7.dat"):
            zipped.write(path, f"two/{path.name}")
    at.file_uploader(key="files").set_value(("two.zip", archive.getvalue(), "application/zip"))
    at.run()
    assert not at.exception, at.exception
    assert at.selectbox(key="predict_record").options == ["7", "E00003"]
    at.selectbox(key="predict_record").set_value("7").run()
    want7 = predict_files(run_workspace.run_id, [ludb / "7.hea"])[0]["probabilities"]
    table = at.dataframe[0].value
    assert dict(zip(table["name"], table["probability"])) == {class_name(c): p for c, p in want7.items()}
    assert _chart(at, "ecg")["layout"]["title"]["text"].startswith("7 · ")

    # A CSV at the rate typed on the page; then a corrupt upload gets a message, not a traceback.
    source = read_record_file(g12ec / "E00003.hea")
    rows = "\n".join(",".join(f"{v:.9g}" for v in frame) for frame in source.data.T)
    at.number_input(key="fs").set_value(source.fs)
    at.file_uploader(key="files").set_value(("mine.csv", f"{','.join(source.leads)}\n{rows}\n".encode(), "text/csv"))
    at.run()
    assert not at.exception, at.exception
    table = at.dataframe[0].value
    np.testing.assert_allclose(sorted(table["probability"]), sorted(want.values()), atol=1e-5)
    dat = (g12ec / "E00003.mat").read_bytes()
    at.file_uploader(key="files").set_value(
        [("E00003.hea", (g12ec / "E00003.hea").read_bytes(), "text/plain"), ("E00003.mat", dat[:500], "x")])
    at.run()
    assert not at.exception
    refused = ("Upload refused: E00003.hea: signal file E00003.mat is too short: 500 bytes, header claims "
               "120024 (12 channels x 5000 samples; the file holds 19 samples of 12 channels)")
    assert [e.value for e in at.error] == [refused]


def test_inspect_says_when_the_target_dataset_is_gone(run_workspace, tmp_path: Path, monkeypatch) -> None:
    home = tmp_path / "moved"
    shutil.copytree(run_workspace.home / "runs" / run_workspace.run_id, home / "runs" / run_workspace.run_id)
    config_path = home / "runs" / run_workspace.run_id / "config.json"
    config = json.loads(config_path.read_text())
    config["data"]["dataset"] = str(tmp_path / "no-longer-here")
    config_path.write_text(json.dumps(config))
    RunStore(home).reindex()
    monkeypatch.setenv("ECGCORE_HOME", str(home))
    at = _app("pages/inspect.py", run=run_workspace.run_id)
    assert not at.exception, at.exception
    # The provenance is recorded in results.json, so the synthetic warning outlives the folder.
    assert at.error[0].value == escape_markdown(run_provenance(run_workspace.run_id).warning)
    (error,) = at.error[1:]
    assert error.value.startswith("Cannot read test record ") and "no-longer-here" in error.value
    assert at.selectbox(key="record").options  # the predictions still list the records


def test_rhythms_called_together_are_flagged_on_both_pages(run_workspace, shared_data: Path, tmp_path: Path,
                                                           monkeypatch) -> None:
    """A copy of the run whose rhythm thresholds are 0: every rhythm class is called, so
    each record's calls contradict each other; both pages say so and name the likeliest."""
    home = tmp_path / "conflict"
    shutil.copytree(run_workspace.home / "runs" / run_workspace.run_id, home / "runs" / run_workspace.run_id)
    results_path = home / "runs" / run_workspace.run_id / "results.json"
    results = json.loads(results_path.read_text())
    rhythms = [c for c in results["classes"] if c in EXCLUSIVE_RHYTHMS]
    assert len(rhythms) >= 2
    results["test"]["thresholds"].update(dict.fromkeys(rhythms, 0.0))
    results_path.write_text(json.dumps(results))
    RunStore(home).reindex()
    monkeypatch.setenv("ECGCORE_HOME", str(home))

    g12ec = shared_data / "ecg" / "cinc2021" / "G12EC"
    want = predict_files(run_workspace.run_id, [g12ec / "E00003.hea"])[0]["probabilities"]
    likeliest = max(rhythms, key=lambda c: want[c])
    at = _app("pages/predict.py", run=run_workspace.run_id)
    at.file_uploader(key="files").set_value(
        [(name, (g12ec / name).read_bytes(), "application/octet-stream") for name in ("E00003.hea", "E00003.mat")])
    at.run()
    assert not at.exception, at.exception
    (warning,) = [w.value for w in at.warning if w.value.startswith("Rhythm conflict")]
    assert f"the most probable rhythm is {class_name(likeliest)}" in warning
    table = at.dataframe[0].value
    calls = dict(zip(table["name"], table["call"]))
    assert all(calls[class_name(c)] == "yes*" for c in rhythms)
    assert "rhythms that exclude each other" in _texts(at)
    assert "Chosen in the link" in _texts(at)

    preds = load_run_predictions(run_workspace.run_id, RunStore(home))
    record = preds.record_ids[0]
    at = _app("pages/inspect.py", run=run_workspace.run_id, record=record)
    assert not at.exception, at.exception
    row = preds.row(record)
    best = max(rhythms, key=lambda c: preds.y_score[row, preds.column(c)])
    (warning,) = [w.value for w in at.warning if w.value.startswith("Rhythm conflict")]
    assert f"the most probable rhythm is {class_name(best)}" in warning
