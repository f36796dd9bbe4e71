"""Leakage caught by record identity, not dataset name (issue 12).

The same recording under another dataset name, layout, file format, gain or rate must be
recognised: by the Challenge's record prefixes (A = CPSC2018, HR = PTB-XL, …) and by
signal fingerprints. Real records from ../shared/data, written to temporary folders in
other layouts; nothing of them is copied into the repository.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import wfdb
from scipy import signal as sps

from ecgcore.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from ecgcore.data.identity import (
    Fingerprints,
    dataset_fingerprints,
    matching_records,
    public_id,
    signal_fingerprint,
)
from ecgcore.data.recordset import Recordset
from ecgcore.data.sources import open_dataset
from ecgcore.data.wfdb_write import write_record
from ecgcore.transfer import check_leakage, leakage_report
from ecgcore.transfer.leakage import checkpoint_fingerprints, run_leakage

pytestmark = pytest.mark.shared_data
CINC = Path("ecg") / "cinc2021"


def _copy_records(source: Path, names: list[str], folder: Path) -> Path:
    folder.mkdir(parents=True)
    for name in names:
        for suffix in (".hea", ".mat"):
            shutil.copy(source / f"{name}{suffix}", folder / f"{name}{suffix}")
    return folder


def _wrsamp(folder: Path, name: str, data_mv: np.ndarray, fs: float, leads: tuple[str, ...],
            fmt: str = "16", gain: float = 1000.0) -> None:
    """One record through wfdb's own writer (another format and gain than the original's)."""
    folder.mkdir(parents=True, exist_ok=True)
    n = len(leads)
    wfdb.wrsamp(name, fs=fs, units=["mV"] * n, sig_name=list(leads), p_signal=data_mv.T.astype(np.float64),
                fmt=[fmt] * n, adc_gain=[gain] * n, baseline=[0] * n, write_dir=str(folder))


def _report(source: Recordset, seen: list[str], target: Recordset, test: list[str], cache: Path):
    prints = dataset_fingerprints(source, cache, n_jobs=1).subset(seen)
    return leakage_report({source.name: seen}, target.name, test, target_layout=target.layout,
                          source_layouts={source.name: source.layout},
                          source_fingerprints={source.name: prints},
                          target_fingerprints=dataset_fingerprints(target, cache, n_jobs=1).subset(test))


@pytest.mark.parametrize(("record", "dataset", "layout", "expected"), [
    ("A0001", "CPSC_CPSC-Extra", "challenge", "CPSC2018:1"), ("A0001", "cpsc2018", "wfdb_folder", "CPSC2018:1"),
    ("Q0012", "cinc2021", "", "CPSC-Extra:12"), ("I0001", "WFDB_StPetersburg", "challenge", "INCART:1"),
    ("I01", "incartdb", "wfdb_folder", "INCART:1"), ("S0001", "PTB_PTBXL", "challenge", "PTB:1"),
    ("E00001", "g12ec", "challenge", "Georgia:1"), ("JS00001", "ecg-arrhythmia", "wfdb_folder",
                                                     "Chapman-Shaoxing/Ningbo:1"),
    ("HR00001", "anything", "wfdb_folder", "PTB-XL:1"), ("1", "mine", "ptbxl", "PTB-XL:1"),
    ("00001_hr", "ptbxl_500", "", "PTB-XL:1"), ("sub/A0001", "challenge2021", "", "CPSC2018:1"),
    # names that say nothing: no identity by name (fingerprints still apply)
    ("A0001", "mydata", "wfdb_folder", None), ("1", "ludb", "ludb", None), ("1", "ptbxl_like", "ludb", None),
    ("S0001", "ptbxl", "", None), ("patient001/s0010_re", "ptb", "ptb", None), ("T00001", "target", "challenge", None),
])
def test_public_ids(record: str, dataset: str, layout: str, expected: str | None):
    assert public_id(record, dataset, layout) == expected


def test_cpsc_records_in_a_cpsc2018_folder_are_caught_by_prefix_and_signal(shared_data: Path, tmp_path: Path):
    challenge = shared_data / CINC / "CPSC_CPSC-Extra"
    source = open_dataset(challenge)
    names = [f"A{i:04d}" for i in range(1, 11)]
    target = open_dataset(_copy_records(challenge, names, tmp_path / "cpsc2018"))
    assert target.name == "cpsc2018" and source.name != target.name
    seen = [r for r in source.record_ids if r != "A0005"]  # the source trained on all but A0005
    test = ["A0002", "A0005", "A0007"]
    # by name alone (no fingerprints): the prefix says both are CPSC2018 recordings
    assert check_leakage({source.name: seen}, target.name, test, target_layout=target.layout,
                         source_layouts={source.name: source.layout}) == ["A0002", "A0007"]
    report = _report(source, seen, target, test, tmp_path / "cache")
    assert report.overlap == ["A0002", "A0007"] and report.by_source == {source.name: ["A0002", "A0007"]}
    assert [(m["record"], m["source_record"], m["rules"]) for m in report.matches] == [
        ("A0002", "A0002", ["public_id", "fingerprint"]), ("A0007", "A0007", ["public_id", "fingerprint"])]
    assert report.fingerprints == {source.name: "checked"}
    saved = report.to_dict()
    for key in ("n_overlap", "overlap", "by_source", "warning"):  # the keys others read stay
        assert key in saved
    assert saved["n_overlap"] == 2 and saved["by_rule"] == {"same_id": 0, "public_id": 2, "fingerprint": 2}
    assert "found by public_id 2, fingerprint 2" in report.warning

    # The same recordings renamed and rewritten as WFDB .dat at another gain: only the signal says it.
    renamed = tmp_path / "hospital_x"
    for k, name in enumerate(names):
        signal = target.read(name)
        _wrsamp(renamed, f"ecg{k}", signal.data, signal.fs, signal.leads, fmt="212", gain=200.0)
    other = open_dataset(renamed)
    report = _report(source, seen, other, ["ecg1", "ecg4", "ecg6"], tmp_path / "cache")
    assert report.overlap == ["ecg1", "ecg6"]
    assert {(m["record"], m["source_record"]) for m in report.matches} == {("ecg1", "A0002"), ("ecg6", "A0007")}
    assert all(m["rules"] == ["fingerprint"] for m in report.matches)


def test_ptbxl_record_as_native_wfdb_and_as_challenge_hr_is_one_recording(shared_data: Path, tmp_path: Path):
    challenge = open_dataset(shared_data / CINC / "PTB_PTBXL")
    database = pd.read_csv(shared_data / "labels" / "ptbxl" / "ptbxl_database_subset_for_HR_records.csv")
    root = tmp_path / "ptbxl"
    for ecg_id in (1, 2, 3):
        signal = challenge.read(f"HR{ecg_id:05d}")
        _wrsamp(root / "records500" / "00000", f"{ecg_id:05d}_hr", signal.data, signal.fs, signal.leads)
        # PTB-XL's 100 Hz copy, made here with another resampler (FIR decimation) than ours
        low = sps.decimate(signal.data.astype(np.float64), 5, ftype="fir", axis=1, zero_phase=True)
        _wrsamp(root / "records100" / "00000", f"{ecg_id:05d}_lr", low, 100.0, signal.leads)
    database[database["ecg_id"].isin([1, 2, 3])].to_csv(root / "ptbxl_database.csv", index=False)
    native500, native100 = open_dataset(root, fs=500), open_dataset(root, fs=100)
    assert native500.layout == "ptbxl" and native500.record_ids == ["1", "2", "3"]
    assert public_id("1", native500.name, native500.layout) == public_id("HR00001", challenge.name, "challenge")

    # the same samples in another file: the very same fingerprint
    assert np.array_equal(signal_fingerprint(native500.read("1")), signal_fingerprint(challenge.read("HR00001")))
    # at 100 Hz through another resampler: still one recording, and no record matches another
    pairs = matching_records(dataset_fingerprints(challenge, tmp_path / "cache", n_jobs=1),
                             dataset_fingerprints(native100, tmp_path / "cache", n_jobs=1))
    assert sorted((s, t) for s, t, _ in pairs) == [("HR00001", "1"), ("HR00002", "2"), ("HR00003", "3")]

    seen = ["HR00001", "HR00002", "S0001"]
    report = _report(challenge, seen, native100, ["1", "2", "3"], tmp_path / "cache")
    assert report.overlap == ["1", "2"]
    assert all(m["rules"] == ["public_id", "fingerprint"] for m in report.matches)


def test_different_records_never_match(shared_data: Path, tmp_path: Path):
    """Every real 12-lead record against every other: no pair is taken for one recording."""
    prints: dict[str, np.ndarray] = {}
    for folder in ("CPSC_CPSC-Extra", "PTB_PTBXL", "G12EC", "ChapmanShaoxing_Ningbo"):
        for rid, hashes in dataset_fingerprints(open_dataset(shared_data / CINC / folder),
                                                tmp_path / "cache", n_jobs=1).to_dict().items():
            prints[f"{folder}/{rid}"] = hashes
    ludb = open_dataset(shared_data / "ecg" / "ludb")
    ludb = dataclasses.replace(ludb, table=ludb.table.iloc[:60])
    for rid, hashes in dataset_fingerprints(ludb, tmp_path / "cache", n_jobs=1).to_dict().items():
        prints[f"ludb/{rid}"] = hashes
    assert len(prints) == 130 and min(h.size for h in prints.values()) >= 5
    table = Fingerprints.from_dict(prints)
    assert sorted((s, t) for s, t, _ in matching_records(table, table)) == [(r, r) for r in sorted(prints)]


def test_model_files_keep_fingerprints_and_older_ones_fall_back_to_names(shared_data: Path, tmp_path: Path):
    challenge = open_dataset(shared_data / CINC / "PTB_PTBXL")
    prints = dataset_fingerprints(challenge, tmp_path / "cache", n_jobs=1)
    seen = {challenge.name: ["HR00001", "S0001"]}
    model = Checkpoint(state_dict={}, model_name="m", model_config={}, classes=[], class_names=[], prep={},
                       stage="pretrain", seen=seen, extra={"layouts": {challenge.name: "challenge"}},
                       fingerprints={challenge.name: prints.subset(seen[challenge.name]).to_payload()})
    loaded = load_checkpoint(save_checkpoint(model, tmp_path / "model.pt"))  # weights_only=True
    kept = checkpoint_fingerprints(loaded)[challenge.name]
    assert kept.ids == ("HR00001", "S0001")
    assert all(np.array_equal(a, b) for a, b in zip(kept.to_dict().values(),
                                                    prints.subset(["HR00001", "S0001"]).to_dict().values()))

    class Target:  # what run_leakage reads of a TaskDataset
        name, layout = "hospital_x", "wfdb_folder"

    renamed = Fingerprints.from_dict({"x1": prints.to_dict()["HR00001"], "x2": prints.to_dict()["HR00002"]})
    report = run_leakage(loaded, Target(), ["x1", "x2"], renamed)
    assert report.overlap == ["x1"] and report.matches[0]["source_record"] == "HR00001"
    # a model file from before fingerprints: names only, and the report says so
    older = Checkpoint(**{**loaded.__dict__, "fingerprints": {}})
    assert run_leakage(older, Target(), ["x1", "x2"], renamed).overlap == []
    assert "matched by name only" in run_leakage(older, Target(), ["x1"], renamed).fingerprints[challenge.name]


# ---------------------------------------------------------------- a run, Launch and Compare

def _renamed_copy(site: Path, folder: Path, gain: float) -> dict[str, str]:
    """Every record of a Challenge-layout site under a new name, as WFDB .dat at another
    gain, labels kept; returns new name -> old name."""
    recordset = open_dataset(site)
    names = {}
    for k, rid in enumerate(recordset.record_ids):
        signal = recordset.read(rid)
        comments = wfdb.rdheader(str(Path(recordset.table.loc[rid, "path"]).with_suffix(""))).comments
        write_record(folder, f"R{k:05d}", signal.data, signal.fs, signal.leads, comments, gain=gain)
        names[f"R{k:05d}"] = rid
    return names


@pytest.fixture()
def leaky_home(demo_home: Path) -> tuple[Path, dict[str, str]]:
    """The demo workspace plus `hospital_x`: the demo target's records renamed and rewritten."""
    names = _renamed_copy(demo_home / "datasets" / "target_challenge", demo_home / "datasets" / "hospital_x",
                          gain=400.0)
    return demo_home, names


