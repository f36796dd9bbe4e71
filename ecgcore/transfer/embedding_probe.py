"""The `embedding_probe` strategy's fit: ecg-fix's logistic-regression probe on cached
embeddings, folded into the model's final Linear.

Berger et al., "Position: Evaluation of ECG Representations Must Be Fixed" (ICML 2026;
zackeberger/ecg-fix `benchmark/eval.py`): frozen embeddings -> one-vs-rest scikit-learn
LogisticRegression (lbfgs, L2, max_iter 10,000, random_state = the seed), over the grid
{StandardScaler on, off} x C in {0.01, 0.1, 1, 10} x class_weight in {None, "balanced"},
chosen by validation log-loss. ecg-fix picks one setting for all classes together; here each
class picks its own (the workbench's spec), by the same criterion on its own column. Ties go
to the earlier setting in ecg-fix's loop order (scaler on first, then C ascending, then None
before "balanced").

Where the criterion cannot choose, a class falls back, and its record says so:
- its training labels are all one value: no logistic regression can be fitted; the class
  scores a constant, the smoothed training prevalence (positives + 0.5) / (n + 1), as a
  zero weight row and that logit as bias (AUC 0.5, a calibrated base rate);
- its validation labels are all one value, or there is no validation split: log-loss then
  only rewards predicting that one value, so the default setting is fitted instead:
  scaler on, C = 1, no class weight (scikit-learn's defaults, with ecg-fix's scaling).

Folding: the probe on features x is sigmoid(w . (x - mean) / scale + b) (mean 0, scale 1
without the scaler; scikit-learn's scale is 1 for a constant feature), which is the Linear
row w / scale with bias b - (w / scale) . mean. So model.pt is an ordinary model of its
architecture whose final Linear is the probe, and every view scores it as any run.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ecgcore.checkpoint import Checkpoint
from ecgcore.data.pipeline import TaskDataset
from ecgcore.errors import EcgcoreError
from ecgcore.models.base import ECGClassifier
from ecgcore.models.token_head import final_linear_of
from ecgcore.train import FitResult, TrainConfig
from ecgcore.train.callbacks import Callback, Callbacks
from ecgcore.train.device import effective_precision, select_device
from ecgcore.transfer.embedding_cache import (
    POOLED,
    Embeddings,
    cached_embeddings,
    require_whole_window,
)
from ecgcore.transfer.strategy import ProbeFit

log = logging.getLogger(__name__)

SCALE: tuple[bool, ...] = (True, False)
CS: tuple[float, ...] = (0.01, 0.1, 1.0, 10.0)
CLASS_WEIGHTS: tuple[str | None, ...] = (None, "balanced")
MAX_ITER = 10_000  # ecg-fix's


@dataclass(frozen=True)
class ProbeSetting:
    """One point of the grid."""

    scale: bool
    C: float
    class_weight: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"scale": self.scale, "C": self.C, "class_weight": self.class_weight}


GRID: tuple[ProbeSetting, ...] = tuple(ProbeSetting(s, c, w) for s in SCALE for c in CS for w in CLASS_WEIGHTS)
DEFAULT = ProbeSetting(scale=True, C=1.0, class_weight=None)

CHOSEN = "validation log-loss"
ONE_TRAIN_LABEL = "one label value in the training split: constant score at the smoothed training prevalence"
ONE_VAL_LABEL = "one label value in the validation split (or none): the default setting"


@dataclass(frozen=True)
class ClassProbe:
    """One class's probe, on the raw (unscaled) features: logit = weight . x + bias."""

    weight: np.ndarray  # (dim,) float64
    bias: float
    setting: ProbeSetting | None  # None: the constant fallback
    val_log_loss: float | None  # of the chosen setting, when validation chose it
    choice: str  # CHOSEN or the fallback's reason
    converged: bool = True

    def report(self, class_key: str) -> dict[str, Any]:
        """This class's line of the run's probe report."""
        setting = self.setting.to_dict() if self.setting is not None else {"scale": None, "C": None,
                                                                            "class_weight": None}
        return {"class": class_key, **setting, "val_log_loss": self.val_log_loss, "choice": self.choice,
                "converged": self.converged}


