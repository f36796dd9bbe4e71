"""Comparison statistics on hand-made run tables and predictions (no training): the CI of a
seed mean, Holm and Benjamini-Hochberg adjustments, the bootstrap p floor, the two-level
bootstrap over seeds and records, label efficiency and the answer panel's sentences."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from ecgcore import compare
from ecgcore.compare.table import TABLE_COLUMNS
from ecgcore.errors import EcgcoreError


def run_table(rows: list[dict]) -> pd.DataFrame:
    """A runs table (TABLE_COLUMNS) of finished target runs from a few given columns."""
    base = {"kind": "target", "status": "done", "protocol": None, "source": "none", "target": "t", "task": "all",
            "arch": "small_cnn", "n_train": 100, "n_test": 50}
    frame = pd.DataFrame([{**base, **row} for row in rows])
    for column in TABLE_COLUMNS:
        if column not in frame:
            frame[column] = None
    return frame[list(TABLE_COLUMNS)]


def test_seed_mean_ci_is_a_t_interval_and_one_seed_keeps_its_bootstrap_ci() -> None:
    aucs = [0.71, 0.75, 0.80]
    rows = [{"run_id": f"s{i}", "strategy": "scratch", "train_fraction": 0.5, "seed": i, "macro_auc": auc,
             "macro_auc_low": auc - 0.05, "macro_auc_high": auc + 0.05} for i, auc in enumerate(aucs)]
    rows.append({"run_id": "f0", "strategy": "finetune", "source": "src", "train_fraction": 0.5, "seed": 0,
                 "macro_auc": 0.9, "macro_auc_low": 0.85, "macro_auc_high": 0.93})
    summary = compare.seed_summary(run_table(rows)).set_index("strategy")
    three = summary.loc["scratch"]
    # The direct computation: Student t over the 3 seed means, n - 1 = 2 degrees of freedom.
    low, high = scipy_stats.t.interval(0.95, df=2, loc=np.mean(aucs), scale=scipy_stats.sem(aucs))
    assert (three.ci_low, three.ci_high) == pytest.approx((low, high), abs=1e-12)
    assert three.ci_method == "t-interval of the mean over 3 seeds (2 df)"
    one = summary.loc["finetune"]
    assert (one.ci_low, one.ci_high) == (0.85, 0.93)
    assert one.ci_method == "bootstrap CI of the one run (test records resampled; no seed variance)"
    # The old band (mean of each run's bootstrap bounds) is gone, not relabelled.
    assert "ci_low_mean" not in summary.columns

    curve = compare.data_efficiency(run_table(rows))
    fig = compare.data_efficiency_figure(curve)
    band = [t for t in fig.data if t.fill == "toself" and t.name.startswith("scratch")][0]
    np.testing.assert_allclose(band.y, [high, low])
    assert "t-interval" in fig.layout.yaxis.title.text and "bootstrap" in fig.layout.yaxis.title.text


def test_holm_and_benjamini_hochberg_on_a_worked_example() -> None:
    p = [0.01, 0.04, 0.03, 0.005]
    # Holm by hand: sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04;
    # running maximum 0.02, 0.03, 0.06, 0.06; back in the input order:
    np.testing.assert_allclose(compare.holm(p), [0.03, 0.06, 0.06, 0.02])
    # BH by hand: m p / rank = 0.02, 0.02, 0.04, 0.04; running minimum from the top: same.
    np.testing.assert_allclose(compare.benjamini_hochberg(p), [0.02, 0.04, 0.04, 0.02])
    # Capped at 1, NaN left out of the family, ties keep their order.
    np.testing.assert_allclose(compare.holm([0.5, np.nan, 0.4]), [0.8, np.nan, 0.8])
    np.testing.assert_allclose(compare.benjamini_hochberg([0.9, 0.9, np.nan]), [0.9, 0.9, np.nan])
    assert compare.holm([]).size == 0 and compare.holm([0.7]).tolist() == [0.7]


def test_a_p_value_at_the_bootstrap_floor_is_written_as_a_bound() -> None:
    from ecgcore.evaluate.bootstrap import two_sided_p

    floor = two_sided_p(0.2, np.linspace(0.01, 0.3, 200))  # no draw on the other side of 0
    assert floor == 1 / 200
    assert compare.format_p(floor, 200) == "< 0.005 (1/200)"
    assert compare.format_p(2 / 200, 200) == "0.01"
    assert compare.format_p(0.0312, 200) == "0.031" and compare.format_p(0.5) == "0.50"
    assert compare.format_p(1 / 2000, 2000) == "< 0.0005 (1/2000)" and compare.format_p(None) == "—"
    adjusted, bound = compare.holm_bounded([1 / 200, 0.2, 0.04], 200)
    np.testing.assert_allclose(adjusted, [0.015, 0.2, 0.08])
    assert bound.tolist() == [True, False, False]
    assert compare.format_adjusted(adjusted[0], bound[0]) == "≤ 0.015"


CLASSES = ["164889003", "426783006", "270492004"]


def predictions(truth: np.ndarray, strength: float, rng: np.random.Generator,
                ids: list[str] | None = None) -> dict[str, np.ndarray]:
    """predictions.npz arrays whose scores separate the classes with `strength`."""
    score = np.clip(strength * truth + rng.normal(0.3, 0.25, truth.shape), 0, 1)
    return {"record_ids": np.array(ids or [f"r{i}" for i in range(len(truth))]), "y_true": truth,
            "y_score": score, "classes": np.array(CLASSES)}


def labels(n: int = 160, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.random((n, len(CLASSES))) < [0.15, 0.3, 0.45]).astype(int)


def reference_two_level(preds: dict, a: list[str], b: list[str], paired: bool, n_boot: int,
                        seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The two-level bootstrap written as a plain loop with scikit-learn's AUC (slow, obvious):
    (macro diff per draw, per-class diff per draw)."""
    from sklearn.metrics import roc_auc_score

    from ecgcore.evaluate import draw_indices

    truth = preds[a[0]]["y_true"]
    draws = draw_indices(truth, n_boot, seed, CLASSES)
    rng = np.random.default_rng([seed, 1])
    idx_a = rng.integers(0, len(a), size=(n_boot, len(a)))
    idx_b = idx_a if paired else rng.integers(0, len(b), size=(n_boot, len(b)))
    macro, per_class = np.empty(n_boot), np.empty((n_boot, len(CLASSES)))
    for d in range(n_boot):
        rows = draws.indices[d]

        def seed_mean(arm: list[str], picks: np.ndarray) -> np.ndarray:
            aucs = [[roc_auc_score(truth[rows, c], preds[arm[s]]["y_score"][rows, c]) for c in range(len(CLASSES))]
                    for s in picks]
            return np.mean(aucs, axis=0)

        diff = seed_mean(a, idx_a[d]) - seed_mean(b, idx_b[d])
        per_class[d], macro[d] = diff, diff.mean()
    return macro, per_class


