"""Splits: determinism, patient-disjointness, stratification, official folds, the paper split
(exactly scikit-learn's, with the record counts of docs/references.md) and training fractions."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.model_selection import train_test_split

from ecgcore.data.splits import (
    LEAK_NOTE,
    Split,
    SplitError,
    label_distribution,
    official_folds,
    paper_split,
    patient_groups,
    patient_kfold,
    patient_overlap,
    patient_split,
    stratified_order,
    train_fraction,
)

PREVALENCE = np.array([0.40, 0.25, 0.15, 0.10, 0.06, 0.03, 0.004])  # last: a handful of positives


def synthetic_table(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Many patients with 1 record, some with 2-5, a few with 20, and some without an id.

    Labels are per patient (a patient's records share most labels), like real follow-ups.
    """
    rng = np.random.default_rng(seed)
    sizes = [1] * 1500 + list(rng.integers(2, 6, 250)) + [20] * 6
    patients: list[str] = []
    rows: list[np.ndarray] = []
    for p, size in enumerate(sizes):
        base = rng.random(PREVALENCE.size) < PREVALENCE
        for _ in range(size):
            flip = rng.random(PREVALENCE.size) < 0.05
            rows.append(np.where(flip, rng.random(PREVALENCE.size) < PREVALENCE, base))
            patients.append(f"P{p:05d}")
    for _ in range(100):  # records whose patient is unknown: each is its own patient
        rows.append(rng.random(PREVALENCE.size) < PREVALENCE)
        patients.append("")
    order = rng.permutation(len(rows))
    return np.asarray(patients, dtype=object)[order], np.asarray(rows, dtype=np.int64)[order]


@pytest.fixture(scope="module")
def table() -> tuple[np.ndarray, np.ndarray]:
    return synthetic_table()


def covers_all(split: Split, n: int) -> None:
    joined = np.concatenate([split.train, split.val, split.test])
    assert np.array_equal(np.sort(joined), np.arange(n))


# ----------------------------------------------------------------------------- patient split

def test_patient_split_is_deterministic_by_seed(table):
    patients, y = table
    a = patient_split(patients, y, seed=3)
    b = patient_split(patients, y, seed=3)
    c = patient_split(patients, y, seed=4)
    for name in ("train", "val", "test"):
        assert np.array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(a.test, c.test)


def test_patient_split_is_patient_disjoint_and_complete(table):
    patients, y = table
    for seed in range(3):
        split = patient_split(patients, y, val=0.1, test=0.2, seed=seed)
        covers_all(split, len(patients))
        assert patient_overlap(patients, split) == {"train/val": [], "train/test": [],
                                                     "val/test": []}
        groups = patient_groups(patients)
        side = split.assignment(len(patients))
        for g in np.unique(groups):
            assert len(set(side[groups == g])) == 1
    assert split.method == "patient" and "patient-disjoint" in split.notes


def test_patient_split_sizes_follow_fractions(table):
    patients, y = table
    split = patient_split(patients, y, val=0.1, test=0.2, seed=0)
    n = len(patients)
    sizes = split.sizes()
    assert abs(sizes["val"] - 0.1 * n) <= 0.02 * n
    assert abs(sizes["test"] - 0.2 * n) <= 0.02 * n


def test_patient_split_stratifies_every_class(table):
    patients, y = table
    split = patient_split(patients, y, val=0.1, test=0.2, seed=1)
    overall = y.mean(axis=0)
    for name, idx in split.parts().items():
        prevalence = y[idx].mean(axis=0)
        for c in range(y.shape[1]):
            if y[:, c].sum() >= 100:  # enough positives for a tight tolerance
                assert abs(prevalence[c] - overall[c]) <= 0.15 * overall[c] + 0.005, (name, c)
    rare = y.shape[1] - 1
    assert 0 < y[:, rare].sum() < 40
    assert y[split.train, rare].sum() >= 1  # the rarest class is learnable
    assert y[split.train, rare].sum() >= y[split.test, rare].sum()


def test_patient_split_beats_random_patient_assignment_on_stratification(table):
    """Iterative stratification must do better than assigning patients at random."""
    patients, y = table
    groups = patient_groups(patients)
    overall = y.mean(axis=0)

    def error(test_idx: np.ndarray) -> float:
        return float(np.abs(y[test_idx].mean(axis=0) - overall).sum())

    ours = np.mean([error(patient_split(patients, y, seed=s).test) for s in range(5)])
    rng = np.random.default_rng(0)
    randoms = []
    for _ in range(5):
        test_groups = rng.random(groups.max() + 1) < 0.2
        randoms.append(error(np.flatnonzero(test_groups[groups])))
    assert ours < 0.5 * np.mean(randoms)


