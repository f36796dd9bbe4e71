"""build_dataset end to end on real records: alignment of X, y and record ids, splits without
patient overlap, every dropped record counted with its reason, the train-only scaler."""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import wfdb

from ecgcore.data.labels import get_task, snomed_task, task_targets
from ecgcore.data.pipeline import SplitConfig, TaskDataset, build_dataset, make_split
from ecgcore.data.prepare import PrepConfig, fit_standard_scaler
from ecgcore.data.prepare.per_record import preprocess_signal
from ecgcore.data.sources import open_dataset
from ecgcore.data.splits import LEAK_NOTE
from ecgcore.errors import EcgcoreError

PREP = PrepConfig(fs=100, seconds=10)
AF = "164889003"


@pytest.fixture(scope="module")
def challenge(shared_data: Path) -> Path:
    return shared_data / "ecg" / "cinc2021"


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def scored(challenge: Path, cache: Path) -> TaskDataset:
    return build_dataset(challenge, "challenge2021_scored", PREP,
                         SplitConfig(method="patient", seed=0), cache, n_jobs=1)


def assert_aligned(ds: TaskDataset, n_check: int = 8) -> None:
    """Row i of X is the record record_ids[i] preprocessed, and y[i] are its labels."""
    recordset = open_dataset(ds.root, **ds.open_options)
    full_targets = {}
    targets, _ = task_targets(recordset.table, ds.task)
    for rid, row in zip(recordset.record_ids, targets):
        full_targets[rid] = row
    assert list(ds.table.index) == ds.record_ids
    rng = np.random.default_rng(0)
    for i in rng.choice(len(ds), size=min(n_check, len(ds)), replace=False):
        rid = ds.record_ids[i]
        window, _ = preprocess_signal(recordset.read(rid), ds.prep, ds.X.shape[2], rid)
        np.testing.assert_array_equal(ds.X[i], window)
        np.testing.assert_array_equal(ds.y[i], full_targets[rid])


def test_challenge_records_end_to_end(scored: TaskDataset):
    ds = scored
    assert ds.X.shape == (70, 12, 1000) and ds.y.shape == (70, 26)
    assert isinstance(ds.X, np.memmap)
    assert len(ds.classes) == 26 and ds.class_names[0] == "AF"
    assert_aligned(ds)
    covered = np.sort(np.concatenate(list(ds.split.parts().values())))
    assert np.array_equal(covered, np.arange(len(ds)))
    assert ds.patient_overlap() == {"train/val": [], "train/test": [], "val/test": []}
    # the INCART folder has headers only: ten records, each dropped as unreadable
    incart = {rid: r for rid, r in ds.dropped.items() if rid.startswith("I")}
    assert len(incart) == 10 and all(r.startswith("unreadable: ") for r in incart.values())
    assert ds.dropped_counts() == {"unreadable": 10}
    assert not set(ds.dropped) & set(ds.record_ids)


def test_summary_counts_records_and_positives(scored: TaskDataset):
    summary = scored.summary()
    assert list(summary.columns) == ["train", "val", "test", "unused", "total"]
    assert summary.loc["records", "total"] == 70
    assert summary.loc["records", ["train", "val", "test"]].sum() == 70
    assert summary.loc["AF", "total"] == scored.y[:, scored.classes.index(AF)].sum() > 0
    assert summary.loc["AF", "train"] == scored.y[scored.split.train, 0].sum()
    described = scored.describe()
    assert described["n_records"] == 70 and described["dropped_counts"] == {"unreadable": 10}
    assert described["split"]["sizes"] == scored.split.sizes()


def test_second_build_hits_the_cache(scored: TaskDataset, challenge: Path, cache: Path):
    again = build_dataset(challenge, "challenge2021_scored", PREP,
                          SplitConfig(method="patient", seed=0), cache, n_jobs=1)
    assert again.cache_path == scored.cache_path
    assert again.record_ids == scored.record_ids
    for name in ("train", "val", "test"):
        assert np.array_equal(getattr(again.split, name), getattr(scored.split, name))


def test_records_without_a_task_label_are_dropped_and_counted(challenge: Path, cache: Path):
    only_af = snomed_task("af_only", (AF,), "AF, records without it dropped", keep="any_class")
    ds = build_dataset(challenge, only_af, PREP, SplitConfig(method="patient", test=0.3, val=0.0),
                       cache, n_jobs=1)
    assert ds.y.all() and len(ds) == 8
    no_label = [r for r in ds.dropped.values() if r.startswith("no label for the task")]
    assert len(no_label) == 70 - 8
    assert ds.dropped_counts()["no label for the task"] == 62
    assert_aligned(ds, n_check=4)


