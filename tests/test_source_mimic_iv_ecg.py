"""MIMIC-IV-ECG 1.0: the reader on a tree written in the release's layout
(tests/mimic_iv_ecg_tree.py), its machine-statement labels, and its catalogue entry."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from mimic_iv_ecg_tree import MIMIC_LEADS, Study, study_path, write_mimic_tree

from ecgcore.data.labels import CONCEPTS, MIMIC_STATEMENT_TO_SNOMED, harmonise
from ecgcore.data.labels.mimic_statements import statement_key
from ecgcore.data.sources import detect_layout, open_dataset
from ecgcore.download.catalogue import CATALOGUE
from ecgcore.download.listing import project_url
from ecgcore.errors import EcgcoreError

STUDIES = [
    Study(10000032, 40689238, ("Sinus rhythm", "Possible left ventricular hypertrophy", "Abnormal ECG")),
    Study(10000032, 44458630, ("ATRIAL FIBRILLATION WITH RAPID VENTRICULAR RESPONSE", "", "Left bundle branch block.")),
    Study(10000117, 45090959, ("Sinus rhythm with borderline 1st degree A-V block", "Normal ECG")),
    Study(10002221, 46245373, None),  # no machine_measurements.csv row
    Study(10002221, 41020040, ()),  # a row whose report cells are all empty
    Study(12345678, 48000000, ("Sinus bradycardia with 1st degree A-V block", "Left axis deviation")),
]


@pytest.fixture()
def tree(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    root = tmp_path / "mimic-iv-ecg"
    return root, write_mimic_tree(root, STUDIES)


def test_the_layout_is_detected_and_every_study_is_a_record(tree: tuple[Path, dict[str, np.ndarray]]) -> None:
    root, _ = tree
    assert detect_layout(root) == "mimic_iv_ecg"
    rs = open_dataset(root)
    assert rs.layout == "mimic_iv_ecg" and rs.unreadable == []
    assert rs.record_ids == [str(s.study_id) for s in STUDIES]  # record_list.csv order
    assert list(rs.table["patient_id"]) == [str(s.subject_id) for s in STUDIES]
    assert set(rs.table["fs"]) == {500.0} and set(rs.table["n_samples"]) == {5000}
    assert {tuple(leads) for leads in rs.table["leads"]} == {MIMIC_LEADS}
    assert set(rs.table["source"]) == {"MIMIC-IV-ECG"} and rs.table["age"].isna().all()
    assert set(rs.table["sex"]) == {""} and set(rs.table["fold"]) == {0}
    assert rs.table.loc["44458630", "ecg_time"] == "2180-07-24 08:51:00"
    assert rs.table.loc["40689238", "path"] == str(root / f"{study_path(10000032, 40689238)}.hea")


def test_statements_are_the_raw_labels_and_map_only_when_exact(tree: tuple[Path, dict[str, np.ndarray]]) -> None:
    rs = open_dataset(tree[0])
    row = rs.table.loc["40689238"]
    assert row["raw_labels"] == ("Sinus rhythm", "Possible left ventricular hypertrophy", "Abnormal ECG")
    assert row["label_vocab"] == "mimic_statement" and row["labels_known"]
    assert row["labels"] == ("426783006",)  # the hedged LVH is not LVH
    assert row["unmapped"] == ("Possible left ventricular hypertrophy", "Abnormal ECG")
    row = rs.table.loc["44458630"]  # upper case, an empty cell between, a final full stop
    assert row["raw_labels"] == ("ATRIAL FIBRILLATION WITH RAPID VENTRICULAR RESPONSE", "Left bundle branch block.")
    assert row["labels"] == ("164889003", "164909002") and row["unmapped"] == ()
    assert rs.table.loc["45090959", "labels"] == ("426783006",)  # a borderline PR is not a block
    assert rs.table.loc["48000000", "labels"] == ("426177001", "270492004", "39732003")


def test_a_study_without_statements_has_unknown_labels(tree: tuple[Path, dict[str, np.ndarray]]) -> None:
    rs = open_dataset(tree[0])
    unknown = rs.table[~rs.table["labels_known"]]
    assert list(unknown.index) == ["46245373", "41020040"]
    assert set(unknown["label_vocab"]) == {"none"}
    assert all(raw == () and labels == () for raw, labels in zip(unknown["raw_labels"], unknown["labels"], strict=True))
    assert rs.table["labels_known"].dtype == bool


def test_signals_read_back_as_written_in_millivolts(tree: tuple[Path, dict[str, np.ndarray]]) -> None:
    import wfdb

    root, written = tree
    rs = open_dataset(root)
    for record_id, expected in written.items():
        signal = rs.read(record_id)
        assert signal.data.shape == (12, 5000) and signal.data.dtype == np.float32
        assert signal.fs == 500.0 and signal.leads == MIMIC_LEADS
        np.testing.assert_allclose(signal.data, expected, atol=1e-6)
    header = Path(rs.table.loc["40689238", "path"])
    reference, _ = wfdb.rdsamp(str(header.with_suffix("")))
    np.testing.assert_allclose(rs.read("40689238").data, reference.T, atol=1e-6)


def test_missing_files_and_repeated_studies_are_unreadable_with_the_reason(
        tree: tuple[Path, dict[str, np.ndarray]]) -> None:
    root, _ = tree
    (root / f"{study_path(10000117, 45090959)}.dat").unlink()
    shutil.rmtree(root / study_path(12345678, 48000000).rsplit("/", 1)[0])
    listing = (root / "record_list.csv").read_text().splitlines()
    (root / "record_list.csv").write_text("\n".join([*listing, listing[1]]) + "\n")
    rs = open_dataset(root)
    reasons = {u.record: u.reason for u in rs.unreadable}
    assert set(reasons) == {"45090959", "48000000", "40689238"}
    assert "45090959.dat" in reasons["45090959"]
    assert reasons["48000000"] == f"header {study_path(12345678, 48000000)}.hea is missing"
    assert reasons["40689238"] == "study_id listed twice in record_list.csv"
    assert rs.record_ids == ["40689238", "44458630", "46245373", "41020040"]


def test_without_machine_measurements_every_record_has_unknown_labels(
        tree: tuple[Path, dict[str, np.ndarray]]) -> None:
    root, _ = tree
    (root / "machine_measurements.csv").unlink()
    rs = open_dataset(root)
    assert len(rs) == len(STUDIES) and not rs.table["labels_known"].any()
    assert set(rs.table["label_vocab"]) == {"none"}


def test_detection_needs_record_list_columns_and_the_files_folder(
        tree: tuple[Path, dict[str, np.ndarray]], tmp_path: Path) -> None:
    root, _ = tree
    bare = tmp_path / "no-files-folder"
    bare.mkdir()
    shutil.copy(root / "record_list.csv", bare / "record_list.csv")
    with pytest.raises(EcgcoreError, match="no dataset found"):
        detect_layout(bare)
    (root / "record_list.csv").write_text("subject_id,file_name\n1,2\n")
    assert detect_layout(root) == "wfdb_folder"  # the WFDB records are still a WFDB folder
    with pytest.raises(EcgcoreError, match="no column path, study_id"):
        open_dataset(root, layout="mimic_iv_ecg")


# --- the statement table ----------------------------------------------------------------


def test_every_statement_maps_to_concepts_of_the_label_space() -> None:
    produced = {code for codes in MIMIC_STATEMENT_TO_SNOMED.values() for code in codes}
    assert produced <= set(CONCEPTS), produced - set(CONCEPTS)
    assert all(key == statement_key(key) for key in MIMIC_STATEMENT_TO_SNOMED), "keys are normalised"


@pytest.mark.parametrize("statement, codes", [
    ("Sinus rhythm", ("426783006",)),
    ("SINUS RHYTHM", ("426783006",)),
    ("Sinus  rhythm.", ("426783006",)),
    ("Sinus tachycardia", ("427084000",)),
    ("Sinus arrhythmia", ("427393009",)),
    ("Sinus rhythm with PAC(s)", ("426783006", "284470004")),
    ("Sinus rhythm with PVC(s)", ("426783006", "427172004")),
    ("Sinus rhythm with 1st degree A-V block", ("426783006", "270492004")),
    ("Atrial fibrillation", ("164889003",)),
    ("Atrial flutter", ("164890007",)),
    ("Right bundle branch block", ("59118001",)),
    ("RBBB with left anterior fascicular block", ("59118001", "445118002")),
    ("Incomplete right bundle branch block", ("713426002",)),
    ("LVH with secondary repolarization abnormality", ("164873001",)),
    ("Prolonged QT interval", ("111975006",)),
    ("Ventricular pacing", ("10370003", "251266004")),
    ("Premature ventricular contractions", ("427172004",)),
])
def test_exact_statements_map(statement: str, codes: tuple[str, ...]) -> None:
    assert harmonise("mimic_statement", [statement]) == (codes, ())


@pytest.mark.parametrize("statement", [
    "Abnormal ECG", "Normal ECG", "Borderline ECG", "Possible left ventricular hypertrophy",
    "Probable atrial fibrillation", "*** Consider acute ST elevation MI ***", "Leftward axis",
    "Inferior infarct - age undetermined", "Atrial flutter/fibrillation",
    "--- Warning: Data quality may affect interpretation ---", "with borderline 1st degree A-V block",
])
def test_hedges_verdicts_and_fragments_stay_text(statement: str) -> None:
    assert harmonise("mimic_statement", [statement]) == ((), (statement,))


def test_the_catalogue_entry_is_physionet_1_0() -> None:
    entry = CATALOGUE["mimic-iv-ecg"]
    assert (entry.host, entry.project, entry.version, entry.layout) == ("physionet", "mimic-iv-ecg", "1.0",
                                                                        "mimic_iv_ecg")
    assert project_url(entry, entry.base_url, "1.0") == "https://physionet.org/files/mimic-iv-ecg/1.0"
    assert "SHA256SUMS.txt" in entry.checksums and entry.root == "" and not entry.unpack_zip
