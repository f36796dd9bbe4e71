"""Nguyen & Do's record counts, from the presets' own paper-exact split settings.

The split needs only the rows that reach it and their labels, so each dataset is a
generated metadata table with the published record count (and, where the paper drops
records for want of a label, those records too, so the task's keep rule is exercised):
the split the preset plans must give exactly the published train/test sizes. A real
slice (the CPSC2018 records in ../shared/data) then goes through the paper-exact
preprocessing the preset asks for.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ecgcore.data.labels import get_task
from ecgcore.data.labels.named_tasks import task_targets
from ecgcore.data.pipeline import SplitConfig, build_dataset, make_split
from ecgcore.data.prepare import PrepConfig
from ecgcore.data.labels import Task
from ecgcore.data.recordset import Recordset
from ecgcore.experiments import plan_experiment
from ecgcore.data.labels.task_names import CODE_TEST_ABNORMAL, resolve, with_derived_labels

ROOT = Path(__file__).resolve().parents[1]
GRID = ROOT / "experiments" / "nguyen2025_grid.toml"
SWEEP = ROOT / "experiments" / "nguyen2025_size_sweep.toml"

# dataset key -> (records reaching the split, train, test), docs/references.md "Nguyen & Do 2025"
PUBLISHED = {"cpsc2018": (6871, 4603, 2268), "georgia": (10292, 6895, 3397),
             "ptb": (522, 349, 173), "code_test": (827, 554, 273)}
TASKS = {"cpsc2018": "nguyen_cpsc2018", "georgia": "nguyen_georgia", "ptb": "nguyen_ptb",
         "code_test": "nguyen_code_test"}
# CPSC train prevalences (paper code order) and Georgia counts: realistic label mixes
CPSC_PREVALENCE = [0.1336, 0.1775, 0.1051, 0.0343, 0.2703, 0.0895, 0.1015, 0.1262, 0.0319]


@pytest.fixture(scope="module")
def planned(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str, str], dict]:
    """(file, protocol, target dataset) -> the run config the preset plans (no data needed)."""
    import os

    home = tmp_path_factory.mktemp("home")
    old = os.environ.get("ECGCORE_HOME")
    os.environ["ECGCORE_HOME"] = str(home)
    try:
        out = {}
        for path in (GRID, SWEEP):
            for spec in plan_experiment(path, strict=False):
                if spec.kind == "target":
                    c = spec.config
                    out.setdefault((path.stem, c["protocol"], c["data"]["dataset"]), c)
        return out
    finally:
        if old is None:
            os.environ.pop("ECGCORE_HOME")
        else:
            os.environ["ECGCORE_HOME"] = old


def table_of(n: int, labels: list[tuple[str, ...]], vocab: str = "snomed") -> pd.DataFrame:
    """A metadata table of n records (one patient each, as the Challenge headers say)."""
    return pd.DataFrame({
        "patient_id": [""] * n, "fold": [0] * n, "labels": labels, "raw_labels": labels,
        "unmapped": [()] * n, "label_vocab": [vocab] * n,
    }, index=pd.Index([f"R{i:05d}" for i in range(n)], name="record_id"))


def task_of(key: str) -> Task:
    """The paper's task: a registry task, or nguyen_code_test (which reads no recordset)."""
    if TASKS[key] == "nguyen_code_test":
        return resolve(TASKS[key], recordset=None)  # type: ignore[arg-type]
    return get_task(TASKS[key])


def generated_labels(key: str, n: int, rng: np.random.Generator) -> list[tuple[str, ...]]:
    codes = [k.split("|")[0] for k in task_of(key).classes]
    if key == "cpsc2018":  # one diagnosis each, drawn at the published prevalences
        p = np.asarray(CPSC_PREVALENCE) / sum(CPSC_PREVALENCE)
        return [(codes[i],) for i in rng.choice(len(codes), size=n, p=p)]
    if key == "ptb":  # 522 with a reason for admission (NORM, MI or another), 27 without
        picks = rng.choice(3, size=n, p=[0.17, 0.69, 0.14])
        return [(("426783006",), ("164865005",), ("233917008",))[i] for i in picks]
    if key == "code_test":  # the six abnormalities as the reader gives them; 82 % have none
        return [tuple(c for c in CODE_TEST_ABNORMAL if rng.random() < 0.04) for _ in range(n)]
    # Georgia: any subset of the classes
    return [tuple(c for c in codes if rng.random() < 0.12) or ("164889003",) for _ in range(n)]


