"""Experiment files: TOML parsed as data, validated against a fixed schema, expanded to runs.

An experiment file names a target dataset (and optionally a source for pretraining),
the label tasks, preprocessing, split, training settings, and a grid over
architectures × strategies × target fractions × seeds. Nothing in it is evaluated:
every key is checked against the schema below, and an unknown key is an error naming
it (a typo must never silently fall back to a default).

```toml
name = "quickstart"
demo = true                        # write the embedded demo data first when missing

[source]                           # optional: only strategies that need a source use it
dataset = "source_ptbxl"           # a dataset in the workspace, or a path
task = "shared"                    # "shared" = the classes source and target share, or a named task
train_fraction = 1.0               # pretrain on this fraction of the source's training records

[target]
dataset = "target_challenge"
task = "dataset_labels"            # every SNOMED class with >= min_positives records, or a named task
min_positives = 20
challenge_weights = "path/to/weights.csv"  # optional: adds the Challenge 2021 score to results

[prep]                             # ecgcore.data.prepare.PrepConfig
fs = 100
[split]                            # ecgcore.data.pipeline.SplitConfig (target; the source uses "auto")
method = "patient"
[train]                            # ecgcore.train.TrainConfig (target runs)
epochs = 10
[pretrain]                         # TrainConfig overrides for pretraining runs
epochs = 15
[strategy_options]                 # ecgcore.transfer.StrategyOptions
head_epochs = 3

[grid]
arch = ["small_cnn"]
strategy = ["scratch", "finetune"]
train_fraction = [0.1, 0.3, 1.0]
seed = [0]
```
"""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path
from typing import Any

from ecgcore.errors import EcgcoreError

# section -> allowed keys (None: any key, validated later by the section's own dataclass)
SCHEMA: dict[str, set[str] | None] = {
    "source": {"dataset", "task", "options", "min_positives", "train_fraction"},
    "target": {"dataset", "task", "options", "min_positives", "challenge_weights"},
    "prep": None,
    "split": None,
    "train": None,
    "pretrain": None,
    "strategy_options": None,
    "grid": {"arch", "strategy", "train_fraction", "seed"},
}
TOP_LEVEL = {"name", "description", "demo", *SCHEMA}
GRID_DEFAULTS: dict[str, list[Any]] = {"train_fraction": [1.0], "seed": [0]}


class ExperimentError(EcgcoreError):
    """An experiment file or override that cannot be used; the message names the key."""


def load_experiment(path: Path | str, overrides: list[str] = ()) -> dict[str, Any]:
    """Parse a TOML experiment file, apply `--set key=value` overrides, validate the keys."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ExperimentError(f"{path}: no such experiment file") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ExperimentError(f"{path}: not valid TOML ({exc})") from exc
    raw.setdefault("name", path.stem)
    for override in overrides:
        apply_override(raw, override)
    validate(raw, str(path))
    return raw


def apply_override(config: dict[str, Any], override: str) -> None:
    """`train.epochs=3`, `grid.strategy=["scratch"]`: the value is parsed as a TOML value
    (numbers, strings, lists, booleans); a bare word is taken as a string."""
    key, sep, text = override.partition("=")
    if not sep or not key.strip():
        raise ExperimentError(f"--set {override!r}: expected KEY=VALUE (e.g. train.epochs=3)")
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        value = text
    parts = key.strip().split(".")
    node = config
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ExperimentError(f"--set {override!r}: {part!r} is not a section")
    node[parts[-1]] = value


def validate(config: dict[str, Any], where: str) -> None:
    unknown = sorted(set(config) - TOP_LEVEL)
    if unknown:
        raise ExperimentError(f"{where}: unknown key(s) {', '.join(unknown)}; "
                              f"known: {', '.join(sorted(TOP_LEVEL))}")
    for section, keys in SCHEMA.items():
        value = config.get(section)
        if value is None:
            continue
        if not isinstance(value, dict):
            raise ExperimentError(f"{where}: [{section}] must be a table")
        if keys is not None:
            bad = sorted(set(value) - keys)
            if bad:
                raise ExperimentError(f"{where}: unknown key(s) in [{section}]: {', '.join(bad)}; "
                                      f"known: {', '.join(sorted(keys))}")
    if "target" not in config or "dataset" not in config["target"]:
        raise ExperimentError(f"{where}: [target] dataset is required")
    grid = config.get("grid", {})
    for key in ("arch", "strategy"):
        if not grid.get(key):
            raise ExperimentError(f"{where}: [grid] {key} needs at least one value")
    for key, values in grid.items():
        if not isinstance(values, list):
            grid[key] = [values]


def grid_points(config: dict[str, Any]) -> list[dict[str, Any]]:
    """Every (arch, strategy, train_fraction, seed) of the grid, in file order."""
    grid = {**GRID_DEFAULTS, **copy.deepcopy(config.get("grid", {}))}
    points: list[dict[str, Any]] = []
    for arch in grid["arch"]:
        for strategy in grid["strategy"]:
            for fraction in grid["train_fraction"]:
                for seed in grid["seed"]:
                    points.append({"arch": arch, "strategy": strategy,
                                   "train_fraction": float(fraction), "seed": int(seed)})
    return points
