"""Records whose labels are unknown (`labels_known` False): every supervised task drops
them with the reason "labels unknown" and keeps what it kept before; the task
"unlabelled" (zero classes) keeps every readable record for self-supervised pretraining."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mimic_iv_ecg_tree import Study, write_mimic_tree

from ecgcore.data.labels import (
    UNLABELLED,
    Task,
    check_task_name,
    get_task,
    resolve,
    snomed_task,
    task_targets,
    unlabelled_task,
    with_derived_labels,
)
from ecgcore.data.pipeline import SplitConfig, build_dataset
from ecgcore.data.prepare import PrepConfig
from ecgcore.data.recordset import LABELS_UNKNOWN_REASON, Recordset, labels_known
from ecgcore.data.sources import open_dataset

PREP = PrepConfig(fs=100, seconds=10)
NSR, AF = "426783006", "164889003"


def _table(known: list[bool], labels: list[tuple[str, ...]]) -> pd.DataFrame:
    return pd.DataFrame({"labels": labels, "raw_labels": labels, "unmapped": [()] * len(labels),
                         "label_vocab": ["snomed"] * len(labels), "labels_known": known},
                        index=[f"r{i}" for i in range(len(labels))])


TABLE = _table([True, True, False, False], [(NSR,), (), (), (AF,)])


def test_labels_known_reads_the_column_and_defaults_to_known() -> None:
    assert labels_known(TABLE).tolist() == [True, True, False, False]
    assert labels_known(TABLE.drop(columns="labels_known")).tolist() == [True] * 4


@pytest.mark.parametrize("task", [
    snomed_task("nsr_af", (NSR, AF), "", keep="any_label"),
    snomed_task("nsr_af_class", (NSR, AF), "", keep="any_class"),
    snomed_task("nsr_af_all", (NSR, AF), "", keep="all"),
    get_task("code15"),
    resolve("nguyen_code_test", recordset=None),  # type: ignore[arg-type]
])
def test_every_supervised_keep_rule_drops_unknown_labels(task: Task) -> None:
    _, keep = task_targets(TABLE, task)
    assert not keep[2:].any(), "records of unknown labels are never labelled records"
    _, keep_without_flag = task_targets(TABLE.drop(columns="labels_known"), task)
    assert (keep == keep_without_flag & labels_known(TABLE)).all(), "known records as before"


def test_the_unlabelled_task_keeps_every_record_with_no_class() -> None:
    task = unlabelled_task()
    targets, keep = task_targets(TABLE, task)
    assert targets.shape == (4, 0) and keep.all()
    assert (task.name, task.classes, task.labelled_only) == (UNLABELLED, (), False)
    check_task_name(UNLABELLED)  # an experiment may name it
    assert resolve(UNLABELLED, recordset=None).classes == ()  # type: ignore[arg-type]


def test_a_task_that_keeps_unknown_labels_cannot_have_classes() -> None:
    with pytest.raises(ValueError, match="cannot have classes"):
        Task("bad", (NSR,), "snomed", {NSR: (NSR,)}, "", keep="all", labelled_only=False)


def test_derived_normal_labels_skip_unknown_records() -> None:
    table = _table([True, False], [(), ()])
    derived = with_derived_labels("nguyen_code_test", Recordset("t", "test", Path("."), table, None)).table
    assert derived["labels"].tolist() == [(NSR,), ()]


# --- SPH: the .h5 without a metadata row (SPH00005) ------------------------------------


def test_sph_supervised_dataset_is_what_it_was_and_says_why_sph00005_left(
        shared_data: Path, tmp_path: Path) -> None:
    rs = open_dataset(shared_data / "ecg" / "cinc2021" / "SPH")
    assert not rs.table.loc["SPH00005", "labels_known"]
    data = build_dataset(rs, f"snomed:{NSR}", PREP, SplitConfig(method="patient", seed=0), tmp_path, n_jobs=1)
    assert data.dropped == {"SPH00005": LABELS_UNKNOWN_REASON}
    assert data.dropped_counts() == {"labels unknown": 1}
    before = dataclasses.replace(rs, table=rs.table[rs.table["labels_known"]])  # the reader's old table
    old = build_dataset(before, f"snomed:{NSR}", PREP, SplitConfig(method="patient", seed=0), tmp_path, n_jobs=1)
    assert data.record_ids == old.record_ids and data.cache_path == old.cache_path
    np.testing.assert_array_equal(data.y, old.y)
    assert data.split.sizes() == old.split.sizes()


def test_sph_unlabelled_dataset_has_every_record(shared_data: Path, tmp_path: Path) -> None:
    data = build_dataset(shared_data / "ecg" / "cinc2021" / "SPH", UNLABELLED, PREP,
                         SplitConfig(method="patient", seed=0), tmp_path, n_jobs=1)
    assert len(data) == 10 and "SPH00005" in data.record_ids and data.dropped == {}
    assert data.y.shape == (10, 0) and data.classes == ()
    assert sum(data.split.sizes().values()) == 10


# --- MIMIC-IV-ECG: studies without machine statements ------------------------------------


def test_mimic_supervised_and_unlabelled_datasets(tmp_path: Path) -> None:
    root = tmp_path / "mimic"
    write_mimic_tree(root, [
        Study(10000032, 40689238, ("Sinus rhythm",)),
        Study(10000032, 44458630, ("Atrial fibrillation",)),
        Study(10000117, 45090959, ("Abnormal ECG",)),  # a label, none of the task's classes
        Study(10002221, 46245373, None),
        Study(10002221, 41020040, ()),
    ])
    supervised = build_dataset(root, f"snomed:{NSR},{AF}", PREP, SplitConfig(method="patient", seed=0),
                               tmp_path / "cache", n_jobs=1)
    assert supervised.record_ids == ["40689238", "44458630", "45090959"]
    assert supervised.dropped == {"46245373": LABELS_UNKNOWN_REASON, "41020040": LABELS_UNKNOWN_REASON}
    assert supervised.y.tolist() == [[1, 0], [0, 1], [0, 0]]
    unlabelled = build_dataset(root, UNLABELLED, PREP, SplitConfig(method="patient", seed=0),
                               tmp_path / "cache", n_jobs=1)
    assert unlabelled.record_ids == ["40689238", "44458630", "45090959", "46245373", "41020040"]
    assert unlabelled.dropped == {} and unlabelled.y.shape == (5, 0)
    assert unlabelled.X.shape == (5, 12, 1000) and np.isfinite(unlabelled.X).all()
    patients = unlabelled.patients
    for part in (unlabelled.split.train, unlabelled.split.val, unlabelled.split.test):
        others = np.setdiff1d(np.arange(5), part)
        assert not set(patients[part]) & set(patients[others]), "patients stay on one side"