def test_patient_split_handles_no_labels_and_bad_fractions():
    patients = np.array(["a", "a", "b", "c", "", ""], dtype=object)
    split = patient_split(patients, None, val=0.0, test=0.34, seed=0)
    covers_all(split, 6)
    assert split.val.size == 0
    with pytest.raises(SplitError):
        patient_split(patients, None, val=0.5, test=0.5)
    with pytest.raises(SplitError):
        patient_split(patients, np.zeros((5, 2)))


def test_patient_groups_treat_empty_ids_as_own_patient():
    groups = patient_groups(np.array(["x", "", "x", None, "y", float("nan")], dtype=object))
    assert groups[0] == groups[2]
    assert len({groups[1], groups[3], groups[5], groups[0], groups[4]}) == 5


def test_patient_kfold(table):
    patients, y = table
    folds = patient_kfold(patients, y, k=5, seed=0)
    assert set(np.unique(folds)) == {1, 2, 3, 4, 5}
    assert np.array_equal(folds, patient_kfold(patients, y, k=5, seed=0))
    groups = patient_groups(patients)
    for g in np.unique(groups):
        assert len(set(folds[groups == g])) == 1
    counts = np.bincount(folds)[1:]
    assert counts.min() >= 0.8 * len(folds) / 5
    common = y[:, 0]
    for f in range(1, 6):
        assert abs(common[folds == f].mean() - common.mean()) < 0.05
    split = official_folds(folds, train=(1, 2, 3), val=(4,), test=(5,))
    assert patient_overlap(patients, split)["train/test"] == []


# ----------------------------------------------------------------------------- official folds

def test_official_folds_follow_ptbxl_convention():
    folds = np.array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10] * 3)
    split = official_folds(folds)
    assert np.array_equal(split.val, np.flatnonzero(folds == 9))
    assert np.array_equal(split.test, np.flatnonzero(folds == 10))
    assert split.train.size == 24 and split.method == "official"
    custom = official_folds(folds, train=(1, 2), val=(3,), test=(4,))
    assert custom.train.size == 6 and "left out" in custom.notes


@pytest.mark.parametrize("folds", [[1, 0, 10], [1, np.nan, 9], []])
def test_official_folds_reject_missing_folds(folds):
    with pytest.raises(SplitError):
        official_folds(np.array(folds, dtype=float))


def test_official_folds_reject_a_fold_in_two_groups():
    with pytest.raises(SplitError, match="both"):
        official_folds(np.arange(1, 11), train=range(1, 10), val=(9,), test=(10,))


# ----------------------------------------------------------------------------- paper split

@pytest.mark.parametrize("n, n_train, n_test", [(522, 349, 173), (827, 554, 273),
                                                 (10_292, 6_895, 3_397)])
def test_paper_split_is_sklearns_and_matches_published_counts(n, n_train, n_test):
    split = paper_split(n)
    train, test = train_test_split(np.arange(n), test_size=0.33, random_state=1)
    assert np.array_equal(split.train, train) and np.array_equal(split.test, test)
    assert (split.train.size, split.test.size) == (n_train, n_test)
    assert split.val.size == 0 and split.notes == LEAK_NOTE and split.seed == 1


def cpsc_like_labels(n: int, seed: int = 0) -> np.ndarray:
    """Nine labels at CPSC train prevalences (docs/references.md), mostly one label per record."""
    prevalence = np.array([0.1336, 0.1775, 0.1051, 0.0343, 0.2703, 0.0895, 0.1015, 0.1262,
                           0.0319])
    rng = np.random.default_rng(seed)
    main = rng.choice(9, size=n, p=prevalence / prevalence.sum())
    y = np.eye(9, dtype=np.int64)[main]
    second = rng.random(n) < 0.08
    y[second, rng.integers(0, 9, second.sum())] = 1
    return y


def test_paper_split_stratified_is_sklearns_with_multilabel_y():
    y = cpsc_like_labels(6_871)
    # sklearn fails on label combinations seen once; the paper's y had none, so neither may ours
    rows, counts = np.unique(y, axis=0, return_counts=True)
    keep = np.isin(np.arange(len(y)),
                   [i for i, r in enumerate(y) if counts[(rows == r).all(axis=1)][0] >= 2])
    y = y[keep]
    while len(y) < 6_871:  # top back up with a common combination to keep n exact
        y = np.vstack([y, np.eye(9, dtype=np.int64)[[4]]])
    split = paper_split(len(y), y, stratify=True)
    train, test = train_test_split(np.arange(len(y)), test_size=0.33, random_state=1, stratify=y)
    assert np.array_equal(split.train, train) and np.array_equal(split.test, test)
    assert (split.train.size, split.test.size) == (4_603, 2_268)
    assert not np.array_equal(split.test, paper_split(len(y)).test)  # stratify changes it
    # stratified by label combination: each combination's share matches to within one record
    for row in np.unique(y, axis=0):
        members = (y == row).all(axis=1)
        expected = members.sum() * 0.33
        assert abs(members[split.test].sum() - expected) <= 1.0


