"""Whether a run's datasets are real or the embedded synthetic data: the runner records the
answer in results.json (`data_origin`) when a run finishes, so every prediction view can
say it even after the dataset folders move (`ecgcore.views.provenance`).

A folder that `ecgcore.data.synthetic` wrote holds its SYNTHETIC.json marker; demo sites
written before the marker existed are known by their site folder names (`source_ptbxl`,
`target_challenge`). Nothing here guesses from the records themselves.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ecgcore.data.synthetic.marker import MARKER_FILE, synthetic_marker
from ecgcore.data.synthetic.sites import SITES
from ecgcore.runs.run_config import RunConfig


@dataclass(frozen=True)
class DatasetOrigin:
    """A dataset by name, whether it is synthetic (None: cannot tell), and why we think so."""

    name: str
    synthetic: bool | None
    evidence: str

    @property
    def label(self) -> str:
        kind = {True: "synthetic", False: "real"}.get(self.synthetic, "real or synthetic: unknown")
        return f"{self.name} ({kind})"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "synthetic": self.synthetic, "evidence": self.evidence}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DatasetOrigin:
        synthetic = data.get("synthetic")
        return cls(str(data.get("name") or "?"), synthetic if isinstance(synthetic, bool) else None,
                   str(data.get("evidence") or ""))


def dataset_origin(path: Path | str) -> DatasetOrigin:
    """Whether the dataset folder at `path` is the embedded synthetic data."""
    folder = Path(path)
    name = folder.name
    if synthetic_marker(folder) is not None:
        return DatasetOrigin(name, True, f"{MARKER_FILE} written by ecgcore.data.synthetic")
    if name in SITES:
        return DatasetOrigin(name, True, f"folder name of a demo site (written before {MARKER_FILE} "
                                         "existed)")
    if not folder.is_dir():
        return DatasetOrigin(name, None, f"folder {folder} not found")
    return DatasetOrigin(name, False, f"no {MARKER_FILE} from ecgcore.data.synthetic")


def data_origin(config: RunConfig, checkpoint_origin: DatasetOrigin | None = None) -> dict[str, Any]:
    """What results.json records as `data_origin`: the dataset trained on (`target`; the
    pretraining set for a pretraining run) and the source a transfer run started from: the
    source dataset, or for a checkpoint source `checkpoint_origin` (what the checkpoint's
    registry record says it was trained on)."""
    source = config.source
    if source is None:
        source_origin = None
    elif source.data is not None:
        source_origin = dataset_origin(source.data.dataset).to_dict()
    else:
        source_origin = (checkpoint_origin or DatasetOrigin(source.name, None, "checkpoint without a "
                                                            "registry record")).to_dict()
    return {"target": dataset_origin(config.data.dataset).to_dict(), "source": source_origin}
