"""Each ECG augmentation on a known signal does what it says; Compose and the configuration
round trip (ecgcore/ssl/augment.py)."""

from __future__ import annotations

import math

import pytest
import torch

from ecgcore.errors import EcgcoreError
from ecgcore.ssl.augment import (
    AUGMENTATIONS,
    DEFAULT_SIMCLR_AUGMENTATIONS,
    AmplitudeScale,
    BaselineWander,
    Compose,
    GaussianNoise,
    LeadDropout,
    LeadMask,
    PowerlineNoise,
    RandomResizedCrop,
    TimeMask,
    TimeWarp,
    augmentations_from_config,
)

FS = 500.0


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def sines(batch: int = 4, leads: int = 3, seconds: float = 2.0, fs: float = FS, hz: float = 1.0) -> torch.Tensor:
    """A sinusoid at `hz` in every lead, lead l scaled by (l + 1), float32 (B, L, T)."""
    t = torch.arange(round(seconds * fs), dtype=torch.float32) / fs
    wave = torch.sin(2 * math.pi * hz * t)
    scale = torch.arange(1, leads + 1, dtype=torch.float32).view(1, leads, 1)
    return (wave * scale).expand(batch, leads, -1).contiguous()


def ramps(batch: int = 4, leads: int = 3, n_samples: int = 200) -> torch.Tensor:
    """x[b, l, t] = (l + 1) * t: a signal whose value names its time."""
    t = torch.arange(n_samples, dtype=torch.float32)
    scale = torch.arange(1, leads + 1, dtype=torch.float32).view(1, leads, 1)
    return (t * scale).expand(batch, leads, -1).contiguous()


def lead_std(x: torch.Tensor) -> torch.Tensor:
    return x.std(dim=-1, unbiased=False)


# --- each augmentation on a known signal ---------------------------------------------------------


def test_amplitude_scale_multiplies_each_sample_by_one_factor_in_its_range() -> None:
    x = sines(batch=64)
    out = AmplitudeScale(low=0.8, high=1.25)(x, seeded(), FS)
    ratio = out / torch.where(x == 0, 1.0, x)
    ratio = ratio[..., 1:]  # sample 0 of a sine is 0
    factors = ratio[:, 0, 0]
    assert torch.allclose(ratio, factors.view(-1, 1, 1).expand_as(ratio), rtol=1e-5)
    assert (factors >= 0.8).all() and (factors <= 1.25).all()
    assert factors.std() > 0.05  # drawn per sample, not once per batch


