"""The training loop: `fit` a model on a TaskDataset, `predict` scores for any rows.

`_fit` reads top to bottom like a textbook loop; each step is a function named after what
it does, here or in the sibling module named:

    set_up             the rows, the crop length, seeds, the device, precision, the
                       objective: `Supervised` (BCE on the labels) unless the caller passes
                       one, e.g. a self-supervised method (`objective`, `ecgcore.ssl`)
                       (`epoch.Setup`; `fit` joins the torchrun process group around it)
    start_or_resume    a fresh `state.LoopState`, or the one last.pt saved (weights, random
                       states, and the optimizer rebuilt along its cycle's plans, then loaded)
    for each epoch:
        plan_of            the transfer strategy (plan_fn) says what trains: phase and cycle
        Optimisation.follow  a new optimizer when a cycle starts or the plan changed,
                           extended when it only adds groups (`optimizers`)
        train_one_epoch    shuffled batches (random crops), the objective's loss, Adam(W),
                           one LR step per batch along the cycle's schedule (`epoch`)
        validate           the objective's: for `Supervised`, sliding windows aggregated per
                           record, val loss and macro AUC
        LoopState.judge    keep the best weights of the strategy's last phase (by the
                           validation score: the macro AUC for `Supervised`), count the
                           patience ─ write best.pt and last.pt ─ tell the callbacks
        stop early when validation has not improved for `patience` epochs of the last phase

A callback's `should_stop` cancels the run after any step (the epoch is abandoned and
last.pt keeps the previous one) or after an epoch. Epochs are numbered from 0 everywhere
(plan_fn, history rows, best_epoch).
"""

from __future__ import annotations

import contextlib
import math
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ecgcore.data.pipeline import TaskDataset
from ecgcore.errors import EcgcoreError
from ecgcore.models.base import ECGClassifier
from ecgcore.train import distributed
from ecgcore.train.callbacks import Callback, Callbacks
from ecgcore.train.config import TrainConfig
from ecgcore.train.data import (
    StreamSettings,
    crop_length,
    evaluation_batches,
    shuffled_batches,
    training_batch,
)
from ecgcore.train.device import autocast, effective_precision, select_device, to_device
from ecgcore.train.device_data import ResidentTrainingSet, place_training_set
from ecgcore.train.epoch import Setup, train_one_epoch
from ecgcore.train.objective import Batch, Objective, Validation
from ecgcore.train.optimizers import (
    group_learning_rates,
    set_trainable,
    train_everything,
)
from ecgcore.train.speed import (
    Throughput,
    compiled_random,
    reset_peak_memory,
    speed_facts,
)
from ecgcore.train.state import (
    LAST,
    LoopState,
    StateDict,
    atomic_save,
    cpu_copy,
    load_state,
    restore_rng_states,
    write_best,
)
from ecgcore.transfer.base import EpochPlan

PlanFn = Callable[[nn.Module, int, float], EpochPlan]

NO_VALIDATION = "no validation set: the best weights are the last epoch's and early stopping is off"


@dataclass
class FitResult:
    """What `fit` returns. `best_state` is on the CPU; `notes` says in words what a reader
    of the results must know (no validation set, cancelled, resumed, …)."""

    history: list[dict[str, Any]]
    best_epoch: int | None
    best_state: StateDict
    epochs_run: int
    train_seconds: float
    device: str
    stopped_early: bool
    cancelled: bool = False
    early_stopping: bool = True
    notes: list[str] = field(default_factory=list)
    precision: str = "float32"
    speed: dict[str, Any] = field(default_factory=dict)  # how it ran (`speed_facts`): results.json "speed"


# ---------------------------------------------------------------------------------------------
# the loop


def fit(model: nn.Module, data: TaskDataset, config: TrainConfig, *, plan_fn: PlanFn | None = None,
        checkpoint_dir: Path | str, callbacks: Sequence[Callback] = (), resume: bool = True,
        train_index: np.ndarray | None = None, objective: Objective | None = None,
        stream: StreamSettings | None = None) -> FitResult:
    """Train `model` in place on `data` (rows `train_index`, default the training split),
    validate on the validation split, and return the history and the best weights.
    `objective`: what to minimise (default `Supervised`, BCE on the labels). `stream`: read
    the training rows in shards (`data.ShardStream`) instead of shuffling them whole."""
    ctx = distributed.context_from_env()
    device = distributed.device_for(ctx, select_device(config.device))
    joined = distributed.start(ctx, device)
    try:
        with backend_settings(config):
            return _fit(model, data, config, plan_fn, Path(checkpoint_dir), Callbacks(callbacks),
                        resume, train_index, objective, ctx, device, stream)
    finally:
        distributed.stop(joined)


