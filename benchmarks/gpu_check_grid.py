"""The device check's grid: experiments/quickstart.toml through the background queue, once
with one run per GPU and once with several, each in a fresh workspace.

What a user does, timed from outside: `python -m ecgcore submit experiments/quickstart.toml`
queues the grid (pretraining first, the target runs waiting on it), then `python -m ecgcore
worker --once --runs-per-gpu N` runs every job, each in its own process, N at a time on
each GPU, and stops when the queue is empty. The wall time is the worker's, from its start
to its exit (the submit is not counted). On a machine without a GPU, where runs per GPU
mean nothing, `--slots N` gives the worker N CPU slots instead.

Both rounds start from the same demo data (written once, hard-linked into each workspace)
and an empty run store and cache, so both pay the same data preparation and neither
reuses the other's finished runs (a run whose config hash finished is never trained again).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ecgcore.errors import EcgcoreError

REPO = Path(__file__).resolve().parents[1]
QUICKSTART = REPO / "experiments" / "quickstart.toml"
# --cpu-smoke: two one-epoch scratch runs on the demo data at 12 % scale (no pretraining),
# so one slot runs them one after the other and two slots side by side.
SMOKE_OVERRIDES: tuple[str, ...] = ("train.epochs=1", "pretrain.epochs=1", 'grid.strategy=["scratch"]',
                                    "grid.train_fraction=[0.5, 1.0]")
SMOKE_SCALE = 0.12


def write_datasets(folder: Path, scale: float) -> Path:
    """The embedded demo sites (the quickstart's source and target) under `folder`."""
    from ecgcore.data.synthetic import write_demo_data

    write_demo_data(folder, seed=0, scale=scale)
    return folder


def fresh_home(home: Path, datasets: Path) -> Path:
    """An empty ECGCORE_HOME whose datasets/ holds hard links to the demo sites."""
    shutil.copytree(datasets, home / "datasets", copy_function=os.link)
    return home


def ecgcore(home: Path, *args: str) -> subprocess.CompletedProcess:
    """`python -m ecgcore ARGS` in workspace `home`, from the repository root; an error
    (with the command's own output) when it fails."""
    env = {**os.environ, "ECGCORE_HOME": str(home), "ECGCORE_AUTO_WORKER": "0"}
    done = subprocess.run([sys.executable, "-m", "ecgcore", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise EcgcoreError(f"python -m ecgcore {' '.join(args)} failed ({done.returncode}):\n"
                           f"{done.stdout[-2000:]}{done.stderr[-4000:]}")
    return done


def slot_arguments(slots: int, on_gpu: bool) -> list[str]:
    """The worker's arguments for `slots` jobs at a time: `slots` runs per GPU; without a
    GPU (where runs per GPU have no effect) as many CPU slots."""
    return ["--runs-per-gpu", str(slots)] if on_gpu else ["--slots", str(slots)]


def grid_overrides(smoke: bool) -> tuple[str, ...]:
    return SMOKE_OVERRIDES if smoke else ()


def run_grid(home: Path, slots: int, on_gpu: bool, overrides: tuple[str, ...]) -> dict[str, Any]:
    """Submit the quickstart into `home`, run the worker until the queue is empty; its wall
    time and what each job did."""
    sets = [arg for override in overrides for arg in ("--set", override)]
    submitted = json.loads(ecgcore(home, "submit", str(QUICKSTART), *sets, "--json").stdout)
    worker = slot_arguments(slots, on_gpu)
    started = time.perf_counter()
    ecgcore(home, "worker", "--once", *worker)
    wall = time.perf_counter() - started
    jobs = json.loads(ecgcore(home, "jobs", "--json").stdout)
    states = sorted({job["state"] for job in jobs})
    if len(jobs) != len(submitted) or states != ["done"]:
        failed = [f"{job['label']}: {job['state']} {job.get('error') or ''}" for job in jobs if job["state"] != "done"]
        raise EcgcoreError(f"quickstart with {slots} slots: not every job finished: {failed[:3]}")
    busy = sum(job["finished"] - job["started"] for job in jobs)
    return {"slots": slots, "worker_arguments": worker, "jobs": len(jobs), "wall_seconds": wall,
            "job_seconds_sum": busy, "devices": sorted({str(job["device"]) for job in jobs})}
