"""ECGFounder's Net1D (Li et al., NEJM AI 2025), rebuilt to load its published checkpoint exactly.

Li et al., "An Electrocardiogram Foundation Model Built on over 10 Million Recordings"
(PKUDigitalHealth/ECGFounder, MIT). This class follows `net1d.py` at commit 04edac7 as the
authors' fine-tuning and evaluation code builds it (`finetune_model.py`, `ptbxl_eval.py`):
`use_bn=False`, `use_do=False`, 12 leads, base 64 filters, stages of widths
(64, 160, 160, 400, 400, 1024, 1024) and depths (2, 2, 2, 3, 3, 4, 4), kernel 16, stride 2,
group width 16, 150 labels.

- Stem: a "SAME"-padded Conv1d(k, stride 2) then Swish (x * sigmoid(x)).
- Stage i: blocks; the first carries the stride and the width change. A block is a
  pre-activation bottleneck Swish -> 1x1 conv -> Swish -> grouped k-conv (stride) ->
  Swish -> 1x1 conv (the very first block of the network skips the first Swish), then
  squeeze-excitation (mean over time -> Linear(C, C/2) -> Swish -> Linear -> sigmoid,
  scaling the channels), plus the shortcut: the input max-pooled by the stride with
  SAME zero padding, then zero-padded on the channel axis (half before, half after) up
  to the new width.
- "SAME" padding splits the missing samples p = max(0, (ceil(L/s) - 1) * s + k - L) as
  p // 2 before and the rest after, with zeros (for the max-pool too: a lone negative
  last sample becomes 0, as in the reference).
- Head: the mean over time of the last stage (`embed`, the reference's `deep_features`)
  then one Linear (`dense`).

Quirk kept: with `use_bn=False` the reference still creates its batch-norm layers (stem
`first_bn`, `bn1..bn3` in every block) and its published state dict holds them, so they
exist here too but are never applied. That keeps the checkpoint loading key for key and
the parameter count at the reference's (30,819,014 with 150 classes; 66,368 of them in
the unused batch norms).

Module names are ours (`stem`, `stages.<i>.<j>`, `dense`); `ecgfounder_state_dict`
renames the published keys (`first_conv.conv.*`, `stage_list.<i>.block_list.<j>.*`) to
them and refuses a state dict that does not fit, naming the first mismatches. Modules are
created in the reference's order, so builds after the same seed start from equal weights.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ecgcore.errors import EcgcoreError
from ecgcore.models.base import Architecture, ECGClassifier, fresh_linear
from ecgcore.models.input_contract import InputContract

log = logging.getLogger(__name__)

PUBLISHED_CONFIG: dict[str, Any] = {
    "base_filters": 64, "ratio": 1.0, "filter_list": [64, 160, 160, 400, 400, 1024, 1024],
    "m_blocks_list": [2, 2, 2, 3, 3, 4, 4], "kernel_size": 16, "stride": 2, "groups_width": 16,
}
"""The architecture of `12_lead_ECGFounder.pth` (and `1_lead_ECGFounder.pth` with one lead)."""

_DATA_CODE = "https://github.com/PKUDigitalHealth/ECGFounder/blob/04edac7/dataset.py"
INPUT_CONTRACT = InputContract(
    fs=500,
    n_samples=5000,
    leads=("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"),
    filtering=("util.filter_bandpass, applied per lead: a 50 Hz notch (scipy iirnotch, Q=30), "
               "then a 4th-order Butterworth band-pass 0.67-40 Hz, both zero-phase (filtfilt); "
               "then baseline wander removed by subtracting a median filter of "
               "int(0.4 * fs) + 1 = 201 samples"),
    filter_parameters={"notch_hz": 50.0, "notch_q": 30.0, "bandpass_hz": [0.67, 40.0],
                       "butterworth_order": 4, "zero_phase": True, "median_baseline_samples": 201},
    normalisation=("z-score of the whole record after filtering, all leads together: "
                   "(x - mean(x)) / (std(x) + 1e-8) over the (12, 5000) array"),
    source=_DATA_CODE,
    notch_hz=50.0, notch_q=30.0, bandpass=(0.67, 40.0), filter_order=4, filter_design="ba",
    baseline_median_s=0.4, normalize="zscore_all",
)
"""From dataset.py (`LVEF_12lead_*_Dataset.__getitem__`: leads reordered to `new_leads`,
`filter_bandpass(data, 500)`, `z_score_normalization`) and util.py (`filter_bandpass`) at
04edac7; the README asks users to follow dataset.py strictly. (`ptbxl_eval.py` z-scores
without the band-pass; dataset.py is the one the README names.) The band-pass is designed
as (b, a) and run by `filtfilt` there, hence filter_design "ba". The reference reads 500 Hz
records and does not resample (its `resample_unequal` result is discarded); records at
other rates are filtered at their own rate here, then resampled (polyphase)."""

DEMO_INPUT_CONTRACT = replace(
    INPUT_CONTRACT,
    fs=100,
    n_samples=1000,
    filtering=("demo contract: ECGFounder's filters (50 Hz notch Q=30, 4th-order Butterworth "
               "band-pass 0.67-40 Hz, zero-phase; minus a median filter of int(0.4 * fs) + 1 "
               "samples), at the record's own rate, then resampled to 100 Hz (polyphase)"),
    filter_parameters={"notch_hz": 50.0, "notch_q": 30.0, "bandpass_hz": [0.67, 40.0],
                       "butterworth_order": 4, "zero_phase": True, "median_baseline_s": 0.4},
    normalisation=("ECGFounder's: z-score of the whole window, all leads together: "
                   "(x - mean(x)) / (std(x) + 1e-8) over the (12, 1000) array"),
)
"""`net1d_small`'s: ECGFounder's filtering and normalisation at 100 Hz x 1,000 samples (10 s),
so a demo-sized Net1D trains on a 2-core CPU within the foundation quickstart's budget on the
input its full-size model would see, at a fifth of the rate (the filters run at the
record's own rate, before resampling, so the 50 Hz notch stays below Nyquist)."""


def _same_padding(length: int, kernel_size: int, stride: int) -> tuple[int, int]:
    """TensorFlow-style SAME: output ceil(length / stride); the extra sample goes after."""
    out_length = (length + stride - 1) // stride
    total = max(0, (out_length - 1) * stride + kernel_size - length)
    return total // 2, total - total // 2


class SamePadConv1d(nn.Conv1d):
    """Conv1d with SAME zero padding computed from the input length at each call."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        pad = _same_padding(x.shape[-1], self.kernel_size[0], self.stride[0])
        return super().forward(F.pad(x, pad))


class SamePadMaxPool1d(nn.Module):
    """MaxPool1d(k, stride k) after k - 1 zeros of padding, (k - 1) // 2 of them before."""

    def __init__(self, kernel_size: int) -> None:
        super().__init__()
        self.kernel_size = kernel_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        total = self.kernel_size - 1
        return F.max_pool1d(F.pad(x, (total // 2, total - total // 2)), self.kernel_size)


class Net1DStem(nn.Module):
    """SAME conv with stride 2, then Swish."""

    def __init__(self, n_leads: int, channels: int, kernel_size: int) -> None:
        super().__init__()
        self.conv = SamePadConv1d(n_leads, channels, kernel_size, stride=2)
        self.bn = nn.BatchNorm1d(channels)  # unused (use_bn=False), kept for the checkpoint

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.silu(self.conv(x))


class Net1DBlock(nn.Module):
    """One bottleneck block with squeeze-excitation (see the module docstring)."""

    def __init__(self, in_channels: int, out_channels: int, ratio: float, kernel_size: int,
                 stride: int, groups: int, is_first_block: bool) -> None:
        super().__init__()
        if out_channels < in_channels:
            raise ValueError(f"Net1D widths may not shrink (the shortcut zero-pads channels): "
                             f"{in_channels} -> {out_channels}")
        middle = int(out_channels * ratio)
        if groups < 1 or middle % groups:
            raise ValueError(f"a block of {middle} middle channels cannot be cut into {groups} groups")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.stride = stride
        self.is_first_block = is_first_block
        self.bn1 = nn.BatchNorm1d(in_channels)  # unused (use_bn=False), kept for the checkpoint
        self.conv1 = SamePadConv1d(in_channels, middle, 1)
        self.bn2 = nn.BatchNorm1d(middle)  # unused
        self.conv2 = SamePadConv1d(middle, middle, kernel_size, stride=stride, groups=groups)
        self.bn3 = nn.BatchNorm1d(middle)  # unused
        self.conv3 = SamePadConv1d(middle, out_channels, 1)
        self.se_fc1 = nn.Linear(out_channels, out_channels // 2)
        self.se_fc2 = nn.Linear(out_channels // 2, out_channels)
        self.shortcut_pool = SamePadMaxPool1d(stride) if stride > 1 else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x if self.is_first_block else F.silu(x)
        out = self.conv1(out)
        out = self.conv2(F.silu(out))
        out = self.conv3(F.silu(out))
        scale = torch.sigmoid(self.se_fc2(F.silu(self.se_fc1(out.mean(-1)))))
        out = out * scale.unsqueeze(-1)
        identity = x if self.shortcut_pool is None else self.shortcut_pool(x)
        extra = self.out_channels - self.in_channels
        if extra:
            identity = F.pad(identity, (0, 0, extra // 2, extra - extra // 2))
        return out + identity


class Net1D(ECGClassifier):
    """Groups: [stem, stage0 .. stage<n-1>, dense]; any input length of one sample and up.
    `contract`: what the published weights expect of their input."""

    contract: InputContract = INPUT_CONTRACT

    def __init__(self, n_leads: int, n_classes: int, base_filters: int = 64, ratio: float = 1.0,
                 filter_list: Sequence[int] = (64, 160, 160, 400, 400, 1024, 1024),
                 m_blocks_list: Sequence[int] = (2, 2, 2, 3, 3, 4, 4), kernel_size: int = 16,
                 stride: int = 2, groups_width: int = 16) -> None:
        super().__init__()
        if n_leads < 1 or n_classes < 1:
            raise ValueError(f"n_leads and n_classes must be at least 1, got {n_leads}, {n_classes}")
        if len(filter_list) != len(m_blocks_list) or not filter_list:
            raise ValueError(f"filter_list and m_blocks_list need one entry per stage, got "
                             f"{list(filter_list)} and {list(m_blocks_list)}")
        if min(m_blocks_list) < 1 or kernel_size < 1 or stride < 1 or groups_width < 1:
            raise ValueError("m_blocks_list, kernel_size, stride and groups_width must be at least 1")
        self.n_leads = int(n_leads)
        self.stem = Net1DStem(n_leads, base_filters, kernel_size)
        stages = []
        channels = base_filters
        for i, (width, depth) in enumerate(zip(filter_list, m_blocks_list, strict=True)):
            blocks = [Net1DBlock(channels if j == 0 else width, width, ratio, kernel_size,
                                 stride if j == 0 else 1, width // groups_width,
                                 is_first_block=(i == 0 and j == 0))
                      for j in range(depth)]
            stages.append(nn.Sequential(*blocks))
            channels = width
        self.stages = nn.ModuleList(stages)
        self.feature_dim = channels
        self.dense = nn.Linear(channels, n_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The last stage's output, (batch, channels, time)."""
        if x.ndim != 3 or x.shape[1] != self.n_leads:
            raise ValueError(f"expected input (batch, {self.n_leads} leads, samples), got shape {tuple(x.shape)}")
        out = self.stem(x)
        for stage in self.stages:
            out = stage(out)
        return out

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The mean over time of the last stage: the reference's `deep_features`."""
        return self.features(x).mean(-1)

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """The last stage's time steps as tokens, (batch, time, channels): what the ECG
        foundation-model benchmark's attention-pooling head attends over."""
        return self.features(x).transpose(1, 2)

    @property
    def head(self) -> nn.Module:
        return self.dense

    def reset_head(self, n_classes: int) -> None:
        """A fresh Linear (PyTorch's default init, as the reference's fine-tuning code makes)."""
        self.dense = fresh_linear(self.dense, n_classes)

    def layer_groups(self) -> list[nn.Module]:
        return [self.stem, *self.stages, self.dense]

    def cam_layer(self) -> nn.Module:
        return self.stages[-1]


def build(n_leads: int, n_classes: int, n_samples: int, **config: Any) -> Net1D:
    # n_samples is accepted for the common signature: the time mean makes any length work.
    return Net1D(n_leads, n_classes, **config)


SMALL_CONFIG: dict[str, Any] = {
    "base_filters": 16, "ratio": 1.0, "filter_list": [16, 32, 64, 128], "m_blocks_list": [1, 1, 1, 1],
    "kernel_size": 16, "stride": 2, "groups_width": 16,
}
"""`net1d_small`: the Net1D blocks at demo size (4 stages of one block, 16-128 channels)."""


def build_small(n_leads: int, n_classes: int, n_samples: int, **config: Any) -> Net1D:
    """A demo-sized Net1D; its `config` records the whole architecture, so a checkpoint of it
    says what it holds."""
    config = {**SMALL_CONFIG, **config}
    model = Net1D(n_leads, n_classes, **config)
    model.config = config
    return model


ARCHITECTURES: tuple[Architecture, ...] = (
    Architecture("ecgfounder", "ECGFounder's Net1D (Li et al. 2025): RegNet-style 1-D CNN with "
                 "squeeze-excitation, 30.8 M parameters; loads 12_lead_ECGFounder.pth", build,
                 contract=INPUT_CONTRACT),
    Architecture("net1d_small", "Net1D (ECGFounder's blocks) at demo size: 4 stages of one block, "
                 "16-128 channels, about 0.1 M parameters; ECGFounder's filtering and normalisation "
                 "at 100 Hz x 10 s, for demos on CPU", build_small, contract=DEMO_INPUT_CONTRACT),
)


# ---------------------------------------------------------------- checkpoint conversion

# (reference pattern, ours) and back; the first matching rule renames a key.
_TO_OURS = [
    (r"^first_conv\.conv\.", "stem.conv."),
    (r"^first_bn\.", "stem.bn."),
    (r"^stage_list\.(\d+)\.block_list\.(\d+)\.(conv[123])\.conv\.", r"stages.\1.\2.\3."),
    (r"^stage_list\.(\d+)\.block_list\.(\d+)\.", r"stages.\1.\2."),
]
_TO_REFERENCE = [
    (r"^stem\.conv\.", "first_conv.conv."),
    (r"^stem\.bn\.", "first_bn."),
    (r"^stages\.(\d+)\.(\d+)\.(conv[123])\.", r"stage_list.\1.block_list.\2.\3.conv."),
    (r"^stages\.(\d+)\.(\d+)\.", r"stage_list.\1.block_list.\2."),
]
_SHOWN = 5  # mismatches named per kind in an error


def _rename(key: str, rules: Sequence[tuple[str, str]]) -> str:
    for pattern, replacement in rules:
        renamed, n = re.subn(pattern, replacement, key)
        if n:
            return renamed
    return key


def reference_key(our_key: str) -> str:
    """Our state-dict key -> the published checkpoint's."""
    return _rename(our_key, _TO_REFERENCE)


def _unwrap(checkpoint_or_state: Mapping[str, Any]) -> Mapping[str, Any]:
    inner = checkpoint_or_state.get("state_dict")
    return inner if isinstance(inner, Mapping) else checkpoint_or_state


def _published_config(state: Mapping[str, Any]) -> dict[str, Any]:
    """The published architecture, with the lead and class counts the file's own stem and
    head have (so the 1-lead model and fine-tuned heads load too)."""
    config: dict[str, Any] = {"n_leads": 12, "n_classes": 150, **PUBLISHED_CONFIG}
    stem, head = state.get("first_conv.conv.weight"), state.get("dense.weight")
    if isinstance(stem, torch.Tensor) and stem.ndim == 3:
        config["n_leads"] = int(stem.shape[1])
    if isinstance(head, torch.Tensor) and head.ndim == 2:
        config["n_classes"] = int(head.shape[0])
    return config


def _listed(keys: Sequence[str]) -> str:
    more = f" (+{len(keys) - _SHOWN} more)" if len(keys) > _SHOWN else ""
    return ", ".join(keys[:_SHOWN]) + more


def ecgfounder_state_dict(checkpoint_or_state: Mapping[str, Any],
                          config: Mapping[str, Any] | None = None) -> dict[str, torch.Tensor]:
    """A published ECGFounder state dict (or the file's `{"state_dict": ...}`) -> ours,
    floating tensors as float32.

    `config` holds `Net1D`'s arguments (n_leads, n_classes, base_filters, ...); by default
    the published architecture with the file's lead and class counts. The file must hold
    exactly that model's keys and shapes: otherwise an `EcgcoreError` names the first
    missing and unexpected keys and shape mismatches, in the file's naming.
    """
    state = _unwrap(checkpoint_or_state)
    config = dict(config) if config is not None else _published_config(state)
    not_tensors = [key for key, value in state.items() if not isinstance(value, torch.Tensor)]
    if not_tensors:
        raise EcgcoreError(f"not an ECGFounder state dict: entries that are not tensors: {_listed(not_tensors)}")
    with torch.device("meta"):
        expected = {reference_key(key): tuple(value.shape)
                    for key, value in Net1D(**config).state_dict().items()}
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected]
    shapes = [f"{key} {tuple(state[key].shape)} in the file, {expected[key]} in the model"
              for key in expected if key in state and tuple(state[key].shape) != expected[key]]
    if missing or unexpected or shapes:
        problems = [f"{label}: {_listed(found)}" for label, found in
                    (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", shapes))
                    if found]
        raise EcgcoreError(f"the state dict does not fit ECGFounder's Net1D "
                           f"(n_leads={config.get('n_leads')}, n_classes={config.get('n_classes')}): "
                           + "; ".join(problems))
    log.debug("converted an ECGFounder state dict of %d tensors", len(state))
    return {_rename(key, _TO_OURS): value.float() if value.is_floating_point() else value
            for key, value in state.items()}
