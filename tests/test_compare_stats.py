"""Comparison statistics on hand-made run tables and predictions (no training): the CI of a
seed mean, Holm and Benjamini-Hochberg adjustments, the bootstrap p floor, the two-level
bootstrap over seeds and records, label efficiency and the answer panel's sentences."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from ecgcore.views import compare
from ecgcore.views.compare.table import TABLE_COLUMNS
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
    band_note = fig.layout.annotations[0].text  # under the plot: a two-line axis title was clipped
    assert "t-interval" in band_note and "bootstrap" in band_note


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
    assert compare.format_adjusted(adjusted[0], bound[0]) == "< 0.015"


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
    from ecgcore.views.compare.seeded import Arm, compare_arms, shared_draws
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


def test_crossing_fraction_interpolates_in_log_fraction() -> None:
    from ecgcore.views.compare.efficiency import crossing_fraction

    # Halfway from 0.7 to 0.9 between 10 % and 100 % is the geometric midpoint 10^-0.5.
    assert crossing_fraction([0.1, 1.0], [0.7, 0.9], 0.8) == pytest.approx(10 ** -0.5)
    rows = crossing_fraction([0.1, 0.25, 0.5, 1.0], [[0.6, 0.7, 0.8, 0.9], [0.9, 1, 1, 1], [0.1, 0.2, 0.3, 0.4],
                                                     [0.6, 0.8, 0.7, 0.9]], [0.75, 0.5, 0.5, 0.75])
    assert rows[0] == pytest.approx(np.sqrt(0.25 * 0.5))
    assert rows[1] == -np.inf and rows[2] == np.inf, "reached at the first fraction / never"
    assert rows[3] == pytest.approx(10 ** (np.log10(0.1) + 0.75 * np.log10(2.5))), "the first crossing"


def test_label_efficiency_from_seeds_and_records() -> None:
    from sklearn.metrics import roc_auc_score

    from ecgcore.views.compare.efficiency import crossing_fraction, label_efficiency
    from ecgcore.views.compare.seeded import Arm, shared_draws

    truth = labels(n=200, seed=4)
    rng = np.random.default_rng(2)
    fractions = [0.1, 0.25, 0.5, 1.0]
    preds = {f"s{f}-{s}": predictions(truth, 0.1 + 0.4 * f, rng) for f in fractions for s in range(2)}
    preds |= {f"f-{s}": predictions(truth, 0.3, rng) for s in range(2)}
    preds["strong"] = predictions(truth, 1.0, rng)
    shared = shared_draws(preds, n_boot=80, seed=0)
    reference = {f: Arm((f"s{f}-0", f"s{f}-1"), (0, 1)) for f in fractions}
    result = label_efficiency(shared, "finetune", Arm(("f-0", "f-1"), (0, 1)), 0.1, "scratch", reference)

    def macro(run: str) -> float:
        return np.mean([roc_auc_score(truth[:, c], preds[run]["y_score"][:, c]) for c in range(len(CLASSES))])

    target = np.mean([macro("f-0"), macro("f-1")])
    curve = [np.mean([macro(f"s{f}-0"), macro(f"s{f}-1")]) for f in fractions]
    assert result.target_auc == pytest.approx(target)
    assert result.fraction == pytest.approx(crossing_fraction(fractions, curve, target))
    assert 0.1 < result.fraction < 1.0
    low, high = result.ci
    assert low <= result.fraction <= high and low < high
    assert result.text.startswith(f"finetune at 10 % ≈ scratch at {100 * result.fraction:.3g} % (95 % CI ")
    assert "linearly in log10(fraction)" in result.method and "80 draws of seeds" in result.method
    assert set(result.run_ids) == {"f-0", "f-1", *(r for a in reference.values() for r in a.run_ids)}
    again = label_efficiency(shared, "finetune", Arm(("f-0", "f-1"), (0, 1)), 0.1, "scratch", reference)
    assert again.ci == result.ci, "seeded"

    beyond = label_efficiency(shared, "finetune", Arm(("strong",), (0,)), 0.1, "scratch", reference)
    assert beyond.fraction == np.inf and beyond.ci[1] == np.inf
    assert "≈ scratch at beyond 100 %" in beyond.text
    below = label_efficiency(shared, "finetune", Arm(("s0.1-0",), (0,)), 0.1, "scratch",
                             {f: reference[f] for f in fractions[1:]})
    assert below.fraction == -np.inf and below.where(below.fraction) == "at or below 25 %"


def comparison_row(fraction: float, diff: float, low: float, high: float, p: float, p_holm: float,
                   seeds: int = 3, **extra: object) -> dict:
    return {"line": "finetune", "baseline": "scratch", "train_fraction": fraction, "n_train": 540 * fraction,
            "macro_auc": 0.8, "macro_auc_baseline": 0.8 - diff, "diff": diff, "low": low, "high": high,
            "p_value": p, "p_holm": p_holm, "p": compare.format_p(p, 200),
            "p Holm": compare.format_adjusted(p_holm, p == 1 / 200), "n_seeds": seeds, "n_seeds_baseline": seeds,
            "n_boot": 200, "method": "two-level bootstrap", "run_ids": [f"f{fraction}"],
            "baseline_run_ids": [f"s{fraction}"], **extra}


def test_answer_sentences_come_from_the_tables_and_name_their_runs() -> None:
    from ecgcore.views.compare.answer import answer
    from ecgcore.views.compare.efficiency import LabelEfficiency
    from ecgcore.views.compare.grid import COMPARISON_COLUMNS, GridStatistics

    rows = [comparison_row(0.1, 0.19, 0.12, 0.25, 1 / 200, 0.02), comparison_row(0.25, 0.08, 0.03, 0.12, 0.01, 0.03),
            comparison_row(0.5, 0.03, -0.01, 0.06, 0.2, 0.4), comparison_row(1.0, 0.01, -0.02, 0.04, 0.6, 0.6)]
    efficiency = LabelEfficiency(line="finetune", baseline="scratch", at_fraction=0.1, target_auc=0.81,
                                 fraction=0.42, ci=(0.3, np.inf), measured=(0.1, 0.25, 0.5, 1.0), n_boot=200,
                                 method="…", run_ids=["f0.1", "s0.1", "s0.25", "s0.5", "s1.0"])
    stats = GridStatistics(pd.DataFrame(rows, columns=list(COMPARISON_COLUMNS)), [efficiency],
                           ["target_b: not compared (the runs share no test record)"])
    sentences = answer(stats)
    assert [s.text for s in sentences] == [
        "At 10 % of the target (54 training records) finetune beats scratch by 0.19 macro AUC (95 % CI +0.12 to "
        "+0.25; 3 seeds each; Holm-adjusted p < 0.02 over 4 comparisons; 200 bootstrap draws).",
        "In between, finetune against scratch: detectably better at 25 %; no detectable difference at 50 % "
        "(Holm-adjusted).",
        "At 100 % (540 training records) the gap closes to +0.01 macro AUC (95 % CI -0.02 to +0.04; 3 seeds each; "
        "Holm-adjusted p = 0.60 over 4 comparisons; 200 bootstrap draws): no detectable difference.",
        "finetune at 10 % of the target reaches 0.81 macro AUC; scratch reaches it at about 42 % of the target "
        "(95 % CI 30 % to beyond 100 %; interpolated linearly in log fraction, two-level bootstrap over seeds and "
        "test records, 200 draws).",
        "Target_b: not compared (the runs share no test record).",
    ]
    assert [s.run_ids for s in sentences] == [["f0.1", "s0.1"], ["f0.25", "s0.25", "f0.5", "s0.5"],
                                              ["f1.0", "s1.0"], efficiency.run_ids, []]

    # One seed each and nothing detectable: said so, and that seed variance is not included.
    alone = answer(GridStatistics(pd.DataFrame([comparison_row(0.5, -0.02, -0.06, 0.03, 0.4, 0.4, seeds=1)],
                                               columns=list(COMPARISON_COLUMNS))))
    assert [s.text for s in alone] == [
        "At 50 % of the target (270 training records) there is no detectable difference between finetune and "
        "scratch: -0.02 macro AUC (95 % CI -0.06 to +0.03; 1 seed each, so seed-to-seed variance is not included; "
        "Holm-adjusted p = 0.40 over 1 comparison; 200 bootstrap draws)."]
    tiny = answer(GridStatistics(pd.DataFrame([comparison_row(1.0, -0.001, -0.004, 0.003, 0.7, 0.7)],
                                              columns=list(COMPARISON_COLUMNS))))
    assert "no detectable difference between finetune and scratch: +0.00 macro AUC (95 % CI +0.00 to +0.00;" in tiny[0].text
    mixed = answer(GridStatistics(pd.DataFrame([comparison_row(0.5, 0.1, 0.05, 0.15, 1 / 200, 1 / 200,
                                                               n_seeds_baseline=1)],
                                               columns=list(COMPARISON_COLUMNS))))
    assert ("(95 % CI +0.05 to +0.15; 3 and 1 seeds; scratch's seed variance not included; "
            "Holm-adjusted p < 0.005 over 1 comparison") in mixed[0].text


def test_a_bound_at_the_bootstrap_floor_is_never_called_no_difference() -> None:
    """12 comparisons, every draw on one side, 200 draws: Holm can only say p < 0.06. The
    quickstart rerun printed "no detectable difference" for a +0.19 (CI +0.16 to +0.22) gap;
    the answer now says the draws are too few, and the grid asks for enough draws."""
    from ecgcore.views.compare.answer import answer
    from ecgcore.views.compare.grid import COMPARISON_COLUMNS, GridStatistics, draws_to_resolve

    rows = [comparison_row(f, 0.19, 0.16, 0.22, 1 / 200, 0.06, p_holm_bound=True) for f in (0.1, 0.25, 0.5, 1.0)]
    sentences = [s.text for s in answer(GridStatistics(pd.DataFrame(rows, columns=list(COMPARISON_COLUMNS))))]
    assert not any("no detectable difference" in text for text in sentences)
    assert sentences[0].startswith("At 10 % of the target (54 training records) finetune against scratch: +0.19 macro "
                                   "AUC (95 % CI +0.16 to +0.22;")
    assert sentences[0].endswith("200 bootstrap draws are too few to decide after the Holm adjustment (its p is "
                                 "only known to be below 0.06); rerun with more draws.")
    assert "undecided (too few bootstrap draws) at 25 %, 50 %" in sentences[1]
    assert draws_to_resolve(1) == 200 and draws_to_resolve(12) == 960 and draws_to_resolve(10_000) == 5_000
    assert 12 / draws_to_resolve(12) <= 0.05 / 4


def test_grid_statistics_pair_settings_adjust_over_the_grid_and_answer() -> None:
    from ecgcore.views.compare.answer import answer
    from ecgcore.views.compare.grid import grid_statistics, run_ids_needed

    truth = labels(n=240, seed=6)
    rng = np.random.default_rng(8)
    rows, preds = [], {}
    for fraction in (0.1, 0.5, 1.0):
        for seed in (0, 1, 2):
            for strategy, strength in (("scratch", 0.05 + 0.45 * fraction), ("finetune", 0.5)):
                run_id = f"{strategy}-{fraction}-{seed}"
                preds[run_id] = predictions(truth, strength, rng)
                rows.append({"run_id": run_id, "strategy": strategy, "train_fraction": fraction, "seed": seed,
                             "source": "src" if strategy == "finetune" else "none", "n_train": int(540 * fraction),
                             "macro_auc": 0.5, "macro_auc_low": 0.4, "macro_auc_high": 0.6})
    rows.append({"run_id": "lonely", "strategy": "finetune", "arch": "other", "train_fraction": 0.1, "seed": 0,
                 "source": "src", "macro_auc": 0.5})
    curve = compare.data_efficiency(run_table(rows))
    needed = run_ids_needed(curve)
    assert "lonely" not in needed and len(needed) == 18, "no scratch with arch 'other' to pair it with"
    stats = grid_statistics(curve, {r: preds[r] for r in needed}, n_boot=100)
    table = stats.comparisons
    assert table.train_fraction.tolist() == [0.1, 0.5, 1.0] and (table.n_seeds == 3).all()
    assert table.line.unique().tolist() == ["finetune · small_cnn"], "architectures vary: named"
    np.testing.assert_allclose(table.p_holm, compare.holm(table.p_value))
    assert stats.adjustment == "Holm over the 3 comparisons of this grid"
    assert table.method.str.startswith("two-level bootstrap, 100 draws: 3 seeds paired by seed number").all()
    first, last = table.iloc[0], table.iloc[-1]
    assert first["diff"] > 0.1 and first.p == "< 0.01 (1/100)" and first["p Holm"] == "< 0.03"
    sentences = answer(stats)
    assert sentences[0].text.startswith("At 10 % of the target (54 training records) finetune · small_cnn beats "
                                        "scratch · small_cnn by ")
    assert sentences[0].run_ids == [f"finetune-0.1-{s}" for s in range(3)] + [f"scratch-0.1-{s}" for s in range(3)]
    assert abs(last["diff"]) < 0.05 and last.p_holm >= 0.05, "scratch has caught up at 100 %"
    assert sentences[-2].text.startswith("At 100 % (540 training records) the gap closes to ")
    assert sentences[-2].text.endswith("no detectable difference.")
    assert "reaches it at about" in sentences[-1].text or "beyond" in sentences[-1].text
    again = grid_statistics(curve, {r: preds[r] for r in needed}, n_boot=100)
    pd.testing.assert_frame_equal(again.comparisons, table)
