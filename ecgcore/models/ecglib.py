"""ecglib's 1-D ResNets and DenseNet (Avetisyan et al. 2024, ispras/EcgLib), rebuilt to their shape.

Avetisyan et al., "Deep neural networks generalization and fine-tuning for 12-lead ECG
classification" (BSPC 2024) release their models through ecglib. These classes follow
ecglib 1.1.1 (`ecglib/models/architectures/resnet1d.py`, `densenet1d.py`) with the
defaults of its `ResNetConfig` / `DenseNetConfig`; they are written here without fastai,
which ecglib needs for two small layers:

- `ecglib_resnet1d18/50/101`: a stem Conv1d(k, stride 2, padding (k-1)//2) + BN + ReLU +
  MaxPool(3, 2, 1), then four stages of ecglib's `ResidualBlock1d` -- a bottleneck (1x1,
  k, 1x1 expanding by 4; no conv bias) even for "18", whose stage depths are [1, 2, 2, 1]
  ([3, 4, 6, 3] for 50, [3, 4, 23, 3] for 101) -- with widths 64/128/256/512 (output 2048
  channels). Every stage, the first too, starts with stride 2, so the stem and stages
  shorten the signal 64-fold (5,000 samples -> 79). Kernel 3 ("same" padding) everywhere.
  Quirk kept: ecglib passes `kernel_size` to the stem and to the first block of each stage
  only; the other blocks keep kernel 3. The head is fastai's AdaptiveConcatPool1d (max,
  then mean, over time: 4096 features) and one `LinBnDrop`: BatchNorm1d(4096) (fastai
  starts its bias at 1e-3) -> Dropout(0.5) -> Linear(4096, C) without bias (fastai drops
  the bias when BN precedes). Other weights keep PyTorch's default initialisation.
- `ecglib_densenet1d121`: a stem Conv1d(k=7, stride 2, padding 3, with bias) + BN + ReLU +
  MaxPool(3, 2, 1); dense blocks of (6, 12, 24, 16) layers, each BN-ReLU-Conv1x1 (4 x 32
  channels) then BN-ReLU-Conv(k=3, padding 1) giving 32 new channels (growth 32); between
  blocks a transition BN-ReLU-Conv1x1 halving the channels and AvgPool(2). All convolutions
  have biases. The head: BN + ReLU + global average pooling + Linear(1024, C). Initialised
  as ecglib's `reinit=True`: Kaiming-normal conv weights, BN at 1/0, Linear bias 0.

With 12 leads and one class (the released binary models) these have 6,837,888
(resnet1d18), 15,968,384 (resnet1d50) and 5,535,681 (densenet1d121) parameters, the counts
of ecglib's own classes (see tests/test_models_ecglib.py).

Submodule names are ecglib's (`stem`, `backbone.hidden_block<i>.ResidualBlock1d_layer<j>`,
`denseblock<i>.denselayer<j>`, ...) except where the transfer interface needs a module of
its own: the ResNet head is `classifier` (ecgcore reserves `head` for the property), and
each DenseNet layer group is a `backbone.stage<i>` holding ecglib's dense block with the
transition (or, last, `final_bn`) after it. `ecglib_state_dict` renames an ecglib state
dict to these keys. Modules are created in ecglib's order, so a build after
`torch.manual_seed(s)` starts from the same weights as ecglib's model built after it.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from ecgcore.models.base import Architecture, ECGClassifier, fresh_linear
from ecgcore.models.convert import rename_state_dict
from ecgcore.models.heads import ConcatPool1d

def _check_input(x: torch.Tensor, n_leads: int) -> None:
    if x.ndim != 3 or x.shape[1] != n_leads:
        raise ValueError(f"expected input (batch, {n_leads} leads, samples), got shape {tuple(x.shape)}")


# ---------------------------------------------------------------- resnet1d


class ResidualBlock1d(nn.Module):
    """ecglib's block: 1x1 reduce, kernel-k (carries the stride), 1x1 expand by 4, each
    with BN; added to the input, or to its 1x1-projected (strided) version."""

    expansion = 4

    def __init__(self, in_channels: int, planes: int, stride: int = 1, kernel_size: int = 3,
                 downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(in_channels, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm1d(planes)
        self.conv2 = nn.Conv1d(planes, planes, kernel_size, stride=stride,
                               padding=(kernel_size - 1) // 2, bias=False)
        self.bn2 = nn.BatchNorm1d(planes)
        self.conv3 = nn.Conv1d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm1d(planes * self.expansion)
        self.relu = nn.ReLU()
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


def _resnet_stage(in_channels: int, planes: int, depth: int, stride: int,
                  kernel_size: int) -> tuple[nn.Sequential, int]:
    """One `hidden_block`: its first block carries the stride, `kernel_size` and the
    projection shortcut; the rest are kernel-3 identity blocks (as ecglib builds them)."""
    out_channels = planes * ResidualBlock1d.expansion
    downsample = None
    if stride != 1 or in_channels != out_channels:
        downsample = nn.Sequential(OrderedDict([
            ("ResidualBlock1d_downsample", nn.Conv1d(in_channels, out_channels, 1,
                                                     stride=stride, bias=False)),
            ("ResidualBlock1d_normalize", nn.BatchNorm1d(out_channels)),
        ]))
    blocks = [("ResidualBlock1d_layer0",
               ResidualBlock1d(in_channels, planes, stride, kernel_size, downsample))]
    blocks += [(f"ResidualBlock1d_layer{j}", ResidualBlock1d(out_channels, planes))
               for j in range(1, depth)]
    return nn.Sequential(OrderedDict(blocks)), out_channels


def lin_bn_drop(in_features: int, n_classes: int, dropout: float) -> nn.Sequential:
    """fastai's `LinBnDrop(n_in, n_out, bn=True, p)`: BN (bias starting at 1e-3) ->
    Dropout (left out when p is 0, as fastai does) -> Linear without bias."""
    if n_classes < 1:
        raise ValueError(f"a head needs at least one class, got n_classes={n_classes}")
    bn = nn.BatchNorm1d(in_features)
    nn.init.ones_(bn.weight)
    nn.init.constant_(bn.bias, 1e-3)
    layers: list[nn.Module] = [bn]
    if dropout != 0:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(in_features, n_classes, bias=False))
    return nn.Sequential(*layers)


class EcglibResNet1d(ECGClassifier):
    """Groups: [stem, hidden_block0..3, head]; any input of 64 samples and up."""

    def __init__(self, depths: Sequence[int], n_leads: int, n_classes: int, kernel_size: int = 3,
                 inplanes: int = 64, head_dropout: float = 0.5) -> None:
        super().__init__()
        if n_leads < 1:
            raise ValueError(f"n_leads must be at least 1, got {n_leads}")
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd (\"same\" padding), got {kernel_size}")
        if not 0 <= head_dropout < 1:
            raise ValueError(f"head_dropout must be in [0, 1), got {head_dropout}")
        self.n_leads = int(n_leads)
        self.stem = nn.Sequential(
            nn.Conv1d(n_leads, inplanes, kernel_size, stride=2, padding=(kernel_size - 1) // 2,
                      bias=False),
            nn.BatchNorm1d(inplanes),
            nn.ReLU(),
            nn.MaxPool1d(3, stride=2, padding=1),
        )
        channels = inplanes
        stages = []
        for i, depth in enumerate(depths):
            stage, channels = _resnet_stage(channels, inplanes * 2 ** i, int(depth), 2, kernel_size)
            stages.append((f"hidden_block{i}", stage))
        self.backbone = nn.Sequential(OrderedDict(stages))
        self.pool = ConcatPool1d()  # [max, mean], fastai's AdaptiveConcatPool1d order
        self.feature_dim = 2 * channels
        self.classifier = lin_bn_drop(self.feature_dim, n_classes, head_dropout)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The last stage's output, (batch, 2048, time)."""
        _check_input(x, self.n_leads)
        return self.backbone(self.stem(x))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.features(x))

    @property
    def head(self) -> nn.Module:
        return self.classifier

    def reset_head(self, n_classes: int) -> None:
        """A fresh bias-free Linear (PyTorch's default init, as ecglib's); BN and dropout stay."""
        old = self.classifier[-1]
        assert isinstance(old, nn.Linear)
        self.classifier[-1] = fresh_linear(old, n_classes, bias=False)

    def layer_groups(self) -> list[nn.Module]:
        return [self.stem, *self.backbone, self.classifier]

    def cam_layer(self) -> nn.Module:
        return self.backbone[-1]