@dataclass(frozen=True)
class _View:
    """The features one scaler setting gives: train and validation rows, and the scaler's
    mean and scale (0 and 1 without one) for folding."""

    train: np.ndarray
    val: np.ndarray | None
    mean: np.ndarray
    scale: np.ndarray


def _views(x_train: np.ndarray, x_val: np.ndarray | None) -> dict[bool, _View]:
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(x_train)  # features as given (the cache's float32), as ecg-fix fits them
    dim = x_train.shape[1]
    return {True: _View(scaler.transform(x_train), None if x_val is None else scaler.transform(x_val),
                        np.asarray(scaler.mean_, dtype=np.float64), np.asarray(scaler.scale_, dtype=np.float64)),
            False: _View(x_train, x_val, np.zeros(dim), np.ones(dim))}


def fit_probes(x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray | None, y_val: np.ndarray | None,
               seed: int, classes: list[str] | None = None, stop: Callable[[], bool] | None = None) -> list[ClassProbe]:
    """One `ClassProbe` per column of `y_train` (see the module docstring); `stop()` is asked
    before each class (True abandons the fit)."""
    views = _views(x_train, x_val)
    probes = []
    for c in range(y_train.shape[1]):
        if stop is not None and stop():
            raise EcgcoreError(f"embedding probe stopped after {c} of {y_train.shape[1]} classes")
        probe = fit_class(views, y_train[:, c], None if y_val is None else y_val[:, c], seed)
        probes.append(probe)
        log.debug("probe %s: %s (%s)", classes[c] if classes else c,
                  probe.setting.to_dict() if probe.setting else "constant", probe.choice)
    return probes


def fit_class(views: dict[bool, _View], y_train: np.ndarray, y_val: np.ndarray | None, seed: int) -> ClassProbe:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import log_loss

    y_train = np.asarray(y_train).astype(np.int64)
    dim = views[False].train.shape[1]
    if np.unique(y_train).size < 2:
        prevalence = (y_train.sum() + 0.5) / (y_train.size + 1.0)
        return ClassProbe(np.zeros(dim), float(np.log(prevalence / (1 - prevalence))), None, None, ONE_TRAIN_LABEL)
    choose = y_val is not None and np.unique(y_val).size == 2
    best: tuple[ProbeSetting, Any, float | None, bool] | None = None
    for setting in GRID if choose else (DEFAULT,):
        view = views[setting.scale]
        model = LogisticRegression(C=setting.C, class_weight=setting.class_weight, max_iter=MAX_ITER,
                                   random_state=seed)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            model.fit(view.train, y_train)
        converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
        loss = float(log_loss(y_val, model.predict_proba(view.val)[:, 1], labels=[0, 1])) if choose else None
        if best is None or (loss is not None and best[2] is not None and loss < best[2]):
            best = (setting, model, loss, converged)
    assert best is not None
    setting, model, loss, converged = best
    view = views[setting.scale]
    weight = np.asarray(model.coef_[0], dtype=np.float64) / view.scale
    bias = float(model.intercept_[0]) - float(weight @ view.mean)
    return ClassProbe(weight, bias, setting, loss, CHOSEN if choose else ONE_VAL_LABEL, converged)


@torch.no_grad()
def fold_into_linear(layer: nn.Linear, probes: list[ClassProbe]) -> None:
    """Row c of `layer` becomes class c's probe (weight and bias)."""
    if layer.out_features != len(probes) or layer.in_features != probes[0].weight.size:
        raise EcgcoreError(f"the final Linear is {layer.in_features} -> {layer.out_features}, the probes "
                           f"{probes[0].weight.size} features x {len(probes)} classes")
    if layer.bias is None:
        raise EcgcoreError("the model's final Linear has no bias: a logistic-regression probe needs one")
    layer.weight.copy_(torch.from_numpy(np.stack([p.weight for p in probes])))
    layer.bias.copy_(torch.tensor([p.bias for p in probes], dtype=torch.float64))