def test_a_run_pretrained_on_a_renamed_copy_reports_the_overlap(leaky_home, tmp_path: Path):
    from ecgcore.views.compare import runs_table
    from ecgcore.experiments import run_experiment
    from ecgcore.runs import RunStore

    home, names = leaky_home
    experiment = tmp_path / "leaky.toml"
    experiment.write_text(textwrap.dedent("""
        name = "leaky"
        [source]
        dataset = "hospital_x"
        task = "dataset_labels"
        min_positives = 10
        [target]
        dataset = "target_challenge"
        task = "dataset_labels"
        min_positives = 10
        [prep]
        fs = 100
        seconds = 10
        [split]
        method = "patient"
        val = 0.2
        test = 0.3
        [train]
        epochs = 1
        [pretrain]
        epochs = 1
        [grid]
        arch = ["small_cnn"]
        strategy = ["finetune"]
        train_fraction = [1.0]
        seed = [0]
    """))
    pretrain_id, target_id = run_experiment(experiment)
    store = RunStore()
    source_model = store.get(pretrain_id).load_model()
    trained_on = set(source_model.seen["hospital_x"])
    assert set(checkpoint_fingerprints(source_model)["hospital_x"].ids) == trained_on
    results = json.loads((home / "runs" / target_id / "results.json").read_text())
    test_ids = set(np.load(home / "runs" / target_id / "predictions.npz")["record_ids"].tolist())
    expected = sorted(names[r] for r in trained_on if names[r] in test_ids)
    leakage = results["leakage"]
    assert expected and leakage["overlap"] == expected and leakage["n_overlap"] == len(expected)
    assert leakage["by_rule"] == {"same_id": 0, "public_id": 0, "fingerprint": len(expected)}
    assert leakage["fingerprints"] == {"hospital_x": "checked"} and leakage["warning"]
    row = runs_table(store).set_index("run_id").loc[target_id]
    assert row["n_leaked"] == len(expected)
    assert pd.isna(runs_table(store).set_index("run_id").loc[pretrain_id, "n_leaked"])


def test_launch_shows_the_overlap_before_submitting(leaky_home):
    from streamlit.testing.v1 import AppTest

    from ecgcore.views.launch import dataset_overlap

    home, names = leaky_home
    source = open_dataset(home / "datasets" / "hospital_x")
    target = open_dataset(home / "datasets" / "target_challenge")
    overlap = dataset_overlap(source, target)
    assert overlap.n_overlap == len(target) == len(names) and overlap.report.by_rule["fingerprint"] == len(names)
    assert not dataset_overlap(open_dataset(home / "datasets" / "source_ptbxl"), target).n_overlap

    at = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "app.py"), default_timeout=120)
    at.switch_page("pages/launch.py")
    for key, value in {"source": "hospital_x", "target": "target_challenge", "task": "dataset_labels",
                       "source_task": "dataset_labels", "min_pos": "3", "epochs": "1"}.items():
        at.query_params[key] = value
    at.run()
    assert not at.exception, at.exception
    shown = "\n".join(str(e.value) for e in at.warning)
    assert f"**{len(names)}** of the {len(names)} records of target_challenge are also in the source" in shown
    assert any(m.label == "Target records in the source" and m.value == str(len(names)) for m in at.metric)
