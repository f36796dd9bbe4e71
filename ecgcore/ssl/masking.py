"""Which parts of a batch masked reconstruction hides: patches in time, and whole leads.

A record of `leads` x `samples` is cut into tokens of `patch` samples per lead (the last
one shorter when `patch` does not divide the length), token (lead, i) covering samples
i * patch ... (i + 1) * patch - 1 of that lead: the tokens of a ViT such as ECG-JEPA
exactly, and the same spans for a convolutional or recurrent backbone, whose masked
samples are zeroed instead.

Every sample of a batch hides the same NUMBER of tokens (a transformer encoder then sees
equally many visible tokens per sample, so the batch stays one tensor): first
`whole_leads` leads drawn at random lose every patch (ST-MEM-style lead masking), then
random tokens of the other leads until `ratio` of all tokens are hidden; never every
token (at least one stays visible). Draws come only from the generator passed in.
"""

from __future__ import annotations

import math

import torch

from ecgcore.errors import EcgcoreError


def masked_count(n_leads: int, n_patches: int, ratio: float, whole_leads: int) -> int:
    """Tokens hidden per sample: round(ratio * tokens), at least the whole leads' patches,
    at most all tokens but one."""
    if not 0.0 < ratio < 1.0:
        raise EcgcoreError(f"mask_ratio must be in (0, 1), got {ratio}")
    if not 0 <= whole_leads < n_leads:
        raise EcgcoreError(f"mask_leads must be in [0, {n_leads - 1}] for {n_leads} leads, got {whole_leads}")
    total = n_leads * n_patches
    return min(max(round(ratio * total), whole_leads * n_patches), total - 1)


def token_mask(n: int, n_leads: int, n_patches: int, ratio: float, whole_leads: int,
               generator: torch.Generator) -> torch.Tensor:
    """(n, n_leads, n_patches) bool, True = hidden; `masked_count` tokens per sample, the
    patches of `whole_leads` random leads among them."""
    count = masked_count(n_leads, n_patches, ratio, whole_leads)
    lead_order = torch.rand(n, n_leads, generator=generator).argsort(dim=1)
    whole = torch.zeros(n, n_leads, dtype=torch.bool)
    whole.scatter_(1, lead_order[:, :whole_leads], True)
    # Hidden first: the whole leads' tokens (key -1), then the lowest uniform keys.
    keys = torch.rand(n, n_leads, n_patches, generator=generator)
    keys = keys.masked_fill(whole[:, :, None], -1.0).reshape(n, -1)
    hidden = torch.zeros(n, n_leads * n_patches, dtype=torch.bool)
    hidden.scatter_(1, keys.argsort(dim=1)[:, :count], True)
    return hidden.reshape(n, n_leads, n_patches)


def patches_in(n_samples: int, patch: int) -> int:
    """Tokens per lead of a record of `n_samples` (the last may be shorter)."""
    if patch < 1:
        raise EcgcoreError(f"patch must be at least 1 sample, got {patch}")
    return math.ceil(n_samples / patch)


def sample_mask(tokens: torch.Tensor, patch: int, n_samples: int) -> torch.Tensor:
    """(n, leads, patches) token mask -> (n, leads, n_samples) sample mask."""
    return tokens.repeat_interleave(patch, dim=2)[:, :, :n_samples]
