"""Nguyen & Do's 1-D ResNets (resnet1d18/34/50/101), rebuilt to their published shape.

"Transfer learning in ECG diagnosis: Is it effective?" (PLOS ONE 2025) uses torchvision's
ResNet turned 1-D: stem Conv1d(k=7, s=2, p=3) + BN + ReLU + MaxPool(k=3, s=2, p=1), four
stages of BasicBlocks (18/34) or Bottlenecks (50/101, expansion 4) with kernel-3
convolutions and widths 64/128/256/512, Kaiming-normal (fan_out) convolutions, global
average pooling, then fc1 Linear(512*expansion -> 512) -> ReLU -> fc2 Linear(512 -> C).
Their fine-tuning replaces only fc2 and keeps the pretrained 512-d fc1, so here the head is
fc1 + ReLU + fc2 and `reset_head` replaces fc2 alone. Parameter counts with 12 leads and
C = 5 match the paper's code: 4,114,053 (18), 17,010,821 (50), 29,318,277 (101).

Submodule names keep theirs (`stem.conv1`, `stem.bn1`, `layer1..4`, `head.fc1`, `head.fc2`)
so `nguyen_do_state_dict` maps one of their checkpoints onto ours by a prefix rename.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping

import torch
from torch import nn

from ecgcore.models.base import Architecture, ECGClassifier
from ecgcore.models.convert import rename_state_dict

EMBEDDING_SIZE = 512  # fc1's width in Nguyen & Do's code


class BasicBlock(nn.Module):
    """Two kernel-3 convolutions with an identity (or 1x1-projected) shortcut."""

    expansion = 1

    def __init__(self, in_channels: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(in_channels, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm1d(planes)
        self.conv2 = nn.Conv1d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm1d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _shortcut(in_channels, planes * self.expansion, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 reduce, kernel-3 (carries the stride, torchvision v1.5), 1x1 expand by 4."""

    expansion = 4

    def __init__(self, in_channels: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        out_channels = planes * self.expansion
        self.conv1 = nn.Conv1d(in_channels, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm1d(planes)
        self.conv2 = nn.Conv1d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm1d(planes)
        self.conv3 = nn.Conv1d(planes, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm1d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _shortcut(in_channels, out_channels, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


def _shortcut(in_channels: int, out_channels: int, stride: int) -> nn.Module | None:
    """torchvision's projection: 1x1 conv + BN when the shape changes, identity otherwise."""
    if stride == 1 and in_channels == out_channels:
        return None
    return nn.Sequential(nn.Conv1d(in_channels, out_channels, 1, stride=stride, bias=False),
                         nn.BatchNorm1d(out_channels))


Block = type[BasicBlock] | type[Bottleneck]


class ResNet1dND(ECGClassifier):
    """Input (B, leads, samples) -> logits (B, C); any input length works (global pooling)."""

    def __init__(self, block: Block, depths: tuple[int, int, int, int], n_leads: int,
                 n_classes: int) -> None:
        super().__init__()
        self.stem = nn.Sequential(OrderedDict(
            conv1=nn.Conv1d(n_leads, 64, 7, stride=2, padding=3, bias=False),
            bn1=nn.BatchNorm1d(64),
            relu=nn.ReLU(inplace=True),
            maxpool=nn.MaxPool1d(3, stride=2, padding=1),
        ))
        channels = 64
        stages = []
        for i, (planes, depth) in enumerate(zip((64, 128, 256, 512), depths)):
            blocks = []
            for j in range(depth):
                stride = 2 if (i > 0 and j == 0) else 1
                blocks.append(block(channels, planes, stride))
                channels = planes * block.expansion
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.pool = nn.AdaptiveAvgPool1d(1)
        self.classifier = nn.Sequential(OrderedDict(
            fc1=nn.Linear(channels, EMBEDDING_SIZE),
            relu=nn.ReLU(),
            fc2=nn.Linear(EMBEDDING_SIZE, n_classes),
        ))
        for module in self.modules():
            if isinstance(module, nn.Conv1d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm1d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Globally pooled layer4 features, (B, 512 * expansion); fc1 belongs to the head."""
        x = self.stem(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.pool(x), 1)

    @property
    def head(self) -> nn.Module:
        return self.classifier

    def reset_head(self, n_classes: int) -> None:
        """New fc2 only, as Nguyen & Do fine-tune: the pretrained fc1 (512-d) is kept."""
        self.classifier.fc2 = nn.Linear(EMBEDDING_SIZE, n_classes)

    def layer_groups(self) -> list[nn.Module]:
        return [self.stem, self.layer1, self.layer2, self.layer3, self.layer4, self.classifier]

    def cam_layer(self) -> nn.Module:
        """layer4, just before global average pooling."""
        return self.layer4


# Their attribute names -> ours; every other key (layer1..4) is already the same.
_ND_PREFIXES = {"conv1.": "stem.conv1.", "bn1.": "stem.bn1.",
                "fc1.": "classifier.fc1.", "fc2.": "classifier.fc2."}


def nguyen_do_state_dict(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a state dict saved by Nguyen & Do's ResNet1d classes to this module's keys.

    Their tensors are float64 (their code runs in double); they are cast to float32 here.
    """
    return rename_state_dict(state, _ND_PREFIXES)


def _builder(block: Block, depths: tuple[int, int, int, int]):
    def build(n_leads: int, n_classes: int, n_samples: int) -> ResNet1dND:
        # n_samples is accepted for the common signature; global pooling makes it irrelevant.
        return ResNet1dND(block, depths, n_leads, n_classes)
    return build


ARCHITECTURES: tuple[Architecture, ...] = (
    Architecture("resnet1d18", "Nguyen & Do ResNet-18 1-D (BasicBlock [2,2,2,2]), fc1 512 -> fc2; "
                 "~4.1M params", _builder(BasicBlock, (2, 2, 2, 2))),
    Architecture("resnet1d34", "Nguyen & Do style ResNet-34 1-D (BasicBlock [3,4,6,3]), fc1 512 -> fc2",
                 _builder(BasicBlock, (3, 4, 6, 3))),
    Architecture("resnet1d50", "Nguyen & Do ResNet-50 1-D (Bottleneck [3,4,6,3]), fc1 512 -> fc2; "
                 "~17.0M params", _builder(Bottleneck, (3, 4, 6, 3))),
    Architecture("resnet1d101", "Nguyen & Do ResNet-101 1-D (Bottleneck [3,4,23,3]), fc1 512 -> fc2; "
                 "~29.3M params", _builder(Bottleneck, (3, 4, 23, 3))),
)
