"""Challenge 2020/2021 reader on the real records, plus the any-WFDB-folder reader."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import wfdb

from ecgcore.data import wfdbio
from ecgcore.data.sources import detect_layout, open_dataset
from ecgcore.data.sources.challenge import SOURCES, source_of
from ecgcore.errors import EcgcoreError

LEADS12 = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
EXPECTED_SOURCES = {"CPSC2018": 10, "CPSC-Extra": 10, "Chapman-Shaoxing/Ningbo": 20,
                    "Georgia": 10, "PTB-XL": 10, "PTB": 10}


@pytest.fixture(scope="module")
def cinc(shared_data: Path):
    return open_dataset(shared_data / "ecg" / "cinc2021")


def test_detects_challenge_layout(shared_data: Path) -> None:
    cinc = shared_data / "ecg" / "cinc2021"
    assert detect_layout(cinc) == "challenge"
    for sub in ("CPSC_CPSC-Extra", "G12EC", "PTB_PTBXL", "INCART_headers_only"):
        assert detect_layout(cinc / sub) == "challenge"
    assert detect_layout(shared_data / "ecg" / "ludb") != "challenge"  # no #Dx: lines


def test_every_challenge_record_loads_with_header_metadata(cinc) -> None:
    assert cinc.layout == "challenge"
    assert len(cinc) == 70
    assert cinc.table["source"].value_counts().to_dict() == EXPECTED_SOURCES
    for record_id, row in cinc.table.iterrows():
        ref = wfdb.rdheader(str(Path(row["path"]).with_suffix("")))
        assert row["fs"] == ref.fs and row["n_samples"] == ref.sig_len
        assert list(row["leads"]) == ref.sig_name == list(LEADS12)
        dx = next(c for c in ref.comments if c.replace(" ", "").startswith("Dx:"))
        assert row["raw_labels"] == tuple(dx.split(":", 1)[1].strip().split(","))
        assert row["label_vocab"] == "snomed" and row["patient_id"] == "" and row["fold"] == 0
        assert set(row["labels"]) | set(row["unmapped"]) == set(row["raw_labels"])
        signal = cinc.read(record_id)
        assert signal.data.shape == (12, row["n_samples"]) and signal.fs == row["fs"]
        assert signal.leads == row["leads"] and np.isfinite(signal.data).all()
        assert cinc.files(record_id) == [Path(row["path"]), Path(row["path"]).with_suffix(".mat")]


def test_demographics_and_rates(cinc) -> None:
    table = cinc.table
    assert table.loc["A0001", "age"] == 74.0 and table.loc["A0001", "sex"] == "M"
    assert table.loc["S0001", "sex"] == "F" and table.loc["S0001", "raw_labels"] == ("251146004", "426783006")
    assert math.isnan(table.loc["E00001", "age"])  # "#Age: NaN"
    assert set(table["sex"]) <= {"M", "F", ""}
    ptb = table[table["source"] == "PTB"]
    assert (ptb["fs"] == 1000.0).all() and (ptb["n_samples"] >= 38000).all()
    assert (table[table["source"] != "PTB"]["fs"] == 500.0).all()


def test_headers_only_records_are_unreadable_and_the_rest_loads(cinc, shared_data: Path) -> None:
    assert len(cinc.unreadable) == 10
    assert all(u.record.startswith("I") and u.reason == f"signal file {u.record}.mat is missing"
               for u in cinc.unreadable)
    only = open_dataset(shared_data / "ecg" / "cinc2021" / "INCART_headers_only")
    assert len(only) == 0 and len(only.unreadable) == 10


def test_source_table() -> None:
    assert {source_of(n) for n in ("A0001", "Q0012", "I0016", "S0001", "HR00001", "E00001",
                                   "JS45542")} == set(SOURCES.values())
    assert source_of("HR00001") == "PTB-XL" and source_of("S0001") == "PTB"
    assert source_of("B0001", default="site_b") == "site_b" and source_of("0001") == ""


def test_recursive_mixed_tree_and_dx_spellings(tmp_path: Path, shared_data: Path) -> None:
    cinc = shared_data / "ecg" / "cinc2021"
    picks = {"a/deep/er": ("CPSC_CPSC-Extra", "A0002"), "b": ("PTB_PTBXL", "S0002"),
             "c": ("ChapmanShaoxing_Ningbo", "JS00001"), ".": ("G12EC", "E00002")}
    for sub, (folder, name) in picks.items():
        (tmp_path / sub).mkdir(parents=True, exist_ok=True)
        for ext in (".hea", ".mat"):
            shutil.copy(cinc / folder / f"{name}{ext}", tmp_path / sub / f"{name}{ext}")
    spaced = tmp_path / "b" / "S0002.hea"
    spaced.write_text(spaced.read_text().replace("#Dx:", "# Dx:").replace("#Age:", "# Age:"))
    rs = open_dataset(tmp_path)
    assert rs.layout == "challenge" and rs.unreadable == []
    assert sorted(rs.record_ids) == ["A0002", "E00002", "JS00001", "S0002"]
    assert rs.table.loc["S0002", "raw_labels"] and rs.table.loc["S0002", "age"] > 0
    assert rs.table.loc["S0002", "source"] == "PTB" and rs.table.loc["JS00001", "fs"] == 500.0
    assert rs.read("A0002").data.shape == (12, rs.table.loc["A0002", "n_samples"])


# ------------------------------------------------------------------ any WFDB folder

def _write(folder: Path, name: str, comments: list[str] = (), n_leads: int = 12) -> None:
    data = np.random.default_rng(len(name)).standard_normal((n_leads, 1000)) * 0.2
    wfdbio.write_record(folder, name, data, 500, LEADS12[:n_leads], list(comments))


def test_wfdb_folder_with_labels_csv(tmp_path: Path) -> None:
    _write(tmp_path, "p001")
    _write(tmp_path / "ward2", "p002", n_leads=3)
    _write(tmp_path / "ward2", "p003", ["Dx: 164889003", "Age: 61", "Sex: F"])
    _write(tmp_path / "ward3", "p001")  # same name in two folders: ids become relative paths
    (tmp_path / "labels.csv").write_text(
        "record,codes\n"
        'ward3/p001.hea,"426783006, 164889003"\n'
        "p002,164934002;my own finding\n"
        "p001,270492004\n"
        "p999,426783006\n", encoding="utf-8")
    assert detect_layout(tmp_path) == "wfdb_folder"
    rs = open_dataset(tmp_path)
    assert rs.layout == "wfdb_folder"
    assert sorted(rs.record_ids) == ["p001", "p002", "p003", "ward3/p001"]
    table = rs.table
    assert table.loc["ward3/p001", "labels"] == ("426783006", "164889003")
    assert table.loc["p002", "labels"] == ("164934002",)
    assert table.loc["p002", "unmapped"] == ("my own finding",)
    assert table.loc["p002", "leads"] == ("I", "II", "III")
    assert table.loc["p003", "raw_labels"] == ("164889003",)  # from the #Dx: comment
    assert table.loc["p003", "age"] == 61.0 and table.loc["p003", "sex"] == "F"
    assert set(table["source"]) == {tmp_path.name}
    assert [(u.record, "listed in labels.csv but no such record" in u.reason) for u in rs.unreadable] \
        == [("p999", True)]
    assert rs.read("ward3/p001").data.shape == (12, 1000)


def test_wfdb_folder_rejects_malformed_labels_csv(tmp_path: Path) -> None:
    _write(tmp_path, "r1")
    (tmp_path / "labels.csv").write_text("name,diagnosis\nr1,AF\n", encoding="utf-8")
    with pytest.raises(EcgcoreError, match="labels file needs the columns 'record' and 'codes'"):
        open_dataset(tmp_path)


def test_wfdb_folder_reads_ludb_like_any_folder(shared_data: Path) -> None:
    rs = open_dataset(shared_data / "ecg" / "ludb", layout="wfdb_folder")
    assert len(rs) == 200 and rs.unreadable == []
    assert (rs.table["fs"] == 500.0).all() and (rs.table["n_samples"] == 5000).all()
    assert rs.table.loc["1", "age"] == 51.0 and rs.table.loc["1", "sex"] == "F"
    assert rs.read("200").data.shape == (12, 5000)


def test_registry_lists_every_reader_in_detection_order() -> None:
    """The readers are listed by hand (no self-registration): every reader class of the
    package is in the list, most specific layout first, any WFDB folder last."""
    import importlib
    import pkgutil

    import ecgcore.data.sources as sources
    from ecgcore.data.sources.base import DatasetSource
    from ecgcore.data.sources.registry import LAYOUTS, READERS

    classes = {cls for info in pkgutil.iter_modules(sources.__path__)
               for cls in vars(importlib.import_module(f"{sources.__name__}.{info.name}")).values()
               if isinstance(cls, type) and issubclass(cls, DatasetSource) and hasattr(cls, "layout")}
    assert classes == set(READERS)
    assert list(LAYOUTS) == ["ptbxl", "code15", "code_test", "sph", "mimic_iv_ecg", "ludb", "ptb", "challenge",
                             "wfdb_folder"]
