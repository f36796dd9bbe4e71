"""The label space against the official tables: concepts, maps, tasks, overlap."""

from __future__ import annotations

import ast
import csv
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ecgcore.data.labels import (
    CODE15_TO_SNOMED,
    CONCEPTS,
    LUDB_TO_SNOMED,
    PTB_REASON_TO_SNOMED,
    SCP_TO_SNOMED,
    TASKS,
    Task,
    abbreviation,
    canonical,
    check_task_name,
    class_key,
    class_name,
    concept,
    get_task,
    harmonise,
    list_tasks,
    overlap_table,
    resolve,
    shared_task,
    task_targets,
    with_derived_labels,
)
from ecgcore.data.recordset import Recordset
from ecgcore.data.sources import open_dataset
from ecgcore.errors import EcgcoreError

PAIRS = {"713427006": "59118001", "733534002": "164909002", "284470004": "63593006", "427172004": "17338001"}


def _dx_tables(shared_data: Path) -> list[Path]:
    return sorted((shared_data / "labels").glob("challenge202*/dx_mapping_*.csv"))


def _official_rows(path: Path) -> list[tuple[str, str, str]]:
    """(code, abbreviation, name) rows of one dx_mapping table (2020 and 2021 headers differ)."""
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    return [(row[1].strip(), row[2].strip(), row[0]) for row in rows[1:] if row and row[1].strip()]


def _weights_header(path: Path) -> list[str]:
    with path.open(newline="") as handle:
        return next(csv.reader(handle))[1:]


def _ptbxl_subset(shared_data: Path) -> pd.DataFrame:
    """The PTB-XL rows of the shared subset as a Recordset-like table."""
    frame = pd.read_csv(shared_data / "labels" / "ptbxl" / "ptbxl_database_subset_for_HR_records.csv")
    scp_codes = [ast.literal_eval(text) for text in frame["scp_codes"]]
    raw = [tuple(codes) for codes in scp_codes]
    harmonised = [harmonise("scp", codes) for codes in raw]
    return pd.DataFrame(
        {
            "raw_labels": raw,
            "label_vocab": "scp",
            "labels": [labels for labels, _ in harmonised],
            "unmapped": [unmapped for _, unmapped in harmonised],
            "scp_codes": scp_codes,
        },
        index=frame["ecg_id"].astype(str),
    )


def _table(*labels: tuple[str, ...]) -> pd.DataFrame:
    """A minimal SNOMED-labelled table."""
    return pd.DataFrame(
        {
            "raw_labels": list(labels),
            "label_vocab": "snomed",
            "labels": list(labels),
            "unmapped": [()] * len(labels),
        },
        index=[f"r{i}" for i in range(len(labels))],
    )


# --- concepts ---------------------------------------------------------------------------


def test_every_challenge_code_has_the_official_abbreviation_and_name(shared_data: Path) -> None:
    tables = _dx_tables(shared_data)
    assert len(tables) == 4
    seen: set[str] = set()
    for path in tables:
        for code, abbr, name in _official_rows(path):
            assert concept(code).abbreviation == abbr, (path.name, code)
            assert concept(code).name == name, (path.name, code)
            seen.add(code)
    assert seen == set(CONCEPTS)
    assert len(seen) == 133


def test_equivalences_and_class_names() -> None:
    for first, second in PAIRS.items():
        assert canonical(second) == first
        assert canonical(first) == first
        assert class_key(second) == class_key(first) == f"{first}|{second}"
    assert canonical("164889003") == "164889003"
    assert canonical("713427006|59118001") == "713427006"
    assert class_name("164889003") == "AF — atrial fibrillation"
    assert class_name("713427006|59118001") == (
        "CRBBB|RBBB — complete right bundle branch block / right bundle branch block"
    )
    assert abbreviation("284470004|63593006") == "PAC|SVPB"
    assert class_name("999999") == "999999"
    with pytest.raises(KeyError, match="999999"):
        concept("999999")


# --- maps ---------------------------------------------------------------------------


def test_every_map_produces_only_known_concepts() -> None:
    for table in (SCP_TO_SNOMED, CODE15_TO_SNOMED, LUDB_TO_SNOMED, PTB_REASON_TO_SNOMED):
        produced = {code for codes in table.values() for code in codes}
        assert produced <= set(CONCEPTS), produced - set(CONCEPTS)


