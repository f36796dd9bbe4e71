"""The Home page's first launch: write the demo data, queue experiments/quickstart.toml.

What the page promises is measured, not guessed: `grid_range` prices the grid as a range
from the speed of finished runs on the user's machine (a labelled rough prior before there
are any, `ecgcore.views.launch.estimate`), the constants below were timed on the 2-core CPU this
project is developed on (commands in the comments), and `grid_summary` counts the runs
from the file itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ecgcore.data.synthetic import SITES
from ecgcore.experiments.spec import grid_points, load_experiment
from ecgcore.package_paths import preset
from ecgcore.transfer import STRATEGIES
from ecgcore.views.launch.estimate import (
    JOB_OVERHEAD_SECONDS,
    Throughput,
    format_seconds,
    run_range,
    run_seconds,
)
from ecgcore.views.launch.preview import SOURCE_SHARES

QUICKSTART = preset("quickstart.toml")
# `time python -m ecgcore demo-data` (3,000 records, full scale): 23 s wall.
DEMO_WRITE_SECONDS = 23.0
# `time python -m ecgcore run experiments/quickstart.toml` after the demo data was written,
# while other programs kept about one of the two cores busy (from /proc/stat): 2 min 58 s
# wall with torch threads chosen from the free cores (`ecgcore.cpu`); the same grid with one
# thread per core whatever else ran took 5 min 23 s (benchmarks/README.md, "Contention").
QUICKSTART_SECONDS = 178.0
QUICKSTART_BACKGROUND_CORES = 1.0


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


def _grid_runs(path: Path | str) -> list[tuple[float, float, int, bool]]:
    """(n_train, n_val, epochs, trains) of every run of a demo experiment, sized from the
    demo sites' record counts (`SITES`) and the file's split."""
    config = load_experiment(path)
    grid = grid_summary(path)
    source, target = (SITES[config[role]["dataset"]].n_records for role in ("source", "target"))
    split = config.get("split", {})
    val, test = float(split.get("val", 0.1)), float(split.get("test", 0.2))
    fraction = float(config["source"].get("train_fraction", 1.0))
    runs = [(source * SOURCE_SHARES[0] * fraction, source * SOURCE_SHARES[1], grid.pretrain_epochs, True)] * grid.n_pretrain
    for point in grid_points(config):
        runs.append((target * (1 - val - test) * point["train_fraction"], target * val, grid.epochs,
                     STRATEGIES[point["strategy"]].trains))
    return runs


def grid_seconds(throughput: Throughput, overhead: float = JOB_OVERHEAD_SECONDS,
                 path: Path | str = QUICKSTART) -> float:
    """A demo experiment's wall time with one worker slot, every epoch run at the typical
    rate, before any data exists; priced like the Launch page's plan (`run_seconds`)."""
    return sum(run_seconds(throughput, n_train, n_val, epochs, overhead, trains)
               for n_train, n_val, epochs, trains in _grid_runs(path))


def grid_range(throughput: Throughput, overhead: float = JOB_OVERHEAD_SECONDS,
               path: Path | str = QUICKSTART) -> tuple[float, float]:
    """(fast end, slow end) of a demo experiment's wall time with one worker slot, priced
    like the Launch page's plan (`run_range`)."""
    ends = [run_range(throughput, n_train, n_val, epochs, overhead, trains)
            for n_train, n_val, epochs, trains in _grid_runs(path)]
    return sum(low for low, _ in ends), sum(high for _, high in ends)


def estimate_markdown(throughput: Throughput, overhead: float = JOB_OVERHEAD_SECONDS,
                      path: Path | str = QUICKSTART) -> str:
    """The Home page's sentences on how long the quickstart takes (markdown)."""
    low, high = grid_range(throughput, overhead, path)
    span = format_seconds(high) if round(low) == round(high) else f"{format_seconds(low)} – {format_seconds(high)}"
    return (f"A background worker trains them one after another: **{span}** on this machine (fast end: "
            "the fast end of the speed below, runs stopping early as they usually do; slow end: its slow "
            "end, every epoch run). Training takes only the cores other programs leave free, so a busy "
            "machine slows it down rather than stalling it: on the 2-core CPU it was developed on it took "
            f"{format_seconds(QUICKSTART_SECONDS)} while other programs kept about "
            f"{QUICKSTART_BACKGROUND_CORES:g} of the two cores busy.")


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
