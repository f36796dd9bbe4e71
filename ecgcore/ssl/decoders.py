"""The light decoders of masked reconstruction, and the MAE-style pass of a ViT encoder.

Two ways to reconstruct hidden parts of an ECG, chosen by the backbone (`methods.Masked`):

- `MaskedSignal` (convolutional and recurrent backbones): the hidden samples are zeroed in
  the input (zero is the mean after the per-lead z-score), the backbone encodes the whole
  record, and a `ConvDecoder` maps its feature sequence (batch, channels, steps) back to
  (batch, leads, samples): a 1x1 projection, then stages that double the length (linear
  upsampling, a kernel-5 convolution, GELU) until the record's length is reached, then a
  1x1 convolution to the leads. It is deliberately small (the encoder should learn the
  structure, not the decoder).
- `MaskedViT` (ECG-JEPA-shaped encoders, `ecgcore.models.ecg_jepa.ECGJepa`): MAE
  (He et al. 2022) as ST-MEM (Na et al. 2024) applies it to ECGs: the encoder sees only the
  visible patch tokens (with their positions and ECG-JEPA's lead/time attention mask
  restricted to them), and a light transformer decoder (`decoder_depth` pre-norm blocks of
  width `decoder_dim`, fixed 2-D sin-cos positions) gets the encoded visible tokens with a
  learned mask token in every hidden place and predicts each token's 50 samples.

The loss (`losses.masked_mse`) counts hidden samples only; both return the whole
reconstructed record (batch, leads, samples) so one loss serves both.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ecgcore.models.ecg_jepa import PATCH, ECGJepa, sincos_positions
from ecgcore.ssl.features import SequenceTap, probe_shapes
from ecgcore.ssl.masking import sample_mask


class ConvDecoder(nn.Module):
    """(batch, channels, steps) -> (batch, leads, length); see the module docstring."""

    def __init__(self, channels: int, steps: int, n_leads: int, length: int, width: int) -> None:
        super().__init__()
        self.length = int(length)
        stages = max(0, math.ceil(math.log2(length / max(steps, 1))))
        self.project = nn.Conv1d(channels, width, 1)
        self.stages = nn.ModuleList(nn.Conv1d(width, width, 5, padding=2) for _ in range(stages))
        self.out = nn.Conv1d(width, n_leads, 1)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        h = self.project(h)
        for conv in self.stages:
            h = F.gelu(conv(F.interpolate(h, scale_factor=2.0, mode="linear", align_corners=False)))
        return self.out(F.interpolate(h, size=self.length, mode="linear", align_corners=False))


class MaskedSignal(nn.Module):
    """A convolutional or recurrent backbone that reconstructs zeroed patches of its input.

    forward(x (batch, leads, length), tokens (batch, leads, patches) bool) -> the
    reconstruction (batch, leads, length)."""

    def __init__(self, backbone: nn.Module, n_leads: int, length: int, patch: int, width: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.patch = int(patch)
        self.tap = SequenceTap(backbone)
        features = probe_shapes(backbone, n_leads, length, call=self.tap)  # the backbone in eval mode
        self.decoder = ConvDecoder(int(features.shape[1]), int(features.shape[2]), n_leads, length, width)

    def forward(self, x: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        hidden = sample_mask(tokens, self.patch, x.shape[2])
        return self.decoder(self.tap(x.masked_fill(hidden, 0.0)))


class MaskedViT(nn.Module):
    """An ECG-JEPA encoder trained MAE-style (see the module docstring).

    forward(x (batch, leads, samples), tokens (batch, leads, patches) bool) -> the
    reconstruction (batch, leads, samples); every sample the same number of hidden tokens
    (`masking.token_mask`)."""

    def __init__(self, backbone: ECGJepa, width: int, depth: int, heads: int) -> None:
        super().__init__()
        self.backbone = backbone
        encoder = backbone.encoder
        n_leads, n_patches = encoder.n_leads, encoder.n_samples // PATCH
        dim = int(encoder.pos_embed.shape[1])
        self.embed_to_decoder = nn.Linear(dim, width)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, width))
        nn.init.normal_(self.mask_token, std=0.02)
        self.register_buffer("decoder_pos", sincos_positions(width, n_leads, n_patches), persistent=False)
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(width, heads, dim_feedforward=4 * width, dropout=0.0,
                                       activation="gelu", batch_first=True, norm_first=True)
            for _ in range(depth))
        self.norm = nn.LayerNorm(width)
        self.predict = nn.Linear(width, PATCH)

    def encode_visible(self, x: torch.Tensor, visible: torch.Tensor) -> torch.Tensor:
        """The encoder on the visible tokens only: (batch, n_visible, dim), LayerNorm'd.
        `visible` (batch, n_visible) holds token indices (lead-major, as `tokens`)."""
        encoder = self.backbone.encoder
        h = encoder.W_P(x.reshape(x.shape[0], -1, PATCH))
        index = visible[:, :, None].expand(-1, -1, h.shape[2])
        h = h.gather(1, index)
        positions = encoder.pos_embed[visible]  # (batch, n_visible, dim)
        allowed = encoder.allowed[visible[:, :, None], visible[:, None, :]][:, None]  # (batch, 1, n, n)
        for block in encoder.encoder_blocks.blocks:
            h = block(h + positions, allowed)
        return encoder.norm(h)

    def forward(self, x: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        batch = x.shape[0]
        hidden = tokens.reshape(batch, -1)
        n_visible = int((~hidden[0]).sum())
        # stable sort: visible tokens first, each group in token order
        order = hidden.to(torch.int8).argsort(dim=1, stable=True)
        visible = order[:, :n_visible]
        encoded = self.embed_to_decoder(self.encode_visible(x, visible))
        full = self.mask_token.expand(batch, hidden.shape[1], -1).clone()
        full = full.scatter(1, visible[:, :, None].expand(-1, -1, full.shape[2]), encoded)
        h = full + self.decoder_pos
        for block in self.blocks:
            h = block(h)
        patches = self.predict(self.norm(h))  # (batch, leads * patches, PATCH), lead-major
        return patches.reshape(batch, x.shape[1], x.shape[2])
