"""The file that says a dataset folder is the embedded synthetic data, not patients' ECGs.

The demo sites are written in real on-disk layouts (PTB-XL, Challenge) so the readers
cannot tell them from real data; `write_site` therefore leaves `SYNTHETIC.json` in each
site's folder, and the run records what it found (`ecgcore.views.provenance`). The file is
deterministic (no dates), so the same seed still writes byte-identical folders.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

MARKER_FILE = "SYNTHETIC.json"
GENERATOR = "ecgcore.data.synthetic"


def write_marker(out: Path, site_name: str, layout: str, seed: int, scale: float, noise: bool,
                 description: str) -> None:
    marker = {"generator": GENERATOR, "site": site_name, "layout": layout, "seed": seed,
              "scale": scale, "noise": noise, "description": description,
              "note": "synthetic ECGs from a dipole model: teaching and testing data, no patient's"}
    (Path(out) / MARKER_FILE).write_text(json.dumps(marker, indent=1) + "\n", encoding="utf-8")


def synthetic_marker(folder: Path | str) -> dict[str, Any] | None:
    """The marker of a dataset folder written by `write_site`, or None (no marker, or a
    file that is not one: only a JSON object naming this generator counts)."""
    path = Path(folder) / MARKER_FILE
    try:
        marker = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) and marker.get("generator") == GENERATOR else None
