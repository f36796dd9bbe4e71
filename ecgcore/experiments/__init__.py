"""Experiments: TOML files in `experiments/` -> the runs they mean -> the run store.

`run_experiment(path)` writes the embedded demo data first when the file asks for it
(`demo = true`) and it is not in the workspace yet (and makes the demo checkpoints its grid
names, `ecgcore.experiments.demo_checkpoints`), expands the grid (pretraining once
per source/architecture/seed/settings, then one run per grid point), and does each run
in order in this process, reusing runs whose config hash already finished.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ecgcore import workspace
from ecgcore.experiments.spec import ExperimentError, load_experiment

# The engine (models, trainer, strategies) is imported when a plan is made, not when a
# file is merely parsed: `ecgcore.experiments.spec` stays light for the app and tests.
if TYPE_CHECKING:
    from ecgcore.experiments.run_plan import RunSpec

DEMO_SITES = ("source_ptbxl", "target_challenge")

log = logging.getLogger(__name__)

__all__ = ["ExperimentError", "load_experiment", "plan_experiment", "run_experiment"]


def ensure_demo_data() -> None:
    """Write the embedded default into the workspace when one of its sites is missing."""
    present = {entry.name for entry in workspace.list_datasets()}
    if all(site in present for site in DEMO_SITES):
        return
    from ecgcore.data.synthetic import write_demo_data

    log.info("writing the embedded demo data into the workspace (first use)")
    write_demo_data(workspace.datasets_dir())


def plan_experiment(path: Path | str, overrides: Sequence[str] = (),
                    strict: bool = True) -> list[RunSpec]:
    """The runs an experiment file expands to (writes the demo data first if it asks).

    `strict=False` (a dry run) plans without the datasets: a dataset that is not found is
    listed in each run's `missing` instead of stopping the plan, and the config names it
    as written, so its hash differs from the run's once the folder is there."""
    from ecgcore.experiments.run_plan import expand

    config = load_experiment(path, list(overrides))
    if config.get("demo"):
        ensure_demo_data()
        checkpoints = [name for name in config.get("grid", {}).get("checkpoint", []) if name != "none"]
        if strict and checkpoints:  # a dry run lists a demo checkpoint not made yet as missing
            from ecgcore.experiments.demo_checkpoints import ensure_demo_checkpoints
            from ecgcore.experiments.run_plan import resolve_dataset

            ensure_demo_checkpoints(checkpoints, resolve_dataset(DEMO_SITES[0]))
    return expand(config, strict=strict)


def run_experiment(path: Path | str, overrides: Sequence[str] = (), callbacks: Sequence[Any] = (),
                   on_run: Callable[[str], None] | None = None) -> list[str]:
    """Do every run of the file in this process; returns the run ids (pretraining first).

    One failed run does not stop the grid: its folder keeps the error, runs that need a
    failed pretraining are skipped, the others go on; at the end an ExperimentError says
    how many failed and why the first one did. `on_run(run_id)` is called as each run's id
    becomes known, before its work starts."""
    from ecgcore.experiments.execute import execute
    from ecgcore.runs import RunStore

    store = RunStore()
    specs = plan_experiment(path, overrides)
    run_ids: list[str] = []
    failures: list[str] = []
    failed: set[str] = set()
    for spec in specs:
        if spec.depends_on in failed:
            failures.append(f"{spec.label}: skipped, its pretraining failed")
            failed.add(spec.hash)
            continue
        try:
            run_ids.append(execute(spec, store, callbacks, on_run=on_run))
        except Exception as exc:  # noqa: BLE001 -- recorded in the run's folder; the grid goes on
            failures.append(f"{spec.label}: {exc}")
            failed.add(spec.hash)
            log.error("failed: %s: %s", spec.label, exc)
    if failures:
        raise ExperimentError(f"{len(failures)} of {len(specs)} runs failed; first: {failures[0]}")
    return run_ids
