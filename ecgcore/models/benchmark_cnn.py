"""The PTB-XL benchmark's convolutional models (Strodthoff et al., IEEE JBHI 2021), in plain
PyTorch, with the sizes of helme/ecg_ptbxl_benchmarking:

- `xresnet1d50/101`: the "bag of tricks" ResNet (He et al. 2019) in 1-D: a three-conv stem
  (32, 32, 64 channels, kernel 5, the first with stride 2) and a max-pool, then bottleneck
  blocks of kernel 5 (stage depths [3,4,6,3] / [3,4,23,3]); downsampling shortcuts
  average-pool before their 1x1 conv; the last batch norm of every block starts at zero so
  each block starts as the identity. The benchmark keeps every stage's bottleneck at 64
  channels (output 256), unlike the image xresnet's 64/128/256/512.
- `inception1d`: InceptionTime (Fawaz et al. 2020): per block a 1x1 bottleneck to 32
  channels, three convolutions of kernel 39/19/9 and a max-pool branch, 32 filters each
  (128 channels); 6 blocks with a residual shortcut around every 3.
- `resnet1d_wang`: Wang et al. (2017)'s time-series ResNet as the benchmark configures it:
  a kernel-7 stem of 128 channels (stride 1, no pooling), then three basic blocks of
  kernels 5 and 3 at 128 channels, the second and third with stride 2.
- `fcn_wang`: Wang et al. (2017)'s fully convolutional network: three conv-BN-ReLU blocks
  of 128/256/128 channels and kernels 8/5/3.

All end in the benchmark's concat-pool head (see `heads.py`) and accept any input length
of a few hundred samples and up; `n_samples` does not change the architecture.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ecgcore.models.base import Architecture
from ecgcore.models.heads import ConcatPool1d, PooledClassifier, kaiming_init


def conv_bn(c_in: int, c_out: int, kernel: int, stride: int = 1, relu: bool = True) -> nn.Sequential:
    """Conv (no bias, "same"-style padding (k-1)//2) -> BN (-> ReLU)."""
    layers: list[nn.Module] = [
        nn.Conv1d(c_in, c_out, kernel, stride=stride, padding=(kernel - 1) // 2, bias=False),
        nn.BatchNorm1d(c_out),
    ]
    if relu:
        layers.append(nn.ReLU())
    return nn.Sequential(*layers)


# ---------------------------------------------------------------- xresnet1d


class XBottleneck(nn.Module):
    """1x1 -> kxk (carries the stride) -> 1x1, added to a shortcut that average-pools when
    the block downsamples and projects with a 1x1 conv when the width changes."""

    def __init__(self, c_in: int, width: int, c_out: int, stride: int, kernel: int) -> None:
        super().__init__()
        self.convs = nn.Sequential(
            conv_bn(c_in, width, 1),
            conv_bn(width, width, kernel, stride=stride),
            conv_bn(width, c_out, 1, relu=False),
        )
        shortcut: list[nn.Module] = []
        if stride != 1:
            shortcut.append(nn.AvgPool1d(stride, ceil_mode=True))
        if c_in != c_out:
            shortcut.append(conv_bn(c_in, c_out, 1, relu=False))
        self.shortcut = nn.Sequential(*shortcut)
        self.act = nn.ReLU()

    @property
    def last_bn(self) -> nn.BatchNorm1d:
        bn = self.convs[-1][1]
        assert isinstance(bn, nn.BatchNorm1d)
        return bn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.convs(x) + self.shortcut(x))


class XResNet1d(PooledClassifier):
    """Groups: [stem, stage1, stage2, stage3, stage4, head]."""

    def __init__(self, n_leads: int, n_classes: int, depths: Sequence[int],
                 widths: Sequence[int] = (64, 64, 64, 64), expansion: int = 4,
                 stem_widths: Sequence[int] = (32, 32, 64), kernel_size: int = 5,
                 stem_kernel_size: int = 5, zero_init_residual: bool = True,
                 head_hidden: Sequence[int] = (128,), head_dropout: float = 0.5) -> None:
        if len(depths) != len(widths):
            raise ValueError(f"xresnet1d: {len(depths)} stage depths but {len(widths)} widths")
        chans = [n_leads, *stem_widths]
        stem = nn.Sequential(
            *(conv_bn(chans[i], chans[i + 1], stem_kernel_size, stride=2 if i == 0 else 1)
              for i in range(len(stem_widths))),
            nn.MaxPool1d(kernel_size=3, stride=2, padding=1),
        )
        stages: list[nn.Module] = [stem]
        c_in = chans[-1]
        for i, (depth, width) in enumerate(zip(depths, widths)):
            blocks = []
            for j in range(depth):
                stride = 2 if (i > 0 and j == 0) else 1
                blocks.append(XBottleneck(c_in, width, width * expansion, stride, kernel_size))
                c_in = width * expansion
            stages.append(nn.Sequential(*blocks))
        super().__init__(n_leads, n_classes, stages, ConcatPool1d(), 2 * c_in,
                         head_hidden, head_dropout)
        kaiming_init(self)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, XBottleneck):
                    nn.init.zeros_(m.last_bn.weight)


