"""Evaluation: pure functions of (y_true, y_score, classes); no torch, no files (except the
Challenge weights, read from a path the caller gives).

- `run_metrics.evaluate`     every test metric of one run, JSON-ready (results.json "test");
                             `upgrade_test_metrics` reads older "test" dicts with today's key names
- `metrics`                  ROC-AUC, AUPRC, F1 family (scikit-learn's macro F1 and the mean over
                             classes with positives, each under its own name), sample-centric
                             (CAFA-style) Fmax
- `calibration`              Brier score, expected calibration error, reliability table
- `thresholds`               per-class F1-optimal thresholds tuned on validation only
- `bootstrap`                kept draws (every class keeps a positive), rank AUC, percentile CIs
- `paired_bootstrap`         paired bootstrap difference of two runs on the same records
- `challenge_score`          PhysioNet/CinC 2021 challenge score (official only when every scored
                             class is covered: `scored_coverage`) and `load_challenge_weights`
- `summary.mean_std`         mean ± std over seeds
"""

from ecgcore.evaluate.bootstrap import (
    Draws,
    bootstrap_auc,
    draw_indices,
    percentile_ci,
    weighted_auc,
)
from ecgcore.evaluate.calibration import (
    brier_score,
    expected_calibration_error,
    per_class_brier,
    reliability_table,
)
from ecgcore.evaluate.challenge_score import challenge_score, load_challenge_weights, scored_coverage
from ecgcore.evaluate.metrics import EvaluationError, fmax, macro_auc
from ecgcore.evaluate.paired_bootstrap import align_runs, paired_bootstrap, paired_bootstrap_runs
from ecgcore.evaluate.run_metrics import evaluate, upgrade_test_metrics
from ecgcore.evaluate.summary import mean_std
from ecgcore.evaluate.thresholds import tune_thresholds

__all__ = [
    "Draws", "EvaluationError", "align_runs", "bootstrap_auc", "brier_score", "challenge_score",
    "draw_indices", "evaluate", "expected_calibration_error", "fmax", "load_challenge_weights",
    "macro_auc", "mean_std", "paired_bootstrap", "paired_bootstrap_runs", "per_class_brier",
    "percentile_ci", "reliability_table", "scored_coverage", "tune_thresholds",
    "upgrade_test_metrics", "weighted_auc",
]