@torch.no_grad()
def linear_scores(layer: nn.Linear, embeddings: Embeddings, rows: np.ndarray) -> np.ndarray:
    """Sigmoid scores of `rows` through `layer` from the cached features (what the model's
    forward computes after its encoder)."""
    features = torch.from_numpy(embeddings.take(rows)).to(layer.weight.device)
    return torch.sigmoid(layer(features)).cpu().numpy()


def fit_embedding_probe(model: ECGClassifier, source: Checkpoint, data: TaskDataset, train: TrainConfig,
                        phase: dict[str, Any], callbacks: Sequence[Callback] = ()) -> ProbeFit:
    """Extract (or read) the pooled embeddings, fit the per-class probes on the training
    split, choose on validation, fold them into `model`'s final Linear. `phase` is the
    strategy's report of its one phase; the probe's report goes under its "probe" key.
    The callbacks' `should_stop` is asked after every batch encoded and every class fitted."""
    require_whole_window(data, train, "embedding_probe")
    started = time.perf_counter()
    device = select_device(train.device)
    stop = Callbacks(callbacks).should_stop
    embeddings = cached_embeddings(model, source, data, POOLED, batch_size=train.eval_batch_size,
                                   device=device, precision=train.precision, stop=stop)
    embedded = time.perf_counter() - started
    train_rows, val_rows = data.split.train, data.split.val
    has_val = val_rows.size > 0
    probes = fit_probes(embeddings.take(train_rows), data.y[train_rows],
                        embeddings.take(val_rows) if has_val else None, data.y[val_rows] if has_val else None,
                        seed=train.seed, classes=list(data.classes), stop=stop)
    layer = model.get_submodule(final_linear_of(model))
    fold_into_linear(layer, probes)
    seconds = time.perf_counter() - started
    fallbacks = sum(p.choice != CHOSEN for p in probes)
    log.info("embedding probe: %d classes fitted on %d records in %.1f s (%d fell back)",
             len(probes), train_rows.size, seconds - embedded, fallbacks)
    report = {
        "kind": "logistic_regression", "protocol": "ecg-fix (Berger et al. 2026), chosen per class",
        "grid": {"scale": list(SCALE), "C": list(CS), "class_weight": list(CLASS_WEIGHTS)},
        "selection": "validation log-loss", "default": DEFAULT.to_dict(), "max_iter": MAX_ITER,
        "embeddings": {"key": embeddings.key, "from_cache": not embeddings.extracted,
                       "dim": int(embeddings.values.shape[1]), "seconds": round(embedded, 3)},
        "classes": [p.report(c) for p, c in zip(probes, data.classes)],
    }
    source_of_features = "read from the cache" if not embeddings.extracted else "extracted"
    notes = [("embedding probe: per-class logistic regression on the frozen encoder's cached embeddings "
              f"({source_of_features}); no epochs")]
    if fallbacks:
        notes.append(f"{fallbacks} of {len(probes)} classes fell back (see phases[0].probe.classes)")
    if not has_val:
        notes.append("no validation set: every class uses the default probe setting")
    fit = FitResult(history=[], best_epoch=None, best_state={k: v.detach().cpu().clone()
                                                             for k, v in model.state_dict().items()},
                    epochs_run=0, train_seconds=round(seconds, 3), device=str(device), stopped_early=False,
                    early_stopping=False, notes=notes, precision=effective_precision(device, train.precision))
    return ProbeFit(model, fit, [{**phase, "probe": report}],
                    lambda rows: linear_scores(layer, embeddings, rows))
