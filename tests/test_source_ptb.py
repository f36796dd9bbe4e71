"""PTB Diagnostic native layout, built in tmp_path from the Challenge's S0001–S0010.

Each record is written as PTB ships it: `patientNNN/<record>.hea` with 15 channels at
1000 Hz — the 12 standard leads (lower-case names) in `<record>.dat` and three
synthetic Frank leads vx, vy, vz in `<record>.xyz`, gain 2000, PTB-style comments.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import wfdb

from ecgcore.data.sources import detect_layout, open_dataset
from ecgcore.data.sources.ptb import admission_reason

PTB_LEADS = ("i", "ii", "iii", "avr", "avl", "avf", "v1", "v2", "v3", "v4", "v5", "v6")
FRANK = ("vx", "vy", "vz")
# Challenge record number -> (patient folder, reason for admission line or None)
RECORDS = {
    1: ("patient001", "Myocardial infarction"),
    2: ("patient001", "Myocardial infarction"),
    3: ("patient001", "Myocardial infarction"),
    4: ("patient002", "Healthy control"),
    5: ("patient003", "Bundle branch block"),
    6: ("patient004", "Myocardial infarction"),
    7: ("patient004", "n/a"),
    8: ("patient005", "Healthy control"),
    9: ("patient005", "Cardiomyopathy"),
    10: ("patient005", None),
}


def _source(shared: Path, k: int) -> wfdb.Record:
    return wfdb.rdrecord(str(shared / "ecg" / "cinc2021" / "PTB_PTBXL" / f"S{k:04d}"))


def _write_native(directory: Path, name: str, src: wfdb.Record, reason: str | None) -> None:
    digital = src.adc().astype(np.int32) * 2  # gain 1000 -> PTB's 2000 adu/mV
    frank = np.stack([digital[:, 0] - digital[:, 6], digital[:, 1] // 2, -digital[:, 9]], axis=1)
    age, sex = (c.split(":", 1)[1].strip() for c in src.comments[:2])
    comments = [f" age: {age}", f" sex: {sex.lower()}", " ECG date: 01/10/1990", " Diagnose:"]
    if reason is not None:
        comments.append(f" Reason for admission: {reason}")
    comments += [" Acute infarction (localization): no", " Smoker: no"]
    directory.mkdir(parents=True, exist_ok=True)
    rec = wfdb.Record(
        record_name=name, n_sig=15, fs=1000, sig_len=src.sig_len,
        file_name=[f"{name}.dat"] * 12 + [f"{name}.xyz"] * 3, fmt=["16"] * 15,
        adc_gain=[2000.0] * 15, baseline=[0] * 15, units=["mV"] * 15, adc_res=[16] * 15,
        adc_zero=[0] * 15, block_size=[0] * 15, sig_name=[*PTB_LEADS, *FRANK], comments=comments,
        d_signal=np.concatenate([digital, frank], axis=1),
    )
    rec.set_d_features(do_adc=False)
    rec.wrsamp(write_dir=str(directory))


@pytest.fixture(scope="module")
def ptb_tree(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ptb")
    lines = []
    for k, (patient, reason) in RECORDS.items():
        _write_native(root / patient, f"s{k:04d}_re", _source(shared_data, k), reason)
        lines.append(f"{patient}/s{k:04d}_re")
    (root / "RECORDS").write_text("\n".join(lines) + "\n")
    return root


def test_table(ptb_tree: Path, shared_data: Path) -> None:
    assert detect_layout(ptb_tree) == "ptb"
    rs = open_dataset(ptb_tree)
    assert rs.layout == "ptb" and rs.unreadable == []
    assert rs.record_ids == [f"s{k:04d}_re" for k in RECORDS]
    for k, (patient, reason) in RECORDS.items():
        row = rs.table.loc[f"s{k:04d}_re"]
        src = _source(shared_data, k)
        assert row["patient_id"] == patient
        assert row["fs"] == 1000.0 and row["n_samples"] == src.sig_len
        assert tuple(row["leads"]) == PTB_LEADS  # Frank leads dropped, names as written
        expected = () if reason in (None, "n/a") else (reason,)
        assert row["raw_labels"] == expected and row["label_vocab"] == "ptb_reason"
        age, sex = (c.split(":", 1)[1].strip() for c in src.comments[:2])
        assert row["age"] == float(age) and row["sex"] == sex[0]
        assert row["source"] == "PTB"
    labels = rs.table["labels"]
    assert labels["s0001_re"] == ("164865005",) and labels["s0004_re"] == ("426783006",)
    assert rs.table.loc["s0005_re", "unmapped"] == ("Bundle branch block",)
    assert rs.table["patient_id"].nunique() == 5


@pytest.mark.parametrize("k", [1, 8])
def test_signal_is_the_12_standard_leads(ptb_tree: Path, shared_data: Path, k: int) -> None:
    rs = open_dataset(ptb_tree)
    record_id = f"s{k:04d}_re"
    sig = rs.read(record_id)
    src = _source(shared_data, k)
    assert sig.data.dtype == np.float32 and sig.data.shape == (12, src.sig_len)
    assert sig.leads == PTB_LEADS and sig.fs == 1000.0
    np.testing.assert_allclose(sig.data, src.p_signal.T, atol=1e-6)
    assert [f.name for f in rs.files(record_id)] == [
        f"{record_id}.hea", f"{record_id}.dat", f"{record_id}.xyz"]


def test_detect_without_records_file_and_bad_records(ptb_tree: Path, tmp_path: Path) -> None:
    root = tmp_path / "ptb"
    shutil.copytree(ptb_tree, root)
    (root / "RECORDS").unlink()
    assert detect_layout(root) == "ptb"
    hea = root / "patient005" / "s0009_re.hea"
    hea.write_text(hea.read_text().replace(" v6\n", " v7\n"))
    dat = root / "patient001" / "s0002_re.dat"
    dat.write_bytes(dat.read_bytes()[:10_000])
    rs = open_dataset(root)
    reasons = {u.record: u.reason for u in rs.unreadable}
    assert set(reasons) == {"s0002_re", "s0009_re"}
    assert "12 standard leads" in reasons["s0009_re"] and "v7" in reasons["s0009_re"]
    assert "too short" in reasons["s0002_re"]
    assert len(rs) == 8


def test_admission_reason() -> None:
    assert admission_reason(["age: 81", "Reason for admission: Myocardial infarction"]) == (
        "Myocardial infarction",)
    assert admission_reason(["Reason for admission: n/a"]) == ()
    assert admission_reason(["age: 81"]) == ()
