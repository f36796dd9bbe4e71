"""ECG augmentations for self-supervised pretraining, applied to a batch inside the training loop.

Every augmentation is a small frozen dataclass holding its parameters; calling it on a batch
`x` of shape (batch, leads, samples) with a `torch.Generator` and the sampling rate `fs` returns
a tensor of the same shape, dtype and device. Each sample draws its own random parameters, all
in one vectorised draw per batch (no Python loop over samples), so the result is a function of
the generator's state alone: the same seed gives the same views on any device. Random numbers
are drawn on the generator's device (a CPU generator gives the same numbers whatever device the
batch is on) and moved to the batch's device.

Amplitudes of added noise (gaussian, powerline, baseline wander) are fractions of each lead's
own standard deviation in that sample, so one configuration means the same whatever the
prepared data's normalisation (millivolts, z-scored or standard-scaled).

`Compose` chains steps, each applied to each sample with its own probability `p`;
`augmentations_from_config` builds one from a list of tables ({"name": ..., "p": ..., **params}),
as written in experiment files, and `Compose.to_config` gives that list back with every
parameter explicit (recorded in the pretraining run).

Why written here rather than taken from PyPI `ecg-augmentations` (K. Avramidis, MIT; judged at
1.0.1): it is well written, but it has had two PyPI releases, a day apart (1.0.0 and 1.0.1), so
no record of being kept yet; its transforms are `nn.Module`s with the sampling rate fixed when
they are built, whereas here one configuration serves sources of different rates (fs is given
per call); its crop changes the signal's length; and its parameters do not round-trip through
an experiment file's tables. Wrapping it would cost as much code as these transforms. Two of its
ideas are used here: a smooth monotone time warp as the normalised cumulative sum of a random,
exponentiated, linearly interpolated speed; and drawing random numbers on the generator's device.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from ecgcore.errors import EcgcoreError

log = logging.getLogger(__name__)


# --- random draws and interpolation shared by the augmentations ------------------------------


def _uniform(generator: torch.Generator, shape: tuple[int, ...], like: torch.Tensor,
             low: float | torch.Tensor = 0.0, high: float | torch.Tensor = 1.0) -> torch.Tensor:
    """Uniform draws in [low, high), made on the generator's device in float32 (the same numbers
    on every device) and returned on `like`'s device and dtype."""
    u = torch.rand(shape, generator=generator, device=generator.device, dtype=torch.float32)
    u = u.to(device=like.device, dtype=like.dtype)
    return low + (high - low) * u


