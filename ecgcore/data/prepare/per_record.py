"""One record through the pipeline: leads -> NaN repair -> filters (notch, band-pass, median
baseline) -> resample -> window -> scale.

The order matters: NaNs are repaired before any filter (a filter would smear
them over the whole lead), filters run at the record's own rate (a 50 Hz
powerline notch is impossible after resampling to 100 Hz), and per-record
scaling is computed on the final window, padding excluded (or, with
`normalize_before_crop`, on the whole resampled record before the window is cut,
as ecglib does).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ecgcore.data.prepare import signal_ops as ops
from ecgcore.data.prepare.config import PrepConfig
from ecgcore.data.recordset import Signal
from ecgcore.errors import RecordError


@dataclass(frozen=True)
class RecordInfo:
    """What happened to one kept record (one row of the cache's status table)."""

    fs_in: float
    n_samples_in: int
    n_valid: int            # samples of real signal in the window (the rest is zero padding)
    padded: bool            # the record was shorter than the window
    truncated: bool         # "pad" mode only: the record was longer than max_seconds
    nan_interpolated: int   # samples repaired by linear interpolation
    nan_leads: tuple[str, ...]      # leads with no finite sample (zeroed)
    missing_leads: tuple[str, ...]  # wanted leads the record does not have (zeroed)
    lead_mask: tuple[bool, ...]     # per output lead: real signal present


def preprocess_signal(signal: Signal, config: PrepConfig, length: int,
                      record_id: str) -> tuple[np.ndarray, RecordInfo]:
    """(window (len(config.leads), length) float32, info); raises RecordError when the
    record must be dropped (the reason names what is wrong)."""
    data = np.asarray(signal.data)
    if data.ndim != 2 or data.shape[1] == 0:
        raise RecordError(record_id, f"no samples (signal shape {data.shape})")
    fs_in = float(signal.fs)
    if not fs_in > 0:
        raise RecordError(record_id, f"invalid sampling rate {signal.fs!r}")
    n_in = data.shape[1]
    if config.min_seconds is not None and n_in / fs_in < config.min_seconds - 1e-9:
        raise RecordError(record_id, f"shorter than min_seconds: {n_in / fs_in:.2f} s "
                                     f"< {config.min_seconds:g} s")
    if len(signal.leads) != data.shape[0]:
        raise RecordError(record_id, f"{data.shape[0]} signal rows but {len(signal.leads)} lead names")

    data, present = ops.select_leads(data, tuple(signal.leads), config.leads)
    missing = tuple(lead for lead, ok in zip(config.leads, present) if not ok)
    if not present.any():
        raise RecordError(record_id, f"none of the wanted leads is in the record "
                                     f"(has {', '.join(signal.leads)})")
    if missing and config.missing_leads == "drop":
        raise RecordError(record_id, f"missing leads {', '.join(missing)} (has {', '.join(signal.leads)})")
    data = data.astype(np.float32, copy=False)

    data, n_fixed, dead = ops.interpolate_nonfinite(data)
    dead &= present
    if present.any() and dead[present].all():
        raise RecordError(record_id, "every lead is NaN/inf (no finite sample at all)")
    nan_leads = tuple(lead for lead, d in zip(config.leads, dead) if d)

    if config.filter_design == "ba":
        # ECGFounder filters wfdb's float64 samples; its (b, a) band-pass amplifies the
        # rounding of a float32 input about twenty-fold, so that chain runs in float64.
        data = data.astype(np.float64)
    if config.notch_hz is not None:
        data = ops.notch(data, fs_in, config.notch_hz, config.notch_q)
    if config.bandpass is not None:
        try:
            data = ops.bandpass(data, fs_in, *config.bandpass, order=config.filter_order,
                                design=config.filter_design)
        except ValueError as exc:
            raise RecordError(record_id, str(exc)) from exc
    if config.baseline_median_s is not None:
        data = ops.remove_median_baseline(data, fs_in, config.baseline_median_s)
    data = data.astype(np.float32, copy=False)

    try:
        data = ops.resample(data, fs_in, config.fs, config.resample)
    except ValueError as exc:
        raise RecordError(record_id, str(exc)) from exc

    scaler = ops.PER_RECORD_SCALERS.get(config.normalize)
    if scaler is not None and config.normalize_before_crop:
        # ecglib's order: statistics of the whole record, then the window (a copy: `data`
        # may still be the caller's array)
        data = scaler(np.array(data, dtype=np.float32), data.shape[1])
    window, valid = ops.crop_or_pad(data, length, config.crop)
    if scaler is not None and not config.normalize_before_crop:
        window = scaler(window, valid)

    mask = present & ~dead
    window[~mask] = 0.0
    info = RecordInfo(
        fs_in=fs_in, n_samples_in=n_in, n_valid=valid, padded=valid < length,
        truncated=config.crop == "pad" and data.shape[1] > length,
        nan_interpolated=n_fixed, nan_leads=nan_leads, missing_leads=missing,
        lead_mask=tuple(bool(m) for m in mask),
    )
    return window, info


def window_length(fs_and_lengths: list[tuple[float, int]], config: PrepConfig) -> int:
    """T of the prepared array: the configured window, or in "pad" mode the longest
    record after resampling (at least `seconds`, at most `max_seconds`). Records whose
    rate cannot be decimated are left out (they will be dropped with that reason)."""
    if config.crop != "pad":
        return config.window
    longest = 0
    for fs, n in fs_and_lengths:
        try:
            longest = max(longest, ops.resampled_length(int(n), float(fs), config.fs, config.resample))
        except ValueError:
            continue
    return int(min(max(longest, config.window), config.max_window))
