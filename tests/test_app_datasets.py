"""The app through Streamlit's AppTest: router, Home, and the Datasets page on real records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from ecgcore import workspace as ws

REPO = Path(__file__).resolve().parents[1]
TIMEOUT = 60


def _app(page: str | None = None, **params: str) -> AppTest:
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=TIMEOUT)
    if page:
        at.switch_page(page)
    for key, value in params.items():
        at.query_params[key] = value
    return at.run()


def _texts(at: AppTest) -> str:
    parts = [e.value for kind in ("markdown", "info", "error", "caption", "success", "warning")
             for e in getattr(at, kind)]
    return "\n".join(str(p) for p in parts)


def _ecg_spec(at: AppTest) -> dict:
    charts = [c for c in at.get("plotly_chart") if c.proto.id and "ecg" in c.proto.id]
    assert len(charts) == 1, "ECG chart missing"
    return json.loads(charts[0].proto.spec)


@pytest.fixture()
def real_workspace(workspace: Path, shared_data: Path) -> Path:
    """G12EC linked into datasets/, the whole cinc2021 tree and LUDB added by path."""
    (workspace / "datasets").mkdir(parents=True, exist_ok=True)
    (workspace / "datasets" / "G12EC").symlink_to(shared_data / "ecg" / "cinc2021" / "G12EC")
    ws.add_dataset("cinc2021", shared_data / "ecg" / "cinc2021")
    ws.add_dataset("ludb", shared_data / "ecg" / "ludb")
    return workspace


def test_empty_workspace_home_and_datasets(workspace: Path):
    at = _app()
    assert not at.exception
    assert at.title[0].value == "ECG transfer workbench"
    assert [c.value for c in at.sidebar.code] == [str(workspace.resolve())]  # shared sidebar
    assert "No datasets yet" in _texts(at)
    assert any(b.label == "Write demo data" for b in at.button)

    at = _app("pages/datasets.py")
    assert not at.exception
    assert at.title[0].value == "Datasets"
    assert [c.value for c in at.sidebar.code] == [str(workspace.resolve())]  # ran through app.py
    text = _texts(at)
    assert "no datasets yet" in text and "python -m ecgcore demo-data" in text and "Home page" in text


def test_home_lists_datasets_with_record_counts(real_workspace: Path):
    at = _app()
    assert not at.exception
    table = at.dataframe[0].value.set_index("dataset")
    assert table.loc["G12EC", "records"] == 10 and table.loc["ludb", "records"] == 200
    assert table.loc["cinc2021", "unreadable"] == 10 and bool(table.loc["ludb", "added by path"])


def test_datasets_page_follows_query_params(real_workspace: Path):
    at = _app("pages/datasets.py", dataset="G12EC", record="E00003")
    assert not at.exception
    assert [s.value for s in at.selectbox][:2] == ["G12EC", "E00003"]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Readable records"] == "10" and metrics["Unreadable"] == "0"
    assert metrics["Layout"] == "challenge"
    spec = _ecg_spec(at)
    assert spec["layout"]["title"]["text"] == "G12EC / E00003"
    names = [trace["name"] for trace in spec["data"]]
    assert names[-1] == "rhythm II" and len(names) == 6
    labels = [a["text"] for a in spec["layout"]["annotations"]]
    assert {"I", "aVR", "V1", "V6"} <= set(labels)
    text = _texts(at)
    assert "**Labels:**" in text and "**Age:**" in text and "**Sex:**" in text
    # The label distribution uses readable class names.
    bars = [json.loads(c.proto.spec) for c in at.get("plotly_chart") if "label_chart" in c.proto.id]
    assert bars and any("sinus rhythm" in name for name in bars[0]["data"][0]["y"])


def test_unreadable_records_long_records_and_overlap(real_workspace: Path):
    at = _app("pages/datasets.py", dataset="cinc2021", record="S0001", compare="ludb")
    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Readable records"] == "70" and metrics["Unreadable"] == "10"
    unreadable = [d.value for d in at.dataframe if list(d.value.columns) == ["record", "reason"]]
    assert unreadable and sorted(unreadable[0]["record"])[0] == "I0016"
    assert unreadable[0]["reason"].str.contains("missing").all()
    # S0001 is a 38 s PTB record at 1000 Hz: a slider pages through it.
    assert at.slider and at.slider[0].max == 28.0
    assert _ecg_spec(at)["layout"]["meta"]["fs"] == 1000.0
    at.slider[0].set_value(20.0).run()
    assert not at.exception
    assert _ecg_spec(at)["layout"]["meta"]["start_seconds"] == 20.0
    # Overlap of cinc2021 with LUDB, counts under each dataset's name.
    overlap = [d.value for d in at.dataframe if "shared" in d.value.columns]
    assert overlap and {"cinc2021", "ludb"} <= set(overlap[0].columns)
    assert overlap[0]["shared"].any()
    assert "classes in both **cinc2021** and **ludb**" in _texts(at)


def test_switching_dataset_and_unknown_query_values(real_workspace: Path):
    at = _app("pages/datasets.py", dataset="no-such-dataset", record="nope")
    assert not at.exception
    first = at.selectbox[0].value  # an unknown name falls back to the first dataset
    assert first in {"G12EC", "cinc2021", "ludb"}
    at.selectbox(key="dataset").set_value("ludb").run()
    assert not at.exception
    assert at.selectbox(key="record").value in {str(i) for i in range(1, 201)}
    assert _ecg_spec(at)["layout"]["title"]["text"].startswith("ludb / ")


def test_add_dataset_by_path(real_workspace: Path, tmp_path: Path, shared_data: Path):
    at = _app("pages/datasets.py")
    at.text_input(key="add_path").input(str(tmp_path / "empty-folder"))
    at.button[0].click().run()  # the form's submit button
    assert not at.exception
    assert any("Not added" in e.value and "no such file or folder" in e.value for e in at.error)
    assert "empty-folder" not in [e.name for e in ws.list_datasets()]

    at.text_input(key="add_path").input(str(shared_data / "ecg" / "cinc2021" / "SPH"))
    at.text_input(key="add_name").input("sph")
    at.button[0].click().run()
    assert not at.exception
    assert "sph" in [e.name for e in ws.list_datasets()]
    assert at.selectbox(key="dataset").value == "sph"
    assert {m.label: m.value for m in at.metric}["Layout"] == "sph"


def test_home_writes_demo_data_and_the_datasets_page_reads_it(workspace: Path):
    at = _app()
    at.radio(key="demo_scale").set_value(0.1)
    at.button(key="write_demo").click().run()
    assert not at.exception
    table = at.dataframe[0].value.set_index("dataset")
    written = {site["name"]: site for site in at.session_state["demo_written"]["sites"]}
    assert set(table.index) == set(written) and len(written) >= 2
    for name, site in written.items():
        assert table.loc[name, "records"] == site["n_records"] > 0
        assert Path(site["path"]).parent == (workspace / "datasets").resolve()
    assert "Written:" in _texts(at)

    name = next(iter(written))
    at = _app("pages/datasets.py", dataset=name)
    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Readable records"] == str(written[name]["n_records"])
    assert _ecg_spec(at)["layout"]["title"]["text"].startswith(f"{name} / ")


def test_a_registered_folder_that_vanished_is_reported_not_fatal(workspace: Path, tmp_path: Path):
    ws.add_dataset("gone", tmp_path / "gone")
    at = _app()
    assert not at.exception
    table = at.dataframe[0].value.set_index("dataset")
    assert "no such file or folder" in table.loc["gone", "problem"]
    at = _app("pages/datasets.py", dataset="gone")
    assert not at.exception
    assert any("gone" in e.value and "no such file or folder" in e.value for e in at.error)