def test_paper_split_needs_y_to_stratify_and_reports_sklearn_errors():
    with pytest.raises(SplitError):
        paper_split(10, None, stratify=True)
    y = np.array([[1, 0]] * 9 + [[0, 1]])  # one combination seen once: sklearn refuses
    with pytest.raises(SplitError, match="train_test_split"):
        paper_split(10, y, stratify=True)


def test_patient_overlap_reports_leakage_of_the_paper_split(table):
    patients, y = table
    overlap = patient_overlap(patients, paper_split(len(patients)))
    assert overlap["train/test"], "a record-level split of repeated patients must leak"
    assert overlap["train/val"] == [] and overlap["val/test"] == []
    assert "" not in overlap["train/test"]
    shared = set(overlap["train/test"])
    split = paper_split(len(patients))
    assert shared == set(patients[split.train]) & set(patients[split.test]) - {""}


# ----------------------------------------------------------------------------- fractions

def test_train_fraction_sizes_and_membership(table):
    patients, y = table
    split = patient_split(patients, y, seed=0)
    for fraction in (0.05, 0.1, 0.25, 0.5, 1.0):
        subset = train_fraction(split.train, y, fraction=fraction, seed=0)
        assert subset.size == round(fraction * split.train.size)
        assert np.isin(subset, split.train).all() and np.unique(subset).size == subset.size
    assert train_fraction(split.train, y, n=100, seed=0).size == 100
    with pytest.raises(SplitError):
        train_fraction(split.train, y, fraction=0.1, n=10)
    with pytest.raises(SplitError):
        train_fraction(split.train, y, n=split.train.size + 1)
    with pytest.raises(SplitError):
        train_fraction(split.train, y, fraction=0.0)


def test_train_fraction_is_deterministic_and_nested(table):
    patients, y = table
    split = patient_split(patients, y, seed=0)
    previous = np.zeros(0, dtype=np.int64)
    for fraction in (0.05, 0.1, 0.2, 0.4, 0.8):
        subset = train_fraction(split.train, y, fraction=fraction, seed=7)
        assert np.array_equal(subset, train_fraction(split.train, y, fraction=fraction, seed=7))
        assert np.isin(previous, subset).all()
        previous = subset
    other = train_fraction(split.train, y, fraction=0.2, seed=8)
    assert not np.array_equal(other, train_fraction(split.train, y, fraction=0.2, seed=7))


def test_train_fraction_is_stratified(table):
    patients, y = table
    split = patient_split(patients, y, seed=0)
    overall = y[split.train].mean(axis=0)
    for fraction in (0.1, 0.3):
        subset = train_fraction(split.train, y, fraction=fraction, seed=0)
        prevalence = y[subset].mean(axis=0)
        for c in range(y.shape[1]):
            if y[split.train, c].sum() * fraction >= 20:
                assert abs(prevalence[c] - overall[c]) <= 0.2 * overall[c] + 0.005, (fraction, c)
    # the rarest label is spread evenly along the order: a prefix holds its share, +-1
    order = stratified_order(y[split.train], seed=0)
    rare = y[split.train][:, -1]
    for t in (len(order) // 4, len(order) // 2):
        assert abs(rare[order[:t]].sum() - rare.sum() * t / len(order)) <= 1.0


def test_train_fraction_first_n_takes_table_order(table):
    patients, y = table
    split = paper_split(len(patients))  # sklearn order is shuffled, first_n still uses table order
    subset = train_fraction(split.train, y, n=50, method="first_n")
    assert np.array_equal(subset, np.sort(split.train)[:50])
    subset = train_fraction(split.train, None, fraction=0.1, method="first_n")
    assert np.array_equal(subset, np.sort(split.train)[: round(0.1 * split.train.size)])
    with pytest.raises(SplitError):
        train_fraction(split.train, y, n=5, method="random")  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- reports

def test_label_distribution_counts_positives_per_split(table):
    patients, y = table
    split = patient_split(patients, y, seed=0)
    names = [f"c{i}" for i in range(y.shape[1])]
    dist = label_distribution(y, split, names)
    assert list(dist.columns) == ["train", "val", "test", "total"]
    assert list(dist.index) == names
    assert np.array_equal(dist["total"].to_numpy(), y.sum(axis=0))
    assert dist.loc["c0", "val"] == y[split.val, 0].sum()


def test_split_round_trips_through_json_and_rejects_overlap(table):
    patients, y = table
    split = patient_split(patients, y, seed=2)
    again = Split.from_dict(json.loads(json.dumps(split.to_dict())))
    for name in ("train", "val", "test"):
        assert np.array_equal(getattr(again, name), getattr(split, name))
    assert again.method == split.method and again.seed == 2 and again.notes == split.notes
    assert split.to_dict()["sizes"] == split.sizes()
    with pytest.raises(SplitError):
        Split(train=[0, 1], val=[1], test=[2], method="bad")