def test_scp_map_covers_every_statement_but_the_deliberate_ones(shared_data: Path) -> None:
    statements = pd.read_csv(shared_data / "labels" / "ptbxl" / "scp_statements.csv", index_col=0)
    assert len(statements) == 71
    assert set(statements.index) - set(SCP_TO_SNOMED) == {"HVOLT", "PRC(S)"}
    assert set(SCP_TO_SNOMED) <= set(statements.index)
    named = {"NORM": "426783006", "SR": "426783006", "AFIB": "164889003", "1AVB": "270492004",
             "CRBBB": "713427006", "CLBBB": "733534002", "IRBBB": "713426002", "LAFB": "445118002",
             "STACH": "427084000", "SBRAD": "426177001"}
    for scp, code in named.items():
        assert harmonise("scp", [scp]) == ((code,), ())


def test_scp_harmonisation_agrees_with_the_challenge_release_of_ptbxl(shared_data: Path) -> None:
    """HR00001-HR00010 are PTB-XL ecg_id 1-10 with the Challenge's SNOMED codes; every code
    we derive from the SCP statements is among them (the Challenge adds axis codes)."""
    table = _ptbxl_subset(shared_data)
    for ecg_id in range(1, 11):
        header = (shared_data / "ecg" / "cinc2021" / "PTB_PTBXL" / f"HR{ecg_id:05d}.hea").read_text()
        dx_line = next(line for line in header.splitlines() if line.lstrip("#").strip().startswith("Dx"))
        dx = {code.strip() for code in dx_line.split(":", 1)[1].split(",")}
        ours = set(table.loc[str(ecg_id), "labels"])
        assert ours and ours <= dx, (ecg_id, ours, dx)


def test_challenge_headers_harmonise_completely(shared_data: Path) -> None:
    headers = sorted((shared_data / "ecg" / "cinc2021").glob("*/*.hea"))
    assert len(headers) > 50
    for path in headers:
        lines = [line.lstrip("#").strip() for line in path.read_text().splitlines() if line.startswith("#")]
        dx = next(line.split(":", 1)[1] for line in lines if line.startswith("Dx"))
        labels, unmapped = harmonise("snomed", dx.split(","))
        assert labels and unmapped == (), path.name


def test_code15_and_ptb_maps() -> None:
    expected = {"1dAVb": "270492004", "RBBB": "59118001", "LBBB": "164909002",
                "SB": "426177001", "AF": "164889003", "ST": "427084000"}
    for name, code in expected.items():
        assert harmonise("code15", [name]) == ((code,), ())
    assert harmonise("code15", ["1davb", "st"]) == (("270492004", "427084000"), ())
    assert harmonise("ptb_reason", ["Healthy control"]) == (("426783006",), ())
    assert harmonise("ptb_reason", ["Myocardial infarction"]) == (("164865005",), ())
    assert harmonise("ptb_reason", ["Cardiomyopathy"]) == ((), ("Cardiomyopathy",))


def _ludb_diagnoses(path: Path) -> list[str]:
    after = path.read_text().split("<diagnoses>:", 1)[1]
    return [line.lstrip("#").strip() for line in after.splitlines() if line.strip()]


LUDB_UNMAPPED = {
    "Electric axis of the heart: normal.", "Electric axis of the heart: vertical.",
    "Electric axis of the heart: horizontal.", "Aberrant conduction.",
}


def test_ludb_headers_and_csv(shared_data: Path) -> None:
    headers = sorted((shared_data / "ecg" / "ludb" / "data").glob("*.hea"))
    assert len(headers) == 200
    unmapped_seen: set[str] = set()
    for path in headers:
        raw = _ludb_diagnoses(path)
        labels, unmapped = harmonise("ludb_text", raw)
        assert labels, path.name
        unmapped_seen |= set(unmapped)
    assert unmapped_seen == LUDB_UNMAPPED
    first = harmonise("ludb_text", _ludb_diagnoses(headers[0]))
    assert headers[0].name == "1.hea"
    assert set(first[0]) >= {"426177001", "39732003", "164873001"}  # SB, LAD, LVH
    ludb = pd.read_csv(shared_data / "ecg" / "ludb" / "ludb.csv")
    texts = [part for column in ludb.columns[3:] for cell in ludb[column].dropna() for part in str(cell).split("\n")]
    _, unmapped = harmonise("ludb_text", texts)
    assert {text.rstrip(".") for text in unmapped} == {text.rstrip(".") for text in LUDB_UNMAPPED} | {
        "Pacemaker presence, undefined"}
    assert harmonise("ludb_text", ["Incomplete right bundle branch block"]) == (("713426002",), ())


