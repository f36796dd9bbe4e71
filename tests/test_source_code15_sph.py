"""CODE-15% (generated tree of the real layout), the CODE test set, and the real SPH records."""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from ecgcore.data.recordset import STANDARD_LEADS
from ecgcore.data.sources import detect_layout, open_dataset
from ecgcore.errors import RecordError

# exam_id -> (age, is_male, patient_id, labels set, part file or None when absent)
EXAMS = {
    1001: (63, True, 501, {"1dAVb"}, "exams_part0.hdf5"),
    1002: (45, False, 502, set(), "exams_part0.hdf5"),
    1003: (71, True, 501, {"RBBB", "AF"}, "exams_part0.hdf5"),
    2001: (30, False, 503, {"SB"}, "exams_part1.hdf5"),
    2002: (88, True, 504, {"LBBB", "ST"}, "exams_part1.hdf5"),
    3001: (50, False, 505, {"AF"}, None),  # listed in exams.csv, in no part file
}
LABELS = ("1dAVb", "RBBB", "LBBB", "SB", "AF", "ST")


def _tracing(exam_id: int) -> np.ndarray:
    """A deterministic (4096, 12) float32 tracing, zero-padded at both ends like CODE-15%."""
    rng = np.random.default_rng(exam_id)
    data = np.zeros((4096, 12), dtype=np.float32)
    data[648:-648] = rng.normal(0, 0.5, size=(4096 - 1296, 12)).astype(np.float32)
    return data


def _write_part(path: Path, exam_ids: list[int]) -> None:
    """One part file as released: tracings + exam_id, ending with a filler row of id 0."""
    ids = [*exam_ids, 0]
    tracings = np.stack([_tracing(i) if i else np.zeros((4096, 12), np.float32) for i in ids])
    with h5py.File(path, "w") as f:
        f.create_dataset("tracings", data=tracings)
        f.create_dataset("exam_id", data=np.asarray(ids, dtype=np.int64))


@pytest.fixture()
def code15_tree(tmp_path: Path) -> Path:
    root = tmp_path / "code15"
    root.mkdir()
    rows = []
    for exam_id, (age, male, patient, labels, part) in EXAMS.items():
        row = {"exam_id": exam_id, "age": age, "is_male": male, "nn_predicted_age": age + 1.5}
        row.update({name: name in labels for name in LABELS})
        row.update({"patient_id": patient, "normal_ecg": not labels, "death": "", "timey": "",
                    "trace_file": part or "exams_part7.hdf5"})
        rows.append(row)
    pd.DataFrame(rows).to_csv(root / "exams.csv", index=False)
    _write_part(root / "exams_part0.hdf5", [1001, 1002, 1003])
    _write_part(root / "exams_part1.hdf5", [2001, 9999, 2002])  # 9999 has no exams.csv row
    return root


def test_code15_table_labels_and_unreadable(code15_tree: Path) -> None:
    assert detect_layout(code15_tree) == "code15"
    rs = open_dataset(code15_tree)
    assert rs.layout == "code15"
    assert sorted(rs.record_ids) == ["1001", "1002", "1003", "2001", "2002"]
    t = rs.table
    for exam_id, (age, male, patient, labels, part) in EXAMS.items():
        if part is None:
            continue
        row = t.loc[str(exam_id)]
        assert set(row["raw_labels"]) == labels
        assert row["label_vocab"] == "code15"
        assert row["age"] == age
        assert row["sex"] == ("M" if male else "F")
        assert row["patient_id"] == str(patient)
        assert row["fs"] == 400.0 and row["n_samples"] == 4096
        assert tuple(row["leads"]) == STANDARD_LEADS
        assert Path(row["path"]).name == part
        assert row["source"] == "CODE-15%"
    assert rs.rows["2002"].index == 2  # the row inside exams_part1.hdf5, the reader's own note
    assert "h5_index" not in t.columns
    reasons = {u.record: u.reason for u in rs.unreadable}
    assert set(reasons) == {"3001", "9999"}
    assert "exams_part7.hdf5" in reasons["3001"] and "absent" in reasons["3001"]
    assert "no row in exams.csv" in reasons["9999"]


