"""Pure operations on one record's samples, shape (n_leads, n_samples).

Each function does one step of the preprocessing pipeline and knows nothing
about files or caches, so it can be tested on hand-made arrays. Filtering and
resampling are scipy's; only lead matching, NaN interpolation, cropping and
per-lead scaling are written here (they are a few lines of numpy each).

`scipy.signal` is imported inside the functions that need it: importing it costs
about a second, which every joblib worker would otherwise pay even when the
records already have the target rate and no filter is asked for.
"""

from __future__ import annotations

import math
from fractions import Fraction
from functools import lru_cache

import numpy as np

from ecgcore.data.prepare.config import FILTER_DESIGNS
from ecgcore.data.recordset import STANDARD_LEADS

# ------------------------------------------------------------------ leads

# Spellings met in the wild for the standard leads (CODE-15% and many Brazilian/
# Spanish sets write DI/DII/DIII; PTB writes lower case; some headers say "Lead I").
_LEAD_ALIASES: dict[str, str] = {"di": "I", "dii": "II", "diii": "III"}
_CANONICAL: dict[str, str] = {name.lower(): name for name in STANDARD_LEADS} | _LEAD_ALIASES


def canonical_lead(name: str) -> str:
    """The standard spelling of a lead name ("avr" -> "aVR", "DII" -> "II", "Lead V1" -> "V1");
    names that are no standard lead (e.g. Frank "vx") come back stripped but unchanged."""
    key = name.strip().lower().replace(" ", "").replace("_", "")
    if key.startswith("lead") and key[4:] in _CANONICAL:
        key = key[4:]
    return _CANONICAL.get(key, name.strip())


@lru_cache(maxsize=256)
def lead_indices(names_in: tuple[str, ...], names_out: tuple[str, ...]) -> tuple[int, ...]:
    """For each wanted lead, its row in the input (-1 when absent). The first of
    duplicate names wins. Cached: a dataset has only a few distinct lead lists."""
    position: dict[str, int] = {}
    for i, name in enumerate(names_in):
        position.setdefault(canonical_lead(name).lower(), i)
    return tuple(position.get(canonical_lead(name).lower(), -1) for name in names_out)


