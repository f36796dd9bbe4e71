"""What a real recording adds to the heart's signal, per recorded channel.

Noise is added to the channels an electrocardiograph measures (I, II, V1–V6)
after projection; the device then derives III, aVR, aVL and aVF from I and II,
so the limb-lead identities keep holding on noisy data, as on real recordings.

Sources (all scaled per site, then per record by a log-normal factor so some
records are clean and some are poor):
- baseline wander: respiration (0.15–0.4 Hz) plus slow electrode drift;
- powerline interference at the site's mains frequency (50 or 60 Hz) with a
  weak third harmonic, its amplitude differing per channel (electrode contact);
- muscle (EMG) noise: white Gaussian, per channel;
- motion bursts: a few short high-amplitude, low-frequency transients.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import lfilter


@dataclass(frozen=True)
class NoiseLevels:
    """One site's typical noise (mV, Hz). A record draws its own levels around these."""

    wander_mv: float
    powerline_mv: float
    powerline_hz: float
    emg_mv: float
    burst_prob: float


def device_highpass(recorded: np.ndarray, fs: float, cutoff_hz: float) -> np.ndarray:
    """A recorder's analogue-style single-pole high-pass (causal). Older or
    monitoring-grade devices use 0.5 Hz instead of the diagnostic 0.05 Hz: it
    removes wander but tilts and distorts the ST segment and T wave, a classic
    difference between hospitals' recordings. `cutoff_hz <= 0` leaves the signal."""
    if cutoff_hz <= 0:
        return recorded
    a = 1.0 / (1.0 + 2 * np.pi * cutoff_hz / fs)
    # y[n] = a (y[n-1] + x[n] - x[n-1]), started at rest on the first sample.
    shifted = recorded - recorded[:, :1]
    return lfilter([a, -a], [1.0, -a], shifted, axis=1)


@dataclass(frozen=True)
class NoiseReport:
    """What the record got: used to fill quality columns such as PTB-XL's."""

    wander_mv: float
    powerline_mv: float
    emg_mv: float
    bursts: int


def add_noise(recorded: np.ndarray, fs: float, levels: NoiseLevels,
              rng: np.random.Generator) -> tuple[np.ndarray, NoiseReport]:
    """Return recorded channels (n_channels, n) with noise added, and what was added."""
    n_ch, n = recorded.shape
    t = np.arange(n) / fs
    quality = rng.lognormal(0.0, 0.4)
    wander = levels.wander_mv * quality
    mains = levels.powerline_mv * rng.lognormal(0.0, 0.6)
    emg = levels.emg_mv * quality
    out = recorded.copy()

    # Baseline wander: a respiratory component and two slow electrode drifts,
    # mixed into each channel with its own weights (sines computed once, mixed
    # by a small matrix product: the cheap way to give every channel its own).
    basis = np.sin(2 * np.pi * np.array([[rng.uniform(0.15, 0.4)], [rng.uniform(0.03, 0.08)],
                                         [rng.uniform(0.08, 0.15)]]) * t[None, :]
                   + rng.uniform(0, 2 * np.pi, size=(3, 1)))
    out += wander * (rng.uniform(-0.8, 0.8, size=(n_ch, 3)) @ basis)

    # Powerline: one mains phase, per-channel amplitude; aliases like a real ADC
    # would if the site samples below twice the mains frequency.
    if mains > 0 and levels.powerline_hz > 0:
        hz = levels.powerline_hz + rng.uniform(-0.05, 0.05)
        phase = rng.uniform(0, 2 * np.pi)
        line = np.sin(2 * np.pi * hz * t + phase) + 0.15 * np.sin(2 * np.pi * 3 * hz * t + 3 * phase)
        out += mains * rng.uniform(0.3, 1.0, size=(n_ch, 1)) * line[None, :]

    # Muscle noise.
    out += emg * rng.uniform(0.5, 1.2, size=(n_ch, 1)) * rng.standard_normal((n_ch, n),
                                                                           dtype=np.float32)

    # Motion bursts: Gaussian-windowed low-frequency transients on some channels.
    bursts = int(rng.random() < levels.burst_prob) * int(rng.integers(1, 3))
    for _ in range(bursts):
        centre = rng.uniform(0.5, n / fs - 0.5)
        width = rng.uniform(0.1, 0.4)
        shape = np.exp(-0.5 * ((t - centre) / width) ** 2) * np.sin(2 * np.pi * rng.uniform(1, 4) * t)
        out += rng.uniform(0.2, 1.0) * rng.uniform(-1, 1, size=(n_ch, 1)) * shape[None, :]

    return out, NoiseReport(wander_mv=float(wander), powerline_mv=float(mains),
                            emg_mv=float(emg), bursts=bursts)
