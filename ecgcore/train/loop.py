"""The training loop: `fit` a model on a TaskDataset, `predict` scores for any rows.

Read `fit` top to bottom; everything it does is in this file or named after what it does:

    seed everything ─ pick the device ─ (torchrun: join the process group)
    resume from last.pt when there is one
    for each epoch:
        ask the transfer strategy what trains (plan_fn): its phase and cycle ─ a new optimizer
            when a cycle starts or the plan changed (extended when it only adds groups)
        train: shuffled batches of random crops, BCE-with-logits, Adam(W), one LR step per batch
            along the cycle's schedule
        validate: sliding windows, aggregated per record ─ val loss and macro AUC
        keep the best weights of the strategy's last phase ─ write last.pt (and best.pt) ─
            tell the callbacks
        stop early when validation has not improved for `patience` epochs of the last phase

Epochs are numbered from 0 everywhere (plan_fn, history rows, best_epoch).
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
    crop_length,
    evaluation_batches,
    prefetch,
    shuffled_batches,
    training_batch,
)
from ecgcore.train.device import autocast, effective_precision, select_device
from ecgcore.train.schedules import SCHEDULES
from ecgcore.train.state import (
    FORMAT,
    VERSION,
    atomic_save,
    load_state,
    restore_rng_states,
    rng_states,
)
from ecgcore.transfer.base import EpochPlan

PlanFn = Callable[[nn.Module, int, float], EpochPlan]
StateDict = dict[str, torch.Tensor]


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


# ---------------------------------------------------------------------------------------------
# the loop


def fit(model: nn.Module, data: TaskDataset, config: TrainConfig, *, plan_fn: PlanFn | None = None,
        checkpoint_dir: Path | str, callbacks: Sequence[Callback] = (), resume: bool = True,
        train_index: np.ndarray | None = None) -> FitResult:
    """Train `model` in place on `data` (rows `train_index`, default the training split),
    validate on the validation split, and return the history and the best weights."""
    ctx = distributed.context_from_env()
    device = distributed.device_for(ctx, select_device(config.device))
    joined = distributed.start(ctx, device)
    try:
        with deterministic_algorithms(config.deterministic):
            return _fit(model, data, config, plan_fn, Path(checkpoint_dir), Callbacks(callbacks),
                        resume, train_index, ctx, device)
    finally:
        distributed.stop(joined)


def _fit(model: nn.Module, data: TaskDataset, config: TrainConfig, plan_fn: PlanFn | None,
         checkpoint_dir: Path, callbacks: Callbacks, resume: bool, train_index: np.ndarray | None,
         ctx: distributed.Context, device: torch.device) -> FitResult:
    # --- what to train on ------------------------------------------------------------------
    train_index = np.asarray(data.split.train if train_index is None else train_index, dtype=np.int64)
    val_index = np.asarray(data.split.val, dtype=np.int64)
    if train_index.size == 0:
        raise EcgcoreError(f"{data.name}: no training records to fit on")
    has_val = val_index.size > 0
    notes = [] if has_val else [("no validation set: the best weights are the last epoch's and "
                                 "early stopping is off")]
    patience = config.early_stopping_patience if has_val else None
    length = crop_length(data, config.crop_seconds)

    # --- seeds, device, loss ----------------------------------------------------------------
    seed_everything(config.seed + ctx.rank)  # dropout differs per process; the data order does not
    generator = torch.Generator().manual_seed(config.seed)  # shuffles and crops
    model.to(device)
    precision = effective_precision(device, config.precision)
    grad_scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    pos_weight = positive_weights(data.y[train_index]).to(device) if config.pos_weight else None
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=pos_weight)
    steps_per_epoch = len(shuffled_batches(train_index, config.batch_size, torch.Generator(),
                                           ctx.rank, ctx.world_size))

    # --- the run's state, fresh or from last.pt ---------------------------------------------
    history: list[dict[str, Any]] = []
    best: dict[str, Any] = {"auc": -math.inf, "epoch": None, "state": None}
    start_epoch, step, bad_epochs, stopped_early = 0, 0, 0, False
    saved_signature, saved_optimizer = None, None
    last_path, best_path = checkpoint_dir / "last.pt", checkpoint_dir / "best.pt"
    if resume and last_path.is_file():
        saved = load_state(last_path, config)
        model.load_state_dict(saved["model"])
        restore_rng_states(saved["rng"], generator)
        grad_scaler.load_state_dict(saved["grad_scaler"])
        history, best = list(saved["history"]), dict(saved["best"])
        start_epoch, step = saved["next_epoch"], saved["step"]
        bad_epochs, stopped_early = saved["bad_epochs"], saved["stopped_early"]
        saved_signature, saved_optimizer = saved["signature"], saved["optimizer"]
        notes.append(f"resumed from {last_path} after epoch {start_epoch - 1}")

    optimizer: torch.optim.Optimizer | None = None
    signature: Any = None
    net: nn.Module = model
    cancelled = False
    for epoch in range(start_epoch, config.epochs):
        if stopped_early:
            break
        started = time.perf_counter()

        # --- what trains this epoch (the transfer strategy decides) --------------------------
        plan = plan_fn(model, epoch, config.lr) if plan_fn else train_everything(model, config.lr)
        set_trainable(model, plan)
        schedule = plan.schedule or config.schedule
        cycle_steps = (plan.cycle_epochs or config.epochs - plan.cycle_start) * steps_per_epoch
        new_cycle = epoch == plan.cycle_start
        if optimizer is None or new_cycle or plan.signature != signature:
            if optimizer is not None and not new_cycle and extends(signature, plan.signature):
                extend_optimizer(optimizer, plan)  # more groups in the same cycle (ULMFiT)
            else:
                optimizer = build_optimizer(config, plan, schedule)
            if saved_optimizer is not None and plan.signature == saved_signature and not new_cycle:
                optimizer.load_state_dict(saved_optimizer)  # resumed: same plan, same Adam moments
            saved_optimizer, signature = None, plan.signature
            net = distributed.wrap(ctx, model, device)
        if plan.final_phase and best.get("phase", plan.phase_index) != plan.phase_index:
            # the strategy's last phase starts: the best weights and the patience are its own
            best, bad_epochs = {"auc": -math.inf, "epoch": None, "state": None}, 0
        net.train()
        for module in plan.frozen:
            module.eval()  # frozen batch-norm statistics, no dropout

        # --- train ---------------------------------------------------------------------------
        batches = shuffled_batches(train_index, config.batch_size, generator, ctx.rank, ctx.world_size)
        loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        load = lambda rows: training_batch(data, rows, length, generator)
        for i, (rows, (x, y)) in enumerate(zip(batches, prefetch(batches, load)), start=1):
            x, y = to_device(x, device), to_device(y, device)
            cycle_step = (epoch - plan.cycle_start) * steps_per_epoch + i - 1
            lr = set_learning_rate(optimizer, schedule, cycle_step, cycle_steps, config.lr)
            with autocast(device, precision):
                logits = net(x)
            loss = loss_fn(logits.float(), y)
            optimizer.zero_grad(set_to_none=True)
            grad_scaler.scale(loss).backward()
            if config.grad_clip is not None:
                grad_scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(trainable_parameters(model), config.grad_clip)
            grad_scaler.step(optimizer)
            grad_scaler.update()
            step += 1
            loss_sum += loss.detach().double() * rows.size
            callbacks.on_step(epoch, i, len(batches))
            if callbacks.should_stop():
                cancelled = True
                break
        if cancelled:
            notes.append(f"cancelled during epoch {epoch}; last.pt holds epoch {epoch - 1}")
            break
        distributed.sync_buffers(ctx, model)
        n_seen = sum(rows.size for rows in batches)
        train_loss = distributed.mean_over_processes(ctx, float(loss_sum.item()) / n_seen, device)

        # --- validate ------------------------------------------------------------------------
        val_loss, val_auc = math.nan, math.nan
        if has_val:
            scores = predict_windows(model, data, val_index, length, config, device)
            val_loss = binary_cross_entropy(data.y[val_index], scores)
            val_auc = macro_auc(data.y[val_index], scores)

        # --- keep the best, stop early (both within the strategy's last phase only) -----------
        improved = plan.final_phase and has_val and not math.isnan(val_auc) and val_auc > best["auc"]
        if improved or best["epoch"] is None or not has_val or not plan.final_phase:
            # the best so far; the latest when there is nothing to compare (no validation
            # set, no validation class with both labels yet, or an earlier phase)
            best = {"auc": val_auc if improved else best["auc"], "epoch": epoch,
                    "state": cpu_copy(model.state_dict()), "phase": plan.phase_index}
            if ctx.is_main:
                atomic_save({"epoch": epoch, "val_macro_auc": val_auc, "state_dict": best["state"]},
                            best_path)
        if improved:
            bad_epochs = 0
        elif not math.isnan(val_auc) and plan.final_phase:
            bad_epochs += 1
        stopped_early = patience is not None and bad_epochs >= patience

        # --- record the epoch ----------------------------------------------------------------
        row = {"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss,
               "val_macro_auc": val_auc, "lr": lr, "seconds": time.perf_counter() - started,
               **group_learning_rates(model, optimizer), "phase": plan.phase}
        history.append(row)
        if ctx.is_main:
            atomic_save({
                "format": FORMAT, "version": VERSION, "config": config.to_dict(),
                "next_epoch": epoch + 1, "step": step, "bad_epochs": bad_epochs,
                "stopped_early": stopped_early, "model": model.state_dict(),
                "optimizer": optimizer.state_dict(), "signature": signature,
                "grad_scaler": grad_scaler.state_dict(), "rng": rng_states(generator),
                "history": history, "best": best,
            }, last_path)
        distributed.barrier(ctx)
        callbacks.on_epoch_end(row)
        if callbacks.should_stop() and epoch + 1 < config.epochs and not stopped_early:
            cancelled = True
            notes.append(f"cancelled after epoch {epoch}")
            break

    if stopped_early:
        notes.append(f"stopped early: no better validation macro AUC for {patience} epochs of its "
                     "last phase")
    if best["state"] is None:  # cancelled before the first epoch ended
        best["state"] = cpu_copy(model.state_dict())
    return FitResult(history=history, best_epoch=best["epoch"], best_state=best["state"],
                     epochs_run=len(history), train_seconds=sum(r["seconds"] for r in history),
                     device=str(device), stopped_early=stopped_early, cancelled=cancelled,
                     early_stopping=patience is not None, notes=notes, precision=precision)


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
                    config: TrainConfig, device: torch.device) -> np.ndarray:
    was_training = model.training
    model.eval()
    # As wide as the model's output, not the task's: a source-only model scores the
    # source's classes, and the caller maps them to the target's.
    width = model.n_classes if isinstance(model, ECGClassifier) else data.y.shape[1]
    parts = [np.zeros((0, width), dtype=np.float32)]
    for rows, windows, use in evaluation_batches(data, index, length, config.eval_batch_size):
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
def deterministic_algorithms(enabled: bool) -> Iterator[None]:
    """Deterministic torch kernels while fitting, restoring the caller's setting after."""
    before = torch.are_deterministic_algorithms_enabled()
    cudnn_before = torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark
    if enabled:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before)
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = cudnn_before


