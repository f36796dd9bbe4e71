"""Self-supervised pretraining methods, one class each, registered by name.

A method is the training loop's `Objective` (`ecgcore.train.objective`) for one pretext
task: it builds what it needs around a zoo backbone (`build`: a projection head, a
decoder), makes each batch from the records alone (`batch`: views, segments or masks,
drawn from the fit's generator, so a resumed run draws what the uninterrupted one drew),
computes the batch loss (`outputs`, `loss`), and validates by the same loss on the
validation records with views drawn from a generator seeded afresh each epoch (the same
views every epoch, so the numbers compare; the score the loop keeps the best encoder by is
minus that loss). Labels are never read.

| method   | batch                                          | loss                                  |
|----------|------------------------------------------------|---------------------------------------|
| simclr   | two random crops of each record, each through  | NT-Xent over the 2N projected pooled  |
|          | the augmentations (`augment.Compose`)           | embeddings (Chen et al. 2020)         |
| clocs    | `views` adjacent, non-overlapping segments of   | CLOCS's CMSC loss (Kiyasseh et al.    |
|          | the crop length from one recording (CMSC),     | 2021): positives are the views of one |
|          | optionally augmented                           | recording, or of one patient          |
| masked   | a random crop and a token mask: `mask_ratio`   | MSE on the hidden samples only        |
|          | of its patches hidden, `mask_leads` whole      | (`losses.masked_mse`); see `decoders` |
|          | leads among them (`masking`)                   | for the CNN/RNN and the ViT paths     |

`supervised` pretraining (the labels, BCE) is no class here: it is the loop's default
objective and the run config's absent `pretrain_method` (METHOD_NAMES lists it first).
Each method's settings are a frozen dataclass with defaults (`settings_type`);
`method_config` resolves an experiment file's options into the run config's
`PretrainMethodConfig` with every setting explicit.
"""

from __future__ import annotations

import dataclasses
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
from torch import nn

from ecgcore.data.pipeline import TaskDataset
from ecgcore.errors import EcgcoreError
from ecgcore.models.base import ECGClassifier
from ecgcore.models.ecg_jepa import PATCH, ECGJepa
from ecgcore.runs.run_config import SUPERVISED, PretrainMethodConfig
from ecgcore.ssl.augment import (
    DEFAULT_SIMCLR_AUGMENTATIONS,
    Compose,
    augmentations_from_config,
)
from ecgcore.ssl.decoders import MaskedSignal, MaskedViT
from ecgcore.ssl.features import probe_shapes
from ecgcore.ssl.losses import clocs_loss, masked_mse, nt_xent
from ecgcore.ssl.masking import masked_count, patches_in, sample_mask, token_mask
from ecgcore.train.data import random_crops, training_batch, valid_samples
from ecgcore.train.device import autocast, to_device
from ecgcore.train.objective import Batch, Validation
from ecgcore.transfer.base import EpochPlan

if TYPE_CHECKING:
    from ecgcore.train.epoch import Setup


# ---------------------------------------------------------------------------------------------
# settings


@dataclass(frozen=True)
class StreamingSettings:
    """Every method's data settings: `stream` reads the training records in shards of
    `shard_size` rows of the prepared cache, `buffer_shards` held at a time (memory bounded
    whatever the record count; `ecgcore.train.data.ShardStream`). Off, a prepared array
    above `ecgcore.ssl.pretrain.STREAM_ABOVE_BYTES` is streamed all the same."""

    stream: bool = False
    shard_size: int = 512
    buffer_shards: int = 8


@dataclass(frozen=True)
class SimCLRSettings(StreamingSettings):
    temperature: float = 0.1
    augmentations: list[dict[str, Any]] = field(default_factory=lambda: [dict(a) for a in DEFAULT_SIMCLR_AUGMENTATIONS])
    projection_dim: int = 64


@dataclass(frozen=True)
class CLOCSSettings(StreamingSettings):
    temperature: float = 0.1  # the reference code's
    views: int = 2  # adjacent segments per recording (CMSC)
    positives: str = "patient"  # "patient": views of one patient's recordings; "recording": of one recording
    augmentations: list[dict[str, Any]] = field(default_factory=list)  # CLOCS's CMSC uses none
    projection_dim: int = 64


