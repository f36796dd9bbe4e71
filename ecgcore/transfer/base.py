"""The contract between transfer strategies and the trainer.

A strategy decides, for a model about to be trained on a target:
1. `setup` (once, before training): what is loaded from the source checkpoint, what
   is re-initialised (a new head; optionally keeping the rows of classes the source
   and target share).
2. `plan(model, epoch, base_lr)` (at the start of every epoch): which layer groups
   train and at which learning rate, and which are frozen (their parameters get no
   gradient and their batch-norm statistics stay fixed). The trainer rebuilds its
   optimizer whenever the plan's `signature` changes.
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
    """

    param_groups: list[dict[str, Any]]
    frozen: list[nn.Module] = field(default_factory=list)
    signature: tuple = ()
