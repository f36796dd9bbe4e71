"""Doing one run of an experiment. A run whose config hash already finished is reused,
never trained again; any other goes through the same named steps, pretraining and target
runs alike (the lifecycle of the PTB-XL benchmark's `SCP_Experiment`):

1. `prepare_data`: the dataset's records, the task's labels, the cached preprocessed
   array, the split;
2. `perform`: the model, the strategy's setup (what is loaded from the source, what is
   frozen) and the training it prescribes; for a self-supervised pretraining run, the
   method's pretext task instead (`ecgcore.ssl.pretrain`: the records, never the labels);
3. `evaluate_test`: scores on the test split of the classes the strategy can score,
   metrics with thresholds tuned on validation only, predictions.npz (a self-supervised
   pretraining run scores no classes: its pretext loss on the test records);
4. `save_model`: model.pt with the records it has seen (so later runs can check for
   leakage) and this run's own leakage check;
then `results_of` gathers results.json.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ecgcore.checkpoint import Checkpoint
from ecgcore.cpu import ThreadGovernor, governor_for
from ecgcore.data.labels import resolve, with_derived_labels
from ecgcore.data.pipeline import TaskDataset, build_dataset
from ecgcore.data.recordset import Recordset
from ecgcore.data.sources import open_dataset
from ecgcore.data.sources.challenge import SOURCES as CHALLENGE_SOURCES
from ecgcore.errors import EcgcoreError
from ecgcore.evaluate import evaluate
from ecgcore.experiments.run_callbacks import HistoryWriter, TestEveryEpoch
from ecgcore.experiments.run_plan import RunSpec
from ecgcore.logs import run_log
from ecgcore.foundation.checkpoints import get_checkpoint
from ecgcore.models import MODELS, create_model
from ecgcore.runs import RunFolder, RunStore
from ecgcore.runs.data_origin import DatasetOrigin, data_origin
from ecgcore.runs.run_config import SUPERVISED, RunConfig
from ecgcore.ssl.pretrain import Pretrained, pretrain_encoder
from ecgcore.train import FitResult, fit, predict
from ecgcore.transfer import ScoredOutputs, Strategy, get_strategy
from ecgcore.transfer.strategy import EmbeddingStrategy
from ecgcore.transfer.leakage import (
    LeakageReport,
    run_fingerprints,
    run_leakage,
    seen_fingerprints,
)

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


def _do_run(spec: RunSpec, store: RunStore, folder: RunFolder, callbacks: Sequence[Any]) -> dict:
    """The run's steps in order; returns what results.json holds."""
    config = spec.run_config
    # CPU runs: torch threads from the cores other programs leave free (chosen before
    # training, over the data preparation; logged; kept by a resumed attempt).
    governor = governor_for(config.train.to_dict(), folder.path / "checkpoints" / "threads.json")
    data = prepare_data(config)
    performed = perform(config, data, store, folder, callbacks, governor)
    evaluated = evaluate_test(config, data, performed, folder)
    leakage = save_model(spec, data, performed, folder)
    return results_of(spec, data, performed, evaluated, leakage, folder)


# -- 1. prepare ------------------------------------------------------------------------------
def prepare_data(config: RunConfig) -> TaskDataset:
    """The run's dataset: records (less any excluded sources), the task's labels, the
    cached preprocessed array and the split."""
    part = config.data
    recordset = without_sources(open_dataset(part.dataset, **part.options), part.exclude_sources)
    recordset = with_derived_labels(part.task, recordset)
    other = None
    if part.task == "shared":
        partner = config.shared_partner
        other = open_dataset(partner) if partner else None
    task = resolve(part.task, recordset, other, part.min_positives)
    data = build_dataset(recordset, task, prep=config.prep, split=config.split)
    log.debug("data: %d records, %d classes, split %s", len(data), len(data.classes), data.split.sizes())
    return data


# -- 2. perform ------------------------------------------------------------------------------
@dataclass
class Performed:
    """What `perform` leaves: the model (its best weights loaded), the strategy that set it
    up, the source checkpoint it started from, the fit (None when the strategy trains
    nothing) with its phases as results.json reports them, and the CPU thread governor.
    `scores(rows)`: for a strategy that fits on cached embeddings, the rows' scores from that
    cache (no encoder runs); None: the model scores the records. `pretext`: a self-supervised
    pretraining's method and test loss (None for every other run)."""

    model: torch.nn.Module
    strategy: Strategy
    source: Checkpoint | None
    fit: FitResult | None
    phases: list[dict[str, Any]]
    governor: ThreadGovernor | None
    scores: Callable[[np.ndarray], np.ndarray] | None = None
    pretext: Pretrained | None = None

    @property
    def epochs_run(self) -> int:
        return self.fit.epochs_run if self.fit is not None else 0


