"""Two runs, or two settings with their seeds, head to head; and ROC curves, from
predictions.npz arrays.

Runs of one experiment file share their test set; runs of different files may not. The
comparison is made on what the runs share: the test records present in all of them (aligned
by record id) and the classes all of them scored. It refuses, naming the reason, when they
share no record or no class, or when they disagree on a shared record's labels (then they are
not scored against the same truth and a difference means nothing).

With one run per side the difference is the paired bootstrap over test records; with several
seeds per side it is the two-level bootstrap over seeds and records of ecgcore.views.compare.seeded
(`HeadToHead.method` says which). Per-class p-values come with Holm-adjusted ones (the classes
are one family of tests) and as text where a p sits at the bootstrap floor ("< 1/B").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import auc, roc_curve

from ecgcore.views.compare.seeded import Arm, Predictions, compare_arms, names, shared_draws
from ecgcore.views.compare.stats import format_adjusted, format_p, holm_bounded
from ecgcore.data.labels import class_name
from ecgcore.evaluate.bootstrap import DEFAULT_N_BOOT

H2H_COLUMNS: tuple[str, ...] = ("code", "name", "auc_a", "auc_b", "diff", "low", "high", "p_value", "p_holm",
                                "p", "p Holm")


@dataclass(frozen=True)
class HeadToHead:
    """Arm A minus arm B (one run or several seeds each) on their shared test records and classes."""

    n_records: int
    classes: list[str]
    only_a_records: int
    only_b_records: int
    dropped_classes: list[str]
    result: dict[str, Any] = field(repr=False)
    per_class: pd.DataFrame = field(repr=False)

    @property
    def macro(self) -> dict[str, Any]:
        """Macro AUC of each arm (mean over its seeds), the difference, its CI and p-value."""
        keys = ("macro_auc_a", "macro_auc_b", "macro_auc_diff", "macro_auc_diff_ci", "p_value")
        return {key: self.result[key] for key in keys}

    @property
    def method(self) -> str:
        return str(self.result["method"])

    @property
    def n_boot(self) -> int:
        return int(self.result["bootstrap"]["n"])

    @property
    def p_text(self) -> str:
        """The macro difference's p-value as text ('< 0.005 (1/200)' at the floor)."""
        return format_p(self.result["p_value"], self.n_boot)


def head_to_head(pred_a: Predictions, pred_b: Predictions, *, n_boot: int = DEFAULT_N_BOOT, seed: int = 0,
                 ci: float = 0.95) -> HeadToHead:
    """Paired bootstrap difference (A - B) of per-class and macro AUC of two runs on the shared
    records and classes; EcgcoreError when there is nothing common to compare or the labels disagree."""
    return head_to_head_arms({"A": pred_a, "B": pred_b}, Arm(("A",), (None,)), Arm(("B",), (None,)),
                             n_boot=n_boot, seed=seed, ci=ci)


def head_to_head_arms(preds: Mapping[str, Predictions], arm_a: Arm, arm_b: Arm, *, n_boot: int = DEFAULT_N_BOOT,
                      seed: int = 0, ci: float = 0.95) -> HeadToHead:
    """Two settings head to head with their seeds ({run id: predictions} of both arms' runs):
    the two-level bootstrap over seeds and records (`seeded.compare_arms`), per class and macro."""
    runs = {r: preds[r] for r in (*arm_a.run_ids, *arm_b.run_ids)}
    shared = shared_draws(runs, n_boot=n_boot, seed=seed)
    result = compare_arms(shared, arm_a, arm_b, seed=seed, ci=ci)
    raw = [_nan(result["per_class"][code]["p_value"]) for code in shared.classes]
    adjusted, bound = holm_bounded(raw, shared.n_boot)
    rows = []
    for c, code in enumerate(shared.classes):
        entry = result["per_class"][code]
        low, high = entry["ci"]
        rows.append({"code": code, "name": class_name(code), "auc_a": _nan(entry["auc_a"]),
                     "auc_b": _nan(entry["auc_b"]), "diff": _nan(entry["diff"]), "low": _nan(low),
                     "high": _nan(high), "p_value": raw[c], "p_holm": adjusted[c],
                     "p": format_p(raw[c], shared.n_boot), "p Holm": format_adjusted(adjusted[c], bool(bound[c]))})
    result["per_class_adjustment"] = f"Holm over the {int(np.isfinite(raw).sum())} classes compared"
    return HeadToHead(n_records=len(shared.record_ids), classes=shared.classes,
                      only_a_records=max(shared.only_records[r] for r in arm_a.run_ids),
                      only_b_records=max(shared.only_records[r] for r in arm_b.run_ids),
                      dropped_classes=shared.dropped_classes, result=result,
                      per_class=pd.DataFrame(rows, columns=list(H2H_COLUMNS)))


def _nan(value: object) -> float:
    return float("nan") if value is None else float(value)  # type: ignore[arg-type]


@dataclass(frozen=True)
class RocCurve:
    code: str
    name: str
    fpr: np.ndarray
    tpr: np.ndarray
    auc: float
    positives: int


def roc_curves(pred: Predictions) -> list[RocCurve]:
    """ROC curve per class of one run (scikit-learn), in the run's class order; classes without
    both positives and negatives in the test set have no curve and are left out."""
    truth = np.asarray(pred["y_true"])
    score = np.asarray(pred["y_score"])
    curves = []
    for c, code in enumerate(names(pred, "classes")):
        column = truth[:, c]
        if column.min() == column.max():
            continue
        fpr, tpr, _ = roc_curve(column, score[:, c])
        # The area under the curve itself: what roc_auc_score computes, without a second pass.
        curves.append(RocCurve(code=code, name=class_name(code), fpr=fpr, tpr=tpr, auc=float(auc(fpr, tpr)),
                               positives=int(column.sum())))
    return curves
