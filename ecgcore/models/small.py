"""`small_cnn`: a small, fast 1-D CNN for the embedded default, the smoke preset and the tests.

Why this shape: on a 2-core CPU the cost of a 1-D CNN is dominated by the first layers,
where the sequence is longest, so every block halves the length (stride 2) and the widths
grow only as the sequence shrinks (124,997 parameters with 12 leads and 5 classes). Five
blocks give a receptive field of 251 samples, 2.5 s at 100 Hz (two to four beats), enough
for rhythm and morphology. Global average and max pooling (concatenated) make it
length-agnostic (2.5 s crops train, 10 s windows evaluate) and keep both the typical beat
and the rare extreme. Each block is a strided conv + BN + ReLU
followed by a kernel-3 conv + BN with a residual add, which trains reliably at the high
learning rates the quick presets use.
"""

from __future__ import annotations

import torch
from torch import nn

from ecgcore.errors import EcgcoreError
from ecgcore.models.base import Architecture, ECGClassifier

DEFAULT_WIDTHS = (24, 32, 48, 64, 96)


class DownBlock(nn.Module):
    """Halve the length: conv(k, stride 2) + BN + ReLU, then conv(3) + BN added back, ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int) -> None:
        super().__init__()
        self.down = nn.Sequential(
            nn.Conv1d(in_channels, out_channels, kernel_size, stride=2,
                      padding=kernel_size // 2, bias=False),
            nn.BatchNorm1d(out_channels),
            nn.ReLU(inplace=True),
        )
        self.conv = nn.Conv1d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm1d(out_channels)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.down(x)
        return self.relu(x + self.bn(self.conv(x)))


class SmallCNN(ECGClassifier):
    """Blocks of `DownBlock`, concat (avg, max) pooling, head Linear -> ReLU -> Dropout -> Linear."""

    def __init__(self, n_leads: int, n_classes: int, widths: tuple[int, ...] = DEFAULT_WIDTHS,
                 first_kernel: int = 7, hidden: int = 64, dropout: float = 0.2) -> None:
        super().__init__()
        if not widths:
            raise EcgcoreError("small_cnn needs at least one block width")
        if not 0.0 <= dropout < 1.0:
            raise EcgcoreError(f"small_cnn dropout must be in [0, 1) (got {dropout})")
        channels = [n_leads, *widths]
        kernels = [first_kernel] + [5] * (len(widths) - 1)
        self.blocks = nn.ModuleList(
            DownBlock(c_in, c_out, k) for c_in, c_out, k in zip(channels[:-1], channels[1:], kernels))
        self.hidden = hidden
        self.classifier = nn.Sequential(
            nn.Linear(2 * widths[-1], hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden, n_classes),
        )
        for module in self.modules():
            if isinstance(module, nn.Conv1d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Concatenated global average and max of the last block: (B, 2 * widths[-1])."""
        for block in self.blocks:
            x = block(x)
        return torch.cat([x.mean(dim=-1), x.amax(dim=-1)], dim=1)

    @property
    def head(self) -> nn.Module:
        return self.classifier

    def reset_head(self, n_classes: int) -> None:
        """A fresh final Linear; the hidden layer of the head is kept."""
        self.classifier[-1] = nn.Linear(self.hidden, n_classes)

    def layer_groups(self) -> list[nn.Module]:
        """One group per block, then the head."""
        return [*self.blocks, self.classifier]

    def cam_layer(self) -> nn.Module:
        """The last block, just before global pooling."""
        return self.blocks[-1]


def small_cnn(n_leads: int, n_classes: int, n_samples: int,
              widths: tuple[int, ...] | list[int] = DEFAULT_WIDTHS, first_kernel: int = 7,
              hidden: int = 64, dropout: float = 0.2) -> SmallCNN:
    # n_samples is accepted for the common signature; global pooling makes any length work.
    return SmallCNN(n_leads, n_classes, tuple(int(w) for w in widths), first_kernel, hidden, dropout)


ARCHITECTURES: tuple[Architecture, ...] = (
    Architecture("small_cnn", "Small fast 1-D CNN (5 strided residual blocks, concat pooling); "
                 "~125k params, CPU-friendly", small_cnn),
)