def perform(config: RunConfig, data: TaskDataset, store: RunStore, folder: RunFolder,
            callbacks: Sequence[Any], governor: ThreadGovernor | None) -> Performed:
    """The model, set up by the strategy (what is loaded from the source, what is frozen,
    at which learning rate), then trained as the strategy prescribes."""
    if config.pretrain_method is not None:
        return perform_self_supervised(config, data, folder, callbacks, governor)
    classes = list(data.classes)
    train = config.train
    n_samples = data.X.shape[2] if not train.crop_seconds else round(train.crop_seconds * data.prep.fs)
    torch.manual_seed(config.seed)
    model = create_model(config.model.arch, n_leads=data.X.shape[1], n_classes=len(classes),
                         n_samples=n_samples)
    strategy = get_strategy(config.strategy_name)
    options = config.effective_strategy.options
    source = _source_checkpoint(config, store)
    n_groups = len(model.layer_groups())
    strategy.check_epochs(n_groups, train.epochs, options)  # before any work is done
    strategy.setup(model, source, classes, options)
    if isinstance(strategy, EmbeddingStrategy):  # a probe: fits on the frozen encoder's cached embeddings
        if governor is not None:
            governor.start()
        probe = strategy.fit_embeddings(
            model, source, data, train, checkpoint_dir=folder.path / "checkpoints",
            callbacks=[HistoryWriter(folder), *callbacks, *([governor] if governor is not None else [])],
            every_epoch=(lambda module, seen: TestEveryEpoch(module, seen, train, folder))
            if config.report.test_every_epoch else None)
        return Performed(probe.model, strategy, source, probe.fit, probe.phases, governor, probe.scores)
    fit_result = None
    if strategy.trains:
        every_epoch = [TestEveryEpoch(model, data, train, folder)] if config.report.test_every_epoch else []
        if governor is not None:
            governor.start()
        fit_result = fit(model, data, train,
                         plan_fn=lambda m, epoch, lr: strategy.plan(m, epoch, lr, options, train.epochs),
                         checkpoint_dir=folder.path / "checkpoints",
                         callbacks=[HistoryWriter(folder), *every_epoch, *callbacks,
                                    *([governor] if governor is not None else [])])
        model.load_state_dict(fit_result.best_state)
    phases = strategy.phase_reports(n_groups, train.epochs, options,
                                    fit_result.epochs_run if fit_result else 0)
    return Performed(model, strategy, source, fit_result, phases, governor)


def perform_self_supervised(config: RunConfig, data: TaskDataset, folder: RunFolder,
                            callbacks: Sequence[Any], governor: ThreadGovernor | None) -> Performed:
    """A self-supervised pretraining run: the architecture trained by its method's pretext
    task on the records (`ecgcore.ssl.pretrain`), with the trainer's history, checkpoints
    and resume; the model it leaves is the backbone, ready to be a source."""
    assert config.pretrain_method is not None
    if governor is not None:
        governor.start()
    pretrained = pretrain_encoder(
        config.model.arch, config.pretrain_method, data, config.train, seed=config.seed,
        checkpoint_dir=folder.path / "checkpoints",
        callbacks=[HistoryWriter(folder), *callbacks, *([governor] if governor is not None else [])])
    fitted = pretrained.fit
    phases = [{"name": config.pretrain_method.name, "first_epoch": 0, "epochs_planned": config.train.epochs,
               "epochs_run": fitted.epochs_run, "reached": fitted.epochs_run > 0,
               "schedule": config.train.schedule, "train_bn": None}]
    return Performed(pretrained.backbone, get_strategy(config.strategy_name), None, fitted, phases, governor,
                     pretext=pretrained)


def _source_checkpoint(config: RunConfig, store: RunStore) -> Checkpoint | None:
    """The weights the run starts from: a registered foundation-model checkpoint (its file
    must still have the SHA-256 the run was planned with), the model of the pretraining
    run it depends on, or None."""
    ref = config.source.checkpoint if config.source is not None else None
    if ref is not None:
        record = get_checkpoint(ref.name)
        if record.sha256 != ref.sha256:
            raise EcgcoreError(f"checkpoint {ref.name!r} is now the file with SHA-256 {record.sha256[:12]}…, "
                               f"but this run was planned with {ref.sha256[:12]}…: plan the run again")
        return record.load()
    pretrain_hash = config.source.pretrain_hash if config.source is not None else None
    if not pretrain_hash:
        return None
    run_id = store.find_done(pretrain_hash, kind="pretrain")
    if run_id is None:
        raise RuntimeError(f"the pretraining run {pretrain_hash} this run needs has not finished")
    return store.get(run_id).load_model()


