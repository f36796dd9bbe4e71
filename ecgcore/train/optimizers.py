"""From a transfer strategy's plan to the optimizer an epoch steps.

A plan (`ecgcore.transfer.base.EpochPlan`) says which parameters train at which LR; this
module turns it into Adam(W) groups, keeps the optimizer (and its Adam moments) while the
plan stays the same within a cycle, extends it when the plan only adds groups (ULMFiT's
gradual unfreezing), and builds a new one when a cycle starts or the plan changes. A
resume rebuilds the interrupted run's optimizer the same way before loading its state.
`set_learning_rate` moves every group along the cycle's schedule, one step per batch.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ecgcore.train import distributed
from ecgcore.train.config import TrainConfig
from ecgcore.train.schedules import SCHEDULES
from ecgcore.train.speed import compiled
from ecgcore.transfer.base import EpochPlan

log = logging.getLogger(__name__)

OPTIMIZER_CLASSES: dict[str, type[torch.optim.Optimizer]] = {
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
}


@dataclass
class Optimisation:
    """The optimizer the current epoch steps, the plan signature it was built for, and the
    module the training step calls (DDP over the model under torchrun, else the model)."""

    optimizer: torch.optim.Optimizer | None = None
    signature: Any = None
    net: nn.Module | None = None

    def follow(self, plan: EpochPlan, epoch: int, model: nn.Module, config: TrainConfig,
               ctx: distributed.Context, device: torch.device) -> None:
        """Make the optimizer fit `epoch`'s plan, and (re)wrap the model when it changed:
        DDP registers the parameters that train when it is built."""
        if self.adapt(plan, epoch, config) or self.net is None:
            self.net = compiled(distributed.wrap(ctx, model, device), config.compile)

    def adapt(self, plan: EpochPlan, epoch: int, config: TrainConfig) -> bool:
        """Keep the optimizer when the plan is unchanged within its cycle, extend it when the
        plan only adds groups, else build it anew; True when it changed."""
        new_cycle = epoch == plan.cycle_start
        if self.optimizer is not None and not new_cycle and plan.signature == self.signature:
            return False
        if self.optimizer is not None and not new_cycle and extends(self.signature, plan.signature):
            extend_optimizer(self.optimizer, plan)  # more groups in the same cycle (ULMFiT)
        else:
            self.optimizer = build_optimizer(config, plan, schedule_of(plan, config))
        self.signature = plan.signature
        return True

    def resume(self, plans: Iterable[tuple[int, EpochPlan]], saved_signature: Any,
               saved_state: dict[str, Any], config: TrainConfig) -> bool:
        """Rebuild the optimizer an interrupted run had after its last epoch and load its saved
        state (Adam moments). `plans` are (epoch, plan) of that epoch's cycle up to it: adapting
        to them in order gives the same groups in the same order (an optimizer extended
        group by group differs from one built for the final plan). False, and no optimizer,
        when they end on another plan than the saved one (the plans are not those of the run)."""
        for epoch, plan in plans:
            self.adapt(plan, epoch, config)
        if self.optimizer is None or self.signature != saved_signature:
            log.warning("last.pt's optimizer was built for plan %s, the plans end on %s: its Adam "
                        "moments are not restored", saved_signature, self.signature)
            self.optimizer = self.signature = None
            return False
        self.optimizer.load_state_dict(saved_state)
        return True


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


def schedule_of(plan: EpochPlan, config: TrainConfig) -> str:
    """The cycle's LR schedule: the plan's when its strategy prescribes one, else the config's."""
    return plan.schedule or config.schedule


def cycle_steps(plan: EpochPlan, config: TrainConfig, steps_per_epoch: int) -> int:
    """Optimizer steps in the plan's cycle (to the end of the run when it names no length)."""
    return (plan.cycle_epochs or config.epochs - plan.cycle_start) * steps_per_epoch


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
