"""The embedded synthetic multi-site default (`python -m ecgcore demo-data`).

A 3-D cardiac dipole model (`dipole.py`) beats through a registry of conditions
(`conditions.py`, `rhythm.py`), is seen through 12 leads, gets each site's noise
(`noise.py`) and is written by each site's recorder in a real on-disk layout
(`writers.py`: PTB-XL and PhysioNet/CinC Challenge) with that site's labels
(`reporting.py`, `sites.py`). See docs/synthetic.md for the knobs and limits:
it is a teaching and testing default, not a clinical data set.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

from ecgcore.data.synthetic.marker import MARKER_FILE, synthetic_marker, write_marker
from ecgcore.data.synthetic.sites import SITES, Site
from ecgcore.data.synthetic.writers import WRITERS, Job

__all__ = ["MARKER_FILE", "SITES", "Site", "default_workers", "synthetic_marker", "write_demo_data",
           "write_site"]


def default_workers() -> int:
    """Two processes where two cores exist (the files do not depend on it)."""
    return max(1, min(2, os.cpu_count() or 1))


def write_site(site: Site, out: Path, seed: int = 0, scale: float = 1.0, site_index: int = 0,
               noise: bool = True, workers: int | None = None) -> dict[str, Any]:
    """Write one site into `out` (replacing what was there) and describe it.

    `noise=False` writes the clean projected signal (for tests of the limb-lead
    identities and condition signatures); `workers` processes write in parallel.
    The folder gets `SYNTHETIC.json` (`marker.py`), so every run on it knows it is
    synthetic.
    """
    if scale <= 0:
        raise ValueError(f"scale must be positive, got {scale}")
    n_records = max(1, int(round(site.n_records * scale)))
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    start = time.perf_counter()
    written = WRITERS[site.layout](site, Job(out=out, seed=seed, site_index=site_index,
                                             n_records=n_records, noise=noise,
                                             workers=workers or default_workers()))
    seconds = time.perf_counter() - start
    write_marker(out, site.name, site.layout, seed, scale, noise, site.description)
    return {"name": site.name, "layout": site.layout, "path": str(out),
            "description": site.description, **written,
            "seconds": round(seconds, 3),
            "records_per_second": round(written["n_records"] / max(seconds, 1e-9), 1)}


def write_demo_data(out: Path, seed: int = 0, scale: float = 1.0, noise: bool = True,
                    workers: int | None = None) -> dict[str, Any]:
    """Write every synthetic site to `out/<site name>/`; deterministic by `seed`
    (the same seed and scale give byte-identical files).

    Returns {"seed", "scale", "sites": [{"name", "layout", "path", "n_records",
    "n_patients", "fs", "rates", "classes" ({code: count}), "seconds",
    "records_per_second", "description"}, ...]}.
    """
    out = Path(out)
    sites = [write_site(site, out / site.name, seed=seed, scale=scale, site_index=i, noise=noise,
                        workers=workers)
             for i, site in enumerate(SITES.values())]
    return {"seed": seed, "scale": scale, "sites": sites}
