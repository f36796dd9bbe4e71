"""The PTB-XL benchmark's classifier head, shared by every model that wants it.

Strodthoff et al. (2021) end every architecture the same way: pool the feature map over
time by concatenating adaptive max- and average-pooling (recurrent models add the last
output), then one hidden layer of 128 units, batch norm and dropout ("BN -> dropout ->
Linear" blocks). Their head halves the dropout of every layer but the last, so the default
`dropout=0.5` gives 0.25 before the hidden layer and 0.5 before the output layer.

`PooledClassifier` turns "a list of stages + a pooling + this head" into a complete
`ECGClassifier`, so each architecture only describes its stages: the stages become the
layer groups, the head is the last group, and `reset_head` swaps only the final Linear.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ecgcore.models.base import ECGClassifier


class ConcatPool1d(nn.Module):
    """(batch, channels, time) -> (batch, 2*channels): [max over time, mean over time]."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x.amax(dim=2), x.mean(dim=2)], dim=1)


class ConcatPoolRNN(nn.Module):
    """(batch, time, hidden*directions) -> (batch, 3*hidden*directions): [mean, max, last].

    "Last" is the final state of each direction: the last time step of the forward pass and
    the first time step of the backward pass (which has read the whole sequence by then).
    """

    def __init__(self, bidirectional: bool) -> None:
        super().__init__()
        self.bidirectional = bidirectional

    def forward(self, out: torch.Tensor) -> torch.Tensor:
        if self.bidirectional:
            half = out.shape[2] // 2
            last = torch.cat([out[:, -1, :half], out[:, 0, half:]], dim=1)
        else:
            last = out[:, -1, :]
        return torch.cat([out.mean(dim=1), out.amax(dim=1), last], dim=1)


def kaiming_init(module: nn.Module) -> None:
    """The benchmark's initialisation: Kaiming-normal conv/linear weights, zero biases,
    batch norm at weight 1 / bias 0. Recurrent layers keep PyTorch's default init."""
    for m in module.modules():
        if isinstance(m, (nn.Conv1d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm1d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def _fresh_linear(in_features: int, out_features: int) -> nn.Linear:
    layer = nn.Linear(in_features, out_features)
    nn.init.kaiming_normal_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


class MLPHead(nn.Sequential):
    """BN -> dropout -> Linear (-> ReLU) per layer; the last Linear gives the logits.

    `hidden=(128,)` and `dropout=0.5` is the benchmark's head: BN(in) -> Dropout(0.25) ->
    Linear(in, 128) -> ReLU -> BN(128) -> Dropout(0.5) -> Linear(128, n_classes).
    """

    def __init__(self, in_features: int, n_classes: int, hidden: Sequence[int] = (128,),
                 dropout: float = 0.5) -> None:
        if n_classes < 1:
            raise ValueError(f"a head needs at least one class, got n_classes={n_classes}")
        widths = [int(in_features), *(int(h) for h in hidden), int(n_classes)]
        drops = [dropout / 2] * (len(widths) - 2) + [dropout]
        layers: list[nn.Module] = []
        for i, (n_in, n_out, p) in enumerate(zip(widths[:-1], widths[1:], drops)):
            layers.append(nn.BatchNorm1d(n_in))
            if p > 0:
                layers.append(nn.Dropout(p))
            layers.append(_fresh_linear(n_in, n_out))
            if i < len(widths) - 2:
                layers.append(nn.ReLU())
        super().__init__(*layers)

    def replace_final(self, n_classes: int) -> None:
        """Swap the output Linear for a freshly (Kaiming-) initialised one; keep the rest."""
        if n_classes < 1:
            raise ValueError(f"a head needs at least one class, got n_classes={n_classes}")
        last = len(self) - 1
        old = self[last]
        assert isinstance(old, nn.Linear)
        self[last] = _fresh_linear(old.in_features, n_classes).to(
            device=old.weight.device, dtype=old.weight.dtype)


class PooledClassifier(ECGClassifier):
    """Stages run in sequence, a parameter-free pooling, then an `MLPHead`.

    Subclasses only build the stages (each becomes one layer group, input to output) and
    choose the pooling; `feature_dim` is the pooled width the head sees.
    """

    def __init__(self, n_leads: int, n_classes: int, stages: Sequence[nn.Module],
                 pool: nn.Module, feature_dim: int, head_hidden: Sequence[int] = (128,),
                 head_dropout: float = 0.5) -> None:
        super().__init__()
        if n_leads < 1:
            raise ValueError(f"n_leads must be at least 1, got {n_leads}")
        self.n_leads = int(n_leads)
        self.stages = nn.ModuleList(stages)
        self.pool = pool
        self.classifier = MLPHead(feature_dim, n_classes, head_hidden, head_dropout)
        self.feature_dim = int(feature_dim)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The last stage's output before pooling."""
        if x.ndim != 3 or x.shape[1] != self.n_leads:
            raise ValueError(f"expected input (batch, {self.n_leads} leads, samples), "
                             f"got shape {tuple(x.shape)}")
        for stage in self.stages:
            x = stage(x)
        return x

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.features(x))

    @property
    def head(self) -> nn.Module:
        return self.classifier

    def reset_head(self, n_classes: int) -> None:
        self.classifier.replace_final(n_classes)

    def layer_groups(self) -> list[nn.Module]:
        return [*self.stages, self.classifier]

    def cam_layer(self) -> nn.Module | None:
        """The last stage when it is convolutional (its output is (batch, channels, time));
        None when it is recurrent (its output is (batch, time, features))."""
        last = self.stages[-1]
        return last if any(isinstance(m, nn.Conv1d) for m in last.modules()) else None
