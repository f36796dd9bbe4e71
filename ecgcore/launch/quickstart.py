"""The Home page's first launch: write the demo data, queue experiments/quickstart.toml.

What the page promises is measured, not guessed: `grid_seconds` prices the grid with the
speed measured on the user's machine, the constants below were timed on the 2-core CPU
this project is developed on (commands in the comments; the machine was busy with other
jobs, so a free one is faster), and `grid_summary` counts the runs from the file itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ecgcore.data.synthetic import SITES
from ecgcore.experiments.spec import grid_points, load_experiment
from ecgcore.launch.estimate import JOB_OVERHEAD_SECONDS, Throughput, run_seconds
from ecgcore.launch.plan import SOURCE_SHARES
from ecgcore.transfer import STRATEGIES

QUICKSTART = Path(__file__).resolve().parents[2] / "experiments" / "quickstart.toml"
# `time python -m ecgcore demo-data` (3,000 records, full scale): 23 s wall.
DEMO_WRITE_SECONDS = 23.0
# `time python -m ecgcore run experiments/quickstart.toml` after the demo data was written:
# 54 min 35 s wall, while seven other processes shared the two cores (load average ~13);
# the 17 runs trained 3,130 s in all. A free machine does it several times faster.
QUICKSTART_SECONDS = 54 * 60.0 + 35.0
QUICKSTART_LOAD = 13.0


@dataclass(frozen=True)
class GridSummary:
    """What an experiment file will run, in words the Home page can show."""

    name: str
    description: str
    n_pretrain: int
    n_target: int
    archs: tuple[str, ...]
    strategies: tuple[str, ...]
    fractions: tuple[float, ...]
    seeds: tuple[int, ...]
    epochs: int
    pretrain_epochs: int

    @property
    def n_runs(self) -> int:
        return self.n_pretrain + self.n_target


def grid_summary(path: Path | str = QUICKSTART) -> GridSummary:
    """Count the runs of an experiment file without opening its datasets: one pretraining
    per (architecture, seed) when a strategy needs a source, one target run per grid point."""
    config = load_experiment(path)
    points = grid_points(config)
    pretrain = {(p["arch"], p["seed"]) for p in points if STRATEGIES[p["strategy"]].needs_source}
    train = config.get("train", {})
    return GridSummary(
        name=str(config.get("name", Path(path).stem)), description=str(config.get("description", "")),
        n_pretrain=len(pretrain), n_target=len(points),
        archs=tuple(dict.fromkeys(p["arch"] for p in points)),
        strategies=tuple(dict.fromkeys(p["strategy"] for p in points)),
        fractions=tuple(dict.fromkeys(p["train_fraction"] for p in points)),
        seeds=tuple(dict.fromkeys(p["seed"] for p in points)),
        epochs=int(train.get("epochs", 20)),
        pretrain_epochs=int(config.get("pretrain", {}).get("epochs", train.get("epochs", 20))),
    )


def grid_seconds(throughput: Throughput, overhead: float = JOB_OVERHEAD_SECONDS,
                 path: Path | str = QUICKSTART) -> float:
    """A demo experiment's wall time with one worker slot and every epoch run, before any
    data exists: runs are sized from the demo sites' record counts (`SITES`) and the
    file's split, priced like the Launch page's plan (`run_seconds`)."""
    config = load_experiment(path)
    grid = grid_summary(path)
    source, target = (SITES[config[role]["dataset"]].n_records for role in ("source", "target"))
    split = config.get("split", {})
    val, test = float(split.get("val", 0.1)), float(split.get("test", 0.2))
    fraction = float(config["source"].get("train_fraction", 1.0))
    seconds = grid.n_pretrain * run_seconds(throughput, source * SOURCE_SHARES[0] * fraction,
                                            source * SOURCE_SHARES[1], grid.pretrain_epochs, overhead)
    for point in grid_points(config):
        seconds += run_seconds(throughput, target * (1 - val - test) * point["train_fraction"], target * val,
                               grid.epochs, overhead, STRATEGIES[point["strategy"]].trains)
    return seconds


def launch_quickstart(write_demo: Callable[[], object] | None = None,
                      path: Path | str = QUICKSTART) -> list[str]:
    """Write the demo data when a demo site is missing (`write_demo` overrides how, e.g. a
    smaller scale), then queue the quickstart's runs; returns the job ids."""
    from ecgcore import workspace
    from ecgcore.experiments import DEMO_SITES
    from ecgcore.jobs import submit

    present = {entry.name for entry in workspace.list_datasets()}
    if write_demo is not None and not all(site in present for site in DEMO_SITES):
        write_demo()
    return submit(path)