def test_short_records_are_dropped_with_their_reason(challenge: Path, cache: Path):
    prep = PrepConfig(fs=100, seconds=12, min_seconds=12)
    ds = build_dataset(challenge / "CPSC_CPSC-Extra", "nguyen_cpsc2018", prep,
                       SplitConfig(method="paper"), cache, n_jobs=1)
    recordset = open_dataset(challenge / "CPSC_CPSC-Extra")
    seconds = recordset.table["n_samples"] / recordset.table["fs"]
    long_enough = set(seconds.index[seconds >= 12])
    assert set(ds.record_ids) == long_enough and 0 < len(ds) < 20
    short = {rid for rid, r in ds.dropped.items() if "shorter than min_seconds" in r}
    assert short == set(recordset.record_ids) - long_enough
    assert ds.dropped_counts() == {"shorter than min_seconds": len(short)}
    assert_aligned(ds, n_check=3)


def test_paper_split_on_real_records_says_it_may_leak(challenge: Path, cache: Path):
    from sklearn.model_selection import train_test_split

    ds = build_dataset(challenge, "challenge2021_scored", PREP, SplitConfig(method="paper"),
                       cache, n_jobs=1)
    train, test = train_test_split(np.arange(70), test_size=0.33, random_state=1)
    assert np.array_equal(ds.split.train, train) and np.array_equal(ds.split.test, test)
    assert ds.split.val.size == 0 and LEAK_NOTE in ds.split.notes


def test_train_fraction_in_the_split_config(scored: TaskDataset):
    cfg = SplitConfig(method="patient", seed=0, train_fraction=0.5)
    split = make_split(cfg, scored.table, scored.y)
    assert split.train.size == round(0.5 * scored.split.train.size)
    assert np.isin(split.train, scored.split.train).all()
    assert np.array_equal(split.test, scored.split.test)
    first = make_split(SplitConfig(method="patient", train_n=5,
                                   train_fraction_method="first_n"), scored.table, scored.y)
    assert np.array_equal(first.train, np.sort(scored.split.train)[:5])
    assert first.params["n_train_full"] == scored.split.train.size


def test_split_config_round_trip_and_validation():
    cfg = SplitConfig(method="official", train_folds=[1, 2], seed=3, train_fraction=0.25)
    assert SplitConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError):
        SplitConfig(method="random")
    with pytest.raises(ValueError):
        SplitConfig(method="paper", val=0.1)
    with pytest.raises(ValueError):
        SplitConfig(train_fraction=0.5, train_n=10)
    with pytest.raises(ValueError):
        SplitConfig.from_dict({"methd": "patient"})


def test_bad_requests_name_the_problem(challenge: Path, cache: Path):
    with pytest.raises(EcgcoreError, match="unknown task"):
        build_dataset(challenge, "no_such_task", PREP, SplitConfig(), cache, n_jobs=1)
    with pytest.raises(EcgcoreError, match="scp_statements"):
        build_dataset(challenge, "ptbxl_superdiagnostic", PREP, SplitConfig(), cache, n_jobs=1)
    with pytest.raises(EcgcoreError, match="official fold"):
        build_dataset(challenge, "challenge2021_scored", PREP, SplitConfig(method="official"),
                      cache, n_jobs=1)


# ----------------------------------------------------------------------------- PTB-XL layout

PTBXL_LEADS = ["I", "II", "III", "AVR", "AVL", "AVF", "V1", "V2", "V3", "V4", "V5", "V6"]