def _fit(model: nn.Module, data: TaskDataset, config: TrainConfig, plan_fn: PlanFn | None,
         checkpoint_dir: Path, callbacks: Callbacks, resume: bool, train_index: np.ndarray | None,
         objective: Objective | None, ctx: distributed.Context, device: torch.device,
         stream: StreamSettings | None = None) -> FitResult:
    plan_of: Callable[[int], EpochPlan] = lambda epoch: (
        plan_fn(model, epoch, config.lr) if plan_fn else train_everything(model, config.lr))
    setup = set_up(model, data, config, train_index, ctx, device, objective, stream)
    state = start_or_resume(model, setup, checkpoint_dir / LAST, resume, plan_of)
    throughput = Throughput()
    reset_peak_memory(device)
    for epoch in range(state.next_epoch, config.epochs):
        if state.stopped_early:  # in the previous epoch, or in the run whose last.pt this is
            break
        started = time.perf_counter()
        plan = plan_of(epoch)
        set_trainable(model, plan)
        state.optimisation.follow(plan, epoch, model, config, ctx, device)
        state.start_phase(plan)

        training_started = time.perf_counter()
        trained = train_one_epoch(setup, model, state.optimisation, plan, epoch, callbacks)
        if trained is None:
            state.cancel(f"cancelled during epoch {epoch}; last.pt holds epoch {epoch - 1}")
            break
        state.step += trained.steps
        throughput.add(trained.samples, time.perf_counter() - training_started)
        val = setup.objective.validate(model, setup)

        if state.judge(epoch, plan, val.score, setup.has_val, setup.patience, model) and ctx.is_main:
            write_best(checkpoint_dir, epoch, val.macro_auc, state.best_state)
        row = {"epoch": epoch, "train_loss": trained.loss, "val_loss": val.loss, "val_macro_auc": val.macro_auc,
               "lr": trained.lr, "seconds": time.perf_counter() - started,
               **group_learning_rates(model, state.optimisation.optimizer), "phase": plan.phase}
        state.record(row)
        if ctx.is_main:
            atomic_save(state.checkpoint(config, model, setup.grad_scaler, setup.generator),
                        checkpoint_dir / LAST)
        distributed.barrier(ctx)
        callbacks.on_epoch_end(row)
        if callbacks.should_stop() and epoch + 1 < config.epochs and not state.stopped_early:
            state.cancel(f"cancelled after epoch {epoch}")
            break
    return fit_result(model, setup, state, throughput)


def set_up(model: nn.Module, data: TaskDataset, config: TrainConfig, train_index: np.ndarray | None,
           ctx: distributed.Context, device: torch.device, objective: Objective | None = None,
           stream: StreamSettings | None = None) -> Setup:
    """The rows to train and validate on, the crop length, the seeds, the model on its
    device, the precision, the objective and where the training batches and validation
    windows come from (the training and validation rows resident on the device for the
    default objective when they fit or it is asked for: `device_data`): what every epoch of
    this fit shares."""
    train_rows = np.asarray(data.split.train if train_index is None else train_index, dtype=np.int64)
    val_rows = np.asarray(data.split.val, dtype=np.int64)
    if train_rows.size == 0:
        raise EcgcoreError(f"{data.name}: no training records to fit on")
    length = crop_length(data, config.crop_seconds)
    seed_everything(config.seed + ctx.rank)  # dropout differs per process; the data order does not
    generator = torch.Generator().manual_seed(config.seed)  # shuffles and crops
    model.to(device)
    precision = effective_precision(device, config.precision)
    grad_scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    if objective is None:
        pos_weight = positive_weights(data.y[train_rows]).to(device) if config.pos_weight else None
        objective = Supervised(nn.BCEWithLogitsLoss(pos_weight=pos_weight))
    shards = stream.stream(data.X, train_rows, config.batch_size) if stream is not None else None
    steps_per_epoch = (len(shards.batch_sizes(ctx.world_size)) if shards is not None else
                       len(shuffled_batches(train_rows, config.batch_size, torch.Generator(), ctx.rank,
                                            ctx.world_size)))
    host_only = None  # the default objective's batches can be cut on the device
    if shards is not None:
        host_only = "streamed in shards: host batches"
    elif not isinstance(objective, Supervised):
        host_only = f"the {type(objective).__name__} objective makes its own batches: host batches"
    placement, resident = place_training_set(data, np.union1d(train_rows, val_rows), config.data_on_device, device,
                                             host_only)
    return Setup(data=data, config=config, train_index=train_rows, val_index=val_rows, length=length,
                 ctx=ctx, device=device, precision=precision, generator=generator,
                 grad_scaler=grad_scaler, objective=objective,
                 steps_per_epoch=steps_per_epoch, placement=placement, stream=shards, resident=resident)