# -- 3. evaluate -----------------------------------------------------------------------------
@dataclass
class Evaluated:
    """The classes scored (and their model output columns) and the test metrics."""

    scored: ScoredOutputs
    metrics: dict[str, Any]


def evaluate_test(config: RunConfig, data: TaskDataset, performed: Performed,
                  folder: RunFolder) -> Evaluated:
    """Metrics on the test split (thresholds tuned on validation only) of the classes the
    strategy can score, and predictions.npz. A self-supervised pretraining run scores no
    classes: its pretext loss on the test records, and no predictions.npz."""
    if performed.pretext is not None:
        return Evaluated(ScoredOutputs([], []), performed.pretext.test_metrics())
    classes = list(data.classes)
    scored = performed.strategy.scored_outputs(performed.source, classes)
    test, val = data.split.test, data.split.val
    score = performed.scores or (lambda rows: predict(performed.model, data, rows, config.train))
    test_scores = scored.pick(score(test))
    val_scores = scored.pick(score(val)) if val.size else None
    keep = [classes.index(c) for c in scored.classes]
    metrics = evaluate(data.y[test][:, keep], test_scores, scored.classes,
                       y_val=data.y[val][:, keep] if val.size else None, score_val=val_scores,
                       seed=config.seed, challenge_weights=config.data.challenge_weights)
    folder.write_predictions(np.asarray(data.record_ids)[test], data.y[test][:, keep],
                             test_scores, scored.classes)
    return Evaluated(scored, metrics)


# -- 4. save ---------------------------------------------------------------------------------
def save_model(spec: RunSpec, data: TaskDataset, performed: Performed,
               folder: RunFolder) -> LeakageReport | None:
    """model.pt with what the model has seen (the source's records and this run's training
    records, with their signal fingerprints), so later runs can check for leakage; returns
    this run's own check (test records the source saw)."""
    source = performed.source
    trained_ids = [data.record_ids[i] for i in data.split.train] if performed.fit is not None else []
    seen = dict(source.seen) if source is not None else {}
    seen[data.name] = [*seen.get(data.name, []), *trained_ids]
    prints = run_fingerprints(data)  # signal identity of every record (cached)
    trained_prints = prints.subset(trained_ids) if prints is not None and performed.fit is not None else None
    model = performed.model
    learnt = performed.pretext is None  # a self-supervised encoder's head learnt no class
    folder.save_model(Checkpoint(
        state_dict={k: v.detach().cpu() for k, v in model.state_dict().items()},
        model_name=spec.run_config.model.arch, model_config=dict(model.config),
        classes=list(data.classes) if learnt else [], class_names=list(data.class_names) if learnt else [],
        prep=data.prep.to_dict(),
        stage=spec.kind, seen=seen, extra={
            "run_id": folder.run_id, "task": data.task.name,
            "layouts": {**((source.extra.get("layouts") or {}) if source else {}), data.name: data.layout},
            "standard_scaler": None if data.scaler is None else
            {"mean": data.scaler[0].tolist(), "std": data.scaler[1].tolist()},
            **({"pretrain_method": performed.pretext.facts()} if performed.pretext is not None else {})},
        fingerprints=seen_fingerprints(source, data.name, trained_prints)))
    leakage = run_leakage(source, data, [data.record_ids[i] for i in data.split.test], prints)
    if leakage is not None and leakage.overlap:
        log.warning("%s", leakage.warning)
    return leakage