def test_code15_signals_are_stored_values_as_mv(code15_tree: Path) -> None:
    rs = open_dataset(code15_tree)
    for exam_id in (1001, 1003, 2002):
        sig = rs.read(str(exam_id))
        assert sig.data.dtype == np.float32 and sig.data.shape == (12, 4096)
        np.testing.assert_array_equal(sig.data, _tracing(exam_id).T)
        assert sig.fs == 400.0 and sig.leads == STANDARD_LEADS
        assert not sig.data[:, :648].any()  # centred zero padding is kept as stored
    assert rs.files("1001") == [code15_tree / "exams_part0.hdf5"]
    scaled = open_dataset(code15_tree, mv_per_unit=0.1)
    np.testing.assert_allclose(scaled.read("2001").data, _tracing(2001).T * 0.1, rtol=1e-6)


def test_code15_broken_part_is_reported_and_read_errors_name_the_record(code15_tree: Path) -> None:
    (code15_tree / "exams_part1.hdf5").write_bytes(b"not an hdf5 file")
    rs = open_dataset(code15_tree)
    assert sorted(rs.record_ids) == ["1001", "1002", "1003"]
    reasons = {u.record: u.reason for u in rs.unreadable}
    assert "not a readable HDF5" in reasons["exams_part1.hdf5"]
    assert {"2001", "2002", "3001"} <= set(reasons)
    (code15_tree / "exams_part0.hdf5").unlink()
    with pytest.raises(RecordError, match="1002"):
        rs.read("1002")


def test_code_test_layout(tmp_path: Path) -> None:
    root = tmp_path / "code_test"
    (root / "annotations").mkdir(parents=True)
    tracings = np.stack([_tracing(i) for i in range(4)])
    with h5py.File(root / "ecg_tracings.hdf5", "w") as f:
        f.create_dataset("tracings", data=tracings)
    gold = pd.DataFrame(
        [[0, 0, 0, 0, 0, 0], [1, 0, 0, 0, 1, 0], [0, 1, 0, 0, 0, 1]], columns=list(LABELS))
    gold.to_csv(root / "annotations" / "gold_standard.csv", index=False)
    pd.DataFrame({"age": [40, 61, 77, 55], "sex": ["M", "F", "F", "M"]}).to_csv(
        root / "attributes.csv", index=False)
    assert detect_layout(root) == "code_test"
    rs = open_dataset(root)
    assert rs.record_ids == ["1", "2", "3"]
    assert rs.table.loc["1", "raw_labels"] == ()
    assert rs.table.loc["2", "raw_labels"] == ("1dAVb", "AF")
    assert rs.table.loc["3", "raw_labels"] == ("RBBB", "ST")
    assert list(rs.table["sex"]) == ["M", "F", "F"] and list(rs.table["age"]) == [40, 61, 77]
    np.testing.assert_array_equal(rs.read("3").data, _tracing(2).T)
    assert [u.record for u in rs.unreadable] == ["4"]


# SPH: metadata.csv as shipped (SPH00005 has an .h5 but no row: a record whose labels are unknown)
SPH_EXPECTED = {
    "SPH00001": ("S00001", 55, "M", 5000, ("426177001", "427393009")),
    "SPH00002": ("S00002", 32, "M", 6000, ("426783006",)),
    "SPH00003": ("S00003", 63, "M", 6500, ("426783006",)),
    "SPH00004": ("S00004", 31, "M", 5000, ("427393009",)),
    "SPH00006": ("S00006", 46, "F", 5000, ("426783006",)),
    "SPH00007": ("S00007", 75, "M", 6500, ("59118001",)),
    "SPH00008": ("S00008", 32, "M", 5000, ("426783006",)),
    "SPH00009": ("S00009", 48, "F", 6000, ("426783006",)),
    "SPH00010": ("S00010", 32, "F", 7500, ("426783006",)),
}


def test_sph_real_records(shared_data: Path) -> None:
    root = shared_data / "ecg" / "cinc2021" / "SPH"
    assert detect_layout(root) == "sph"
    rs = open_dataset(root)
    assert sorted(rs.record_ids) == sorted([*SPH_EXPECTED, "SPH00005"])
    for record_id, (patient, age, sex, n, codes) in SPH_EXPECTED.items():
        row = rs.table.loc[record_id]
        assert (row["patient_id"], row["age"], row["sex"]) == (patient, age, sex)
        assert row["fs"] == 500.0 and row["n_samples"] == n
        assert row["raw_labels"] == codes and row["label_vocab"] == "snomed"
        assert row["source"] == "SPH" and tuple(row["leads"]) == STANDARD_LEADS
        sig = rs.read(record_id)
        assert sig.data.shape == (12, n) and sig.data.dtype == np.float32
        with h5py.File(row["path"], "r") as f:
            np.testing.assert_array_equal(sig.data, f["ecg"][()].astype(np.float32))
        assert 0.2 < np.ptp(sig.data, axis=1).max() < 20  # millivolts, not volts or microvolts
    assert rs.table.loc["SPH00001", "aha_code"] == "22;23"
    assert rs.unreadable == []
    assert rs.table["labels_known"].to_dict() == {**dict.fromkeys(SPH_EXPECTED, True), "SPH00005": False}
    orphan = rs.table.loc["SPH00005"]
    assert (orphan["label_vocab"], orphan["labels"], orphan["patient_id"], orphan["fs"]) == ("none", (), "", 500.0)
    assert rs.read("SPH00005").data.shape == (12, orphan["n_samples"])


