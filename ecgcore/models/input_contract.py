"""What a published model expects of its input, declared as data beside its architecture.

A foundation model's weights are only meaningful on signals prepared the way its authors
prepared them: their sampling rate, length, lead set and order, filters and normalisation.
Each such model module declares one `InputContract` (read from the model's own data code,
whose URL is `source`), so the engine can apply it when preparing data for that source,
Launch can show it, and every run can store it (`to_dict`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class InputContract:
    """fs (Hz) and n_samples of the model's input; `leads` in the order of its input
    channels; `filtering` in words with its numbers in `filter_parameters` (empty when the
    model's data code applies no filter); `normalisation` in words; `source` the URL of the
    data code these facts were read from."""

    fs: int
    n_samples: int
    leads: tuple[str, ...]
    filtering: str
    normalisation: str
    source: str
    filter_parameters: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.fs <= 0 or self.n_samples <= 0:
            raise ValueError(f"fs and n_samples must be positive, got fs={self.fs}, n_samples={self.n_samples}")
        if not self.leads or len(set(self.leads)) != len(self.leads):
            raise ValueError(f"leads must be a non-empty list without repeats, got {self.leads}")

    @property
    def duration_s(self) -> float:
        return self.n_samples / self.fs

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, for run records and cache keys."""
        return {"fs": self.fs, "n_samples": self.n_samples, "leads": list(self.leads),
                "filtering": self.filtering, "filter_parameters": dict(self.filter_parameters),
                "normalisation": self.normalisation, "source": self.source}
