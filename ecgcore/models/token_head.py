"""An attention-pooling head over a model's token sequence: the ECG foundation-model
benchmark's "frozen" mode head, as a part of the model so that model.pt holds it.

Al-Masud, Lopez Alcaraz & Strodthoff, "Benchmarking ECG FMs: A Reality Check Across Clinical
Tasks" (ICLR 2026; AI4HealthUOL/ecg-fm-benchmarking, `clinical_ts/utils/heads.py`
`LearnableQueryAttentionPool1d`, used by every wrapper in `clinical_ts/models/fm_ecg.py` with
16 heads and no biases): one learnable query (initialised randn / sqrt(dim)) attends over
the encoder's tokens through query, key and value projections (Linear(dim, dim), no bias),
scaled dot-product attention per head, heads concatenated; the attention's output projection
maps straight to the classes (Linear(dim, n_classes), no bias). No layer norm, no dropout.
Here the output projection is the model's final Linear (`classifier`), so `reset_head` and
every tool that looks for the final Linear work unchanged; the rest is `AttentionPool`.

Tokens may be averaged in groups of `group` adjacent tokens first (`group_tokens`), which
bounds what an embedding cache must hold for models with many tokens (ECG-JEPA: 8 leads x 50
patches); `group=1` is the benchmark's head exactly.

`TokenPooled` wraps a set-up model: its tokens -> this head. The wrapped model's own final
Linear is replaced by an Identity (it would be dead weight). Its `config` gains
`token_head` = {"dim", "heads", "group"}, which `ecgcore.models.create_model` reads to
rebuild the same structure, so model.pt reloads and every view scores it like any model.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ecgcore.models.base import ECGClassifier, fresh_linear

BENCHMARK_HEADS = 16
"""The benchmark's head count (LearnableQueryAttentionPoolingHeadConfig.heads)."""


def attention_heads(dim: int, wanted: int = BENCHMARK_HEADS) -> int:
    """`wanted` heads when they divide `dim`, else the largest count below it that does
    (a demo-sized model of width 24 gets 12)."""
    return max(h for h in range(1, min(wanted, dim) + 1) if dim % h == 0)


def token_group(n_tokens: int, max_tokens: int) -> int:
    """The smallest group size that divides `n_tokens` and leaves at most `max_tokens`
    groups (1 when the tokens already fit). Dividing exactly means no group mixes the end
    of the sequence with padding; for ECG-JEPA's 8 x 50 lead-major tokens and 80 groups it
    gives 5, which divides 50, so no group mixes two leads either."""
    if n_tokens < 1 or max_tokens < 1:
        raise ValueError(f"need at least one token and one group, got {n_tokens} and {max_tokens}")
    return next(k for k in range(1, n_tokens + 1) if n_tokens % k == 0 and n_tokens // k <= max_tokens)


def group_tokens(tokens: torch.Tensor, group: int) -> torch.Tensor:
    """(batch, n, dim) -> (batch, n / group, dim): the mean of each run of `group` tokens."""
    if group == 1:
        return tokens
    batch, n, dim = tokens.shape
    if n % group:
        raise ValueError(f"{n} tokens do not split into groups of {group}")
    return tokens.reshape(batch, n // group, group, dim).mean(dim=2)


class AttentionPool(nn.Module):
    """(batch, tokens, dim) -> (batch, dim): one learnable query attending over the tokens
    (grouped first when `group` > 1); the heads' outputs concatenated, before the output
    projection. Parameters are made in the reference's order (query, k, q, v)."""

    def __init__(self, dim: int, heads: int, group: int = 1) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"{heads} heads do not divide the token width {dim}")
        self.dim, self.heads, self.group = int(dim), int(heads), int(group)
        self.query = nn.Parameter(torch.randn(1, 1, dim) / dim ** 0.5)
        self.k_proj = nn.Linear(dim, dim, bias=False)
        self.q_proj = nn.Linear(dim, dim, bias=False)
        self.v_proj = nn.Linear(dim, dim, bias=False)

    def attend(self, tokens: torch.Tensor) -> torch.Tensor:
        """The pooling on tokens already grouped (what an embedding cache holds)."""
        batch, _, dim = tokens.shape
        head_dim = dim // self.heads

        def split(t: torch.Tensor) -> torch.Tensor:  # (b, n, dim) -> (b, heads, n, head_dim)
            return t.reshape(t.shape[0], t.shape[1], self.heads, head_dim).transpose(1, 2)

        q = split(self.q_proj(self.query)).expand(batch, -1, -1, -1)
        out = F.scaled_dot_product_attention(q, split(self.k_proj(tokens)), split(self.v_proj(tokens)))
        return out.transpose(1, 2).reshape(batch, dim)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.attend(group_tokens(tokens, self.group))


class AttentionHead(nn.Module):
    """Tokens -> logits: `pool` then the final Linear `classifier` (no bias, as the
    benchmark's output projection). One module, so it is one layer group."""

    def __init__(self, dim: int, n_classes: int, heads: int, group: int) -> None:
        super().__init__()
        self.pool = AttentionPool(dim, heads, group)
        self.classifier = nn.Linear(dim, n_classes, bias=False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(tokens))


class TokenPooled(ECGClassifier):
    """A model whose tokens are pooled by an `AttentionHead` instead of its own head.

    embed(x) = the attention pool of `encoder.tokens(x)`; head = the attention's output
    projection. Layer groups: the encoder's, less its (now empty) head, then the whole
    attention head (pool and classifier), so a head-only plan trains exactly the probe."""

    def __init__(self, encoder: ECGClassifier, n_classes: int, heads: int, group: int, dim: int) -> None:
        super().__init__()
        name = final_linear_of(encoder)
        encoder.set_submodule(name, nn.Identity())
        self.encoder = encoder
        self.attention = AttentionHead(dim, n_classes, heads, group)
        self.name = encoder.name
        self.config = {**encoder.config, "n_classes": n_classes,
                       "token_head": {"dim": dim, "heads": heads, "group": group}}

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder.tokens(x)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.attention.pool(self.tokens(x))

    @property
    def head(self) -> nn.Module:
        return self.attention.classifier

    def reset_head(self, n_classes: int) -> None:
        self.attention.classifier = fresh_linear(self.attention.classifier, n_classes, bias=False)

    def layer_groups(self) -> list[nn.Module]:
        return [*self.encoder.layer_groups()[:-1], self.attention]

    def cam_layer(self) -> nn.Module | None:
        return self.encoder.cam_layer()


def final_linear_of(model: ECGClassifier) -> str:
    """Qualified name of the last Linear of `model.head` (what `reset_head` replaces)."""
    last = [m for m in model.head.modules() if isinstance(m, nn.Linear)][-1]
    return next(name for name, module in model.named_modules() if module is last)


def has_tokens(model: ECGClassifier) -> bool:
    """Whether the model's class implements `tokens` (the base class refuses)."""
    return type(model).tokens is not ECGClassifier.tokens


def with_token_head(model: ECGClassifier, n_classes: int, *, dim: int, heads: int, group: int,
                    **unknown: Any) -> TokenPooled:
    """`model` wrapped with a fresh attention head (what `create_model` does for a config
    with `token_head`)."""
    if unknown:
        raise ValueError(f"token_head: unknown settings {sorted(unknown)}; known: dim, heads, group")
    if not has_tokens(model):
        raise ValueError(f"model {model.name or type(model).__name__} offers no token sequence for an attention head")
    return TokenPooled(model, n_classes, heads=int(heads), group=int(group), dim=int(dim))