def test_unknown_labels_are_kept_as_unmapped() -> None:
    assert harmonise("snomed", ["426783006", " 999999 ", "", "426783006"]) == (("426783006",), ("999999",))
    assert harmonise("scp", ["NORM", "NOTACODE", "HVOLT"]) == (("426783006",), ("NOTACODE", "HVOLT"))
    assert harmonise("code15", ["normal_ecg", "weird"]) == (("426783006",), ("weird",))
    assert harmonise("none", ["anything"]) == ((), ("anything",))
    assert harmonise("none", []) == ((), ())
    with pytest.raises(ValueError, match="unknown label vocabulary"):
        harmonise("icd10", ["I48"])


# --- tasks ---------------------------------------------------------------------------


def test_registry_lists_and_rejects() -> None:
    names = set(list_tasks())
    assert {"ptbxl_all", "ptbxl_diagnostic", "ptbxl_subdiagnostic", "ptbxl_superdiagnostic",
            "ptbxl_form", "ptbxl_rhythm", "challenge2021_scored", "challenge2020_scored",
            "nguyen_cpsc2018", "nguyen_georgia", "nguyen_ptb", "code15"} <= names
    with pytest.raises(KeyError, match="unknown task"):
        get_task("nope")
    with pytest.raises(ValueError, match="scp_statements"):
        get_task("ptbxl_all")
    shared = get_task("code15")
    assert hash(shared) == hash(get_task("code15"))
    with pytest.raises(TypeError):
        shared.mapping["164889003"] = ("59118001",)  # type: ignore[index]
    with pytest.raises(ValueError, match="unknown classes"):
        Task("bad", ("a",), "snomed", {"x": ("b",)}, "mapping to a class that is not there")


def test_challenge2021_scored_classes_in_official_order(shared_data: Path) -> None:
    folder = shared_data / "labels" / "challenge2021"
    task = get_task("challenge2021_scored")
    assert task.classes == tuple(_weights_header(folder / "weights.csv"))
    assert task.class_labels == tuple(_weights_header(folder / "weights_abbreviations.csv"))
    scored = {code for code, _, _ in _official_rows(folder / "dx_mapping_scored.csv")}
    assert len(scored) == 30 and set(task.mapping) == scored
    assert len(task.classes) == 26


def test_challenge2020_scored_classes(shared_data: Path) -> None:
    folder = shared_data / "labels" / "challenge2020"
    header = _weights_header(folder / "weights.csv")
    assert len(header) == 27
    expected = [f"{code}|{PAIRS[code]}" if code in PAIRS and PAIRS[code] in header else code
                for code in header if code not in PAIRS.values() or code == "164909002"]
    task = get_task("challenge2020_scored")
    assert list(task.classes) == expected
    assert len(task.classes) == 24
    assert set(task.mapping) == set(header) | {"733534002"}
    assert set(header) == {code for code, _, _ in _official_rows(folder / "dx_mapping_scored.csv")}


def _expected_ptbxl_sets(statements: pd.DataFrame, scp_codes: list[dict], task: str) -> list[set[str]]:
    """The benchmark aggregation, written independently with plain pandas lookups."""
    diag = statements[statements["diagnostic"] == 1]
    column = {"all": None, "diagnostic": None, "form": None, "rhythm": None,
              "subdiagnostic": "diagnostic_subclass", "superdiagnostic": "diagnostic_class"}[task]
    pool = {"all": statements, "form": statements[statements["form"] == 1],
            "rhythm": statements[statements["rhythm"] == 1]}.get(task, diag)
    return [
        {code if column is None else pool.loc[code, column] for code in codes if code in pool.index}
        for codes in scp_codes
    ]


@pytest.mark.parametrize(
    ("kind", "size"),
    [("all", 71), ("diagnostic", 44), ("subdiagnostic", 23), ("superdiagnostic", 5), ("form", 19), ("rhythm", 12)],
)
def test_ptbxl_tasks_match_scp_statements(shared_data: Path, kind: str, size: int) -> None:
    path = shared_data / "labels" / "ptbxl" / "scp_statements.csv"
    statements = pd.read_csv(path, index_col=0)
    task = get_task(f"ptbxl_{kind}", path)
    assert len(task.classes) == size
    assert list(task.classes) == sorted(task.classes)
    table = _ptbxl_subset(shared_data)
    targets, keep = task_targets(table, task)
    assert targets.shape == (20, size) and targets.dtype == np.uint8
    expected = _expected_ptbxl_sets(statements, list(table["scp_codes"]), kind)
    got = [{task.classes[j] for j in np.flatnonzero(row)} for row in targets]
    assert got == expected
    assert keep.tolist() == [bool(classes) for classes in expected]