@pytest.fixture(scope="module")
def ptbxl_tree(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """PTB-XL layout from the Challenge copies of ecg_id 1-10 (500 Hz only, written with
    wfdb); the CSV rows 6000-6009 have no files, so the reader reports them unreadable."""
    root = tmp_path_factory.mktemp("ptbxl")
    labels = shared_data / "labels" / "ptbxl"
    pd.read_csv(labels / "ptbxl_database_subset_for_HR_records.csv").to_csv(
        root / "ptbxl_database.csv", index=False)
    shutil.copy(labels / "scp_statements.csv", root / "scp_statements.csv")
    for ecg_id in range(1, 11):
        rec = wfdb.rdrecord(str(shared_data / "ecg" / "cinc2021" / "PTB_PTBXL" / f"HR{ecg_id:05d}"))
        folder = root / "records500" / "00000"
        folder.mkdir(parents=True, exist_ok=True)
        wfdb.wrsamp(f"{ecg_id:05d}_hr", fs=500, units=["mV"] * 12, sig_name=PTBXL_LEADS,
                    d_signal=np.ascontiguousarray(rec.adc()), fmt=["16"] * 12,
                    adc_gain=[1000.0] * 12, baseline=[0] * 12, write_dir=str(folder))
    return root


def test_ptbxl_task_official_folds_and_train_only_scaler(ptbxl_tree: Path, cache: Path):
    prep = PrepConfig(fs=100, seconds=10, normalize="standard")
    ds = build_dataset(ptbxl_tree, "ptbxl_superdiagnostic", prep,
                       SplitConfig(method="official", train_folds=range(1, 9), val_folds=(9,),
                                   test_folds=(10,)),
                       cache, n_jobs=1, open_options={"fs": 500})
    assert ds.classes == ("CD", "HYP", "MI", "NORM", "STTC")
    statements = get_task("ptbxl_superdiagnostic", ptbxl_tree / "scp_statements.csv")
    assert ds.task == statements
    assert_aligned(ds, n_check=4)
    assert sum(r.startswith("unreadable") for r in ds.dropped.values()) == 10
    folds = ds.table["fold"].to_numpy()
    assert set(folds[ds.split.train]) <= set(range(1, 9))
    assert set(folds[ds.split.test]) <= {10} and set(folds[ds.split.val]) <= {9}
    assert ds.patient_overlap() == {"train/val": [], "train/test": [], "val/test": []}
    # the scaler comes from the training rows only, and batch() applies it
    mean, std = ds.scaler
    train = np.asarray(ds.X[np.sort(ds.split.train)], dtype=np.float64)
    np.testing.assert_allclose(mean, train.mean(axis=(0, 2)), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(std, train.std(axis=(0, 2)), rtol=1e-6)
    assert ds.split.sizes() == {"train": 7, "val": 2, "test": 1}  # strat_fold 9: ids 8, 10
    everything_mean, _ = fit_standard_scaler(ds.X, np.arange(len(ds)))
    assert not np.allclose(mean, everything_mean)
    batch = ds.batch(ds.split.train)
    np.testing.assert_allclose(batch.mean(axis=(0, 2)), 0.0, atol=1e-4)
    np.testing.assert_allclose(ds.batch([2, 0])[1], (ds.X[0] - mean[:, None]) / std[:, None],
                               rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------- synthetic default

@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from ecgcore.data.synthetic import write_demo_data

    out = tmp_path_factory.mktemp("demo")
    write_demo_data(out, seed=0, scale=0.05)
    return out


def test_demo_source_patient_split_is_disjoint_and_aligned(demo: Path, cache: Path):
    ds = build_dataset(demo / "source_ptbxl", "ptbxl_superdiagnostic", PREP,
                       SplitConfig(method="patient", seed=1), cache, n_jobs=1)
    counts = ds.table["patient_id"].value_counts()
    assert counts.max() >= 2, "the demo source has several records per patient"
    assert ds.patient_overlap() == {"train/val": [], "train/test": [], "val/test": []}
    assert_aligned(ds, n_check=6)
    # records dropped for the task are exactly those with no diagnostic SCP statement
    database = pd.read_csv(demo / "source_ptbxl" / "ptbxl_database.csv")
    statements = pd.read_csv(demo / "source_ptbxl" / "scp_statements.csv", index_col=0)
    diagnostic = set(statements.index[statements["diagnostic"] == 1])
    unlabelled = {str(row.ecg_id) for row in database.itertuples()
                  if not set(ast.literal_eval(row.scp_codes)) & diagnostic}
    dropped = {rid for rid, r in ds.dropped.items() if r.startswith("no label for the task")}
    assert dropped == unlabelled
    assert len(ds) + len(ds.dropped) == len(database)


def test_demo_source_auto_uses_official_folds_and_paper_split_leaks(demo: Path, cache: Path):
    auto = build_dataset(demo / "source_ptbxl", "ptbxl_superdiagnostic", PREP, SplitConfig(),
                         cache, n_jobs=1)
    assert auto.split.method == "official"
    assert set(auto.table["fold"].to_numpy()[auto.split.test]) == {10}
    assert auto.patient_overlap()["train/test"] == []
    paper = build_dataset(demo / "source_ptbxl", "ptbxl_superdiagnostic", PREP,
                          SplitConfig(method="paper"), cache, n_jobs=1)
    assert paper.cache_path == auto.cache_path  # same task, same prepared array
    leaked = paper.patient_overlap()["train/test"]
    assert leaked and LEAK_NOTE in paper.split.notes


def test_demo_target_resampled_and_split(demo: Path, cache: Path):
    ds = build_dataset(demo / "target_challenge", "challenge2021_scored", PREP,
                       SplitConfig(method="patient", train_fraction=0.5), cache, n_jobs=1)
    assert ds.layout == "challenge" and ds.X.shape[1:] == (12, 1000)
    summary = ds.summary()
    assert summary.loc["records", "unused"] == ds.split.params["n_train_full"] - ds.split.train.size
    assert summary.loc["records", "total"] == len(ds)
    assert_aligned(ds, n_check=4)
