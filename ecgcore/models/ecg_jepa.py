"""ECG-JEPA's encoder (Kim 2024, arXiv 2410.08559), rebuilt to its shape, as a classifier.

Facts read from the reference code (sehunfromdaegu/ECG_JEPA @ d937ad2, MIT: `ecg_jepa.py`,
`pos_encoding.py`, and `models.load_encoder`, which builds `ecg_jepa(**params).encoder` with
embed dim 768, depth 12, 16 heads, sin-cos positions, every dropout / drop-path rate 0):

- Tokens: the input (batch, 8 leads, 2,500 samples) is cut into 50 patches of 50 samples per
  lead, token `lead * 50 + patch` (400 tokens), each mapped by one Linear(50, D) (`W_P`).
- Positions: a fixed 2-D sin-cos table (400, D), kept in the state dict (`pos_embed`; an
  untrained Parameter there, a buffer here so no strategy can train it). Its first half
  encodes the patch (time) index, its second half the lead index (the reference's meshgrid
  puts the width axis first), each half as [sin | cos] over 10000^(-i / (D/4)).
  Quirk kept: the positions are added before EVERY block, not only once.
- Blocks: pre-norm ViT blocks (LayerNorm, multi-head attention with a bias-free qkv, GELU MLP
  of 4 D), attention restricted by a fixed mask: a token sees the tokens of its own lead and
  the tokens at its own time patch in the other leads.
- Output: the tokens after a final LayerNorm; `representation(x)` = their mean over tokens,
  which is this classifier's `embed`. The reference's downstream head is one Linear on it.

Submodule names inside `encoder` are the reference's (`W_P`, `encoder_blocks.blocks.<i>`,
`norm`, `pos_embed`), so a published checkpoint loads with one prefix (`ecg_jepa_state_dict`).
"""

from __future__ import annotations

from dataclasses import replace

import itertools
import logging
import math
import re
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ecgcore.errors import EcgcoreError
from ecgcore.models.base import Architecture, ECGClassifier, fresh_linear
from ecgcore.models.input_contract import InputContract

log = logging.getLogger(__name__)

PATCH = 50  # samples per token
BLOCK_GROUPS = 3  # the blocks form at most this many layer groups (see `ECGJepa.layer_groups`)
_SOURCE = "https://github.com/sehunfromdaegu/ECG_JEPA/blob/d937ad2c2c8a1e22856ce7e4a23a30f84a71217c/ecg_data.py"

INPUT_CONTRACT = InputContract(
    fs=250,
    n_samples=2500,
    leads=("I", "II", "V1", "V2", "V3", "V4", "V5", "V6"),
    filtering=("none: pretraining (Shaoxing, CODE-15) and linear evaluation read unfiltered signals; "
               "only the authors' fine-tuning script adds a zero-phase order-5 Butterworth high-pass "
               "0.67 Hz and low-pass 40 Hz, which is not part of this contract"),
    normalisation=("none: physical units (mV) as wfdb reads them (p_signal; CODE-15's HDF5 tracings "
                   "as stored), 10 s resampled to 2,500 samples with scipy.signal.resample (FFT); "
                   "no per-signal or per-lead scaling"),
    source=_SOURCE,
    resample="fft",
    normalize="none",
)


def sincos_positions(embed_dim: int, n_leads: int, n_patches: int) -> torch.Tensor:
    """The reference's `get_2d_sincos_pos_embed(embed_dim, n_leads, n_patches)`, float32:
    row `lead * n_patches + patch` = [patch code | lead code], each [sin | cos]."""
    if embed_dim % 4:
        raise ValueError(f"embed_dim must be a multiple of 4 for 2-D sin-cos positions, got {embed_dim}")
    quarter = embed_dim // 4
    omega = 1.0 / 10000 ** (torch.arange(quarter, dtype=torch.float64) / quarter)
    lead = torch.arange(n_leads, dtype=torch.float64).repeat_interleave(n_patches)
    patch = torch.arange(n_patches, dtype=torch.float64).repeat(n_leads)
    codes = [torch.outer(index, omega) for index in (patch, lead)]
    return torch.cat([f(c) for c in codes for f in (torch.sin, torch.cos)], dim=1).float()