def test_ptbxl_superdiagnostic_on_known_records(shared_data: Path) -> None:
    path = shared_data / "labels" / "ptbxl"
    table = _ptbxl_subset(shared_data)
    task = get_task("ptbxl_superdiagnostic", path)
    assert task.classes == ("CD", "HYP", "MI", "NORM", "STTC")
    targets, keep = task_targets(table, task)
    assert targets[table.index.get_loc("8")].tolist() == [0, 0, 1, 0, 0]  # IMI (35%) counts
    rhythm_targets, rhythm_keep = task_targets(table, get_task("ptbxl_rhythm", path))
    assert rhythm_keep.all()
    nguyen = get_task("nguyen_ptbxl", path)
    assert nguyen.classes == ("NORM", "MI", "STTC", "HYP", "CD")
    assert task_targets(table, nguyen)[0][:, 0].tolist() == targets[:, 3].tolist()


def test_snomed_tasks_and_keep_rules() -> None:
    table = _table(("713427006", "426783006"), ("59118001",), ("164884008",), ())
    challenge, keep = task_targets(table, get_task("challenge2021_scored"))
    rbbb = get_task("challenge2021_scored").classes.index("713427006|59118001")
    assert challenge[:, rbbb].tolist() == [1, 1, 0, 0]
    assert keep.tolist() == [True, True, True, False]  # no label at all is dropped
    cpsc, keep = task_targets(table, get_task("nguyen_cpsc2018"))  # exact codes only
    assert cpsc[:, 4].tolist() == [0, 1, 0, 0] and cpsc[:, 6].tolist() == [0, 0, 1, 0]
    code15, keep = task_targets(table, get_task("code15"))  # equivalents count, all records kept
    assert code15[:, 1].tolist() == [1, 1, 0, 0] and keep.all()
    ptb = _table(("426783006",), ("164865005",), ())
    ptb.loc["r2", "unmapped"] = ("Cardiomyopathy",)
    ptb.loc["r2", "raw_labels"] = ("Cardiomyopathy",)
    targets, keep = task_targets(ptb, get_task("nguyen_ptb"))
    assert targets.tolist() == [[1, 0], [0, 1], [0, 0]] and keep.all()


# --- overlap ---------------------------------------------------------------------------


def test_overlap_table_and_shared_task() -> None:
    table_a = _table(("59118001", "426783006"), ("426783006",), ("164889003",), ("426783006", "63593006"))
    table_b = _table(("713427006",), ("426783006",), ("270492004",), ("713427006", "284470004"))
    frame = overlap_table(table_a, table_b)
    assert list(frame.columns) == ["code", "abbreviation", "name", "count_a", "count_b", "shared"]
    rows = {row.code: (row.count_a, row.count_b, row.shared) for row in frame.itertuples()}
    assert rows == {
        "426783006": (3, 1, True),
        "713427006|59118001": (1, 2, True),
        "284470004|63593006": (1, 1, True),
        "164889003": (1, 0, False),
        "270492004": (0, 1, False),
    }
    assert frame["code"].iloc[0] == "426783006"
    assert (frame["count_a"] + frame["count_b"]).is_monotonic_decreasing
    assert frame.set_index("code").loc["713427006|59118001", "abbreviation"] == "CRBBB|RBBB"
    task = shared_task(table_a, table_b)
    assert task.classes == ("284470004|63593006", "426783006", "713427006|59118001")
    assert set(task.classes) == set(frame.loc[frame["shared"], "code"])
    targets, keep = task_targets(table_b, task)
    assert targets.tolist() == [[0, 0, 1], [0, 1, 0], [0, 0, 0], [1, 0, 1]]
    assert keep.all()
    with pytest.raises(ValueError, match="share no"):
        shared_task(_table(("164889003",)), _table(("270492004",)))


# ----------------------------------------------------------------------------- resolve

LUDB_CLASSES = (  # the 20 SNOMED classes of LUDB with >= 10 records (its dataset_labels)
    "10370003", "164861001", "164865005", "164867002", "164873001", "164889003", "251266004",
    "253339007", "253352002", "270492004", "370365005", "39732003", "425419005", "426177001",
    "426783006", "427393009", "428750005", "445118002", "446813000", "713426002",
)
LUDB_CPSC_SHARED = ("164861001", "164865005", "164867002", "164889003", "426783006", "427084000",
                    "427172004|17338001", "428750005", "713427006|59118001")


