"""The one interface every model answers, so every transfer strategy works on every
architecture (convolutional and recurrent alike).

Input: (batch, leads, samples) float32. Output: (batch, n_classes) logits.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ecgcore.errors import EcgcoreError

from ecgcore.models.input_contract import InputContract


class ECGClassifier(nn.Module):
    """Backbone + head. Subclasses build `self.backbone`-side modules and a head, and
    implement `embed` and `layer_groups`.

    - `embed(x)`: the features the head sees, (batch, feature_dim).
    - `head`: the module that maps features to logits (its last layer is a Linear
      with `n_classes` outputs); `reset_head(n)` replaces that last Linear with a
      freshly initialised one of `n` outputs (the rest of the head is kept).
    - `layer_groups()`: the model's parameters cut into ordered groups, input to
      output; the last group is the head. Strategies freeze or re-rate whole groups.
    - `config`: the keyword arguments that rebuild this model with `create_model`
      (stored in every checkpoint).
    """

    name: str = ""

    def __init__(self) -> None:
        super().__init__()
        self.config: dict[str, Any] = {}

    @abstractmethod
    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, leads, samples) -> (batch, feature_dim)."""

    @property
    @abstractmethod
    def head(self) -> nn.Module:
        """Features -> logits."""

    @abstractmethod
    def reset_head(self, n_classes: int) -> None:
        """Replace the final Linear with a fresh one of `n_classes` outputs."""

    @abstractmethod
    def layer_groups(self) -> list[nn.Module]:
        """Ordered input -> output; the last one is the head; together they hold every parameter."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, leads, samples) -> (batch, tokens, dim): the sequence `embed` pools (time
        steps of the last feature map, or a transformer's patch tokens), what an attention
        probe attends over. Models without one (recurrent models, the default) refuse."""
        raise EcgcoreError(f"model {self.name or type(self).__name__} offers no token sequence (recurrent "
                           "models pool over time steps they do not expose)")

    def cam_layer(self) -> nn.Module | None:
        """The module whose output Grad-CAM weighs (`ecgcore.explain`): the last
        convolutional block, whose output is (batch, channels, time). None for models
        without one (recurrent models), which then refuse Grad-CAM."""
        return None

    @property
    def n_classes(self) -> int:
        last = [m for m in self.head.modules() if isinstance(m, nn.Linear)][-1]
        return int(last.out_features)


Builder = Callable[..., ECGClassifier]


def fresh_linear(old: nn.Linear, n_classes: int, bias: bool = True) -> nn.Linear:
    """A new Linear from `old`'s inputs to `n_classes` outputs, with PyTorch's default
    initialisation, on `old`'s device and dtype: what `reset_head` puts in place of a model's
    final Linear. Refuses fewer than one class."""
    if n_classes < 1:
        raise ValueError(f"a head needs at least one class, got n_classes={n_classes}")
    return nn.Linear(old.in_features, n_classes, bias=bias).to(device=old.weight.device,
                                                               dtype=old.weight.dtype)


@dataclass(frozen=True)
class Architecture:
    """A named architecture a model module offers (its `ARCHITECTURES`; the registry
    lists the modules): `build(n_leads, n_classes, n_samples, **config)` makes one.

    `contract`: for a model whose weights expect one preparation of their input (a
    foundation model's, or a demo-sized stand-in for one), the `InputContract` that
    prepares ALL of its runs' data, whatever the source or strategy, so the runs of one
    architecture compare on the same input. None: the run's own preprocessing is used."""

    name: str
    description: str
    build: Builder
    contract: InputContract | None = None
