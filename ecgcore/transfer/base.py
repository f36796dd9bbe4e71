"""The contract between transfer strategies and the trainer.

A strategy decides, for a model about to be trained on a target:
1. `setup` (once, before training): what is loaded from the source checkpoint, what
   is re-initialised (a new head; optionally keeping the rows of classes the source
   and target share).
2. `plan(model, epoch, base_lr)` (at the start of every epoch): which layer groups
   train and at which learning rate, and which are frozen (their parameters get no
   gradient and their batch-norm statistics stay fixed), and which *phase* of the
   strategy the epoch belongs to. A phase is one step of the recipe (e.g. "head" then
   "all"); a *cycle* is one optimisation run (a fresh optimizer and the LR schedule
   from its start), as fastai's separate `fit_one_cycle` calls are. The trainer builds a
   new optimizer at the start of every cycle and whenever the plan's `signature`
   changes, except that a plan which only adds groups within a cycle (ULMFiT's gradual
   unfreezing) extends the optimizer it has. Early stopping counts only within the last
   phase, and the best weights are chosen among its epochs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import nn


@dataclass
class EpochPlan:
    """What trains in one epoch.

    param_groups  optimizer groups: [{"params": [...], "lr": float, "group": index}, ...]
                  (only parameters that train; every one has requires_grad=True)
    frozen        modules held in eval mode during training (frozen BN statistics,
                  no dropout); their parameters have requires_grad=False
    signature     hashable summary (which groups train at which LR); equal
                  signatures mean the optimizer can be kept
    phase         the strategy phase's name; phase_index of n_phases (0-based)
    cycle_start   first epoch of the optimisation run (schedule and optimizer) this
                  epoch belongs to; cycle_epochs its length (None: to the end of the run)
    schedule      the LR schedule of the cycle (None: TrainConfig.schedule)
    betas         Adam betas the recipe prescribes (None: the optimizer's and schedule's)

    The defaults describe a plain run: one phase, one cycle over every epoch.
    """

    param_groups: list[dict[str, Any]]
    frozen: list[nn.Module] = field(default_factory=list)
    signature: tuple = ()
    phase: str = "train"
    phase_index: int = 0
    n_phases: int = 1
    cycle_start: int = 0
    cycle_epochs: int | None = None
    schedule: str | None = None
    betas: tuple[float, float] | None = None

    @property
    def final_phase(self) -> bool:
        return self.phase_index == self.n_phases - 1