def test_resolve_names_every_task_on_real_records(shared_data: Path, tmp_path: Path) -> None:
    """One way from a task name to a Task: the dataset's own label sets, the shared
    classes, listed codes, and the registry's tasks, PTB-XL's from the statements table
    the PTB-XL reader puts in its Recordset (no other layout has one)."""
    ludb = open_dataset(shared_data / "ecg" / "ludb")
    cpsc = open_dataset(shared_data / "ecg" / "cinc2021" / "CPSC_CPSC-Extra")
    own = resolve("dataset_labels", ludb)
    assert (own.name, own.classes, own.description) == (
        "ludb_labels", LUDB_CLASSES, "20 classes of ludb with >= 10 records")
    assert own.class_labels[:3] == ("PR", "MIs", "MI")
    assert resolve("dataset_labels", cpsc, min_positives=3).classes == (
        "164867002", "164889003", "428750005", "713427006|59118001")
    shared = resolve("shared", ludb, cpsc)
    assert (shared.name, shared.classes) == ("shared_ludb_CPSC_CPSC-Extra", LUDB_CPSC_SHARED)
    assert shared == shared_task(ludb.table, cpsc.table, name="shared_ludb_CPSC_CPSC-Extra")
    assert resolve("snomed:164889003", ludb).classes == ("164889003",)
    code_test = resolve("nguyen_code_test", ludb)
    assert code_test.class_labels == ("NORM", "1dAVb", "RBBB", "LBBB", "SB", "AF", "ST")
    assert code_test.keep == "all"

    ptbxl = tmp_path / "ptbxl"  # the CSVs alone: every record is unreadable, the statements are read
    ptbxl.mkdir()
    labels = shared_data / "labels" / "ptbxl"
    shutil.copy(labels / "ptbxl_database_subset_for_HR_records.csv", ptbxl / "ptbxl_database.csv")
    shutil.copy(labels / "scp_statements.csv", ptbxl / "scp_statements.csv")
    ptbxl_set = open_dataset(ptbxl)
    for name in TASKS:
        expected = get_task(name, labels / "scp_statements.csv")
        assert resolve(name, ptbxl_set) == expected and resolve(name, ptbxl_set).mapping == expected.mapping
        if not TASKS[name].needs_scp_statements:
            assert resolve(name, ludb) == expected
            continue
        with pytest.raises(EcgcoreError, match=f"ludb: task '{name}'.*scp_statements.csv"):
            resolve(name, ludb)


def test_resolve_and_check_task_name_refuse_the_same_names(shared_data: Path) -> None:
    ludb = open_dataset(shared_data / "ecg" / "ludb")
    with pytest.raises(EcgcoreError, match="^unknown task 'nope'; known: ptbxl_all,"):
        resolve("nope", ludb)
    with pytest.raises(EcgcoreError, match="unknown task 'nope'; known: dataset_labels, shared, snomed:CODES"):
        check_task_name("nope")
    for bad in ("snomed:AFIB", "snomed:"):
        with pytest.raises(EcgcoreError, match="expected snomed: followed by"):
            resolve(bad, ludb)
        with pytest.raises(EcgcoreError, match="expected snomed: followed by"):
            check_task_name(bad)
    with pytest.raises(EcgcoreError, match="needs the other dataset"):
        resolve("shared", ludb)
    with pytest.raises(EcgcoreError, match="no SNOMED class has 1000 or more"):
        resolve("dataset_labels", ludb, min_positives=1000)
    for name in (*TASKS, "dataset_labels", "shared", "nguyen_code_test", "snomed:164889003|426783006"):
        check_task_name(name)


def test_nguyen_code_test_derives_normal_from_none_of_the_six() -> None:
    table = pd.DataFrame({"labels": [("164889003",), (), ("10370003",)], "raw_labels": [(), (), ()],
                          "unmapped": [(), (), ()], "label_vocab": ["code15"] * 3},
                         index=pd.Index(["a", "b", "c"], name="record_id"))
    derived = with_derived_labels("nguyen_code_test", Recordset("t", "test", Path("."), table, None))
    assert list(derived.table["labels"]) == [("164889003",), ("426783006",), ("10370003", "426783006")]
    targets, keep = task_targets(derived.table, resolve("nguyen_code_test", derived))
    assert keep.all() and targets[:, 0].tolist() == [0, 1, 1]
    assert with_derived_labels("dataset_labels", derived) is derived