def lead_time_mask(n_leads: int, n_patches: int) -> torch.Tensor:
    """(tokens, tokens) bool, True where attention is allowed: same lead or same patch."""
    lead = torch.arange(n_leads).repeat_interleave(n_patches)
    patch = torch.arange(n_patches).repeat(n_leads)
    return (lead[:, None] == lead[None, :]) | (patch[:, None] == patch[None, :])


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Attention(nn.Module):
    """Multi-head self-attention, qkv without bias, scale head_dim ** -0.5."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"embed_dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        batch, tokens, dim = x.shape
        qkv = self.qkv(x).reshape(batch, tokens, 3, self.num_heads, dim // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
        return self.proj(out.transpose(1, 2).reshape(batch, tokens, dim))


class Block(nn.Module):
    """Pre-norm transformer block (submodules created in the reference's order)."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.attn = Attention(dim, num_heads)

    def forward(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), allowed)
        return x + self.mlp(self.norm2(x))


class EncoderBlocks(nn.Module):
    """Holds `blocks` (the reference's `Encoder_Block`); positions go in before each block."""

    def __init__(self, dim: int, depth: int, num_heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(Block(dim, num_heads, mlp_ratio) for _ in range(depth))

    def forward(self, x: torch.Tensor, pos: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x + pos, allowed)
        return x


class JepaEncoder(nn.Module):
    """The reference's `MaskTransformer` without its pretraining masks: the encoder that
    ECG-JEPA checkpoints hold under ["encoder"]."""

    def __init__(self, embed_dim: int = 768, depth: int = 12, num_heads: int = 16,
                 mlp_ratio: float = 4.0, n_leads: int = len(INPUT_CONTRACT.leads),
                 n_samples: int = INPUT_CONTRACT.n_samples) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError(f"depth must be at least 1, got {depth}")
        if n_samples % PATCH:
            raise ValueError(f"n_samples must be a multiple of the {PATCH}-sample patch, got {n_samples}")
        self.n_leads, self.n_samples = n_leads, n_samples
        n_patches = n_samples // PATCH
        self.encoder_blocks = EncoderBlocks(embed_dim, depth, num_heads, mlp_ratio)
        self.norm = nn.LayerNorm(embed_dim)
        self.W_P = nn.Linear(PATCH, embed_dim)  # the checkpoint's name
        self.register_buffer("pos_embed", sincos_positions(embed_dim, n_leads, n_patches))
        self.register_buffer("allowed", lead_time_mask(n_leads, n_patches), persistent=False)
        self._init_weights()

    @torch.no_grad()
    def _init_weights(self) -> None:
        """The reference's init: truncated-normal(0.02) Linear weights, zero biases, unit
        LayerNorms, then block i's attn.proj and mlp.fc2 weights divided by sqrt(2 (i + 1))."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02, a=-2.0, b=2.0)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        for i, block in enumerate(self.encoder_blocks.blocks):
            block.attn.proj.weight.div_(math.sqrt(2.0 * (i + 1)))
            block.mlp.fc2.weight.div_(math.sqrt(2.0 * (i + 1)))

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, leads, samples) -> the final LayerNorm'd tokens (batch, leads * patches, D)."""
        if x.ndim != 3 or x.shape[1:] != (self.n_leads, self.n_samples):
            raise ValueError(
                f"ECG-JEPA takes (batch, {self.n_leads} leads, {self.n_samples} samples) - its input "
                f"contract: leads {', '.join(INPUT_CONTRACT.leads)} at {INPUT_CONTRACT.fs} Hz; got {tuple(x.shape)}")
        h = self.W_P(x.reshape(x.shape[0], -1, PATCH))
        return self.norm(self.encoder_blocks(h, self.pos_embed, self.allowed))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The reference's `representation(x)`: the mean of `tokens(x)`, (batch, D)."""
        return self.tokens(x).mean(dim=1)


def _split(n: int, parts: int) -> list[range]:
    """0..n-1 cut into `parts` contiguous runs, the earlier ones one longer when uneven."""
    size, extra = divmod(n, parts)
    bounds = [0]
    for i in range(parts):
        bounds.append(bounds[-1] + size + (i < extra))
    return [range(a, b) for a, b in itertools.pairwise(bounds)]


class ECGJepa(ECGClassifier):
    """ECG-JEPA's encoder + one Linear on its representation (the reference's
    `FinetuningClassifier` / `LinearClassifier` without batch norm)."""

    contract: InputContract = INPUT_CONTRACT

    def __init__(self, n_classes: int, embed_dim: int = 768, depth: int = 12,
                 num_heads: int = 16, n_samples: int = INPUT_CONTRACT.n_samples) -> None:
        super().__init__()
        if n_classes < 1:
            raise ValueError(f"a head needs at least one class, got n_classes={n_classes}")
        self.encoder = JepaEncoder(embed_dim, depth, num_heads, n_samples=n_samples)
        self.feature_dim = embed_dim
        self.classifier = nn.Linear(embed_dim, n_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """The final LayerNorm'd tokens, (batch, leads * patches, D), lead-major (lead 0's
        patches in time order first)."""
        return self.encoder.tokens(x)

    @property
    def head(self) -> nn.Module:
        return self.classifier

    def reset_head(self, n_classes: int) -> None:
        """A fresh Linear with PyTorch's default init (as the reference's downstream head)."""
        self.classifier = fresh_linear(self.classifier, n_classes)

    def layer_groups(self) -> list[nn.Module]:
        """[patch embedding, blocks in (at most) three contiguous groups, head].

        Three block groups, not one per block: the group-wise strategies were tuned for
        CNNs of 5-6 groups (ULMFiT's lr/2.6 per group would leave the first of 14 groups at
        2.6^-13 of the head's rate, gradual unfreezing would need 13 stages). The final
        LayerNorm goes with the last blocks, not the head: `embed` (the representation) ends
        with it, so a linear probe trains the Linear only, as the reference's linear
        evaluation does. The positions are a fixed buffer, in no group."""
        return [self.encoder.W_P, *self._block_groups(), self.classifier]

    def _block_groups(self) -> list[nn.ModuleList]:
        """The block containers, made once and kept outside the module tree (a plain list, so
        the blocks' state-dict keys stay the reference's): every call returns the same group
        objects, as a strategy's frozen modules and the trainer's plan signatures expect."""
        cached = self.__dict__.get("_groups")
        if cached is None:
            blocks = self.encoder.encoder_blocks.blocks
            runs = _split(len(blocks), min(BLOCK_GROUPS, len(blocks)))
            cached = [nn.ModuleList(blocks[i] for i in run) for run in runs]
            cached[-1].append(self.encoder.norm)
            self.__dict__["_groups"] = cached
        return cached


# ---------------------------------------------------------------- loading their weights

_BLOCK = re.compile(r"encoder_blocks\.blocks\.(\d+)\.")
_SHOWN = 5


def ecg_jepa_state_dict(checkpoint_or_state: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """A published ECG-JEPA checkpoint ({"encoder": state, ...}) or the encoder's state dict
    itself -> this model's `encoder.` keys, float32. Refuses, naming the first mismatches, a
    state dict whose keys or shapes are not exactly those of the reference encoder of its size
    (embed dim read from `pos_embed` or a block's norm, depth from the highest block index)."""
    encoder = checkpoint_or_state.get("encoder")
    state = encoder if isinstance(encoder, Mapping) else checkpoint_or_state
    expected = _expected_shapes(state)
    given = {key: tuple(value.shape) for key, value in state.items()}
    problems = [f"missing {key}" for key in expected if key not in given]
    problems += [f"unexpected {key}" for key in given if key not in expected]
    problems += [f"{key}: shape {given[key]}, expected {shape}"
                 for key, shape in expected.items() if key in given and given[key] != shape]
    if problems:
        more = f" (and {len(problems) - _SHOWN} more)" if len(problems) > _SHOWN else ""
        raise EcgcoreError(f"not an ECG-JEPA encoder state dict: {'; '.join(problems[:_SHOWN])}{more}")
    return {f"encoder.{key}": value.float() for key, value in state.items()}


def _expected_shapes(state: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    """Key -> shape of the reference encoder whose size `state` suggests (built on the meta
    device: shapes only, no memory)."""
    depth = 1 + max((int(m.group(1)) for key in state if (m := _BLOCK.match(key))), default=-1)
    dims = [state[key].shape[-1] for key in ("pos_embed", "encoder_blocks.blocks.0.norm1.weight")
            if key in state]
    if depth == 0 or not dims:
        raise EcgcoreError("not an ECG-JEPA encoder state dict: no encoder_blocks.blocks.<i> keys "
                           f"or no pos_embed (first keys: {', '.join(list(state)[:_SHOWN])})")
    positions = state.get("pos_embed")
    n_patches = (int(positions.shape[-2]) // len(INPUT_CONTRACT.leads)
                 if isinstance(positions, torch.Tensor) and positions.ndim >= 2 else 0)
    n_samples = n_patches * PATCH if n_patches else INPUT_CONTRACT.n_samples  # a shorter demo encoder too
    with torch.device("meta"):
        reference = JepaEncoder(embed_dim=int(dims[0]), depth=depth, num_heads=1, n_samples=n_samples)
    return {key: tuple(value.shape) for key, value in reference.state_dict().items()}


def _build(n_leads: int, n_classes: int, n_samples: int, embed_dim: int = 768, depth: int = 12,
           num_heads: int = 16) -> ECGJepa:
    """The encoder only takes its input contract's 8 leads x 2,500 samples; another request
    (the registry's defaults, 12 x 1,000) builds that shape all the same, and the model's
    `config` records the shape it takes (the registry keeps it over the request)."""
    if (n_leads, n_samples) != (len(INPUT_CONTRACT.leads), INPUT_CONTRACT.n_samples):
        log.info("ecg_jepa takes %d leads x %d samples (its input contract), not the requested %d x %d",
                 len(INPUT_CONTRACT.leads), INPUT_CONTRACT.n_samples, n_leads, n_samples)
    model = ECGJepa(n_classes, embed_dim=embed_dim, depth=depth, num_heads=num_heads)
    model.config = {"n_leads": len(INPUT_CONTRACT.leads), "n_samples": INPUT_CONTRACT.n_samples}
    return model


SMALL_CONFIG: dict[str, int] = {"embed_dim": 64, "depth": 3, "num_heads": 4}
"""`ecg_jepa_small`: the same encoder at demo size."""

DEMO_INPUT_CONTRACT = replace(
    INPUT_CONTRACT, fs=100, n_samples=1000,
    normalisation=("demo contract: ECG-JEPA's (none: physical units, no scaling), 10 s resampled to "
                   "1,000 samples at 100 Hz with scipy.signal.resample (FFT): 8 leads x 20 patches"))
"""`ecg_jepa_small`'s: ECG-JEPA's input (8 leads, unfiltered, unscaled, FFT resampling) at 100 Hz,
so its 50-sample patches are 0.5 s and a record is 160 tokens instead of 400: the demo
ViT trains on a 2-core CPU within the foundation quickstart's budget."""


def _build_small(n_leads: int, n_classes: int, n_samples: int, **config: int) -> ECGJepa:
    """A demo-sized ECG-JEPA at its demo contract's 8 leads x 1,000 samples; its `config`
    records the encoder's size, so a checkpoint of it says what it holds."""
    size = {**SMALL_CONFIG, **config}
    shape = (len(DEMO_INPUT_CONTRACT.leads), DEMO_INPUT_CONTRACT.n_samples)
    if (n_leads, n_samples) != shape:
        log.info("ecg_jepa_small takes %d leads x %d samples (its demo contract), not the requested %d x %d",
                 *shape, n_leads, n_samples)
    model = ECGJepa(n_classes, n_samples=shape[1], **size)
    model.config = {"n_leads": shape[0], "n_samples": shape[1], **size}
    return model


ARCHITECTURES: tuple[Architecture, ...] = (
    Architecture("ecg_jepa", "ECG-JEPA (Kim 2024) ViT encoder: 8 leads (I, II, V1-V6) x 50 patches of "
                 "50 samples at 250 Hz, 12 blocks of 768, 16 heads, lead/time attention mask, mean "
                 "of the normed tokens -> Linear; 85.1M trainable params", _build, contract=INPUT_CONTRACT),
    Architecture("ecg_jepa_small", "ECG-JEPA's encoder at demo size: 3 blocks of 64, 4 heads, "
                 "8 leads x 20 patches of 50 samples at 100 Hz (ECG-JEPA's input otherwise); "
                 "0.15M params, for demos on CPU", _build_small, contract=DEMO_INPUT_CONTRACT),
)