@dataclass(frozen=True)
class MaskedSettings(StreamingSettings):
    mask_ratio: float = 0.5
    mask_leads: int = 1  # whole leads hidden per record (within mask_ratio)
    patch: int = 50  # samples per token (a ViT's own patch: ECG-JEPA's 50)
    decoder_dim: int = 64
    decoder_depth: int = 1  # transformer blocks of the ViT's decoder
    decoder_heads: int = 4


def _settings(cls: type, options: Mapping[str, Any], method: str) -> Any:
    """`cls` from options: an unknown key or a value of another type than the default's is
    an EcgcoreError naming it; lists of augmentations are checked by building them."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(options) - set(fields))
    if unknown:
        raise EcgcoreError(f"pretrain method {method!r} has no setting {', '.join(map(repr, unknown))}; "
                           f"its settings: {', '.join(fields)}")
    values: dict[str, Any] = {}
    for name, value in options.items():
        f = fields[name]
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        if isinstance(default, float) and type(value) is int:  # 1 where 1.0 is meant
            value = float(value)
        if type(value) is not type(default):  # exact: True is no int, 0.5 no int
            raise EcgcoreError(f"pretrain method {method!r}: {name} = {value!r} is not a {type(default).__name__}")
        values[name] = value
    settings = cls(**values)
    if "augmentations" in fields:  # every parameter explicit; an unknown name or parameter fails here
        settings = dataclasses.replace(settings,
                                       augmentations=augmentations_from_config(settings.augmentations).to_config())
    return settings


# ---------------------------------------------------------------------------------------------
# the methods


class PretrainMethod(ABC):
    """One self-supervised pretext task as the trainer's Objective (module docstring)."""

    name: ClassVar[str]
    settings_type: ClassVar[type]
    description: ClassVar[str]
    criterion = "validation pretext loss"

    def __init__(self, settings: Any) -> None:
        self.settings = settings

    @classmethod
    def from_config(cls, config: PretrainMethodConfig) -> PretrainMethod:
        return cls(_settings(cls.settings_type, config.options, config.name))

    def check(self, backbone: ECGClassifier, n_leads: int, length: int, window: int) -> None:
        """Refuse, before any work, a backbone or crop this method cannot train (EcgcoreError)."""

    @abstractmethod
    def build(self, backbone: ECGClassifier, n_leads: int, length: int) -> nn.Module:
        """The module that trains: the backbone with this method's parts around it."""

    @abstractmethod
    def batch(self, data: TaskDataset, rows: np.ndarray, length: int, generator: torch.Generator) -> Batch: ...

    @abstractmethod
    def outputs(self, net: nn.Module, batch: Batch) -> torch.Tensor: ...

    @abstractmethod
    def loss(self, outputs: torch.Tensor, batch: Batch) -> torch.Tensor: ...

    def augmentations(self) -> list[dict[str, Any]]:
        """The augmentations as the run records them (none for a method without)."""
        return []

    def validate(self, model: nn.Module, setup: Setup) -> Validation:
        """The mean pretext loss over the validation records; its negative is the score."""
        if not setup.has_val:
            return Validation(loss=math.nan, macro_auc=math.nan, score=math.nan)
        loss = self.pretext_loss(model, setup.data, setup.val_index, setup.length, setup.config.batch_size,
                                 setup.config.seed, setup.device, setup.precision)
        return Validation(loss=loss, macro_auc=math.nan, score=-loss)

    @torch.no_grad()
    def pretext_loss(self, model: nn.Module, data: TaskDataset, rows: np.ndarray, length: int, batch_size: int,
                     seed: int, device: torch.device, precision: str = "float32") -> float:
        """The mean loss over `rows` (model in eval mode; batches of `batch_size` in index
        order, since a contrastive loss depends on the batch; views and masks from a
        generator seeded with `seed`, so every call sees the same ones). NaN for fewer than
        two rows."""
        if len(rows) < 2:  # a contrastive loss needs two records
            return math.nan
        generator = torch.Generator().manual_seed(seed)
        was_training = model.training
        model.eval()
        total, seen = 0.0, 0
        for part in fixed_batches(np.asarray(rows, dtype=np.int64), batch_size):
            batch = tuple(to_device(t, device) for t in self.batch(data, part, length, generator))
            with autocast(device, precision):
                outputs = self.outputs(model, batch)
            total += float(self.loss(outputs, batch)) * part.size
            seen += part.size
        model.train(was_training)
        return total / seen

    def plan(self, module: nn.Module, backbone: ECGClassifier, lr: float) -> EpochPlan:
        """Every parameter at the base LR but the backbone's head, which no pretext task
        reads (a transfer strategy trains it on the target; without this a torchrun run
        would stop at parameters that get no gradient)."""
        head = {id(p) for p in backbone.head.parameters()}
        params = [p for p in module.parameters() if id(p) not in head]
        return EpochPlan(param_groups=[{"params": params, "lr": lr, "group": "all"}],
                         signature=(self.name, lr), phase=self.name)