def select_leads(data: np.ndarray, names_in: tuple[str, ...],
                 names_out: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Reorder rows to `names_out`; absent leads become zero rows.
    Returns (array (len(names_out), n), present mask)."""
    index = lead_indices(tuple(names_in), tuple(names_out))
    present = np.array([i >= 0 for i in index], dtype=bool)
    if index == tuple(range(data.shape[0])):
        return data, present
    if present.all():
        return data[list(index)], present
    out = np.zeros((len(names_out), data.shape[1]), dtype=data.dtype)
    for row, i in enumerate(index):
        if i >= 0:
            out[row] = data[i]
    return out, present


# ------------------------------------------------------------------ NaN / inf

def interpolate_nonfinite(data: np.ndarray) -> tuple[np.ndarray, int, np.ndarray]:
    """Replace NaN/inf runs in each lead by linear interpolation between the
    nearest finite neighbours (edges take the nearest finite value).
    A lead with no finite sample becomes zeros. Returns (data, number of samples
    interpolated, mask of leads that had no finite sample)."""
    finite = np.isfinite(data)
    dead = np.zeros(data.shape[0], dtype=bool)
    if finite.all():
        return data, 0, dead
    out = data.copy()
    n_fixed = 0
    positions = np.arange(data.shape[1])
    for lead in np.flatnonzero(~finite.all(axis=1)):
        good = finite[lead]
        if not good.any():
            out[lead] = 0.0
            dead[lead] = True
            continue
        bad = ~good
        out[lead, bad] = np.interp(positions[bad], positions[good], data[lead, good])
        n_fixed += int(bad.sum())
    return out, n_fixed, dead


# ------------------------------------------------------------------ filters

def _in_precision_of(result: np.ndarray, data: np.ndarray) -> np.ndarray:
    """A filter's output as float64 when its input was (a chain kept in double precision,
    as the reference code of an ill-conditioned filter computes), float32 otherwise."""
    return result.astype(np.float64 if data.dtype == np.float64 else np.float32, copy=False)


@lru_cache(maxsize=64)
def _butter(low: float, high: float, order: int, fs: float,
            design: str) -> np.ndarray | tuple[np.ndarray, np.ndarray] | None:
    """Band-pass design, as second-order sections ("sos") or one transfer function ("ba");
    degrades to high- or low-pass when one edge is out of range (low 0, or high at/above
    Nyquist -- there is nothing to remove up there)."""
    from scipy import signal as sps

    if design not in FILTER_DESIGNS:
        raise ValueError(f"unknown filter design {design!r} ({' | '.join(FILTER_DESIGNS)})")
    nyquist = fs / 2.0
    has_low = low > 0
    has_high = high < 0.99 * nyquist
    if has_low and low >= 0.99 * nyquist:
        raise ValueError(f"band-pass low edge {low} Hz is above the Nyquist rate of a {fs} Hz record")
    if has_low and has_high:
        return sps.butter(order, [low, high], btype="bandpass", fs=fs, output=design)
    if has_low:
        return sps.butter(order, low, btype="highpass", fs=fs, output=design)
    if has_high:
        return sps.butter(order, high, btype="lowpass", fs=fs, output=design)
    return None


def bandpass(data: np.ndarray, fs: float, low: float, high: float, order: int = 3,
             design: str = "sos") -> np.ndarray:
    """Zero-phase Butterworth band-pass (forward-backward, so no phase shift of the QRS).

    design "sos": second-order sections and `sosfiltfilt` (numerically safe at any rate);
    "ba": one (b, a) polynomial and `filtfilt`, as ECGFounder's `util.filter_bandpass`
    does -- kept for its contract, since a model's input should be filtered exactly as in
    its training (the two agree to ~1e-6 at 500 Hz, but "ba" loses accuracy at high rates
    with low edges). Both pad with scipy's odd extension of its default length for the
    design (27 samples for a 4th-order band-pass; less on records too short for that)."""
    from scipy import signal as sps

    designed = _butter(float(low), float(high), int(order), float(fs), design)
    if designed is None or data.shape[1] < 2:
        return data
    if design == "ba":
        b, a = designed
        padlen = min(3 * max(len(a), len(b)), data.shape[1] - 1)
        return _in_precision_of(sps.filtfilt(b, a, data, axis=1, padlen=padlen), data)
    padlen = min(3 * (2 * len(designed) + 1), data.shape[1] - 1)
    return _in_precision_of(sps.sosfiltfilt(designed, data, axis=1, padlen=padlen), data)


@lru_cache(maxsize=16)
def _notch_ba(freq: float, fs: float, quality: float) -> tuple[np.ndarray, np.ndarray]:
    from scipy import signal as sps

    return sps.iirnotch(freq, quality, fs=fs)


def notch(data: np.ndarray, fs: float, freq: float, quality: float = 30.0) -> np.ndarray:
    """Zero-phase notch at the powerline frequency; a no-op when it is at/above Nyquist."""
    if freq >= fs / 2.0 or data.shape[1] < 2:
        return data
    from scipy import signal as sps

    b, a = _notch_ba(float(freq), float(fs), float(quality))
    padlen = min(3 * max(len(a), len(b)), data.shape[1] - 1)
    return _in_precision_of(sps.filtfilt(b, a, data, axis=1, padlen=padlen), data)


def median_kernel(fs: float, seconds: float) -> int:
    """ECGFounder's kernel for `seconds` of baseline at `fs`: int(seconds * fs) + 1, made odd
    (201 samples for 0.4 s at 500 Hz)."""
    kernel = int(seconds * fs) + 1
    return kernel if kernel % 2 else kernel + 1


def remove_median_baseline(data: np.ndarray, fs: float, seconds: float) -> np.ndarray:
    """Subtract each lead's running median (scipy.signal.medfilt, whose window is zero-padded
    at the ends) over `median_kernel(fs, seconds)` samples: baseline-wander removal as in
    ECGFounder's `util.filter_bandpass`."""
    from scipy import signal as sps

    kernel = median_kernel(fs, seconds)
    out = _in_precision_of(np.empty(data.shape), data)
    for lead in range(data.shape[0]):
        out[lead] = data[lead] - sps.medfilt(data[lead], kernel_size=kernel)
    return out


# ------------------------------------------------------------------ resampling

def rational_ratio(fs_in: float, fs_out: float) -> tuple[int, int]:
    """(up, down) with fs_out / fs_in == up / down, e.g. 257 -> 100 Hz is (100, 257)."""
    ratio = Fraction(fs_out).limit_denominator(1000) / Fraction(fs_in).limit_denominator(1000)
    ratio = ratio.limit_denominator(5000)
    return ratio.numerator, ratio.denominator


def decimation_step(fs_in: float, fs_out: float) -> int:
    """The integer step of plain decimation; ValueError with the reason otherwise."""
    step = fs_in / fs_out
    if step < 1 or abs(step - round(step)) > 1e-9:
        raise ValueError(
            f"decimate needs an integer ratio, but {fs_in:g} Hz -> {fs_out:g} Hz is {step:.4g}; "
            "use resample='polyphase'")
    return int(round(step))