def start_or_resume(model: nn.Module, setup: Setup, last_path: Path, resume: bool,
                    plan_of: Callable[[int], EpochPlan]) -> LoopState:
    """A fresh state; or, when resuming and `last_path` exists, the state it saved, with the
    model's weights, every random state, the gradient scaler and (when epochs are left) the
    optimizer restored from it: rebuilt along the plans of its last epoch's cycle, as the
    interrupted run built it, then loaded."""
    notes = [] if setup.has_val else [NO_VALIDATION]
    if not (resume and last_path.is_file()):
        return LoopState(notes=notes)
    saved = load_state(last_path, setup.config)
    model.load_state_dict(saved["model"])
    restore_rng_states(saved["rng"], setup.generator)
    setup.grad_scaler.load_state_dict(saved["grad_scaler"])
    state = LoopState.from_checkpoint(saved, notes)
    last = state.next_epoch - 1
    state.notes.append(f"resumed from {last_path} after epoch {last}")
    if state.next_epoch < setup.config.epochs and not state.stopped_early:
        cycle = range(plan_of(last).cycle_start, last + 1)
        state.optimisation.resume(((epoch, plan_of(epoch)) for epoch in cycle), saved["signature"],
                                  saved["optimizer"], setup.config)
    return state


@dataclass(frozen=True)
class Supervised:
    """The default objective: the labels of random crops, BCE-with-logits (with the run's
    positive-class weights, if any), validated on sliding windows (`validate`)."""

    loss_fn: nn.Module
    criterion: str = "validation macro AUC"

    def batch(self, data: TaskDataset, rows: np.ndarray, length: int, generator: torch.Generator) -> Batch:
        return training_batch(data, rows, length, generator)

    def outputs(self, net: nn.Module, batch: Batch) -> torch.Tensor:
        return net(batch[0])

    def loss(self, outputs: torch.Tensor, batch: Batch) -> torch.Tensor:
        return self.loss_fn(outputs.float(), batch[1])

    def validate(self, model: nn.Module, setup: Setup) -> Validation:
        val_loss, val_auc = validate(model, setup)
        return Validation(loss=val_loss, macro_auc=val_auc, score=val_auc)


def validate(model: nn.Module, setup: Setup) -> tuple[float, float]:
    """Validation loss and macro AUC on sliding windows; NaN and NaN without a validation set."""
    if not setup.has_val:
        return math.nan, math.nan
    scores = predict_windows(model, setup.data, setup.val_index, setup.length, setup.config, setup.device,
                             setup.resident)
    y = setup.data.y[setup.val_index]
    return binary_cross_entropy(y, scores), macro_auc(y, scores)


def fit_result(model: nn.Module, setup: Setup, state: LoopState, throughput: Throughput) -> FitResult:
    if state.stopped_early:
        state.notes.append(f"stopped early: no better {setup.objective.criterion} for {setup.patience} "
                           "epochs of its last phase")
    # no best weights when cancelled before the first epoch ended: the model as it is
    best_state = state.best_state if state.best_state is not None else cpu_copy(model.state_dict())
    return FitResult(history=state.history, best_epoch=state.best_epoch, best_state=best_state,
                     epochs_run=len(state.history), train_seconds=sum(r["seconds"] for r in state.history),
                     device=str(setup.device), stopped_early=state.stopped_early,
                     cancelled=state.cancelled, early_stopping=setup.patience is not None,
                     notes=state.notes, precision=setup.precision, speed=speed_facts(setup, throughput))


