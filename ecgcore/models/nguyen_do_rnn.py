"""Nguyen & Do's recurrent models (lstm_nd, gru_nd, bilstm_nd), rebuilt to their published shape.

One recurrent layer (hidden 100) runs over time (the input (B, leads, T) is transposed to
(B, T, leads), batch first); the *whole* output sequence, T x 100 (T x 200 when
bidirectional), is flattened into a single Linear -> C. The head therefore depends on the
input length: a model is built for one `n_samples` and accepts only that length. Their
`dropout=0.3` acts only between stacked layers, so with one layer it does nothing and is
left out. Parameter counts with 12 leads, T = 1000 and C = 5: 545,605 (LSTM), 534,205
(GRU), 1,091,205 (BiLSTM).

Submodule names: `rnn` (theirs: `lstm` / `gru`) and `classifier` (theirs: `fc`);
`nguyen_do_state_dict` renames one of their checkpoints to these keys.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from ecgcore.errors import EcgcoreError
from ecgcore.models.base import Architecture, ECGClassifier
from ecgcore.models.convert import rename_state_dict

HIDDEN_SIZE = 100

RNN_KINDS: dict[str, type[nn.LSTM | nn.GRU]] = {"lstm": nn.LSTM, "gru": nn.GRU}


class SequenceFlattenRNN(ECGClassifier):
    """One recurrent layer whose full output sequence feeds one Linear."""

    def __init__(self, kind: str, bidirectional: bool, n_leads: int, n_classes: int,
                 n_samples: int, hidden_size: int = HIDDEN_SIZE) -> None:
        super().__init__()
        if kind not in RNN_KINDS:
            raise EcgcoreError(f"unknown recurrent cell {kind!r}; known: {', '.join(RNN_KINDS)}")
        if n_samples < 1:
            raise EcgcoreError(f"{kind} model needs n_samples >= 1 (got {n_samples})")
        self.n_samples = n_samples
        self.rnn = RNN_KINDS[kind](input_size=n_leads, hidden_size=hidden_size, num_layers=1,
                                   batch_first=True, bidirectional=bidirectional)
        directions = 2 if bidirectional else 1
        self.feature_dim = n_samples * hidden_size * directions
        self.classifier = nn.Linear(self.feature_dim, n_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The flattened output sequence: (B, T * hidden * directions), time-major.

        This is the very vector Nguyen & Do's Linear reads, not a pooled summary, so its
        size grows with the input length, which must equal the `n_samples` built for.
        """
        if x.shape[-1] != self.n_samples:
            raise EcgcoreError(
                f"this recurrent model was built for {self.n_samples} samples per record "
                f"(its head flattens the whole sequence); got an input of {x.shape[-1]}")
        out, _ = self.rnn(x.transpose(1, 2))
        return torch.flatten(out, 1)

    @property
    def head(self) -> nn.Module:
        return self.classifier

    def reset_head(self, n_classes: int) -> None:
        """A fresh Linear (PyTorch default init), as Nguyen & Do replace `fc`."""
        self.classifier = nn.Linear(self.feature_dim, n_classes)

    def layer_groups(self) -> list[nn.Module]:
        """[rnn, head]: the single recurrent layer is one group."""
        return [self.rnn, self.classifier]


_ND_PREFIXES = {"lstm.": "rnn.", "gru.": "rnn.", "fc.": "classifier."}


def nguyen_do_state_dict(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a state dict of Nguyen & Do's LSTM/GRU/BiLSTM classes to this module's keys
    (float64 tensors become float32)."""
    return rename_state_dict(state, _ND_PREFIXES)


def lstm_nd(n_leads: int, n_classes: int, n_samples: int,
            hidden_size: int = HIDDEN_SIZE) -> SequenceFlattenRNN:
    return SequenceFlattenRNN("lstm", False, n_leads, n_classes, n_samples, hidden_size)


def gru_nd(n_leads: int, n_classes: int, n_samples: int,
           hidden_size: int = HIDDEN_SIZE) -> SequenceFlattenRNN:
    return SequenceFlattenRNN("gru", False, n_leads, n_classes, n_samples, hidden_size)


def bilstm_nd(n_leads: int, n_classes: int, n_samples: int,
              hidden_size: int = HIDDEN_SIZE) -> SequenceFlattenRNN:
    return SequenceFlattenRNN("lstm", True, n_leads, n_classes, n_samples, hidden_size)


ARCHITECTURES: tuple[Architecture, ...] = (
    Architecture("lstm_nd", "Nguyen & Do LSTM: 1 layer, hidden 100, whole sequence -> Linear "
                 "(fixed length)", lstm_nd),
    Architecture("gru_nd", "Nguyen & Do GRU: 1 layer, hidden 100, whole sequence -> Linear "
                 "(fixed length)", gru_nd),
    Architecture("bilstm_nd", "Nguyen & Do BiLSTM: 1 layer, hidden 100 x 2, whole sequence -> Linear "
                 "(fixed length)", bilstm_nd),
)