def resampled_length(n_samples: int, fs_in: float, fs_out: float, method: str) -> int:
    """Samples after `resample` (without reading the signal: used to size the cache)."""
    if fs_in == fs_out:
        return n_samples
    if method == "fft":
        # ECG-JEPA's ecg_data.py: int((fs_out / fs_in) * n), at least one sample
        return max(1, int(fs_out / fs_in * n_samples))
    if method == "decimate":
        return math.ceil(n_samples / decimation_step(fs_in, fs_out))
    up, down = rational_ratio(fs_in, fs_out)
    return math.ceil(n_samples * up / down)


def resample(data: np.ndarray, fs_in: float, fs_out: float, method: str = "polyphase") -> np.ndarray:
    """"polyphase": scipy's resample_poly (FIR anti-alias filter, any rational ratio);
    "decimate": signal[:, ::step] as Nguyen & Do do (aliases anything above the new Nyquist);
    "fft": scipy.signal.resample of the whole record to `resampled_length` samples (Fourier
    truncation or zero-padding, which treats the record as periodic), as ECG-JEPA does.
    Equal rates return the input untouched."""
    if fs_in == fs_out:
        return data
    if method == "decimate":
        return data[:, :: decimation_step(fs_in, fs_out)]
    from scipy import signal as sps

    if method == "fft":
        n_out = resampled_length(data.shape[1], fs_in, fs_out, method)
        return sps.resample(data, n_out, axis=1).astype(np.float32, copy=False)
    if method != "polyphase":
        raise ValueError(f"unknown resampling method {method!r} (polyphase | decimate | fft)")
    up, down = rational_ratio(fs_in, fs_out)
    return sps.resample_poly(data, up, down, axis=1).astype(np.float32, copy=False)


# ------------------------------------------------------------------ crop / pad

def crop_or_pad(data: np.ndarray, length: int, mode: str) -> tuple[np.ndarray, int]:
    """Cut a window of `length` samples ("first": from the start; "centre": the middle;
    "pad": from the start, the caller sizing `length` to the longest record) and zero-pad
    shorter records at the end. Returns (window (n_leads, length) float32, valid samples)."""
    n = data.shape[1]
    start = (n - length) // 2 if (mode == "centre" and n > length) else 0
    valid = min(n - start, length)
    out = np.zeros((data.shape[0], length), dtype=np.float32)
    out[:, :valid] = data[:, start:start + valid]
    return out, valid


# ------------------------------------------------------------------ per-record scaling

# Kept by hand: per lead over the valid part only (padding stays 0), which sklearn's scalers cannot mask.
def zscore(window: np.ndarray, valid: int) -> np.ndarray:
    """Per-lead (x - mean) / std over the valid part; flat leads -> 0; padding stays 0."""
    part = window[:, :valid].astype(np.float64)
    mean = part.mean(axis=1, keepdims=True)
    std = part.std(axis=1, keepdims=True)
    scaled = np.where(std > 1e-12, (part - mean) / np.where(std > 1e-12, std, 1.0), 0.0)
    window[:, :valid] = scaled
    return window


def minmax(window: np.ndarray, valid: int) -> np.ndarray:
    """Per-lead scaling of the valid part to [-1, 1] (Nguyen & Do's MinMaxScaler((-1, 1))
    fitted per record per lead). Flat leads -> 0 (sklearn would give -1; 0 keeps a
    zero-filled missing lead at zero). Padding stays 0."""
    part = window[:, :valid].astype(np.float64)
    low = part.min(axis=1, keepdims=True)
    span = part.max(axis=1, keepdims=True) - low
    flat = span <= 1e-12
    scaled = np.where(flat, 0.0, 2.0 * (part - low) / np.where(flat, 1.0, span) - 1.0)
    window[:, :valid] = scaled
    return window


def zscore_all(window: np.ndarray, valid: int) -> np.ndarray:
    """ECGFounder's z-score: one mean and one std over every lead of the valid part together,
    (x - mean) / (std + 1e-8), so the leads keep their relative amplitudes. Zero-filled
    absent leads count in the statistics, as zeros would in the reference. Padding stays 0."""
    part = window[:, :valid].astype(np.float64)
    window[:, :valid] = (part - part.mean()) / (part.std() + 1e-8)
    return window


PER_RECORD_SCALERS = {"zscore": zscore, "minmax": minmax, "zscore_all": zscore_all}
