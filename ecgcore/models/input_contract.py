"""What a published model expects of its input, declared as data beside its architecture.

A foundation model's weights are only meaningful on signals prepared the way its authors
prepared them: their sampling rate, length, lead set and order, filters and normalisation.
Each such model module declares one `InputContract` (read from the model's own data code,
whose URL is `source`), so the engine prepares every run of that architecture by it
(`prep_config`), Launch can show it (the prose fields), and every run can store it (`to_dict`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from ecgcore.data.prepare.config import PER_RECORD_NORMALIZATIONS, PrepConfig

_NORMALIZATIONS = ("none", *PER_RECORD_NORMALIZATIONS)


@dataclass(frozen=True)
class InputContract:
    """fs (Hz) and n_samples of the model's input; `leads` in the order of its input
    channels; `filtering` in words with its numbers in `filter_parameters` (empty when the
    model's data code applies no filter); `normalisation` in words; `source` the URL of the
    data code these facts were read from.

    The machine-readable preparation, in `PrepConfig`'s terms (see its docstring), is what
    `prep_config` imposes: `resample` method, `notch_hz` / `notch_q`, `bandpass` with
    `filter_order` and `filter_design`, `baseline_median_s`, and `normalize` (a per-record
    one, or "none": a contract cannot depend on the dataset it is applied to)."""

    fs: int
    n_samples: int
    leads: tuple[str, ...]
    filtering: str
    normalisation: str
    source: str
    filter_parameters: dict[str, Any] = field(default_factory=dict)
    resample: str = "polyphase"
    notch_hz: float | None = None
    notch_q: float = 30.0
    bandpass: tuple[float, float] | None = None
    filter_order: int = 3
    filter_design: str = "sos"
    baseline_median_s: float | None = None
    normalize: str = "none"

    def __post_init__(self) -> None:
        if self.fs <= 0 or self.n_samples <= 0:
            raise ValueError(f"fs and n_samples must be positive, got fs={self.fs}, n_samples={self.n_samples}")
        if not self.leads or len(set(self.leads)) != len(self.leads):
            raise ValueError(f"leads must be a non-empty list without repeats, got {self.leads}")
        if self.bandpass is not None:
            object.__setattr__(self, "bandpass", tuple(float(v) for v in self.bandpass))
        if self.normalize not in _NORMALIZATIONS:
            raise ValueError(f"a contract's normalize must be one of {_NORMALIZATIONS}, got {self.normalize!r}")
        # Every other setting is checked by the PrepConfig it makes: a contract that cannot
        # be applied is refused where it is declared, not when a run first uses it.
        self.prep_config(PrepConfig())

    @property
    def duration_s(self) -> float:
        return self.n_samples / self.fs

    def prep_config(self, base: PrepConfig) -> PrepConfig:
        """`base` with this contract imposed: rate, window (the first n_samples / fs seconds),
        leads, resampling, filters and normalisation. The rest of `base` is kept (min_seconds,
        missing_leads, and max_seconds, raised to the window when shorter)."""
        seconds = self.n_samples / self.fs
        prep = replace(base, fs=self.fs, seconds=seconds, crop="first", max_seconds=max(base.max_seconds, seconds),
                       leads=self.leads, resample=self.resample, notch_hz=self.notch_hz, notch_q=self.notch_q,
                       bandpass=self.bandpass, filter_order=self.filter_order, filter_design=self.filter_design,
                       baseline_median_s=self.baseline_median_s, normalize=self.normalize,
                       normalize_before_crop=False)
        if prep.window != self.n_samples:
            raise ValueError(f"{self.n_samples} samples at {self.fs} Hz give a window of {prep.window}")
        return prep

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, for run records and cache keys."""
        return {"fs": self.fs, "n_samples": self.n_samples, "leads": list(self.leads),
                "filtering": self.filtering, "filter_parameters": dict(self.filter_parameters),
                "normalisation": self.normalisation, "source": self.source,
                "resample": self.resample, "notch_hz": self.notch_hz, "notch_q": self.notch_q,
                "bandpass": list(self.bandpass) if self.bandpass is not None else None,
                "filter_order": self.filter_order, "filter_design": self.filter_design,
                "baseline_median_s": self.baseline_median_s, "normalize": self.normalize}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InputContract:
        """Inverse of `to_dict`."""
        return cls(**{**data, "leads": tuple(data["leads"]),
                      "bandpass": tuple(data["bandpass"]) if data.get("bandpass") is not None else None})