# ---------------------------------------------------------------------------------------------
# prediction


def predict(model: nn.Module, data: TaskDataset, index: np.ndarray | Sequence[int],
            config: TrainConfig) -> np.ndarray:
    """Sigmoid scores (len(index), C) of these rows: sliding windows of the crop length,
    aggregated per record by `config.eval_aggregate` (the whole window when no crop)."""
    device = select_device(config.device)
    model.to(device)
    length = crop_length(data, config.crop_seconds)
    return predict_windows(model, data, np.asarray(index, dtype=np.int64), length, config, device)


@torch.no_grad()
def predict_windows(model: nn.Module, data: TaskDataset, index: np.ndarray, length: int,
                    config: TrainConfig, device: torch.device,
                    resident: ResidentTrainingSet | None = None) -> np.ndarray:
    """Scores of rows `index`, aggregated over their sliding windows; the windows cut from
    `resident` (rows held on the device, e.g. a fit's validation rows) when given, else
    read from the prepared memmap."""
    was_training = model.training
    model.eval()
    # As wide as the model's output, not the task's: a source-only model scores the
    # source's classes, and the caller maps them to the target's.
    width = model.n_classes if isinstance(model, ECGClassifier) else data.y.shape[1]
    parts = [np.zeros((0, width), dtype=np.float32)]
    batches = (resident.evaluation_batches(index, length, config.eval_batch_size) if resident is not None
               else evaluation_batches(data, index, length, config.eval_batch_size))
    for rows, windows, use in batches:
        with autocast(device, config.precision):
            logits = model(to_device(windows, device))
        scores = torch.sigmoid(logits.float()).cpu().reshape(*use.shape, -1)  # (records, windows, C)
        parts.append(aggregate_windows(scores, use, config.eval_aggregate).numpy())
    model.train(was_training)
    return np.concatenate(parts, axis=0)


def aggregate_windows(scores: torch.Tensor, use: torch.Tensor, how: str) -> torch.Tensor:
    """(records, windows, C) window scores -> (records, C): max or mean over the used windows."""
    mask = use[:, :, None]
    if how == "max":
        return scores.masked_fill(~mask, -math.inf).amax(dim=1)
    return (scores * mask).sum(dim=1) / mask.sum(dim=1)


# ---------------------------------------------------------------------------------------------
# the pieces fit is made of


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@contextlib.contextmanager
def backend_settings(config: TrainConfig) -> Iterator[None]:
    """Deterministic torch kernels (`config.deterministic`) or cuDNN's autotuner
    (`config.cudnn_benchmark`, which TrainConfig only allows without determinism), and
    eager random numbers in compiled code (`config.compile`), while fitting, restoring
    the caller's settings after."""
    before = torch.are_deterministic_algorithms_enabled()
    cudnn_before = torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark
    random_before = compiled_random(True) if config.compile else None
    if config.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    elif config.cudnn_benchmark:
        torch.backends.cudnn.benchmark = True
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before)
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = cudnn_before
        if random_before is not None:
            compiled_random(random_before)


def positive_weights(y: np.ndarray) -> torch.Tensor:
    """n_negative / n_positive per class from training targets (1 for a class never positive)."""
    positives = y.sum(axis=0).astype(np.float64)
    negatives = y.shape[0] - positives
    weights = np.where(positives > 0, negatives / np.maximum(positives, 1), 1.0)
    return torch.tensor(weights, dtype=torch.float32)


def binary_cross_entropy(y_true: np.ndarray, scores: np.ndarray) -> float:
    """Mean BCE of aggregated record scores (the validation loss; no class weights)."""
    p = np.clip(scores.astype(np.float64), 1e-7, 1 - 1e-7)
    y = y_true.astype(np.float64)
    return float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).mean())


def macro_auc(y_true: np.ndarray, scores: np.ndarray) -> float:
    """Mean ROC-AUC over the classes that have both labels in y_true; NaN when none has:
    `ecgcore.evaluate.macro_auc`, the number results.json reports (imported here because
    scikit-learn takes seconds to import)."""
    from ecgcore.evaluate import macro_auc as evaluate_macro_auc

    return evaluate_macro_auc(y_true, scores)
