"""Evaluation: pure functions of (y_true, y_score, classes); no torch, no files (except the
Challenge weights, read from a path the caller gives).

- `evaluate(...)`            every test metric of one run, JSON-ready (results.json "test")
- `metrics`                  ROC-AUC, AUPRC, F1 family, Fmax (scikit-learn where it exists)
- `thresholds`               per-class F1-optimal thresholds tuned on validation only
- `bootstrap`                kept draws (every class keeps a positive), rank AUC, percentile CIs
- `paired`                   paired bootstrap difference of two runs on the same records
- `challenge`                PhysioNet/CinC 2021 challenge score and `load_challenge_weights`
- `summary.mean_std`         mean ± std over seeds
"""

from ecgcore.evaluate.bootstrap import (
    Draws,
    bootstrap_auc,
    draw_indices,
    percentile_ci,
    weighted_auc,
)
from ecgcore.evaluate.challenge import challenge_score, load_challenge_weights
from ecgcore.evaluate.metrics import EvaluationError, fmax, macro_auc
from ecgcore.evaluate.paired import align_runs, paired_bootstrap, paired_bootstrap_runs
from ecgcore.evaluate.report import evaluate
from ecgcore.evaluate.summary import mean_std
from ecgcore.evaluate.thresholds import tune_thresholds

__all__ = [
    "Draws", "EvaluationError", "align_runs", "bootstrap_auc", "challenge_score", "draw_indices",
    "evaluate", "fmax", "load_challenge_weights", "macro_auc", "mean_std", "paired_bootstrap",
    "paired_bootstrap_runs", "percentile_ci", "tune_thresholds", "weighted_auc",
]