def positive_weights(y: np.ndarray) -> torch.Tensor:
    """n_negative / n_positive per class from training targets (1 for a class never positive)."""
    positives = y.sum(axis=0).astype(np.float64)
    negatives = y.shape[0] - positives
    weights = np.where(positives > 0, negatives / np.maximum(positives, 1), 1.0)
    return torch.tensor(weights, dtype=torch.float32)


def train_everything(model: nn.Module, lr: float) -> EpochPlan:
    """The plan without a transfer strategy: every parameter at the base LR."""
    return EpochPlan(param_groups=[{"params": list(model.parameters()), "lr": lr, "group": "all"}],
                     frozen=[], signature=("all", lr))


def set_trainable(model: nn.Module, plan: EpochPlan) -> None:
    """requires_grad exactly for the plan's parameters."""
    training = {id(p) for group in plan.param_groups for p in group["params"]}
    for parameter in model.parameters():
        parameter.requires_grad_(id(parameter) in training)


def trainable_parameters(model: nn.Module) -> list[nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


OPTIMIZER_CLASSES: dict[str, type[torch.optim.Optimizer]] = {
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
}


def build_optimizer(config: TrainConfig, plan: EpochPlan, schedule: str | None = None) -> torch.optim.Optimizer:
    """One optimizer group per plan group; `base_lr` remembers the plan's LR for the
    schedule. Adam betas: the plan's (a recipe's), else beta2 of the schedule's recipe
    (fastai's 0.99), else torch's defaults."""
    groups = [{**group, "params": list(group["params"]), "base_lr": group["lr"]}
              for group in plan.param_groups]
    extra: dict[str, Any] = {}
    beta2 = SCHEDULES[schedule].beta2 if schedule else None
    if plan.betas is not None:
        extra["betas"] = tuple(plan.betas)
    elif beta2 is not None:
        extra["betas"] = (0.9, beta2)
    return OPTIMIZER_CLASSES[config.optimizer](groups, lr=config.lr, weight_decay=config.weight_decay,
                                               **extra)


def extends(old: Any, new: Any) -> bool:
    """True when plan signature `new` keeps every (group, LR) of `old` and adds some."""
    return isinstance(old, tuple) and isinstance(new, tuple) and set(old) < set(new)


def extend_optimizer(optimizer: torch.optim.Optimizer, plan: EpochPlan) -> None:
    """Add the plan's groups the optimizer lacks; the others keep their Adam moments."""
    present = {id(p) for group in optimizer.param_groups for p in group["params"]}
    for group in plan.param_groups:
        params = [p for p in group["params"] if id(p) not in present]
        if params:
            optimizer.add_param_group({**group, "params": params, "base_lr": group["lr"]})


def set_learning_rate(optimizer: torch.optim.Optimizer, schedule: str, step: int, total_steps: int,
                      base_lr: float) -> float:
    """Scale every group's plan LR by the schedule at 0-based `step` of a cycle of
    `total_steps`; return the base LR at this step."""
    factor, beta1 = SCHEDULES[schedule].factors(step, total_steps)
    for group in optimizer.param_groups:
        group["lr"] = group["base_lr"] * factor
        if beta1 is not None:
            group["betas"] = (beta1, group["betas"][1])
    return base_lr * factor


def group_learning_rates(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, float]:
    """`lr_group<i>` for each of the model's layer groups (0.0 when frozen), or per optimizer
    group for models without layer groups."""
    lr_of = {id(p): group["lr"] for group in optimizer.param_groups for p in group["params"]}
    layer_groups = getattr(model, "layer_groups", None)
    if layer_groups is None:
        return {f"lr_group{i}": float(g["lr"]) for i, g in enumerate(optimizer.param_groups)}
    rates = {}
    for i, module in enumerate(layer_groups()):
        found = [lr_of[id(p)] for p in module.parameters() if id(p) in lr_of]
        rates[f"lr_group{i}"] = float(max(found)) if found else 0.0
    return rates


def to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    if device.type == "cpu":
        return tensor
    return tensor.pin_memory().to(device, non_blocking=True) if device.type == "cuda" else tensor.to(device)


def cpu_copy(state: StateDict) -> StateDict:
    return {key: value.detach().to("cpu", copy=True) for key, value in state.items()}


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
