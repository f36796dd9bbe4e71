"""What a fit minimises: the `Objective` the training loop asks for each batch's loss.

The loop (`ecgcore.train.loop`) is the same for every kind of training; only three things
differ between supervised training and a self-supervised pretraining method
(`ecgcore.ssl.methods`), and an objective supplies them:

    batch      the tensors of one batch of rows, drawn from the fit's generator (called in
               the prefetch thread, one batch at a time and in order, so a seeded run draws
               exactly the same crops, views and masks whether or not it was resumed)
    outputs    what the model computes on the batch (under the run's autocast)
    loss       the batch loss from those outputs (in float32)
    validate   the validation numbers after an epoch, and the score the loop keeps the best
               weights and counts its patience by (higher is better)

The default is `loop.Supervised`: random crops and their labels, BCE-with-logits, and the
validation macro AUC on sliding windows, exactly what the loop always did.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import torch
from torch import nn

from ecgcore.data.pipeline import TaskDataset

if TYPE_CHECKING:
    from ecgcore.train.epoch import Setup

Batch = tuple[torch.Tensor, ...]


@dataclass(frozen=True)
class Validation:
    """One epoch's validation: the loss and macro AUC its history row shows (NaN when the
    objective has none), and `score`, what the loop maximises to keep the best weights."""

    loss: float
    macro_auc: float
    score: float


class Objective(Protocol):
    """See the module docstring. `criterion` names the score in words ("validation macro
    AUC"), for the note a run gets when it stops early."""

    criterion: str

    def batch(self, data: TaskDataset, rows: np.ndarray, length: int,
              generator: torch.Generator) -> Batch: ...

    def outputs(self, net: nn.Module, batch: Batch) -> Any: ...

    def loss(self, outputs: Any, batch: Batch) -> torch.Tensor: ...

    def validate(self, model: nn.Module, setup: Setup) -> Validation: ...