def build_xresnet1d50(n_leads: int, n_classes: int, n_samples: int, **config) -> XResNet1d:
    return XResNet1d(n_leads, n_classes, depths=(3, 4, 6, 3), **config)


def build_xresnet1d101(n_leads: int, n_classes: int, n_samples: int, **config) -> XResNet1d:
    return XResNet1d(n_leads, n_classes, depths=(3, 4, 23, 3), **config)


# ---------------------------------------------------------------- inception1d


def inception_kernels(kernel_size: int) -> list[int]:
    """The benchmark's rule: k, k//2, k//4, each made odd by subtracting one (40 -> 39/19/9)."""
    return [k - 1 if k % 2 == 0 else k for k in (kernel_size, kernel_size // 2, kernel_size // 4)]


class InceptionBlock1d(nn.Module):
    """Bottleneck, parallel convolutions of several kernels plus a max-pool branch,
    concatenated, then BN + ReLU."""

    def __init__(self, c_in: int, n_filters: int, kernels: Sequence[int], bottleneck: int) -> None:
        super().__init__()
        self.bottleneck: nn.Module = (nn.Conv1d(c_in, bottleneck, 1, bias=False)
                                      if bottleneck > 0 else nn.Identity())
        c_mid = bottleneck if bottleneck > 0 else c_in
        self.convs = nn.ModuleList(
            nn.Conv1d(c_mid, n_filters, k, padding=(k - 1) // 2, bias=False) for k in kernels)
        self.pool_branch = nn.Sequential(nn.MaxPool1d(3, stride=1, padding=1),
                                         nn.Conv1d(c_in, n_filters, 1, bias=False))
        self.bn_relu = nn.Sequential(nn.BatchNorm1d((len(kernels) + 1) * n_filters), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        squeezed = self.bottleneck(x)
        branches = [conv(squeezed) for conv in self.convs] + [self.pool_branch(x)]
        return self.bn_relu(torch.cat(branches, dim=1))


class InceptionStage(nn.Module):
    """Three inception blocks with one residual shortcut (1x1 conv + BN) around them."""

    def __init__(self, c_in: int, n_filters: int, kernels: Sequence[int], bottleneck: int,
                 n_blocks: int, residual: bool) -> None:
        super().__init__()
        c_out = (len(kernels) + 1) * n_filters
        self.blocks = nn.Sequential(*(
            InceptionBlock1d(c_in if i == 0 else c_out, n_filters, kernels, bottleneck)
            for i in range(n_blocks)))
        self.shortcut = (nn.Sequential(nn.Conv1d(c_in, c_out, 1, bias=False), nn.BatchNorm1d(c_out))
                         if residual else None)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.blocks(x)
        if self.shortcut is None:
            return out
        return self.act(out + self.shortcut(x))


class Inception1d(PooledClassifier):
    """Groups: one per residual stage of 3 blocks (two at depth 6), then the head."""

    def __init__(self, n_leads: int, n_classes: int, kernel_size: int = 40, depth: int = 6,
                 bottleneck: int = 32, n_filters: int = 32, use_residual: bool = True,
                 head_hidden: Sequence[int] = (128,), head_dropout: float = 0.5) -> None:
        if depth < 3 or depth % 3 != 0:
            raise ValueError(f"inception1d: depth must be a positive multiple of 3, got {depth}")
        kernels = inception_kernels(kernel_size)
        c_out = (len(kernels) + 1) * n_filters
        stages = [InceptionStage(n_leads if i == 0 else c_out, n_filters, kernels, bottleneck,
                                 3, use_residual) for i in range(depth // 3)]
        super().__init__(n_leads, n_classes, stages, ConcatPool1d(), 2 * c_out,
                         head_hidden, head_dropout)
        kaiming_init(self)


def build_inception1d(n_leads: int, n_classes: int, n_samples: int, **config) -> Inception1d:
    return Inception1d(n_leads, n_classes, **config)


# ---------------------------------------------------------------- resnet1d_wang


class BasicBlock1d(nn.Module):
    """Two convolutions (kernels k1, k2; the first carries the stride) plus a shortcut that
    is a strided 1x1 conv + BN when the shape changes."""

    def __init__(self, c_in: int, c_out: int, stride: int, kernels: Sequence[int]) -> None:
        super().__init__()
        k1, k2 = kernels
        self.convs = nn.Sequential(conv_bn(c_in, c_out, k1, stride=stride),
                                   conv_bn(c_out, c_out, k2, relu=False))
        self.shortcut: nn.Module = (
            nn.Sequential(nn.Conv1d(c_in, c_out, 1, stride=stride, bias=False),
                          nn.BatchNorm1d(c_out))
            if stride != 1 or c_in != c_out else nn.Identity())
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.convs(x) + self.shortcut(x))


class ResNet1dWang(PooledClassifier):
    """Groups: [stem, block1, block2, block3, head]."""

    def __init__(self, n_leads: int, n_classes: int, width: int = 128, stem_kernel_size: int = 7,
                 kernel_sizes: Sequence[int] = (5, 3), n_blocks: int = 3,
                 head_hidden: Sequence[int] = (128,), head_dropout: float = 0.5) -> None:
        if len(kernel_sizes) != 2:
            raise ValueError(f"resnet1d_wang: kernel_sizes needs two kernels, got {kernel_sizes}")
        stem = conv_bn(n_leads, width, stem_kernel_size)
        blocks = [BasicBlock1d(width, width, 1 if i == 0 else 2, kernel_sizes)
                  for i in range(n_blocks)]
        super().__init__(n_leads, n_classes, [stem, *blocks], ConcatPool1d(), 2 * width,
                         head_hidden, head_dropout)
        kaiming_init(self)


def build_resnet1d_wang(n_leads: int, n_classes: int, n_samples: int, **config) -> ResNet1dWang:
    return ResNet1dWang(n_leads, n_classes, **config)


# ---------------------------------------------------------------- fcn_wang


class FCNWang(PooledClassifier):
    """Groups: one per conv block, then the head."""

    def __init__(self, n_leads: int, n_classes: int, filters: Sequence[int] = (128, 256, 128),
                 kernel_sizes: Sequence[int] = (8, 5, 3), head_hidden: Sequence[int] = (128,),
                 head_dropout: float = 0.5) -> None:
        if len(filters) != len(kernel_sizes):
            raise ValueError(f"fcn_wang: {len(filters)} filter counts but "
                             f"{len(kernel_sizes)} kernel sizes")
        chans = [n_leads, *filters]
        stages = [conv_bn(chans[i], chans[i + 1], k) for i, k in enumerate(kernel_sizes)]
        super().__init__(n_leads, n_classes, stages, ConcatPool1d(), 2 * chans[-1],
                         head_hidden, head_dropout)
        kaiming_init(self)


def build_fcn_wang(n_leads: int, n_classes: int, n_samples: int, **config) -> FCNWang:
    return FCNWang(n_leads, n_classes, **config)


ARCHITECTURES: tuple[Architecture, ...] = (
    Architecture("xresnet1d50", "PTB-XL benchmark xresnet1d50: bag-of-tricks bottleneck ResNet "
                 "[3,4,6,3], kernel 5, concat-pool head", build_xresnet1d50),
    Architecture("xresnet1d101", "PTB-XL benchmark xresnet1d101: bag-of-tricks bottleneck ResNet "
                 "[3,4,23,3], kernel 5, concat-pool head", build_xresnet1d101),
    Architecture("inception1d", "PTB-XL benchmark inception1d: InceptionTime, kernels 39/19/9 + "
                 "max-pool branch, 128 channels, depth 6, concat-pool head", build_inception1d),
    Architecture("resnet1d_wang", "PTB-XL benchmark resnet1d_wang: Wang et al. 2017 ResNet, "
                 "128 channels, kernels 7 | 5-3 x3, concat-pool head", build_resnet1d_wang),
    Architecture("fcn_wang", "PTB-XL benchmark fcn_wang: Wang et al. 2017 FCN, 128-256-128 "
                 "channels, kernels 8-5-3, concat-pool head", build_fcn_wang),
)