def test_amplitude_scale_per_lead_draws_a_factor_per_lead() -> None:
    x = sines(batch=8, leads=4)
    out = AmplitudeScale(low=0.5, high=2.0, per_lead=True)(x, seeded(), FS)
    factors = out[..., 100] / x[..., 100]
    assert ((factors >= 0.5) & (factors <= 2.0)).all()
    assert (factors.std(dim=1) > 0).all()
    assert torch.allclose(out, x * factors.unsqueeze(-1), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("mains", [50.0, 60.0])
def test_powerline_noise_adds_exactly_one_sinusoid_at_the_mains_frequency(mains: float) -> None:
    x = sines(batch=8, seconds=1.0, hz=3.0)  # whole cycles in 1 s: every sinusoid falls on one FFT bin
    out = PowerlineNoise(frequencies=(mains,), max_amplitude=0.3)(x, seeded(), FS)
    added = (out - x).double()
    spectrum = torch.fft.rfft(added, dim=-1).abs() ** 2  # bins 1 Hz apart
    at_mains = spectrum[..., int(mains)] / spectrum.sum(dim=-1)
    assert (at_mains > 1 - 1e-6).all()
    amplitude = added.abs().amax(dim=-1)
    assert (amplitude <= 0.3 * lead_std(x) + 1e-5).all()
    # One amplitude per sample, as a fraction of each lead's spread: the ratio is shared by the leads.
    relative = added.std(dim=-1) / lead_std(x)
    assert torch.allclose(relative, relative[:, :1].expand_as(relative), rtol=1e-4)


def test_powerline_noise_picks_50_or_60_hz_per_sample() -> None:
    x = sines(batch=32, seconds=1.0, hz=3.0)
    added = PowerlineNoise()(x, seeded(), FS) - x
    peak = torch.fft.rfft(added[:, 0].double(), dim=-1).abs().argmax(dim=-1)
    assert set(peak.tolist()) == {50, 60}


def test_gaussian_noise_is_zero_mean_per_lead_and_bounded_by_the_lead_spread() -> None:
    x = sines(batch=16, seconds=10.0)
    added = GaussianNoise(max_std=0.2)(x, seeded(), FS) - x
    noise_std = lead_std(added)
    assert (noise_std <= 0.2 * lead_std(x) * 1.05).all()
    assert added.mean(dim=-1).abs().max() < 0.02
    # Independent between leads: lead 0 and lead 1 are uncorrelated.
    a, b = added[:, 0], added[:, 1]
    correlation = ((a - a.mean(-1, keepdim=True)) * (b - b.mean(-1, keepdim=True))).mean(-1) / (
        lead_std(a.unsqueeze(1)).squeeze(1) * lead_std(b.unsqueeze(1)).squeeze(1) + 1e-12)
    assert correlation.abs().max() < 0.1


def test_baseline_wander_adds_a_slow_bounded_drift() -> None:
    fs = 100.0
    x = sines(batch=8, seconds=20.0, fs=fs, hz=10.0)
    augment = BaselineWander(max_amplitude=0.4, min_frequency=0.1, max_frequency=0.5, components=2)
    added = (augment(x, seeded(), fs) - x).double()
    assert (added.abs().amax(dim=-1) <= 0.4 * lead_std(x) + 1e-5).all()
    assert (added.abs().amax(dim=-1) > 0).all()
    power = torch.fft.rfft(added, dim=-1).abs() ** 2
    frequencies = torch.fft.rfftfreq(added.shape[-1], d=1 / fs)
    slow = power[..., frequencies <= 1.0].sum(dim=-1) / power.sum(dim=-1)
    assert (slow > 0.97).all()


def test_lead_dropout_zeros_whole_leads_and_keeps_the_others_untouched() -> None:
    x = sines(batch=256, leads=12)
    out = LeadDropout(rate=0.3)(x, seeded(), FS)
    zeroed = (out == 0).all(dim=-1)
    untouched = (out == x).all(dim=-1)
    assert (zeroed ^ untouched).all()
    assert zeroed.float().mean().item() == pytest.approx(0.3, abs=0.03)
    assert (~zeroed).any(dim=1).all()


def test_lead_dropout_keeps_one_lead_when_every_lead_would_go() -> None:
    x = sines(batch=64, leads=12)
    out = LeadDropout(rate=1.0)(x, seeded(), FS)
    kept = (out != 0).any(dim=-1).sum(dim=1)
    assert (kept == 1).all()
    assert LeadDropout(rate=0.0)(x, seeded(), FS).equal(x)


def test_lead_mask_keeps_a_random_number_of_leads_untouched_and_zeros_the_rest() -> None:
    x = sines(batch=400, leads=12)
    out = LeadMask(min_kept=3)(x, seeded(), FS)
    zeroed = (out == 0).all(dim=-1)
    assert (zeroed ^ (out == x).all(dim=-1)).all()
    kept = (~zeroed).sum(dim=1)
    assert set(kept.tolist()) == set(range(3, 13))
    assert LeadMask(min_kept=12)(x, seeded(), FS).equal(x)
    assert (LeadMask(min_kept=20)(x, seeded(), FS) != 0).any(dim=-1).all()  # more than there are: keep all


def test_crop_keeps_a_contiguous_window_resized_to_the_length() -> None:
    x = ramps(batch=64, leads=3, n_samples=200)
    out = RandomResizedCrop(min_fraction=0.5, max_fraction=0.8)(x, seeded(), FS)
    assert out.shape == x.shape
    time = out[:, 0]  # lead 0 holds the time index
    start, end = time[:, 0], time[:, -1]
    length = end - start + 1
    assert (start >= 0).all() and (end <= 199 + 1e-4).all()
    assert torch.allclose(start, start.round()), "the window starts on a sample"
    assert ((length >= 0.5 * 200 - 1) & (length <= 0.8 * 200 + 1)).all()
    # Contiguous and resampled evenly: equally spaced time indices, the same window for every lead.
    steps = time.diff(dim=-1)
    assert torch.allclose(steps, steps[:, :1].expand_as(steps), atol=1e-3)
    assert torch.allclose(out, time.unsqueeze(1) * torch.tensor([1.0, 2.0, 3.0]).view(1, 3, 1), rtol=1e-5)
    assert length.std() > 5  # a window per sample


def test_crop_of_the_whole_record_is_the_identity() -> None:
    x = sines()
    assert RandomResizedCrop(min_fraction=1.0, max_fraction=1.0)(x, seeded(), FS).equal(x)


def test_time_warp_keeps_endpoints_length_and_order_and_warps_every_lead_alike() -> None:
    x = ramps(batch=32, leads=3, n_samples=300)
    out = TimeWarp(sigma=0.5, knots=5)(x, seeded(), FS)
    assert out.shape == x.shape
    assert torch.equal(out[..., 0], x[..., 0]) and torch.equal(out[..., -1], x[..., -1])
    time = out[:, 0]
    assert (time.diff(dim=-1) >= 0).all(), "monotone"
    assert (time - x[:, 0]).abs().amax(dim=-1).min() > 1, "warped, not shifted by rounding only"
    assert torch.allclose(out, time.unsqueeze(1) * torch.tensor([1.0, 2.0, 3.0]).view(1, 3, 1), rtol=1e-5)


def test_time_warp_without_strength_is_the_identity() -> None:
    x = sines()
    assert torch.allclose(TimeWarp(sigma=0.0)(x, seeded(), FS), x, atol=1e-5)


def test_time_mask_zeros_one_contiguous_window_shared_by_the_leads() -> None:
    x = sines(batch=64, hz=0.1) + 5.0  # never zero
    out = TimeMask(max_fraction=0.25)(x, seeded(), FS)
    zero = out == 0
    assert (zero | (out == x)).all()
    assert (zero == zero[:, :1]).all(), "the same window for every lead"
    lengths = zero[:, 0].sum(dim=-1)
    assert (lengths <= 0.25 * x.shape[-1] + 1).all() and lengths.max() > 0
    edges = zero[:, 0].int().diff(dim=-1).abs().sum(dim=-1)
    assert (edges <= 2).all(), "one run of zeros"


# --- every augmentation: shape, dtype, determinism, independence ---------------------------------


@pytest.mark.parametrize("name", sorted(AUGMENTATIONS))
def test_every_augmentation_is_float32_shaped_and_deterministic_under_a_seed(name: str) -> None:
    augment = AUGMENTATIONS[name]()
    x = sines(batch=6, leads=12) + 0.1 * torch.randn(6, 12, 1000, generator=seeded(9))
    first = augment(x, seeded(5), FS)
    assert first.shape == x.shape and first.dtype == torch.float32
    assert augment(x, seeded(5), FS).equal(first)
    assert not augment(x, seeded(6), FS).equal(first)
    # Samples draw independently: identical inputs in one batch come out different.
    same = x[:1].expand(6, -1, -1).contiguous()
    out = augment(same, seeded(5), FS)
    assert not torch.equal(out[0], out[1])
    assert x.equal(sines(batch=6, leads=12) + 0.1 * torch.randn(6, 12, 1000, generator=seeded(9))), "input untouched"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_cpu_generator_gives_the_same_views_on_the_gpu() -> None:
    compose = augmentations_from_config(DEFAULT_SIMCLR_AUGMENTATIONS)
    x = sines(batch=8, leads=12) + 0.1 * torch.randn(8, 12, 1000, generator=seeded(9))
    on_cpu = compose(x, seeded(4), FS)
    on_gpu = compose(x.cuda(), seeded(4), FS)
    assert on_gpu.device.type == "cuda" and on_gpu.dtype == torch.float32
    assert torch.allclose(on_gpu.cpu(), on_cpu, atol=1e-4)
    cuda_generator = torch.Generator(device="cuda").manual_seed(4)
    assert compose(x.cuda(), cuda_generator, FS).shape == x.shape


def test_augmentations_refuse_what_is_not_a_batch() -> None:
    with pytest.raises(EcgcoreError, match="batch"):
        GaussianNoise()(torch.zeros(12, 100), seeded(), FS)
    with pytest.raises(EcgcoreError, match="sampling rate"):
        GaussianNoise()(torch.zeros(2, 12, 100), seeded(), 0.0)
    with pytest.raises(EcgcoreError, match="floating"):
        GaussianNoise()(torch.zeros(2, 12, 100, dtype=torch.int64), seeded(), FS)


# --- Compose and configuration ----------------------------------------------------------------------


def test_compose_applies_each_step_to_each_sample_with_its_probability() -> None:
    x = sines(batch=400)
    never = Compose((AmplitudeScale(low=2.0, high=3.0),), (0.0,))
    assert never(x, seeded(), FS).equal(x)
    sometimes = Compose((AmplitudeScale(low=2.0, high=3.0),), (0.25,))
    changed = ~(sometimes(x, seeded(), FS) == x).all(dim=-1).all(dim=-1)
    assert changed.float().mean().item() == pytest.approx(0.25, abs=0.06)


def test_compose_runs_steps_in_order() -> None:
    x = sines(batch=4) + 1.0
    out = Compose((LeadDropout(rate=1.0), AmplitudeScale(low=2.0, high=2.0)), (1.0, 1.0))(x, seeded(), FS)
    kept = (out != 0).any(dim=-1)
    assert torch.allclose(out[kept], 2 * x[kept])


def test_default_simclr_augmentations_round_trip_and_run_at_any_rate() -> None:
    compose = augmentations_from_config(DEFAULT_SIMCLR_AUGMENTATIONS)
    assert compose.to_config() == DEFAULT_SIMCLR_AUGMENTATIONS
    assert augmentations_from_config(compose.to_config()) == compose
    for fs in (100.0, 500.0):
        x = sines(batch=8, leads=12, seconds=2.0, fs=fs)
        view1, view2 = compose(x, seeded(1), fs), compose(x, seeded(2), fs)
        assert view1.shape == x.shape and view1.dtype == torch.float32 and torch.isfinite(view1).all()
        assert not view1.equal(view2)


def test_config_fills_defaults_and_converts_toml_types() -> None:
    compose = augmentations_from_config([{"name": "amplitude_scale", "low": 1, "high": 2},
                                         {"name": "powerline_noise", "frequencies": [60], "p": 0.5}])
    assert compose.steps == (AmplitudeScale(low=1.0, high=2.0), PowerlineNoise(frequencies=(60.0,)))
    assert compose.p == (1.0, 0.5)
    assert compose.to_config() == [
        {"name": "amplitude_scale", "low": 1.0, "high": 2.0, "per_lead": False, "p": 1.0},
        {"name": "powerline_noise", "frequencies": [60.0], "max_amplitude": 0.2, "p": 0.5},
    ]


@pytest.mark.parametrize(("item", "named"), [
    ({"name": "mixup"}, "mixup"),
    ({"name": "crop", "scale": 0.5}, "scale"),
    ({"name": "crop", "min_fraction": "half"}, "min_fraction"),
    ({"name": "lead_dropout", "rate": 1.5}, "rate"),
    ({"name": "time_warp", "knots": 2.5}, "knots"),
    ({"name": "gaussian_noise", "p": 2}, "p"),
    ({"name": "amplitude_scale", "per_lead": 1}, "per_lead"),
    ({"rate": 0.1}, "name"),
])
def test_config_errors_name_what_is_wrong(item: dict[str, object], named: str) -> None:
    with pytest.raises(EcgcoreError, match=named):
        augmentations_from_config([item])
