"""What a pretraining method reads from a zoo backbone, whatever its architecture.

- The pooled embedding: `model.embed(x)`, (batch, feature_dim), the features every
  model's head reads (contrastive methods project it).
- A feature sequence in time, (batch, channels, steps), for masked-signal reconstruction
  with a convolutional decoder: the output of the model's last convolutional block
  (`cam_layer`, the map Grad-CAM weighs; CNNs and Net1D), or of a recurrent last stage
  (`PooledClassifier` RNNs, (batch, time, hidden) transposed). It is caught by a forward
  hook while `embed` runs, so no model needs a new method and the model's own forward is
  what trains. Models with neither (Nguyen & Do's RNNs, which flatten their whole output
  sequence for a fixed length, and the ViT, whose tokens are lead-major patches and which
  masked reconstruction handles MAE-style, `decoders.MaskedViT`) are refused, naming
  the model.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ecgcore.errors import EcgcoreError
from ecgcore.models.base import ECGClassifier
from ecgcore.models.heads import PooledClassifier


class SequenceTap(nn.Module):
    """`tap(x)` -> the backbone's feature sequence (batch, channels, steps) for input x."""

    def __init__(self, backbone: ECGClassifier) -> None:
        super().__init__()
        layer, channels_first = sequence_layer(backbone)
        self.channels_first = channels_first
        self._caught: list[torch.Tensor] = []
        self._handle = layer.register_forward_hook(lambda _module, _inputs, output: self._caught.append(output))
        self.__dict__["backbone"] = backbone  # not a submodule: the owner holds the backbone

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._caught.clear()
        self.__dict__["backbone"].embed(x)
        if len(self._caught) != 1:
            raise EcgcoreError(f"the feature layer ran {len(self._caught)} times in one embed call, not once")
        out = self._caught.pop()
        return out if self.channels_first else out.transpose(1, 2)


def sequence_layer(backbone: ECGClassifier) -> tuple[nn.Module, bool]:
    """The module whose output is the backbone's feature sequence, and whether that output
    is (batch, channels, steps) (True) or (batch, steps, channels) (a recurrent stage)."""
    layer = backbone.cam_layer()
    if layer is not None:
        return layer, True
    if isinstance(backbone, PooledClassifier):
        return backbone.stages[-1], False
    raise EcgcoreError(f"model {backbone.name or type(backbone).__name__} offers no feature sequence in time "
                       "(no convolutional last block, no pooled recurrent stage): masked-signal "
                       "reconstruction does not apply to it")


@torch.no_grad()
def probe_shapes(module: nn.Module, n_leads: int, length: int,
                 call: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
    """`call` (default: `module` itself) on two zero records of the run's shape, with
    `module` in eval mode, no gradient and no random draw: how a head or decoder learns the
    widths it must take."""
    was_training = module.training
    module.eval()
    try:
        return (call or module)(torch.zeros(2, n_leads, length))
    finally:
        module.train(was_training)