def _normal(generator: torch.Generator, shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
    """Standard normal draws, made like `_uniform`'s."""
    z = torch.randn(shape, generator=generator, device=generator.device, dtype=torch.float32)
    return z.to(device=like.device, dtype=like.dtype)


def _interpolate(x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """x (B, L, T) read at fractional sample positions (B, 1, N) in [0, T - 1], linearly
    interpolated between the two neighbouring samples; the same positions for every lead."""
    n_samples = x.shape[-1]
    positions = positions.clamp(0, n_samples - 1)
    left = positions.floor().long().clamp(max=n_samples - 2)
    weight = positions - left
    shape = (x.shape[0], x.shape[1], positions.shape[-1])
    return (x.gather(-1, left.expand(shape)) * (1 - weight)
            + x.gather(-1, (left + 1).expand(shape)) * weight)


def _lead_std(x: torch.Tensor) -> torch.Tensor:
    """Each lead's standard deviation within its sample, shape (B, L, 1)."""
    return x.std(dim=-1, keepdim=True, unbiased=False)


def _time_axis(x: torch.Tensor, fs: float) -> torch.Tensor:
    """Seconds since the first sample, shape (T,)."""
    return torch.arange(x.shape[-1], device=x.device, dtype=x.dtype) / fs


def _need(condition: bool, message: str) -> None:
    if not condition:
        raise EcgcoreError(message)


# --- the augmentations ------------------------------------------------------------------------


@dataclass(frozen=True)
class Augmentation(ABC):
    """One augmentation: its parameters as fields (every field has a default), `name` as in
    `AUGMENTATIONS` and in experiment files."""

    name: ClassVar[str]

    def __call__(self, x: torch.Tensor, generator: torch.Generator, fs: float) -> torch.Tensor:
        _check_batch(x, fs)
        return self.apply(x, generator, fs)

    @abstractmethod
    def apply(self, x: torch.Tensor, generator: torch.Generator, fs: float) -> torch.Tensor:
        """The augmented batch; x is a checked (B, L, T) floating-point tensor."""

    def to_config(self) -> dict[str, Any]:
        """{"name": ..., **every parameter}, tuples as lists (TOML and JSON hold lists)."""
        params = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return {"name": self.name,
                **{k: list(v) if isinstance(v, tuple) else v for k, v in params.items()}}


def _check_batch(x: torch.Tensor, fs: float) -> None:
    if x.ndim != 3:
        raise EcgcoreError(f"augmentations take a batch (batch, leads, samples); got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise EcgcoreError(f"augmentations take floating-point signals; got {x.dtype}")
    if x.shape[-1] < 2:
        raise EcgcoreError(f"augmentations need at least 2 samples per lead; got {x.shape[-1]}")
    if not fs > 0:
        raise EcgcoreError(f"the sampling rate must be positive; got {fs!r}")


@dataclass(frozen=True)
class RandomResizedCrop(Augmentation):
    """Crop a contiguous window of a random fraction of the record (the same window for every
    lead of a sample) and resample it back to the record's length by linear interpolation, so
    the output shape stays (B, L, T) and no sample is padding. The window is stretched by
    1 / fraction (a slower apparent heart rate): the random resized crop that Mehari & Strodthoff
    (2022, "Self-supervised representation learning from 12-lead ECG data") found among the most
    useful ECG augmentations for SimCLR. fraction = 1 leaves the record unchanged."""

    name: ClassVar[str] = "crop"
    min_fraction: float = 0.5
    max_fraction: float = 1.0

    def __post_init__(self) -> None:
        _need(0 < self.min_fraction <= self.max_fraction <= 1,
              f"crop: need 0 < min_fraction <= max_fraction <= 1; got {self.min_fraction}, {self.max_fraction}")

    def apply(self, x: torch.Tensor, generator: torch.Generator, fs: float) -> torch.Tensor:
        batch, _, n_samples = x.shape
        fraction = _uniform(generator, (batch, 1, 1), x, self.min_fraction, self.max_fraction)
        length = (fraction * n_samples).round().clamp(2, n_samples)
        start = (_uniform(generator, (batch, 1, 1), x) * (n_samples - length + 1)).floor()
        start = torch.minimum(start, n_samples - length)
        step = (length - 1) / (n_samples - 1)
        positions = start + torch.arange(n_samples, device=x.device, dtype=x.dtype) * step
        return _interpolate(x, positions)


@dataclass(frozen=True)
class TimeWarp(Augmentation):
    """Warp time smoothly and monotonically (the same warp for every lead of a sample), keeping
    the first and last samples and the length: the local speed is exp(sigma * z) with z standard
    normal at `knots` points, linearly interpolated between them; positions are its normalised
    cumulative sum. Intervals stretch and shrink by about exp(+-sigma). sigma = 0 is the identity."""

    name: ClassVar[str] = "time_warp"
    sigma: float = 0.2
    knots: int = 4

    def __post_init__(self) -> None:
        _need(self.sigma >= 0, f"time_warp: sigma must be >= 0; got {self.sigma}")
        _need(self.knots >= 2, f"time_warp: knots must be >= 2; got {self.knots}")

    def apply(self, x: torch.Tensor, generator: torch.Generator, fs: float) -> torch.Tensor:
        batch, _, n_samples = x.shape
        log_speed = self.sigma * _normal(generator, (batch, 1, self.knots), x)
        speed = torch.exp(F.interpolate(log_speed, size=n_samples - 1, mode="linear", align_corners=True))
        positions = torch.cat([torch.zeros_like(speed[..., :1]), speed.cumsum(-1)], dim=-1)
        positions = positions / positions[..., -1:] * (n_samples - 1)
        return _interpolate(x, positions)


@dataclass(frozen=True)
class AmplitudeScale(Augmentation):
    """Multiply each sample by a factor drawn uniformly in [low, high] (one factor per sample,
    or one per lead with per_lead = true)."""

    name: ClassVar[str] = "amplitude_scale"
    low: float = 0.5
    high: float = 2.0
    per_lead: bool = False

    def __post_init__(self) -> None:
        _need(0 < self.low <= self.high,
              f"amplitude_scale: need 0 < low <= high; got {self.low}, {self.high}")

    def apply(self, x: torch.Tensor, generator: torch.Generator, fs: float) -> torch.Tensor:
        shape = (x.shape[0], x.shape[1] if self.per_lead else 1, 1)
        return x * _uniform(generator, shape, x, self.low, self.high)


@dataclass(frozen=True)
class BaselineWander(Augmentation):
    """Add slow drift: a sum of `components` sinusoids, each at a frequency drawn in
    [min_frequency, max_frequency] Hz (shared by the leads of a sample, as respiration is), with
    its own phase and an amplitude drawn in [0, max_amplitude / components] per lead; amplitudes
    are fractions of the lead's standard deviation, so the drift never exceeds max_amplitude
    standard deviations."""

    name: ClassVar[str] = "baseline_wander"
    max_amplitude: float = 0.5
    min_frequency: float = 0.05
    max_frequency: float = 0.5
    components: int = 2

    def __post_init__(self) -> None:
        _need(self.max_amplitude >= 0, f"baseline_wander: max_amplitude must be >= 0; got {self.max_amplitude}")
        _need(0 <= self.min_frequency <= self.max_frequency,
              f"baseline_wander: need 0 <= min_frequency <= max_frequency; "
              f"got {self.min_frequency}, {self.max_frequency}")
        _need(self.components >= 1, f"baseline_wander: components must be >= 1; got {self.components}")

    def apply(self, x: torch.Tensor, generator: torch.Generator, fs: float) -> torch.Tensor:
        batch, leads, _ = x.shape
        k = self.components
        frequency = _uniform(generator, (batch, 1, k, 1), x, self.min_frequency, self.max_frequency)
        phase = _uniform(generator, (batch, leads, k, 1), x, 0.0, 2 * math.pi)
        amplitude = _uniform(generator, (batch, leads, k, 1), x, 0.0, self.max_amplitude / k)
        waves = amplitude * torch.sin(2 * math.pi * frequency * _time_axis(x, fs) + phase)
        return x + waves.sum(dim=2) * _lead_std(x)


@dataclass(frozen=True)
class GaussianNoise(Augmentation):
    """Add white Gaussian noise, independent per lead and sample, with a standard deviation
    drawn per sample in [0, max_std] times each lead's standard deviation."""

    name: ClassVar[str] = "gaussian_noise"
    max_std: float = 0.1

    def __post_init__(self) -> None:
        _need(self.max_std >= 0, f"gaussian_noise: max_std must be >= 0; got {self.max_std}")

    def apply(self, x: torch.Tensor, generator: torch.Generator, fs: float) -> torch.Tensor:
        std = _uniform(generator, (x.shape[0], 1, 1), x, 0.0, self.max_std) * _lead_std(x)
        return x + std * _normal(generator, tuple(x.shape), x)


@dataclass(frozen=True)
class PowerlineNoise(Augmentation):
    """Add mains interference: one sinusoid per sample at a frequency picked among `frequencies`
    (Hz; 50 and 60), with a random phase per lead and an amplitude drawn per sample in
    [0, max_amplitude] times each lead's standard deviation. The sinusoid is sampled at the
    record's rate as it is: at fs <= 2 x mains it appears aliased (60 Hz at 100 Hz reads as
    40 Hz), as it would in a recording made at that rate without an anti-alias filter."""

    name: ClassVar[str] = "powerline_noise"
    frequencies: tuple[float, ...] = (50.0, 60.0)
    max_amplitude: float = 0.2

    def __post_init__(self) -> None:
        _need(len(self.frequencies) >= 1 and all(f > 0 for f in self.frequencies),
              f"powerline_noise: frequencies must be positive and at least one; got {list(self.frequencies)}")
        _need(self.max_amplitude >= 0, f"powerline_noise: max_amplitude must be >= 0; got {self.max_amplitude}")

    def apply(self, x: torch.Tensor, generator: torch.Generator, fs: float) -> torch.Tensor:
        batch, leads, _ = x.shape
        choices = torch.tensor(self.frequencies, device=x.device, dtype=x.dtype)
        pick = (_uniform(generator, (batch,), x) * len(self.frequencies)).long().clamp(max=len(self.frequencies) - 1)
        frequency = choices[pick].view(batch, 1, 1)
        phase = _uniform(generator, (batch, leads, 1), x, 0.0, 2 * math.pi)
        amplitude = _uniform(generator, (batch, 1, 1), x, 0.0, self.max_amplitude) * _lead_std(x)
        return x + amplitude * torch.sin(2 * math.pi * frequency * _time_axis(x, fs) + phase)


@dataclass(frozen=True)
class LeadDropout(Augmentation):
    """Zero whole leads, each independently with probability `rate`; a sample that would lose
    every lead keeps one, picked at random (an all-zero record teaches nothing)."""

    name: ClassVar[str] = "lead_dropout"
    rate: float = 0.2

    def __post_init__(self) -> None:
        _need(0 <= self.rate <= 1, f"lead_dropout: rate must be in [0, 1]; got {self.rate}")

    def apply(self, x: torch.Tensor, generator: torch.Generator, fs: float) -> torch.Tensor:
        batch, leads, _ = x.shape
        drop = _uniform(generator, (batch, leads), x) < self.rate
        rescue = F.one_hot(_uniform(generator, (batch, leads), x).argmax(dim=1), leads).bool()
        drop = drop & ~(drop.all(dim=1, keepdim=True) & rescue)
        return x.masked_fill(drop.unsqueeze(-1), 0.0)


@dataclass(frozen=True)
class LeadMask(Augmentation):
    """Keep a random subset of leads and zero the rest: the number kept is drawn uniformly in
    [min_kept, all leads] per sample, the leads kept at random: a reduced-lead recording (one
    lead, three leads, ...), unlike lead_dropout's independent per-lead coin."""

    name: ClassVar[str] = "lead_mask"
    min_kept: int = 1

    def __post_init__(self) -> None:
        _need(self.min_kept >= 1, f"lead_mask: min_kept must be >= 1; got {self.min_kept}")

    def apply(self, x: torch.Tensor, generator: torch.Generator, fs: float) -> torch.Tensor:
        batch, leads, _ = x.shape
        low = min(self.min_kept, leads)
        kept = low + (_uniform(generator, (batch, 1), x) * (leads - low + 1)).long().clamp(max=leads - low)
        rank = _uniform(generator, (batch, leads), x).argsort(dim=1).argsort(dim=1)
        return x.masked_fill((rank >= kept).unsqueeze(-1), 0.0)


@dataclass(frozen=True)
class TimeMask(Augmentation):
    """Zero a contiguous window (the same for every lead of a sample) of a length drawn in
    [0, max_fraction] of the record: the "Timeout" augmentation that Mehari & Strodthoff (2022)
    found, with the resized crop, the best pair for ECG SimCLR."""

    name: ClassVar[str] = "time_mask"
    max_fraction: float = 0.2

    def __post_init__(self) -> None:
        _need(0 <= self.max_fraction <= 1, f"time_mask: max_fraction must be in [0, 1]; got {self.max_fraction}")

    def apply(self, x: torch.Tensor, generator: torch.Generator, fs: float) -> torch.Tensor:
        batch, _, n_samples = x.shape
        length = (_uniform(generator, (batch, 1, 1), x, 0.0, self.max_fraction) * n_samples).round()
        start = (_uniform(generator, (batch, 1, 1), x) * (n_samples - length + 1)).floor()
        t = torch.arange(n_samples, device=x.device, dtype=x.dtype)
        return x.masked_fill((t >= start) & (t < start + length), 0.0)


AUGMENTATIONS: dict[str, type[Augmentation]] = {
    cls.name: cls for cls in (RandomResizedCrop, TimeWarp, AmplitudeScale, BaselineWander, GaussianNoise,
                              PowerlineNoise, LeadDropout, LeadMask, TimeMask)
}


# --- composition and configuration --------------------------------------------------------------


@dataclass(frozen=True)
class Compose:
    """Steps applied in order; step i is applied to each sample with probability p[i], decided
    per sample (the step runs on the whole batch and the samples not chosen keep their input,
    which keeps it one vectorised call). The choice is drawn for every step, p = 1 included, so
    each step consumes the same random numbers whatever the probabilities."""

    steps: tuple[Augmentation, ...]
    p: tuple[float, ...]

    def __post_init__(self) -> None:
        _need(len(self.steps) == len(self.p),
              f"Compose: {len(self.steps)} steps but {len(self.p)} probabilities")
        for step, p in zip(self.steps, self.p):
            _need(0 <= p <= 1, f"{step.name}: p must be in [0, 1]; got {p}")

    def __call__(self, x: torch.Tensor, generator: torch.Generator, fs: float) -> torch.Tensor:
        _check_batch(x, fs)
        for step, p in zip(self.steps, self.p):
            chosen = _uniform(generator, (x.shape[0], 1, 1), x) < p
            x = step(x, generator, fs) if p == 1 else torch.where(chosen, step(x, generator, fs), x)
        return x

    def to_config(self) -> list[dict[str, Any]]:
        """The list of tables `augmentations_from_config` reads, every parameter explicit."""
        return [{**step.to_config(), "p": p} for step, p in zip(self.steps, self.p)]


def augmentations_from_config(items: Sequence[Mapping[str, Any]]) -> Compose:
    """A Compose from tables {"name": ..., "p": ... (default 1), **params}; an unknown name,
    an unknown parameter or a value of the wrong type is an EcgcoreError naming it."""
    steps: list[Augmentation] = []
    probabilities: list[float] = []
    for item in items:
        if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
            raise EcgcoreError(f"an augmentation is a table with a name; got {item!r}")
        name = item["name"]
        if name not in AUGMENTATIONS:
            raise EcgcoreError(f"unknown augmentation {name!r}; known: {', '.join(AUGMENTATIONS)}")
        cls = AUGMENTATIONS[name]
        defaults = {f.name: f.default for f in dataclasses.fields(cls)}
        params = {k: v for k, v in item.items() if k not in ("name", "p")}
        unknown = sorted(set(params) - set(defaults))
        if unknown:
            raise EcgcoreError(f"augmentation {name!r} has no parameter {', '.join(map(repr, unknown))}; "
                               f"its parameters: {', '.join([*defaults, 'p'])}")
        steps.append(cls(**{k: _coerce(name, k, v, defaults[k]) for k, v in params.items()}))
        probabilities.append(_coerce(name, "p", item.get("p", 1.0), 1.0))
    return Compose(tuple(steps), tuple(probabilities))


def _coerce(name: str, param: str, value: Any, default: Any) -> Any:
    """`value` as the type of the parameter's default (an int where a float is wanted is fine,
    a list where a tuple is); anything else is an EcgcoreError naming the parameter."""
    wrong = EcgcoreError(f"augmentation {name!r}: {param} = {value!r} is not a {type(default).__name__}")
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise wrong
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise wrong
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise wrong
        return float(value)
    if isinstance(default, tuple):
        if not isinstance(value, list | tuple) or not value:
            raise wrong
        return tuple(_coerce(name, param, v, default[0]) for v in value)
    raise wrong


DEFAULT_SIMCLR_AUGMENTATIONS: list[dict[str, Any]] = [
    {"name": "crop", "min_fraction": 0.5, "max_fraction": 1.0, "p": 1.0},
    {"name": "time_mask", "max_fraction": 0.2, "p": 0.5},
    {"name": "amplitude_scale", "low": 0.5, "high": 2.0, "per_lead": False, "p": 0.5},
    {"name": "time_warp", "sigma": 0.2, "knots": 4, "p": 0.3},
    {"name": "baseline_wander", "max_amplitude": 0.5, "min_frequency": 0.05, "max_frequency": 0.5,
     "components": 2, "p": 0.5},
    {"name": "gaussian_noise", "max_std": 0.1, "p": 0.5},
    {"name": "powerline_noise", "frequencies": [50.0, 60.0], "max_amplitude": 0.2, "p": 0.3},
    {"name": "lead_dropout", "rate": 0.2, "p": 0.3},
]
"""Two views for SimCLR: a resized crop always (with Timeout, the pair Mehari & Strodthoff 2022
found best for ECG), then amplitude, time and noise perturbations each with its own chance, and
lead dropout. Every parameter is explicit, so `augmentations_from_config(...).to_config()` gives
this list back (key order aside)."""
