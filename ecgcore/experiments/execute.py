"""Doing one run of an experiment: data -> model -> strategy -> training -> evaluation
-> run folder. Pretraining runs and target runs go through the same steps; a run whose
config hash already finished is reused, never trained again.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from ecgcore.checkpoint import Checkpoint
from ecgcore.data.pipeline import SplitConfig, TaskDataset, build_dataset
from ecgcore.data.prepare import PrepConfig
from ecgcore.data.recordset import Recordset
from ecgcore.data.sources import open_dataset
from ecgcore.data.sources.challenge import SOURCES as CHALLENGE_SOURCES
from ecgcore.errors import EcgcoreError
from ecgcore.evaluate import evaluate, macro_auc
from ecgcore.evaluate.metrics import binarize, f1_prevalence_weighted
from ecgcore.experiments.run_plan import RunSpec
from ecgcore.data.labels import resolve, with_derived_labels
from ecgcore.models import create_model
from ecgcore.logs import run_log
from ecgcore.views.provenance import data_origin
from ecgcore.runs import RunFolder, RunStore
from ecgcore.train import TrainConfig, fit, predict
from ecgcore.cpu import governor_for
from ecgcore.transfer import StrategyOptions, class_mapping, get_strategy
from ecgcore.transfer.leakage import run_fingerprints, run_leakage, seen_fingerprints

log = logging.getLogger(__name__)

#: Called with the run id as soon as it is known (reused, created or resumed), before any work.
OnRun = Callable[[str], None]


def execute(spec: RunSpec, store: RunStore, callbacks: Sequence[Any] = (),
            folder: RunFolder | None = None, on_run: OnRun | None = None) -> str:
    """Run one spec (or reuse its finished twin) and return the run id. With `folder`, a
    lost attempt continues in its own run folder (the trainer resumes from last.pt).
    While the run is done, every engine log record also goes to its log.txt."""
    if folder is None:
        reused = store.find_done(spec.hash, kind=spec.kind)
        if reused is not None:
            log.info("reusing %s (%s)", reused, spec.label)
            if on_run is not None:
                on_run(reused)
            return reused
        folder = store.create(spec.config, kind=spec.kind)
        log.info("%s: %s", folder.run_id, spec.label)
        folder.log(f"start: {spec.label}")
    else:
        log.info("%s: resuming %s from its last checkpoint", folder.run_id, spec.label)
        folder.log("resumed by a new attempt")
    if on_run is not None:
        on_run(folder.run_id)
    with run_log(folder):
        try:
            results = _do_run(spec, store, folder, callbacks)
        except KeyboardInterrupt:
            store.fail(folder.run_id, "cancelled by the user", status="cancelled")
            raise
        except Exception as exc:
            store.fail(folder.run_id, f"{type(exc).__name__}: {exc}")  # logs the error too
            raise
        store.finish(folder.run_id, results)
        log.debug("done: test macro AUC %s", results['test'].get('macro_auc'))
    return folder.run_id


class _HistoryWriter:
    """Trainer callback: one history.csv row per epoch, as soon as the epoch ends."""

    def __init__(self, folder: RunFolder) -> None:
        self.folder = folder

    def on_epoch_end(self, row: dict[str, Any]) -> None:
        self.folder.append_history(row)
        log.debug("epoch %s", ", ".join(f"{k}={v}" for k, v in row.items()))

    def on_step(self, epoch: int, step: int, n_steps: int) -> None:
        return None

    def should_stop(self) -> bool:
        return False


def _do_run(spec: RunSpec, store: RunStore, folder: RunFolder, callbacks: Sequence[Any]) -> dict:
    config = spec.config
    data_cfg = config["data"]
    # CPU runs: torch threads from the cores other programs leave free (chosen before
    # training, over the data preparation; logged; kept by a resumed attempt).
    governor = governor_for(config.get("train") or {}, folder.path / "checkpoints" / "threads.json")

    # 1. Data: the task's labels, the cached preprocessed array, the split.
    recordset = without_sources(open_dataset(data_cfg["dataset"], **data_cfg["options"]),
                                data_cfg.get("exclude_sources") or ())
    recordset = with_derived_labels(data_cfg["task"], recordset)
    other = None
    if data_cfg["task"] == "shared":
        other_path = config.get("shared_with") or (config.get("source") or {}).get("dataset")
        other = open_dataset(other_path) if other_path else None
    task = resolve(data_cfg["task"], recordset, other, data_cfg["min_positives"])
    data = build_dataset(recordset, task, prep=PrepConfig.from_dict(config["prep"]),
                         split=SplitConfig.from_dict(config["split"]))
    classes = list(data.classes)
    log.debug("data: %d records, %d classes, split %s", len(data), len(classes), data.split.sizes())

    # 2. Model and strategy (what is loaded from the source, what is frozen, at which LR).
    train_cfg = TrainConfig.from_dict(config["train"])
    n_samples = data.X.shape[2] if not train_cfg.crop_seconds else int(
        round(train_cfg.crop_seconds * data.prep.fs))
    torch.manual_seed(config["seed"])
    model = create_model(config["arch"], n_leads=data.X.shape[1], n_classes=len(classes),
                         n_samples=n_samples)
    strategy = get_strategy(config.get("strategy") or "scratch")
    options = StrategyOptions.from_dict(config.get("strategy_options") or {})
    source = _source_checkpoint(config, store)
    n_groups = len(model.layer_groups())
    if strategy.trains:
        strategy.check_epochs(n_groups, train_cfg.epochs, options)  # before any work is done
    strategy.setup(model, source, classes, options)

    # 3. Training (nothing to train for source_only).
    fit_result = None
    every_epoch = [_TestEveryEpoch(model, data, train_cfg, folder)] if (
        (config.get("report") or {}).get("test_every_epoch")) else []
    if strategy.trains:
        if governor is not None:
            governor.start()
        fit_result = fit(model, data, train_cfg,
                         plan_fn=lambda m, epoch, lr: strategy.plan(m, epoch, lr, options, train_cfg.epochs),
                         checkpoint_dir=folder.path / "checkpoints",
                         callbacks=[_HistoryWriter(folder), *every_epoch, *callbacks,
                                    *([governor] if governor is not None else [])])
        model.load_state_dict(fit_result.best_state)
    phases = [p.report(fit_result.epochs_run if fit_result else 0)
              for p in strategy.placed_phases(n_groups, train_cfg.epochs, options)] if strategy.trains else []

    # 4. Evaluation on the test split (thresholds tuned on validation only).
    scored_classes, test_scores, val_scores = _scores(model, data, train_cfg, strategy.name,
                                                      source, classes)
    keep = [classes.index(c) for c in scored_classes]
    test, val = data.split.test, data.split.val
    metrics = evaluate(data.y[test][:, keep], test_scores, scored_classes,
                       y_val=data.y[val][:, keep] if val.size else None,
                       score_val=val_scores if val.size else None, seed=config["seed"],
                       challenge_weights=data_cfg.get("challenge_weights"))
    folder.write_predictions(np.asarray(data.record_ids)[test], data.y[test][:, keep],
                             test_scores, scored_classes)

    # 5. The model file, with what it has seen (so later runs can check for leakage).
    seen = dict(source.seen) if source is not None else {}
    train_ids = [data.record_ids[i] for i in data.split.train]
    seen[data.name] = [*seen.get(data.name, []), *train_ids] if strategy.trains else seen.get(data.name, [])
    prints = run_fingerprints(data)  # signal identity of every record (cached)
    trained_prints = prints.subset(train_ids) if prints is not None and strategy.trains else None
    folder.save_model(Checkpoint(
        state_dict={k: v.detach().cpu() for k, v in model.state_dict().items()},
        model_name=config["arch"], model_config=dict(model.config), classes=classes,
        class_names=list(data.class_names), prep=data.prep.to_dict(),
        stage=spec.kind, seen=seen, extra={
            "run_id": folder.run_id, "task": data.task.name,
            "layouts": {**((source.extra.get("layouts") or {}) if source else {}), data.name: data.layout},
            "standard_scaler": None if data.scaler is None else
            {"mean": data.scaler[0].tolist(), "std": data.scaler[1].tolist()}},
        fingerprints=seen_fingerprints(source, data.name, trained_prints)))

    leakage = run_leakage(source, data, [data.record_ids[i] for i in test], prints)
    if leakage is not None and leakage.overlap:
        log.warning("%s", leakage.warning)
    return {
        "run_id": folder.run_id, "status": "done", "kind": spec.kind, "config_hash": spec.hash,
        "experiment": config.get("experiment"),
        "source": Path(config["source"]["dataset"]).name if config.get("source") else None,
        "target": data.name, "task": data.task.name, "arch": config["arch"],
        "strategy": config.get("strategy") or "scratch",
        "train_fraction": _train_fraction(config, data), "n_train": int(data.split.train.size),
        "n_val": int(val.size), "n_test": int(test.size), "seed": config["seed"],
        "classes": scored_classes, "class_names": [data.class_names[classes.index(c)] for c in scored_classes],
        "unscored_classes": [c for c in classes if c not in scored_classes],
        "test": metrics,
        "best_epoch": fit_result.best_epoch if fit_result else None,
        "epochs_run": fit_result.epochs_run if fit_result else 0,
        "train_seconds": fit_result.train_seconds if fit_result else 0.0,
        "device": str(fit_result.device) if fit_result else "cpu",
        "precision": fit_result.precision if fit_result else "float32",
        "threads": governor.summary() if governor is not None and fit_result else None,
        "precision_asked": train_cfg.precision,
        "phases": phases,
        "training_notes": list(fit_result.notes) if fit_result else ["no target training"],
        "split": {"method": data.split.method, "notes": data.split.notes, "sizes": data.split.sizes()},
        "dropped_counts": data.dropped_counts(),
        "leakage": leakage.to_dict() if leakage is not None else None,
        "data_origin": data_origin(config),  # real or synthetic, as every prediction view says
        **protocol_facts(config, data.split.method),
        **({"test_by_epoch": _TestEveryEpoch.summary(folder)} if every_epoch else {}),
        "finished": time.time(),
    }


def _train_fraction(config: dict[str, Any], data: TaskDataset) -> float:
    """The fraction of the training split used: as configured, or for a run given a record
    count (train_n) the count over the full training split, so the data-efficiency curve
    places runs of a size sweep along the same axis as fractions."""
    full = data.split.params.get("n_train_full")
    if config.get("train_n") and full:
        return round(int(data.split.train.size) / int(full), 4)
    return config.get("train_fraction", 1.0)


def protocol_facts(config: dict[str, Any], split_method: str) -> dict[str, Any]:
    """What results.json says about the protocol that produced it: its name (None for a
    file without one), the training-subset size asked for, and whether patients may be in
    both training and test (a record-level, paper-exact split)."""
    return {"protocol": config.get("protocol"), "train_n": config.get("train_n"),
            "exclude_sources": (config.get("data") or {}).get("exclude_sources") or [],
            "patients_may_leak": split_method == "paper"}


def without_sources(recordset: Recordset, exclude: Sequence[str]) -> Recordset:
    """The recordset without the records of the named sources (the Challenge layout's
    `source` column, e.g. "PTB-XL" for the HR records), so a pretraining set can leave out
    the target it contains. A name that matches no record is an error (a typo would
    otherwise silently keep the target inside the source); a known Challenge source absent
    from this folder is fine (nothing to leave out)."""
    if not exclude:
        return recordset
    present = set(recordset.table["source"].astype(str))
    unknown = sorted(set(exclude) - present - set(CHALLENGE_SOURCES.values()))
    if unknown:
        raise EcgcoreError(f"{recordset.name}: exclude_sources {unknown} name no source; "
                           f"sources here: {sorted(present)}; Challenge sources: "
                           f"{sorted(CHALLENGE_SOURCES.values())}")
    keep = ~recordset.table["source"].astype(str).isin(list(exclude)).to_numpy()
    log.debug("data: left out %d records of sources %s", int((~keep).sum()), sorted(exclude))
    return dataclasses.replace(recordset, table=recordset.table[keep])


class _TestEveryEpoch:
    """Trainer callback: scores the test split after every epoch into test_by_epoch.csv
    (epoch, f1_weighted at 0.5, macro_auc). Nguyen & Do report the best test F1 over their
    epochs — model selection on the test set — so a paper-exact run can show that number
    beside its honest one (the last or best-validation epoch's, in `test`). The file is
    appended to, so a resumed run keeps its earlier epochs."""

    FILE = "test_by_epoch.csv"
    NOTE = ("best epoch chosen on the test set, as Nguyen & Do report it: optimistic; "
            "the run's own result is `test`")

    def __init__(self, model: torch.nn.Module, data: TaskDataset, config: TrainConfig,
                 folder: RunFolder) -> None:
        self.model, self.data, self.config, self.folder = model, data, config, folder

    def on_step(self, epoch: int, step: int, n_steps: int) -> None:
        return None

    def should_stop(self) -> bool:
        return False

    def on_epoch_end(self, row: dict[str, Any]) -> None:
        test = self.data.split.test
        scores = predict(self.model, self.data, test, self.config)
        truth = self.data.y[test]
        f1 = f1_prevalence_weighted(truth, binarize(scores))
        path = self.folder.path / self.FILE
        line = f"{row['epoch']},{f1:.6f},{macro_auc(truth, scores):.6f}\n"
        with path.open("a", encoding="utf-8") as fh:
            if fh.tell() == 0:
                fh.write("epoch,f1_weighted,macro_auc\n")
            fh.write(line)

    @classmethod
    def summary(cls, folder: RunFolder) -> dict[str, Any]:
        path = folder.path / cls.FILE
        if not path.is_file():
            return {"note": cls.NOTE, "epochs": []}
        table = pd.read_csv(path).drop_duplicates("epoch", keep="last").sort_values("epoch")
        best = table.loc[table["f1_weighted"].idxmax()]
        return {"note": cls.NOTE, "best_f1_weighted": float(best["f1_weighted"]),
                "best_epoch": int(best["epoch"]), "epochs": table["epoch"].astype(int).tolist(),
                "f1_weighted": table["f1_weighted"].astype(float).round(6).tolist(),
                "macro_auc": table["macro_auc"].astype(float).round(6).tolist()}


def _source_checkpoint(config: dict[str, Any], store: RunStore) -> Checkpoint | None:
    pretrain_hash = config.get("pretrain_hash")
    if not pretrain_hash:
        return None
    run_id = store.find_done(pretrain_hash, kind="pretrain")
    if run_id is None:
        raise RuntimeError(f"the pretraining run {pretrain_hash} this run needs has not finished")
    return store.get(run_id).load_model()


def _scores(model: torch.nn.Module, data: TaskDataset, train_cfg: TrainConfig, strategy: str,
            source: Checkpoint | None, classes: list[str]
            ) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Test and validation scores, and the classes they cover: all of them, except for
    source_only, which can only score the target classes the source head knows."""
    test_scores = predict(model, data, data.split.test, train_cfg)
    val_scores = predict(model, data, data.split.val, train_cfg) if data.split.val.size else \
        np.zeros((0, test_scores.shape[1]), np.float32)
    if strategy != "source_only" or source is None:
        return classes, test_scores, val_scores
    mapping = class_mapping(source.classes, classes)  # target index -> source index
    if not mapping:
        raise RuntimeError("source_only: the source model knows none of the target classes")
    target_idx = sorted(mapping)
    source_idx = [mapping[t] for t in target_idx]
    return [classes[t] for t in target_idx], test_scores[:, source_idx], val_scores[:, source_idx]