def test_sph_missing_file_and_bad_shape(shared_data: Path, tmp_path: Path) -> None:
    root = tmp_path / "sph"
    (root / "records").mkdir(parents=True)
    src = shared_data / "ecg" / "cinc2021" / "SPH"
    meta = pd.read_csv(src / "metadata.csv", dtype=str)
    meta["ECG_ID"] = meta["ECG_ID"].str.replace(".h5", "", regex=False)  # figshare spelling
    meta.to_csv(root / "metadata.csv", index=False)
    for name in ("SPH00001", "SPH00002"):
        shutil.copy(src / f"{name}.h5", root / "records" / f"{name}.h5")
    with h5py.File(root / "records" / "SPH00003.h5", "w") as f:
        f.create_dataset("ecg", data=np.zeros((8, 100), np.float16))
    rs = open_dataset(root)
    assert rs.layout == "sph" and rs.record_ids == ["SPH00001", "SPH00002"]
    reasons = {u.record: u.reason for u in rs.unreadable}
    assert "shape (8, 100)" in reasons["SPH00003"]
    assert "SPH00004.h5 is missing" in reasons["SPH00004"]
    assert len(reasons) == 7  # 00003 bad shape; 00004, 00006-00010 without file
    (root / "records" / "SPH00002.h5").write_bytes(b"truncated")
    with pytest.raises(RecordError, match="SPH00002"):
        rs.read("SPH00002")


def test_exam_columns_read_flags_written_any_way() -> None:
    from ecgcore.data.sources.code15 import exam_columns

    exams = pd.DataFrame({
        "exam_id": [1, 2, 3, 4],
        "age": [50, -1, None, 77],
        "is_male": ["True", "false", None, "1"],
        "patient_id": [10.0, None, 12.0, 13.0],
        "1dAVb": ["TRUE", "0", None, "False"],
        "RBBB": [1, 0, 1, 0],
        "AF": [0.0, 1.0, float("nan"), 0.0],
    })
    cols = exam_columns(exams)
    assert cols["raw_labels"] == [("1dAVb", "RBBB"), ("AF",), ("RBBB",), ()]
    assert cols["sex"] == ["M", "F", "", "M"]
    assert cols["patient_id"] == ["10", "", "12", "13"]
    assert cols["age"][0] == 50 and np.isnan(cols["age"][1]) and np.isnan(cols["age"][2])


def test_non_finite_samples_are_refused_by_default_and_kept_on_request(code15_tree: Path, shared_data: Path,
                                                       tmp_path: Path) -> None:
    with h5py.File(code15_tree / "exams_part0.hdf5", "r+") as f:
        f["tracings"][1, 1000, 3] = np.nan
        f["tracings"][1, 2000, 3] = np.inf
    rs = open_dataset(code15_tree)
    with pytest.raises(RecordError, match=r"^1002: 2 NaN/inf samples in lead\(s\) aVR \(2\)"):
        rs.read("1002")
    kept = rs.read("1002", allow_nonfinite=True).data
    assert np.isnan(kept[3, 1000]) and np.isinf(kept[3, 2000]) and np.isfinite(kept[:3]).all()
    root = tmp_path / "sph"
    root.mkdir()
    src = shared_data / "ecg" / "cinc2021" / "SPH"
    shutil.copy(src / "metadata.csv", root / "metadata.csv")
    with h5py.File(src / "SPH00001.h5", "r") as f:
        ecg = f["ecg"][()]
    ecg[11, 7] = np.nan
    with h5py.File(root / "SPH00001.h5", "w") as f:
        f.create_dataset("ecg", data=ecg)
    with pytest.raises(RecordError, match=r"^SPH00001: 1 NaN/inf samples in lead\(s\) V6 \(1\)"):
        open_dataset(root).read("SPH00001")