# -- results.json ----------------------------------------------------------------------------
def results_of(spec: RunSpec, data: TaskDataset, performed: Performed, evaluated: Evaluated,
               leakage: LeakageReport | None, folder: RunFolder) -> dict[str, Any]:
    """What results.json holds (`RunStore.finish` adds the status and the times)."""
    config = spec.run_config
    fitted, governor = performed.fit, performed.governor
    classes = list(data.classes)
    scored = evaluated.scored.classes
    return {
        "run_id": folder.run_id, "status": "done", "kind": spec.kind, "config_hash": spec.hash,
        "experiment": config.experiment,
        "source": config.source.name if config.source is not None else None,
        **source_facts(config, performed.source),
        "target": data.name, "task": data.task.name, "arch": config.model.arch,
        "strategy": config.strategy_name,
        "train_fraction": _train_fraction(config, data), "n_train": int(data.split.train.size),
        "n_val": int(data.split.val.size), "n_test": int(data.split.test.size), "seed": config.seed,
        "classes": scored, "class_names": [data.class_names[classes.index(c)] for c in scored],
        "unscored_classes": [c for c in classes if c not in scored],
        "test": evaluated.metrics,
        "best_epoch": fitted.best_epoch if fitted else None,
        "epochs_run": performed.epochs_run,
        "train_seconds": fitted.train_seconds if fitted else 0.0,
        "device": str(fitted.device) if fitted else "cpu",
        "precision": fitted.precision if fitted else "float32",
        "threads": governor.summary() if governor is not None and fitted else None,
        "precision_asked": config.train.precision,
        "speed": fitted.speed if fitted and fitted.speed else None,  # `ecgcore.train.speed`
        "phases": performed.phases,
        "training_notes": list(fitted.notes) if fitted else ["no target training"],
        "split": {"method": data.split.method, "notes": data.split.notes, "sizes": data.split.sizes()},
        "dropped_counts": data.dropped_counts(),
        "leakage": leakage.to_dict() if leakage is not None else None,
        "data_origin": data_origin(config, checkpoint_origin(performed.source)),  # real or synthetic
        **protocol_facts(config, data.split.method),
        **({"test_by_epoch": TestEveryEpoch.summary(folder)} if config.report.test_every_epoch else {}),
        **pretraining_facts(config, performed),
        "finished": time.time(),
    }


def source_facts(config: RunConfig, source: Checkpoint | None) -> dict[str, Any]:
    """What results.json says about the run's start: `source_kind` ("none", "pretraining",
    "checkpoint"), the checkpoint's registry facts (name, SHA-256, model, architecture,
    licence, commercial use) for a checkpoint source, and the input contract the model's
    input was prepared by (None for a model without one)."""
    checkpoint = None
    if config.source is not None and config.source.checkpoint is not None and source is not None:
        ref = config.source.checkpoint
        facts = source.extra
        checkpoint = {"name": ref.name, "sha256": ref.sha256, "model": facts.get("model"),
                      "arch": ref.arch, "licence": facts.get("licence"),
                      "commercial_use": facts.get("commercial_use")}
    contract = MODELS[config.model.arch].contract
    return {"source_kind": config.source_kind, "source_checkpoint": checkpoint,
            "input_contract": contract.to_dict() if contract is not None else None}


def pretraining_facts(config: RunConfig, performed: Performed) -> dict[str, Any]:
    """What results.json says of pretraining methods: a pretraining run its own
    (`pretrain_method`, and for a self-supervised one its settings and augmentations), a run
    that starts from a pretraining run the method that made its source ("supervised" for a
    source made before methods existed); nothing for other runs."""
    if performed.pretext is not None:
        facts = performed.pretext.facts()
        return {"pretrain_method": facts["name"], "pretrain_settings": facts["settings"],
                "augmentations": facts["augmentations"]}
    if config.kind == "pretrain":
        return {"pretrain_method": SUPERVISED}
    if config.source_kind == "pretraining" and performed.source is not None:
        made_by = performed.source.extra.get("pretrain_method") or {}
        return {"pretrain_method": made_by.get("name", SUPERVISED)}
    return {}


def checkpoint_origin(source: Checkpoint | None) -> DatasetOrigin | None:
    """A checkpoint source's training data as its registry record says (None for any other
    source): synthetic for the demo checkpoints made here, real for published ones."""
    if source is None or source.stage != "checkpoint":
        return None
    extra = source.extra
    synthetic = extra.get("synthetic")
    trained_on = ", ".join(extra.get("pretrained_on") or ()) or "not stated"
    return DatasetOrigin(str(extra.get("checkpoint")), synthetic if isinstance(synthetic, bool) else None,
                         f"checkpoint registry: trained on {trained_on}")


def _train_fraction(config: RunConfig, data: TaskDataset) -> float:
    """The fraction of the training split used: as configured, or for a run given a record
    count (train_n) the count over the full training split, so the data-efficiency curve
    places runs of a size sweep along the same axis as fractions."""
    full = data.split.params.get("n_train_full")
    if config.train_n and full:
        return round(int(data.split.train.size) / int(full), 4)
    return config.train_fraction


def protocol_facts(config: RunConfig, split_method: str) -> dict[str, Any]:
    """What results.json says about the protocol that produced it: its name (None for a
    file without one), the training-subset size asked for, and whether patients may be in
    both training and test (a record-level, paper-exact split)."""
    return {"protocol": config.protocol, "train_n": config.train_n,
            "exclude_sources": list(config.data.exclude_sources),
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
