"""One epoch of training: shuffled batches, the objective's loss of each (BCE-with-logits
on random crops by default), one optimizer step and one LR step per batch along the
cycle's schedule.

`Setup` holds what stays the same for every epoch of a fit (the rows, the crop length,
the device, the objective, the gradient scaler, the generator of shuffles and crops, where
the training batches come from: the host or the training set resident on the device), so
`train_one_epoch` and the loop in `ecgcore.train.loop` share it instead of a dozen
arguments. Randomness comes only from `Setup.generator` (shuffle, then each batch's crops
or views, in order) and torch's global generator (dropout), in the same order on every run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ecgcore.data.pipeline import TaskDataset
from ecgcore.train import distributed
from ecgcore.train.callbacks import Callbacks
from ecgcore.train.config import TrainConfig
from ecgcore.train.data import ShardStream, epoch_batches
from ecgcore.train.device import autocast, to_device
from ecgcore.train.device_data import Placement, ResidentTrainingSet
from ecgcore.train.objective import Objective
from ecgcore.train.optimizers import (
    Optimisation,
    cycle_steps,
    schedule_of,
    set_learning_rate,
    trainable_parameters,
)
from ecgcore.transfer.base import EpochPlan


@dataclass(frozen=True)
class Setup:
    """What one fit keeps from its first epoch to its last."""

    data: TaskDataset
    config: TrainConfig
    train_index: np.ndarray
    val_index: np.ndarray
    length: int  # samples per training crop and evaluation window
    ctx: distributed.Context
    device: torch.device
    precision: str  # what the run computes in (`effective_precision`)
    generator: torch.Generator  # shuffles and crops; its state is saved in last.pt
    grad_scaler: torch.amp.GradScaler
    objective: Objective  # the batches, the loss and the validation (`objective`)
    steps_per_epoch: int
    placement: Placement  # where the training batches come from, and why (`device_data`)
    stream: ShardStream | None = None  # batches streamed in shards instead (`data.ShardStream`)
    resident: ResidentTrainingSet | None = None  # the training and validation rows on the device, when placed there

    @property
    def has_val(self) -> bool:
        return self.val_index.size > 0

    @property
    def patience(self) -> int | None:
        """Early-stopping patience; None (off) without a validation set."""
        return self.config.early_stopping_patience if self.has_val else None


@dataclass(frozen=True)
class TrainedEpoch:
    loss: float  # mean training loss per record, over every process
    lr: float  # the base LR at the epoch's last step
    steps: int  # optimizer steps taken
    samples: int  # records this process trained on


def train_one_epoch(setup: Setup, model: nn.Module, optimisation: Optimisation, plan: EpochPlan,
                    epoch: int, callbacks: Callbacks) -> TrainedEpoch | None:
    """Train `model` for one epoch of `plan` (its frozen modules in eval mode); None when a
    callback cancelled it part way (the model is then part-trained and not to be saved)."""
    config, ctx, device = setup.config, setup.ctx, setup.device
    net, optimizer = optimisation.net, optimisation.optimizer
    assert net is not None and optimizer is not None, "Optimisation.follow(plan) comes first"
    net.train()
    for module in plan.frozen:
        module.eval()  # frozen batch-norm statistics, no dropout
    schedule, total = schedule_of(plan, config), cycle_steps(plan, config, setup.steps_per_epoch)

    sizes, batches = epoch_batches(setup)  # shuffled rows (of the memmap or on the device), or streamed shards
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    lr = math.nan
    objective = setup.objective
    for i, (size, batch) in enumerate(zip(sizes, batches), start=1):
        batch = tuple(to_device(tensor, device) for tensor in batch)
        cycle_step = (epoch - plan.cycle_start) * setup.steps_per_epoch + i - 1
        lr = set_learning_rate(optimizer, schedule, cycle_step, total, config.lr)
        with autocast(device, setup.precision):
            outputs = objective.outputs(net, batch)
        loss = objective.loss(outputs, batch)
        optimizer.zero_grad(set_to_none=True)
        setup.grad_scaler.scale(loss).backward()
        if config.grad_clip is not None:
            setup.grad_scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(trainable_parameters(model), config.grad_clip)
        setup.grad_scaler.step(optimizer)
        setup.grad_scaler.update()
        loss_sum += loss.detach().double() * size
        callbacks.on_step(epoch, i, len(sizes))
        if callbacks.should_stop():
            return None

    distributed.sync_buffers(ctx, model)
    n_seen = sum(sizes)
    loss_mean = distributed.mean_over_processes(ctx, float(loss_sum.item()) / n_seen, device)
    return TrainedEpoch(loss=loss_mean, lr=lr, steps=len(sizes), samples=n_seen)
