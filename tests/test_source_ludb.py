"""LUDB: all 200 real records, checked against ludb.csv and wfdb; detection and bad input."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import wfdb

from ecgcore.data.sources import detect_layout, open_dataset
from ecgcore.data.sources.ludb import diagnoses

LUDB_LEADS = ("i", "ii", "iii", "avr", "avl", "avf", "v1", "v2", "v3", "v4", "v5", "v6")


@pytest.fixture(scope="module")
def ludb(shared_data: Path):
    return open_dataset(shared_data / "ecg" / "ludb")


def _csv_statements(row: dict[str, str]) -> set[str]:
    """ludb.csv spreads a record's statements over category columns, one per line."""
    out: set[str] = set()
    for column, cell in row.items():
        if column in ("ID", "Sex", "Age"):
            continue
        out.update(line.strip().rstrip(".").strip().lower() for line in cell.splitlines())
    return out - {""}


def test_all_200_records(ludb, shared_data: Path) -> None:
    assert ludb.layout == "ludb" and len(ludb) == 200 and ludb.unreadable == []
    assert ludb.record_ids == [str(i) for i in range(1, 201)]
    t = ludb.table
    assert set(t["fs"]) == {500.0} and set(t["n_samples"]) == {5000}
    assert all(tuple(leads) == LUDB_LEADS for leads in t["leads"])
    assert set(t["label_vocab"]) == {"ludb_text"} and set(t["source"]) == {"LUDB"}
    assert list(t["patient_id"]) == ludb.record_ids  # every record a different subject
    csv = pd.read_csv(shared_data / "ecg" / "ludb" / "ludb.csv", dtype=str, keep_default_na=False)
    assert len(csv) == 200
    only_in_csv: set[str] = set()
    for row in csv.to_dict("records"):
        rec = t.loc[row["ID"].strip()]
        assert rec["sex"] == row["Sex"].strip()
        age = row["Age"].strip()
        if age.isdigit():
            assert rec["age"] == float(age)
        else:  # the csv writes ">89" where the header writes 90
            assert age == ">89" and rec["age"] >= 90
        statements = {s.lower().removeprefix("rhythm: ") for s in rec["raw_labels"]}
        assert rec["raw_labels"], row["ID"]
        assert statements <= _csv_statements(row), row["ID"]
        only_in_csv |= _csv_statements(row) - statements
    assert only_in_csv == {"pacemaker presence, undefined"}  # a csv-only summary line


def test_diagnoses_of_record_1(ludb) -> None:
    assert ludb.table.loc["1", "raw_labels"] == (
        "Rhythm: Sinus bradycardia",
        "Electric axis of the heart: left axis deviation",
        "Left ventricular hypertrophy",
        "Left ventricular overload",
        "Non-specific repolarization abnormalities: posterior wall",
    )
    assert ludb.table.loc["1", "age"] == 51 and ludb.table.loc["1", "sex"] == "F"


def test_diagnoses_parser() -> None:
    comments = ("<age>: 51", "<sex>: F", "<diagnoses>: Rhythm: Sinus rhythm.",
                "Left atrial hypertrophy. ", "", "Ischemia: septal")
    assert diagnoses(comments) == ("Rhythm: Sinus rhythm", "Left atrial hypertrophy",
                                   "Ischemia: septal")
    assert diagnoses(("<age>: 3",)) == ()


@pytest.mark.parametrize("record_id", ["1", "34", "117", "200"])
def test_signals_equal_wfdb(ludb, record_id: str) -> None:
    sig = ludb.read(record_id)
    ref = wfdb.rdrecord(str(Path(ludb.table.loc[record_id, "path"]).with_suffix("")))
    assert sig.data.dtype == np.float32 and sig.data.shape == (12, 5000)
    assert sig.leads == tuple(ref.sig_name) and sig.fs == ref.fs
    np.testing.assert_allclose(sig.data, ref.p_signal.T, rtol=1e-5, atol=1e-6)
    files = ludb.files(record_id)
    assert [f.name for f in files] == [f"{record_id}.hea", f"{record_id}.dat"]


def test_detect_without_csv_and_bad_records(shared_data: Path, tmp_path: Path) -> None:
    src = shared_data / "ecg" / "ludb" / "data"
    root = tmp_path / "ludb_copy"
    (root / "data").mkdir(parents=True)
    for n in ("1", "2", "3", "4"):
        for ext in (".hea", ".dat"):
            shutil.copy(src / f"{n}{ext}", root / "data" / f"{n}{ext}")
    assert detect_layout(root) == "ludb"  # from the `#<diagnoses>:` comment alone
    (root / "data" / "2.dat").write_bytes((src / "2.dat").read_bytes()[:5000])
    (root / "data" / "3.dat").unlink()
    rs = open_dataset(root)
    assert rs.record_ids == ["1", "4"]
    reasons = {u.record: u.reason for u in rs.unreadable}
    assert "too short" in reasons["2"] and "2.dat" in reasons["2"]
    assert "3.dat is missing" in reasons["3"]
    (root / "RECORDS").write_text("data/1\ndata/5\n")
    rs = open_dataset(root, layout="ludb")
    assert rs.record_ids == ["1"] and "5.hea is missing" in rs.unreadable[0].reason
