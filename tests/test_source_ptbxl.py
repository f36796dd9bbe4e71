"""PTB-XL native layout, built in tmp_path from the Challenge copies of ecg_id 1–10.

The Challenge's HR00001–HR00010 are PTB-XL ecg_id 1–10 at 500 Hz. They are written
with `wfdb.wrsamp` (format 16, gain 1000/mV, PTB-XL's lead names) as
`records500/00000/000NN_hr`, and a decimated copy as `records100/00000/000NN_lr`.
"""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import wfdb
from scipy.signal import decimate

from ecgcore.data.sources import detect_layout, open_dataset
from ecgcore.errors import EcgcoreError, RecordError

PTBXL_LEADS = ["I", "II", "III", "AVR", "AVL", "AVF", "V1", "V2", "V3", "V4", "V5", "V6"]
IDS = range(1, 11)


def _write(directory: Path, name: str, fs: int, digital: np.ndarray) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    wfdb.wrsamp(name, fs=fs, units=["mV"] * 12, sig_name=PTBXL_LEADS,
                d_signal=np.ascontiguousarray(digital), fmt=["16"] * 12,
                adc_gain=[1000.0] * 12, baseline=[0] * 12, write_dir=str(directory))


def _source(shared: Path, ecg_id: int) -> wfdb.Record:
    return wfdb.rdrecord(str(shared / "ecg" / "cinc2021" / "PTB_PTBXL" / f"HR{ecg_id:05d}"))


def _low_rate(p_signal: np.ndarray) -> np.ndarray:
    """The 100 Hz copy written into records100 (digital units, gain 1000)."""
    return np.round(decimate(p_signal, 5, axis=0, zero_phase=True) * 1000).astype(np.int32)


@pytest.fixture(scope="module")
def ptbxl_tree(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ptbxl")
    labels = shared_data / "labels" / "ptbxl"
    subset = pd.read_csv(labels / "ptbxl_database_subset_for_HR_records.csv")
    subset.to_csv(root / "ptbxl_database.csv", index=False)  # ids 6000-6009 have no files
    shutil.copy(labels / "scp_statements.csv", root / "scp_statements.csv")
    for ecg_id in IDS:
        rec = _source(shared_data, ecg_id)
        _write(root / "records500" / "00000", f"{ecg_id:05d}_hr", 500, rec.adc())
        _write(root / "records100" / "00000", f"{ecg_id:05d}_lr", 100, _low_rate(rec.p_signal))
    return root


def _csv_rows(shared_data: Path) -> dict[str, dict]:
    subset = pd.read_csv(shared_data / "labels" / "ptbxl" / "ptbxl_database_subset_for_HR_records.csv")
    return {str(r["ecg_id"]): r for r in subset.to_dict("records") if r["ecg_id"] <= 10}


@pytest.mark.parametrize("fs", [100, 500])
def test_table(ptbxl_tree: Path, shared_data: Path, fs: int) -> None:
    assert detect_layout(ptbxl_tree) == "ptbxl"
    rs = open_dataset(ptbxl_tree, fs=fs)
    assert rs.layout == "ptbxl"
    assert rs.record_ids == [str(i) for i in IDS]
    expected = _csv_rows(shared_data)
    for record_id, row in rs.table.iterrows():
        csv = expected[record_id]
        codes = ast.literal_eval(csv["scp_codes"])
        assert row["scp_codes"] == codes
        assert row["raw_labels"] == tuple(codes) and row["label_vocab"] == "scp"
        assert row["fold"] == csv["strat_fold"]
        assert row["patient_id"] == str(int(csv["patient_id"]))
        assert row["age"] == csv["age"]
        assert row["sex"] == {0: "M", 1: "F"}[csv["sex"]]
        assert row["fs"] == fs and row["n_samples"] == 10 * fs
        assert list(row["leads"]) == PTBXL_LEADS and row["source"] == "PTB-XL"
        column = "filename_lr" if fs == 100 else "filename_hr"
        assert row["path"] == str(ptbxl_tree / f"{csv[column]}.hea")
    assert rs.table.loc["8", "raw_labels"] == ("IMI", "ABQRS", "SR")
    assert rs.table.loc["8", "scp_codes"]["IMI"] == 35.0
    assert "164865005" in rs.table.loc["8", "labels"]  # harmonised: IMI -> myocardial infarction
    reasons = {u.record: u.reason for u in rs.unreadable}
    assert sorted(reasons, key=int) == [str(i) for i in range(6000, 6010)]
    suffix = "lr" if fs == 100 else "hr"
    assert reasons["6003"] == f"header records{fs}/06000/06003_{suffix}.hea is missing"
    statements = pd.read_csv(ptbxl_tree / "scp_statements.csv", index_col=0)
    assert rs.scp_statements is not None and list(rs.scp_statements.index) == list(statements.index)
    assert {"fast_read", "signal_files"}.isdisjoint(rs.table.columns)  # reader-private, not metadata


def test_signals_match_source_records(ptbxl_tree: Path, shared_data: Path) -> None:
    high = open_dataset(ptbxl_tree, fs=500)
    low = open_dataset(ptbxl_tree)  # 100 Hz by default
    for ecg_id in (1, 5, 10):
        src = _source(shared_data, ecg_id)
        sig = high.read(str(ecg_id))
        assert sig.data.dtype == np.float32 and sig.data.shape == (12, 5000) and sig.fs == 500
        np.testing.assert_allclose(sig.data, src.p_signal.T, atol=1e-6)
        sig100 = low.read(str(ecg_id))
        assert sig100.data.shape == (12, 1000) and sig100.fs == 100
        np.testing.assert_allclose(sig100.data, _low_rate(src.p_signal).T / 1000, atol=1e-6)
        assert sig.leads == sig100.leads == tuple(PTBXL_LEADS)
    files = low.files("1")
    assert [f.relative_to(ptbxl_tree).as_posix() for f in files] == [
        "records100/00000/00001_lr.hea", "records100/00000/00001_lr.dat"]


def test_bad_input(ptbxl_tree: Path, tmp_path: Path) -> None:
    root = tmp_path / "broken"
    shutil.copytree(ptbxl_tree, root)
    db = pd.read_csv(root / "ptbxl_database.csv")
    db = db[db["ecg_id"] <= 10].copy()
    db.loc[db["ecg_id"] == 2, "scp_codes"] = "__import__('os').getcwd()"  # never evaluated
    db.loc[db["ecg_id"] == 4, "age"] = 300  # PTB-XL's "older than 89"
    db.to_csv(root / "ptbxl_database.csv", index=False)
    dat = root / "records100" / "00000" / "00003_lr.dat"
    dat.write_bytes(dat.read_bytes()[:1000])
    (root / "records100" / "00000" / "00007_lr.dat").unlink()
    rs = open_dataset(root)
    reasons = {u.record: u.reason for u in rs.unreadable}
    assert set(reasons) == {"2", "3", "7"}
    assert "not a dict literal" in reasons["2"]
    assert "too short" in reasons["3"]
    assert "00007_lr.dat is missing" in reasons["7"]
    assert rs.table.loc["4", "age"] == 90.0
    (root / "records100" / "00000" / "00005_lr.dat").unlink()
    with pytest.raises(RecordError, match="^5: "):
        rs.read("5")
    with pytest.raises(EcgcoreError, match="100 or 500"):
        open_dataset(root, fs=250)