@pytest.mark.parametrize("key", sorted(PUBLISHED))
def test_paper_exact_split_gives_the_published_sizes(planned: dict, key: str) -> None:
    n_kept, n_train, n_test = PUBLISHED[key]
    config = planned[("nguyen2025_grid", "paper_exact", key)]
    split_config = SplitConfig.from_dict(config["split"])
    assert (split_config.method, split_config.test, split_config.seed) == ("paper", 0.33, 1)
    assert split_config.stratify is (key == "cpsc2018"), "the paper stratifies CPSC only"

    rng = np.random.default_rng(7)
    n_rows = n_kept + (27 if key == "ptb" else 0)  # PTB: 549 records, 27 without a reason
    labels = generated_labels(key, n_rows, rng)
    if key == "ptb":
        labels[-27:] = [()] * 27
    table = table_of(n_rows, labels)
    table = with_derived_labels(TASKS[key], Recordset(key, "test", Path("."), table, None, [])).table
    y, keep = task_targets(table, task_of(key))
    assert int(keep.sum()) == n_kept
    if key == "code_test":  # NORM is exactly "none of the six"
        assert np.array_equal(y[:, 0] == 1, y[:, 1:].sum(axis=1) == 0)
    split = make_split(split_config, table[keep], y[keep])
    assert split.sizes() == {"train": n_train, "val": 0, "test": n_test}
    assert "patients may leak" in split.notes


def test_ours_splits_have_a_validation_set_and_no_shared_patient(planned: dict) -> None:
    for key in ("cpsc2018", "ptb"):
        config = SplitConfig.from_dict(planned[("nguyen2025_grid", "ours", key)]["split"])
        n = PUBLISHED[key][0]
        rng = np.random.default_rng(0)
        table = table_of(n, generated_labels(key, n, rng))
        table["patient_id"] = [f"p{i // 2}" for i in range(n)]  # two records per patient
        y, keep = task_targets(table, task_of(key))
        split = make_split(config, table[keep], y[keep])
        assert split.val.size > 0 and split.method == "patient"
        patients = table[keep]["patient_id"].to_numpy()
        assert not set(patients[split.train]) & set(patients[split.test])


def test_size_sweep_subsets_first_n_and_stratified(planned: dict) -> None:
    n = 21799  # PTB-XL 1.0.3, folds 1-10 about equal
    folds = np.arange(n) % 10 + 1
    rng = np.random.default_rng(1)
    y = (rng.random((n, 5)) < 0.25).astype(np.uint8)
    y[y.sum(axis=1) == 0, 0] = 1
    table = pd.DataFrame({"fold": folds, "patient_id": [str(i) for i in range(n)]})
    for protocol in ("paper_exact", "ours"):
        config = dict(planned[("nguyen2025_size_sweep", protocol, "ptbxl")]["split"])
        subsets = {}
        for size in (2000, 4000):
            split = make_split(SplitConfig.from_dict({**config, "train_n": size}), table, y)
            assert split.train.size == size and set(folds[split.test]) == {10}
            subsets[size] = split.train
        all_train = np.flatnonzero(folds <= 8)
        if protocol == "paper_exact":  # the first N rows of the training folds
            assert np.array_equal(subsets[2000], all_train[:2000])
            assert folds[make_split(SplitConfig.from_dict(config), table, y).val].size == 0
        else:  # stratified, nested: the 2,000 lie inside the 4,000
            assert set(subsets[2000]) <= set(subsets[4000])
            assert not np.array_equal(subsets[2000], all_train[:2000])


def test_paper_exact_preprocessing_on_real_cpsc_records(planned: dict, shared_data: Path,
                                                        workspace: Path) -> None:
    """Decimation 500 -> 100 Hz, the first 10 s, per-record per-lead min-max to [-1, 1],
    records shorter than 10 s dropped: the preset's settings on real CPSC2018 records."""
    config = planned[("nguyen2025_grid", "paper_exact", "cpsc2018")]
    prep = PrepConfig.from_dict(config["prep"])
    assert (prep.fs, prep.seconds, prep.resample, prep.normalize) == (100.0, 10.0, "decimate", "minmax")
    folder = shared_data / "ecg" / "cinc2021" / "CPSC_CPSC-Extra"
    data = build_dataset(folder, "nguyen_cpsc2018", prep=prep,
                         split=SplitConfig(method="paper", test=0.33, seed=1), n_jobs=1)
    assert data.X.shape[1:] == (12, 1000) and len(data) >= 10
    x = np.asarray(data.X)
    assert x.min() >= -1.0 - 1e-6 and x.max() <= 1.0 + 1e-6
    assert np.allclose(x.max(axis=2)[x.std(axis=2) > 0], 1.0, atol=1e-5)
    assert data.split.val.size == 0 and data.split.test.size == int(np.ceil(0.33 * len(data)))