def test_two_level_bootstrap_over_seeds_and_records_matches_a_plain_loop() -> None:
    from ecgcore.compare.seeded import Arm, compare_arms, shared_draws
    from ecgcore.evaluate.bootstrap import percentile_ci, two_sided_p

    truth = labels()
    rng = np.random.default_rng(1)
    preds = {f"a{s}": predictions(truth, 0.35 + 0.1 * s, rng) for s in range(3)}
    preds |= {f"b{s}": predictions(truth, 0.3, rng) for s in range(3)}
    preds["c0"] = predictions(truth, 0.2, rng)
    shared = shared_draws(preds, n_boot=40, seed=3)
    arm_a, arm_b = Arm(("a0", "a1", "a2"), (0, 1, 2)), Arm(("b2", "b0", "b1"), (2, 0, 1))
    result = compare_arms(shared, arm_a, arm_b, seed=3)
    assert result["seeds_paired"] and result["n_seeds_a"] == result["n_seeds_b"] == 3
    assert result["method"] == ("two-level bootstrap, 40 draws: 3 seeds paired by seed number × 160 test "
                                "records (the same draw for both arms)")
    # B reordered by seed number, so seed s of A is paired with seed s of B.
    macro, per_class = reference_two_level(preds, ["a0", "a1", "a2"], ["b0", "b1", "b2"], True, 40, 3)
    observed = np.mean([np.nanmean(shared.observed[shared.index(f"a{s}")]) for s in range(3)]) - np.mean(
        [np.nanmean(shared.observed[shared.index(f"b{s}")]) for s in range(3)])
    assert result["macro_auc_diff"] == pytest.approx(observed)
    assert result["macro_auc_diff_ci"] == pytest.approx(list(percentile_ci(macro)), abs=1e-12)
    assert result["p_value"] == pytest.approx(two_sided_p(observed, macro))
    for c, code in enumerate(CLASSES):
        assert result["per_class"][code]["ci"] == pytest.approx(list(percentile_ci(per_class[:, c])), abs=1e-12)

    # Three seeds against one: A's seeds resampled, B has no seed level, and it says so.
    single = compare_arms(shared, arm_a, Arm(("c0",), (0,)), seed=3)
    assert not single["seeds_paired"]
    assert single["method"].endswith("B has one seed: its seed variance is not included")
    macro, _ = reference_two_level(preds, ["a0", "a1", "a2"], ["c0"], False, 40, 3)
    assert single["macro_auc_diff_ci"] == pytest.approx(list(percentile_ci(macro)), abs=1e-12)
    # Deterministic, and independent of the other runs aligned alongside.
    again = compare_arms(shared_draws({k: preds[k] for k in ("a0", "a1", "a2", "c0")}, n_boot=40, seed=3),
                         arm_a, Arm(("c0",), (0,)), seed=3)
    assert again["macro_auc_diff_ci"] == single["macro_auc_diff_ci"] and again["p_value"] == single["p_value"]


