"""`PrepConfig`: every preprocessing setting, as one frozen, JSON-serialisable value.

It is stored in every run's config and model file, and it is part of the cache
key, so two runs that say the same config get the same prepared array.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

from ecgcore.data.recordset import STANDARD_LEADS

CROP_MODES: tuple[str, ...] = ("first", "centre", "pad")
RESAMPLE_METHODS: tuple[str, ...] = ("polyphase", "decimate", "fft")
NORMALIZATIONS: tuple[str, ...] = ("none", "zscore", "minmax", "standard", "zscore_all")
PER_RECORD_NORMALIZATIONS: tuple[str, ...] = ("zscore", "minmax", "zscore_all")
MISSING_LEAD_POLICIES: tuple[str, ...] = ("zero", "drop")
FILTER_DESIGNS: tuple[str, ...] = ("sos", "ba")

# Settings added after configs were first stored, with their defaults: `to_dict` writes
# them only when set otherwise, so configs, run hashes and cache keys made before they
# existed stay what they were.
_LATER_SETTINGS: dict[str, Any] = {"normalize_before_crop": False, "notch_q": 30.0,
                                   "filter_design": "sos", "baseline_median_s": None}


@dataclass(frozen=True)
class PrepConfig:
    """How raw records become rows of the prepared array X (n_records, n_leads, T).

    fs            target sampling rate in Hz (e.g. 100 or 500)
    seconds       window length; T = round(seconds * fs)
    crop          "first" window, "centre" window, or "pad": keep the whole record,
                  T = the longest record (at least `seconds`, at most `max_seconds`)
    min_seconds   drop records shorter than this (Nguyen & Do drop records < 10 s);
                  None keeps them, zero-padded at the end and flagged `padded`
    max_seconds   cap on T in "pad" mode (longer records are cut and flagged)
    resample      "polyphase" (anti-aliased, scipy.signal.resample_poly, any rational
                  ratio such as 257 -> 100 Hz), "decimate" (signal[::ratio] with no
                  filter, paper-exact; integer ratios only) or "fft" (scipy.signal.resample
                  of the whole record to int(n * fs / fs_in) samples, ECG-JEPA's; the
                  window is cut after, so on records longer than the window its ends can
                  differ slightly from resampling only the window)
    normalize     "none"; "zscore" per record per lead; "minmax" per record per lead to
                  [-1, 1] (flat lead -> 0); "zscore_all": one mean and std over all leads
                  together, (x - mean) / (std + 1e-8) (ECGFounder's); "standard": a
                  dataset-level scaler fitted on the training split only -- not applied
                  here, see `fit_standard_scaler`
    bandpass      None or (low_hz, high_hz): zero-phase Butterworth of `filter_order`;
                  low 0 means low-pass only
    filter_design "sos" (second-order sections, sosfiltfilt) or "ba" (one transfer
                  function and filtfilt, as ECGFounder's code filters)
    notch_hz      None or the powerline frequency to remove (zero-phase IIR notch)
    notch_q       the notch's quality factor (scipy.signal.iirnotch's Q; 30 by default)
    baseline_median_s
                  None, or remove baseline wander by subtracting a running median of
                  int(baseline_median_s * fs_in) + 1 samples (made odd), after the other
                  filters and at the record's own rate (ECGFounder: 0.4 s)
    leads         output lead order; names matched case-insensitively with aliases
    missing_leads "zero": zero-fill and record it in the lead mask; "drop": drop the record
    normalize_before_crop
                  False (default): "zscore"/"minmax" statistics come from the final window
                  (padding excluded). True: from the whole resampled record, which is then
                  cut or padded -- ecglib's order (Normalization, then Padding to 10 s;
                  Avetisyan et al. 2024). The two differ for records longer than the
                  window; shorter ones come out the same (the padding stays 0 either way).
    """

    fs: float = 100.0
    seconds: float = 10.0
    crop: str = "first"
    min_seconds: float | None = None
    max_seconds: float = 60.0
    resample: str = "polyphase"
    normalize: str = "none"
    bandpass: tuple[float, float] | None = None
    filter_order: int = 3
    notch_hz: float | None = None
    leads: tuple[str, ...] = STANDARD_LEADS
    missing_leads: str = "zero"
    normalize_before_crop: bool = False
    notch_q: float = 30.0
    filter_design: str = "sos"
    baseline_median_s: float | None = None

    def __post_init__(self) -> None:
        # JSON gives lists and ints: store one canonical form so equal configs hash equally.
        object.__setattr__(self, "fs", float(self.fs))
        object.__setattr__(self, "seconds", float(self.seconds))
        object.__setattr__(self, "max_seconds", float(self.max_seconds))
        object.__setattr__(self, "leads", tuple(str(lead) for lead in self.leads))
        if self.min_seconds is not None:
            object.__setattr__(self, "min_seconds", float(self.min_seconds))
        if self.notch_hz is not None:
            object.__setattr__(self, "notch_hz", float(self.notch_hz))
        object.__setattr__(self, "notch_q", float(self.notch_q))
        if self.baseline_median_s is not None:
            object.__setattr__(self, "baseline_median_s", float(self.baseline_median_s))
        if self.bandpass is not None:
            band = tuple(float(v) for v in self.bandpass)
            object.__setattr__(self, "bandpass", band)
        self._validate()

    def _validate(self) -> None:
        def need(ok: bool, message: str) -> None:
            if not ok:
                raise ValueError(f"PrepConfig: {message}")

        need(self.fs > 0 and math.isfinite(self.fs), f"fs must be a positive rate, got {self.fs}")
        need(self.seconds > 0, f"seconds must be positive, got {self.seconds}")
        need(self.window >= 1, f"fs * seconds gives no samples ({self.fs} Hz x {self.seconds} s)")
        need(self.max_seconds >= self.seconds,
             f"max_seconds ({self.max_seconds}) must be at least seconds ({self.seconds})")
        need(self.crop in CROP_MODES, f"crop must be one of {CROP_MODES}, got {self.crop!r}")
        need(self.resample in RESAMPLE_METHODS,
             f"resample must be one of {RESAMPLE_METHODS}, got {self.resample!r}")
        need(self.normalize in NORMALIZATIONS,
             f"normalize must be one of {NORMALIZATIONS}, got {self.normalize!r}")
        need(self.missing_leads in MISSING_LEAD_POLICIES,
             f"missing_leads must be one of {MISSING_LEAD_POLICIES}, got {self.missing_leads!r}")
        need(self.min_seconds is None or self.min_seconds >= 0, "min_seconds must be >= 0")
        need(len(self.leads) > 0, "leads must name at least one lead")
        need(len({lead.lower() for lead in self.leads}) == len(self.leads),
             f"leads must be unique, got {self.leads}")
        need(self.filter_order >= 1, f"filter_order must be >= 1, got {self.filter_order}")
        need(isinstance(self.normalize_before_crop, bool),
             f"normalize_before_crop must be true or false, got {self.normalize_before_crop!r}")
        need(not self.normalize_before_crop or self.normalize in PER_RECORD_NORMALIZATIONS,
             f"normalize_before_crop needs a per-record normalize {PER_RECORD_NORMALIZATIONS}, "
             f"got {self.normalize!r}")
        if self.bandpass is not None:
            need(len(self.bandpass) == 2, f"bandpass must be (low_hz, high_hz), got {self.bandpass}")
            low, high = self.bandpass
            need(0 <= low < high, f"bandpass needs 0 <= low < high, got {self.bandpass}")
        if self.notch_hz is not None:
            need(self.notch_hz > 0, f"notch_hz must be positive, got {self.notch_hz}")
        need(self.notch_q > 0 and math.isfinite(self.notch_q), f"notch_q must be positive, got {self.notch_q}")
        need(self.filter_design in FILTER_DESIGNS,
             f"filter_design must be one of {FILTER_DESIGNS}, got {self.filter_design!r}")
        if self.baseline_median_s is not None:
            need(self.baseline_median_s > 0 and math.isfinite(self.baseline_median_s),
                 f"baseline_median_s must be a positive duration, got {self.baseline_median_s}")

    @property
    def window(self) -> int:
        """Samples per lead in "first"/"centre" mode (and the minimum in "pad" mode)."""
        return int(round(self.seconds * self.fs))

    @property
    def max_window(self) -> int:
        return int(round(self.max_seconds * self.fs))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types (tuples become lists)."""
        data = asdict(self)
        data["leads"] = list(self.leads)
        data["bandpass"] = list(self.bandpass) if self.bandpass is not None else None
        for name, default in _LATER_SETTINGS.items():
            if data[name] == default:
                del data[name]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "PrepConfig":
        """Inverse of `to_dict`; unknown keys are an error (a typo must not pass silently)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"PrepConfig: unknown settings {unknown}; known: {sorted(known)}")
        return cls(**data)