def _resnet_builder(depths: tuple[int, ...]):
    def build(n_leads: int, n_classes: int, n_samples: int, **config) -> EcglibResNet1d:
        # n_samples is accepted for the common signature; global pooling makes it irrelevant.
        return EcglibResNet1d(depths, n_leads, n_classes, **config)
    return build


# ---------------------------------------------------------------- densenet1d


class DenseLayer(nn.Module):
    """BN-ReLU-Conv1x1 to `bottleneck_size * growth_rate` channels, then BN-ReLU-Conv(k)
    to `growth_rate` new channels (attribute names are ecglib's)."""

    def __init__(self, in_channels: int, growth_rate: int, bottleneck_size: int,
                 kernel_size: int) -> None:
        super().__init__()
        width = growth_rate * bottleneck_size
        self.bn2 = nn.BatchNorm1d(in_channels)
        self.act2 = nn.ReLU()
        self.conv2 = nn.Conv1d(in_channels, width, 1)
        self.bn1 = nn.BatchNorm1d(width)
        self.act1 = nn.ReLU()
        self.conv1 = nn.Conv1d(width, growth_rate, kernel_size, padding=kernel_size // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv2(self.act2(self.bn2(x)))
        return self.conv1(self.act1(self.bn1(x)))


class DenseBlock(nn.ModuleDict):
    """Each layer sees the concatenation of the block's input and all earlier outputs."""

    def __init__(self, n_layers: int, in_channels: int, growth_rate: int, bottleneck_size: int,
                 kernel_size: int) -> None:
        super().__init__({f"denselayer{i}": DenseLayer(in_channels + i * growth_rate, growth_rate,
                                                       bottleneck_size, kernel_size)
                          for i in range(n_layers)})

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        outputs = [x]
        for layer in self.values():
            outputs.append(layer(x))
            x = torch.cat(outputs, dim=1)
        return x


class TransitionBlock(nn.Module):
    """BN-ReLU-Conv1x1 (halving the channels) then AvgPool(2)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm1d(in_channels)
        self.act = nn.ReLU()
        self.conv = nn.Conv1d(in_channels, out_channels, 1)
        self.pool = nn.AvgPool1d(2, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.conv(self.act(self.bn(x))))


class EcglibDenseNet1d(ECGClassifier):
    """Groups: [stem, stage0 .. stage3, head (the Linear)]: a stage is a dense block with
    the transition after it, the last one with the final BN."""

    def __init__(self, block_config: Sequence[int], n_leads: int, n_classes: int,
                 growth_rate: int = 32, num_init_features: int = 64, bottleneck_size: int = 4,
                 kernel_size: int = 3) -> None:
        super().__init__()
        if n_leads < 1:
            raise ValueError(f"n_leads must be at least 1, got {n_leads}")
        if n_classes < 1:
            raise ValueError(f"a head needs at least one class, got n_classes={n_classes}")
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd (\"same\" padding), got {kernel_size}")
        if bottleneck_size < 1:
            raise ValueError(f"bottleneck_size must be at least 1, got {bottleneck_size}")
        self.n_leads = int(n_leads)
        self.stem = nn.Sequential(
            nn.Conv1d(n_leads, num_init_features, 7, stride=2, padding=3),
            nn.BatchNorm1d(num_init_features),
            nn.ReLU(),
            nn.MaxPool1d(3, stride=2, padding=1),
        )
        # Built in ecglib's order (so a seeded build draws the same initial weights); each
        # stage is one layer group, which ecglib's flat `backbone` is not.
        self.backbone = nn.Sequential()
        channels = num_init_features
        for i, n_layers in enumerate(block_config):
            stage = nn.Sequential()
            stage.add_module(f"denseblock{i}", DenseBlock(
                int(n_layers), channels, growth_rate, bottleneck_size, kernel_size))
            channels += int(n_layers) * growth_rate
            if i != len(block_config) - 1:
                stage.add_module(f"transition{i}", TransitionBlock(channels, channels // 2))
                channels //= 2
            else:
                stage.add_module("final_bn", nn.BatchNorm1d(channels))
            self.backbone.add_module(f"stage{i}", stage)
        self.final_act = nn.ReLU()
        self.final_pool = nn.AdaptiveAvgPool1d(1)
        self.classifier = nn.Linear(channels, n_classes)
        self.feature_dim = channels
        for m in self.modules():  # ecglib's reinit=True
            if isinstance(m, nn.Conv1d):
                nn.init.kaiming_normal_(m.weight)
            elif isinstance(m, nn.BatchNorm1d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """After the last dense block and the final BN: (batch, 1024, time)."""
        _check_input(x, self.n_leads)
        return self.backbone(self.stem(x))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """ReLU + global average pooling of `features`: (batch, 1024); the Linear is the head."""
        return self.final_pool(self.final_act(self.features(x))).flatten(1)

    @property
    def head(self) -> nn.Module:
        return self.classifier

    def reset_head(self, n_classes: int) -> None:
        """A fresh Linear (default weight init, zero bias, as ecglib's reinit)."""
        fresh = fresh_linear(self.classifier, n_classes)
        nn.init.zeros_(fresh.bias)
        self.classifier = fresh

    def layer_groups(self) -> list[nn.Module]:
        return [self.stem, *self.backbone, self.classifier]

    def cam_layer(self) -> nn.Module:
        """The last dense block (its output is (batch, channels, time))."""
        return self.backbone[-1][0]


def _densenet_builder(block_config: tuple[int, ...]):
    def build(n_leads: int, n_classes: int, n_samples: int, **config) -> EcglibDenseNet1d:
        return EcglibDenseNet1d(block_config, n_leads, n_classes, **config)
    return build


# ---------------------------------------------------------------- loading ecglib weights

_DENSE_STAGE = re.compile(r"backbone\.(denseblock|transition)(\d+)\.")


def ecglib_state_dict(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a state dict of ecglib's `ResNet1d` / `DenseNet1d` to these classes' keys.

    ResNet: only the head moves (`head.lin_bn_drop.` -> `classifier.`). DenseNet: ecglib's
    flat `backbone.denseblock<i>` / `transition<i>` go into `backbone.stage<i>`, and
    `final_bn` into the last stage.
    """
    blocks = [int(m.group(2)) for key in state
              if (m := _DENSE_STAGE.match(key)) and m.group(1) == "denseblock"]
    prefixes = {"head.lin_bn_drop.": "classifier."}
    if blocks:
        prefixes["final_bn."] = f"backbone.stage{max(blocks)}.final_bn."
    return {_dense_key(key): value for key, value in rename_state_dict(state, prefixes).items()}


def _dense_key(key: str) -> str:
    match = _DENSE_STAGE.match(key)
    if match is None:
        return key
    kind, index = match.groups()
    return f"backbone.stage{index}.{kind}{index}." + key[match.end():]


ARCHITECTURES: tuple[Architecture, ...] = (
    Architecture("ecglib_resnet1d18", "ecglib (Avetisyan et al. 2024) resnet1d18: bottleneck [1,2,2,1], "
                 "kernel 3, concat pooling, LinBnDrop head (dropout 0.5); 6.8M params at 12 leads",
                 _resnet_builder((1, 2, 2, 1))),
    Architecture("ecglib_resnet1d50", "ecglib (Avetisyan et al. 2024) resnet1d50: bottleneck [3,4,6,3], "
                 "kernel 3, concat pooling, LinBnDrop head (dropout 0.5); 16.0M params at 12 leads",
                 _resnet_builder((3, 4, 6, 3))),
    Architecture("ecglib_resnet1d101", "ecglib (Avetisyan et al. 2024) resnet1d101: bottleneck [3,4,23,3], "
                 "kernel 3, concat pooling, LinBnDrop head (dropout 0.5)", _resnet_builder((3, 4, 23, 3))),
    Architecture("ecglib_densenet1d121", "ecglib (Avetisyan et al. 2024) densenet1d121: growth 32, blocks "
                 "(6,12,24,16), 64 initial features, kernel 3; 5.5M params at 12 leads",
                 _densenet_builder((6, 12, 24, 16))),
)
