"""What a prediction rests on: whether a dataset is the synthetic demo data (recorded in
the run's results.json), the provenance line and warning every prediction view shows, and
the run Predict picks by default for a record's leads and rate."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ecgcore.data.synthetic import SITES, write_site
from ecgcore.data.synthetic.marker import MARKER_FILE, synthetic_marker
from ecgcore.views.provenance import RESEARCH_USE, DatasetOrigin, dataset_origin, run_provenance
from ecgcore.views.run_choice import choose_run
from ecgcore.runs import RunStore


def test_demo_sites_say_they_are_synthetic(tmp_path: Path, shared_data: Path) -> None:
    site = write_site(SITES["target_challenge"], tmp_path / "mine", scale=0.01)
    marker = json.loads((tmp_path / "mine" / MARKER_FILE).read_text())
    assert marker["generator"] == "ecgcore.data.synthetic" and marker["site"] == "target_challenge"
    assert synthetic_marker(tmp_path / "mine") == marker and site["n_records"] >= 1
    origin = dataset_origin(tmp_path / "mine")
    assert origin == DatasetOrigin("mine", True, f"{MARKER_FILE} written by ecgcore.data.synthetic")
    real = dataset_origin(shared_data / "ecg" / "cinc2021" / "G12EC")
    assert real.synthetic is False and real.label == "G12EC (real)"
    # Demo data written before the marker existed: known by its site folder name.
    old = tmp_path / "datasets" / "source_ptbxl"
    old.mkdir(parents=True)
    assert dataset_origin(old).synthetic is True and "folder name" in dataset_origin(old).evidence
    gone = dataset_origin(tmp_path / "elsewhere")
    assert gone.synthetic is None and gone.label == "elsewhere (real or synthetic: unknown)"


def test_a_run_on_demo_data_records_it_and_warns(run_workspace) -> None:
    folder = run_workspace.home / "runs" / run_workspace.run_id
    results = json.loads((folder / "results.json").read_text())
    assert results["data_origin"]["target"]["synthetic"] is True
    assert results["data_origin"]["source"] is None
    prov = run_provenance(run_workspace.run_id)
    assert prov.synthetic and prov.recorded
    low, high = results["test"]["macro_auc_ci"]
    line = prov.line()
    assert run_workspace.run_id in line and "target_challenge (synthetic)" in line
    assert results["task"] in line and "small_cnn" in line
    assert f"test macro AUC {results['test']['macro_auc']:.3f} (95 % CI {low:.3f}–{high:.3f}" in line
    assert "synthetic" in prov.warning and "real patient" in prov.warning
    assert prov.headline == "Trained only on synthetic data: its calls mean nothing for a real patient."
    assert any("target_challenge (synthetic)" in text for text in prov.lines())
    assert RESEARCH_USE == "Research use only, not for diagnosis."


def _copy_run(run_workspace, home: Path, name: str, edit=None, edit_config=None) -> str:
    src = run_workspace.home / "runs" / run_workspace.run_id
    dst = home / "runs" / name
    shutil.copytree(src, dst)
    for file, change in (("results.json", edit), ("config.json", edit_config)):
        if change:
            data = json.loads((dst / file).read_text())
            change(data)
            if file == "results.json":
                data["run_id"] = name
            (dst / file).write_text(json.dumps(data))
    return name


def _real(results: dict, auc: float = 0.7) -> None:
    results["data_origin"]["target"] = {"name": "G12EC", "synthetic": False, "evidence": "no marker"}
    results["target"] = "G12EC"
    results["test"]["macro_auc"] = auc


def test_real_data_runs_have_no_warning_and_old_runs_are_checked_now(run_workspace, tmp_path: Path) -> None:
    home = tmp_path / "ws"
    real = _copy_run(run_workspace, home, "real-run", _real)
    old = _copy_run(run_workspace, home, "old-run", lambda r: r.pop("data_origin"))
    store = RunStore(home)
    store.reindex()
    prov = run_provenance(real, store)
    assert not prov.synthetic and prov.warning == prov.headline == "" and "G12EC (real)" in prov.line()
    legacy = run_provenance(old, store)
    assert legacy.synthetic and not legacy.recorded  # the config's dataset folder has the marker
    assert "checked now" in legacy.line()


def test_predict_chooses_the_best_run_for_the_record(run_workspace, tmp_path: Path) -> None:
    home = tmp_path / "ws"
    twelve = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]
    synthetic = _copy_run(run_workspace, home, "synthetic-best", lambda r: r["test"].update(macro_auc=0.99))
    real = _copy_run(run_workspace, home, "real-good", lambda r: _real(r, 0.8))
    _copy_run(run_workspace, home, "real-500hz", lambda r: _real(r, 0.95),
              lambda c: c["prep"].update(fs=500.0))
    _copy_run(run_workspace, home, "real-2-leads", lambda r: _real(r, 0.9),
              lambda c: c["prep"].update(leads=["I", "II"]))
    store = RunStore(home)
    store.reindex()

    # A 12-lead 250 Hz record: the 500 Hz run would need upsampling; real data before synthetic.
    choice = choose_run(twelve, 250.0, store)
    assert choice.run_id == "real-2-leads"
    assert "0.900" in choice.reason and "250 Hz" in choice.reason
    # A record with only leads I and V1 fits none of them fully.
    partial = choose_run(["I", "V1"], 500.0, store)
    assert "no finished run" in partial.reason.lower()
    # 12 leads at 500 Hz: the real 500 Hz run wins on AUC.
    assert choose_run(twelve, 500.0, store).run_id == "real-500hz"
    # Only synthetic runs fit: chosen, and the reason says so.
    for name in ("real-good", "real-500hz", "real-2-leads"):
        shutil.rmtree(home / "runs" / name)
    store.reindex()
    only = choose_run(twelve, 500.0, store)
    assert only.run_id == synthetic and "synthetic" in only.reason
    assert real not in only.reason


def test_no_run_no_choice(tmp_path: Path) -> None:
    assert choose_run(["I"], 500.0, RunStore(tmp_path / "empty")) is None


@pytest.mark.parametrize("synthetic, expected", [(True, "synthetic"), (False, "real"), (None, "unknown")])
def test_dataset_labels(synthetic, expected) -> None:
    assert expected in DatasetOrigin("x", synthetic, "").label


def test_predict_on_the_command_line_carries_provenance_and_calls(run_workspace, shared_data: Path) -> None:
    from ecgcore.views.scoring import predict_files

    (item,) = predict_files(run_workspace.run_id, [shared_data / "ecg" / "cinc2021" / "G12EC" / "E00005.hea"])
    prov = run_provenance(run_workspace.run_id)
    assert item["provenance"] == {"line": prov.line(), "synthetic": True, "warning": prov.warning}
    assert item["research_use"] == RESEARCH_USE
    results = json.loads((run_workspace.home / "runs" / run_workspace.run_id / "results.json").read_text())
    assert item["thresholds"] == results["test"]["thresholds"] and item["thresholds_source"] == "tuned on validation"
    assert item["called"] == sorted((c for c, p in item["probabilities"].items() if p >= item["thresholds"][c]),
                                    key=lambda c: -item["probabilities"][c])
    assert item["rhythm_conflict"] is None or len(item["rhythm_conflict"]) >= 2
    assert item["record_facts"] == {"age": 83.0, "sex": "M", "diagnoses": ["59118001", "164889003"]}


def test_predict_text_output_starts_with_the_provenance(run_workspace, shared_data: Path, capsys) -> None:
    from ecgcore.cli import main

    record = shared_data / "ecg" / "cinc2021" / "G12EC" / "E00005.hea"
    assert main(["predict", "--run", run_workspace.run_id, str(record)]) == 0
    lines = capsys.readouterr().out.splitlines()
    prov = run_provenance(run_workspace.run_id)
    assert lines[:3] == [prov.line(), f"WARNING: {prov.warning}", RESEARCH_USE]
    assert lines[3].startswith("E00005: ") and "called (tuned on validation): " in lines[3]
