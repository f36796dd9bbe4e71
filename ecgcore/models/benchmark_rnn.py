"""The PTB-XL benchmark's recurrent models (Strodthoff et al., IEEE JBHI 2021): `lstm`,
`lstm_bidir` and `gru`, each 2 layers of 256 hidden units.

The whole output sequence is pooled into [mean, max, last state] (3 x hidden per
direction), then the shared benchmark head (`heads.py`). Unlike Nguyen & Do's RNNs, which
flatten every time step into one Linear, this head does not depend on the input length.
The benchmark trains these with gradient clipping at 0.25 (the trainer's job).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ecgcore.models.base import Architecture
from ecgcore.models.heads import ConcatPoolRNN, PooledClassifier, kaiming_init

CELLS: dict[str, type[nn.LSTM | nn.GRU]] = {"lstm": nn.LSTM, "gru": nn.GRU}


class RNNEncoder(nn.Module):
    """(batch, leads, time) -> (batch, time, hidden * directions)."""

    def __init__(self, cell: str, n_leads: int, hidden: int, n_layers: int,
                 bidirectional: bool) -> None:
        super().__init__()
        if cell not in CELLS:
            raise ValueError(f"unknown recurrent cell {cell!r}; known: {', '.join(CELLS)}")
        self.rnn = CELLS[cell](input_size=n_leads, hidden_size=hidden, num_layers=n_layers,
                               batch_first=True, bidirectional=bidirectional)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x.transpose(1, 2))
        return out


class RNN1d(PooledClassifier):
    """Groups: [rnn, head]."""

    def __init__(self, n_leads: int, n_classes: int, cell: str = "lstm", hidden: int = 256,
                 n_layers: int = 2, bidirectional: bool = False,
                 head_hidden: Sequence[int] = (128,), head_dropout: float = 0.5) -> None:
        directions = 2 if bidirectional else 1
        encoder = RNNEncoder(cell, n_leads, hidden, n_layers, bidirectional)
        super().__init__(n_leads, n_classes, [encoder], ConcatPoolRNN(bidirectional),
                         3 * hidden * directions, head_hidden, head_dropout)
        kaiming_init(self.classifier)


def build_lstm(n_leads: int, n_classes: int, n_samples: int, **config) -> RNN1d:
    return RNN1d(n_leads, n_classes, cell="lstm", bidirectional=False, **config)


def build_lstm_bidir(n_leads: int, n_classes: int, n_samples: int, **config) -> RNN1d:
    return RNN1d(n_leads, n_classes, cell="lstm", bidirectional=True, **config)


def build_gru(n_leads: int, n_classes: int, n_samples: int, **config) -> RNN1d:
    return RNN1d(n_leads, n_classes, cell="gru", bidirectional=False, **config)


ARCHITECTURES: tuple[Architecture, ...] = (
    Architecture("lstm", "PTB-XL benchmark lstm: 2-layer LSTM, 256 hidden, [mean, max, last] "
                 "pooling, concat-pool head", build_lstm),
    Architecture("lstm_bidir", "PTB-XL benchmark lstm_bidir: 2-layer bidirectional LSTM, 256 "
                 "hidden per direction, [mean, max, last] pooling, concat-pool head", build_lstm_bidir),
    Architecture("gru", "PTB-XL benchmark gru: 2-layer GRU, 256 hidden, [mean, max, last] "
                 "pooling, concat-pool head", build_gru),
)