def fixed_batches(index: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """`index` in order, cut into batches; a last batch of one joins the one before (a
    contrastive loss needs two records)."""
    batches = [index[i:i + batch_size] for i in range(0, index.size, batch_size)]
    if len(batches) > 1 and batches[-1].size == 1:
        batches[-2:] = [np.concatenate(batches[-2:])]
    return batches


class ContrastiveNet(nn.Module):
    """Backbone + projection head (Linear, ReLU, Linear; SimCLR's): views (batch, V, leads,
    samples) -> projected pooled embeddings (batch, V, projection_dim)."""

    def __init__(self, backbone: ECGClassifier, n_leads: int, length: int, projection_dim: int) -> None:
        super().__init__()
        self.backbone = backbone
        width = int(probe_shapes(backbone, n_leads, length, call=backbone.embed).shape[1])
        self.projector = nn.Sequential(nn.Linear(width, width), nn.ReLU(inplace=True),
                                       nn.Linear(width, projection_dim))

    def forward(self, views: torch.Tensor) -> torch.Tensor:
        n, v = views.shape[:2]
        return self.projector(self.backbone.embed(views.flatten(0, 1))).reshape(n, v, -1)


class _Contrastive(PretrainMethod):
    def __init__(self, settings: Any) -> None:
        super().__init__(settings)
        self.augment: Compose = augmentations_from_config(settings.augmentations)

    def augmentations(self) -> list[dict[str, Any]]:
        return self.augment.to_config()

    def build(self, backbone: ECGClassifier, n_leads: int, length: int) -> nn.Module:
        return ContrastiveNet(backbone, n_leads, length, self.settings.projection_dim)

    def outputs(self, net: nn.Module, batch: Batch) -> torch.Tensor:
        return net(batch[0])

    def _augmented(self, views: torch.Tensor, generator: torch.Generator, fs: float) -> torch.Tensor:
        """(batch, V, leads, samples) views, each through the augmentations (none: as given)."""
        if not self.augment.steps:
            return views
        flat = self.augment(views.flatten(0, 1), generator, fs)
        return flat.reshape(views.shape)


class SimCLR(_Contrastive):
    name = "simclr"
    settings_type = SimCLRSettings
    description = "SimCLR: two augmented random crops per record, NT-Xent over projected embeddings"

    def batch(self, data: TaskDataset, rows: np.ndarray, length: int, generator: torch.Generator) -> Batch:
        crops = [training_batch(data, rows, length, generator)[0] for _ in range(2)]
        return (self._augmented(torch.stack(crops, dim=1), generator, data.prep.fs),)

    def loss(self, outputs: torch.Tensor, batch: Batch) -> torch.Tensor:
        z = outputs.float()
        return nt_xent(z[:, 0], z[:, 1], self.settings.temperature)


class CLOCS(_Contrastive):
    name = "clocs"
    settings_type = CLOCSSettings
    description = ("CLOCS (CMSC): adjacent segments of one recording are positives (or of one patient), "
                   "its contrastive loss over projected embeddings")

    def __init__(self, settings: CLOCSSettings) -> None:
        super().__init__(settings)
        if settings.views < 2:
            raise EcgcoreError(f"clocs needs at least 2 views, got {settings.views}")
        if settings.positives not in ("patient", "recording"):
            raise EcgcoreError(f"clocs positives must be 'patient' or 'recording', got {settings.positives!r}")

    def check(self, backbone: ECGClassifier, n_leads: int, length: int, window: int) -> None:
        if self.settings.views * length > window:
            raise EcgcoreError(
                f"clocs takes {self.settings.views} adjacent segments of {length} samples, but the prepared "
                f"window has {window}: set [train] crop_seconds so that views x crop fits the record "
                "(a model with an input contract takes its whole window and cannot)")

    def batch(self, data: TaskDataset, rows: np.ndarray, length: int, generator: torch.Generator) -> Batch:
        views = self.settings.views
        x = data.raw_rows(rows)
        highest = np.maximum(valid_samples(data, rows) - views * length, 0)
        uniform = torch.rand(rows.size, generator=generator, dtype=torch.float64).numpy()
        starts = np.minimum((uniform * (highest + 1)).astype(np.int64), highest)
        segments = np.stack([data.scale(random_crops(x, length, starts + v * length)) for v in range(views)], axis=1)
        if self.settings.positives == "patient":
            group = np.unique(np.asarray(data.patients[rows]).astype(str), return_inverse=True)[1]
        else:
            group = np.arange(rows.size)
        return (self._augmented(torch.from_numpy(np.ascontiguousarray(segments)), generator, data.prep.fs),
                torch.as_tensor(group, dtype=torch.int64))

    def loss(self, outputs: torch.Tensor, batch: Batch) -> torch.Tensor:
        return clocs_loss(outputs.float(), batch[1], self.settings.temperature)


class Masked(PretrainMethod):
    name = "masked"
    settings_type = MaskedSettings
    description = ("masked reconstruction: hide patches (and whole leads), reconstruct them (MAE-style for a "
                   "ViT, a convolutional decoder for CNNs/RNNs), MSE on the hidden samples only")

    def check(self, backbone: ECGClassifier, n_leads: int, length: int, window: int) -> None:
        s = self.settings
        masked_count(n_leads, patches_in(length, s.patch), s.mask_ratio, s.mask_leads)  # refuses bad ratios
        if isinstance(backbone, ECGJepa) and s.patch != PATCH:
            raise EcgcoreError(f"masked reconstruction of {backbone.name or 'an ECG-JEPA encoder'} hides its "
                               f"{PATCH}-sample patch tokens: set patch = {PATCH}, not {s.patch}")

    def build(self, backbone: ECGClassifier, n_leads: int, length: int) -> nn.Module:
        s = self.settings
        if isinstance(backbone, ECGJepa):
            return MaskedViT(backbone, s.decoder_dim, s.decoder_depth, s.decoder_heads)
        return MaskedSignal(backbone, n_leads, length, s.patch, s.decoder_dim)

    def batch(self, data: TaskDataset, rows: np.ndarray, length: int, generator: torch.Generator) -> Batch:
        x = training_batch(data, rows, length, generator)[0]
        s = self.settings
        tokens = token_mask(rows.size, x.shape[1], patches_in(length, s.patch), s.mask_ratio, s.mask_leads,
                            generator)
        return x, tokens

    def outputs(self, net: nn.Module, batch: Batch) -> torch.Tensor:
        return net(batch[0], batch[1])

    def loss(self, outputs: torch.Tensor, batch: Batch) -> torch.Tensor:
        x, tokens = batch
        return masked_mse(outputs.float(), x, sample_mask(tokens, self.settings.patch, x.shape[2]))


PRETRAIN_METHODS: dict[str, type[PretrainMethod]] = {cls.name: cls for cls in (SimCLR, CLOCS, Masked)}
METHOD_NAMES: tuple[str, ...] = (SUPERVISED, *PRETRAIN_METHODS)


def method_settings_names() -> set[str]:
    """Every setting some method has (what an experiment's [pretrain] may hold besides
    TrainConfig's keys and `method`)."""
    return {f.name for cls in PRETRAIN_METHODS.values() for f in dataclasses.fields(cls.settings_type)}


def method_config(name: str, options: Mapping[str, Any]) -> PretrainMethodConfig | None:
    """The run config's method part: None for supervised pretraining; else the method's
    settings from `options` (those it has; others belong to other methods), every one
    explicit. An unknown method is an EcgcoreError listing the known ones."""
    if name == SUPERVISED:
        return None
    if name not in PRETRAIN_METHODS:
        raise EcgcoreError(f"unknown pretrain method {name!r}; known: {', '.join(METHOD_NAMES)}")
    cls = PRETRAIN_METHODS[name]
    own = {f.name for f in dataclasses.fields(cls.settings_type)}
    settings = _settings(cls.settings_type, {k: v for k, v in options.items() if k in own}, name)
    return PretrainMethodConfig(name, dataclasses.asdict(settings))


def get_method(config: PretrainMethodConfig) -> PretrainMethod:
    if config.name not in PRETRAIN_METHODS:
        raise EcgcoreError(f"unknown pretrain method {config.name!r}; known: {', '.join(METHOD_NAMES)}")
    return PRETRAIN_METHODS[config.name].from_config(config)