def test_one_seed_per_side_is_the_paired_record_bootstrap_and_says_so() -> None:
    from ecgcore.evaluate import paired_bootstrap

    truth = labels(seed=2)
    rng = np.random.default_rng(5)
    a, b = predictions(truth, 0.5, rng), predictions(truth, 0.2, rng)
    h2h = compare.head_to_head(a, b, n_boot=100, seed=7)
    reference = paired_bootstrap(truth, a["y_score"], b["y_score"], CLASSES, n_boot=100, seed=7)
    assert h2h.macro == {k: reference[k] for k in h2h.macro}
    for row in h2h.per_class.to_dict("records"):
        assert [row["low"], row["high"]] == reference["per_class"][row["code"]]["ci"]
        assert row["p_value"] == reference["per_class"][row["code"]]["p_value"]
    assert h2h.method == ("paired bootstrap over 160 test records (the same draw for both arms), 100 draws; "
                          "one seed per arm: seed-to-seed variance is not included")
    # Per-class p-values with their Holm adjustment beside them; the floor written as a bound.
    np.testing.assert_allclose(h2h.per_class.p_holm, compare.holm(h2h.per_class.p_value))
    floor = h2h.per_class.p_value == 1 / 100
    assert floor.any() and (h2h.per_class.p[floor] == "< 0.01 (1/100)").all()
    assert h2h.p_text == "< 0.01 (1/100)"
    assert h2h.result["per_class_adjustment"] == "Holm over the 3 classes compared"


def test_head_to_head_of_settings_uses_every_seed() -> None:
    truth = labels(seed=3)
    rng = np.random.default_rng(9)
    preds = {f"f{s}": predictions(truth, 0.45, rng) for s in range(3)} | {
        f"s{s}": predictions(truth, 0.3, rng) for s in range(3)}
    arm_a = compare.Arm(("f0", "f1", "f2"), (0, 1, 2))
    arm_b = compare.Arm(("s0", "s1", "s2"), (0, 1, 2))
    h2h = compare.head_to_head_arms(preds, arm_a, arm_b, n_boot=60, seed=0)
    assert h2h.method.startswith("two-level bootstrap, 60 draws: 3 seeds paired by seed number")
    assert h2h.result["run_ids_a"] == ["f0", "f1", "f2"] and h2h.result["n_seeds_b"] == 3
    means = {arm: np.mean([compare.head_to_head(preds[f"{arm}{s}"], preds[f"{arm}{s}"]).macro["macro_auc_a"]
                           for s in range(3)]) for arm in "fs"}
    assert h2h.macro["macro_auc_a"] == pytest.approx(means["f"]) and h2h.macro["macro_auc_b"] == pytest.approx(
        means["s"])
    with pytest.raises(EcgcoreError, match="share a run"):
        compare.head_to_head_arms(preds, arm_a, arm_a)
