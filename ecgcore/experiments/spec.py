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

Study files (the paper presets) add three things, all optional:

```toml
protocol = "ptbxl_benchmark"       # recorded in every run's config and results.json

[datasets.cpsc2018]                # named dataset entries, used by [grid] source / target
dataset = "cpsc2018"               # workspace dataset name or folder (--set datasets.cpsc2018.dataset=PATH)
task = "nguyen_cpsc2018"
exclude_sources = ["PTB-XL"]       # Challenge layout: leave out records of these sources
prep = { crop = "centre" }         # PrepConfig settings that are facts about this dataset
split = { method = "official" }    # SplitConfig settings for this dataset as a target
pretrain_split = { method = "official" }  # ... and as a pretraining source

[protocols.paper_exact]            # one named variant of the whole file; [grid] protocol picks
description = "..."                # (default: every protocol in file order)
prep = { resample = "decimate" }   # overrides of prep / split / pretrain_split / train /
split = { method = "paper" }       # pretrain / strategy_options
seed = [0]                         # the seeds of this protocol (default: [grid] seed)
datasets.ptb.prep = { normalize = "none" }   # per-dataset overrides inside this protocol

[archs.lstm]                       # settings for one architecture of the grid
train = { grad_clip = 0.25 }       # (train / pretrain overrides)

[pretrain_split]                   # SplitConfig of pretraining runs (default: method "auto")
[report]
test_every_epoch = true            # also score the test split after every epoch (the paper's
                                   # best-test-epoch number; optimistic, reported apart)

[grid]
source = ["ptbxl", "cpsc2018"]     # keys of [datasets]; a pair with source == target is skipped
target = ["cpsc2018", "ptb"]
task = ["snomed:164889003"]        # overrides the task of source and target
train_n = [2000, 4000]             # training subset sizes instead of train_fraction
```

Foundation-model checkpoints are sources too. `[grid] checkpoint` lists registered
checkpoints (`python -m ecgcore checkpoints`; with `demo = true`, the demo checkpoints
are made when missing); "none" stands for the [source] dataset's own pretraining, as
without the key. A strategy that needs a source starts from the point's checkpoint; a
point whose architecture is not its checkpoint's is left out:

```toml
[grid]
arch = ["net1d_small", "ecg_jepa_small"]
checkpoint = ["none", "demo_net1d", "demo_vit"]
strategy = ["scratch", "finetune", "embedding_probe", "random_frozen"]
```

Pretraining learns from the source's labels unless `[pretrain] method` names a
self-supervised method ("simclr", "clocs", "masked"; `ecgcore.ssl.methods`), which
pretrains on the source's records without their labels (task "unlabelled"). Its settings
sit beside the training settings in [pretrain] (each method takes the ones it has; a key
that is neither a training setting nor any method's is an error). `[grid] pretrain_method`
puts several methods side by side ("supervised" is today's pretraining):

```toml
[pretrain]
epochs = 20
temperature = 0.1                  # simclr / clocs
mask_ratio = 0.5                   # masked
augmentations = [{ name = "crop", min_fraction = 0.5 }, { name = "gaussian_noise", p = 0.5 }]

[grid]
pretrain_method = ["supervised", "simclr", "masked"]
strategy = ["scratch", "linear_probe", "finetune"]
```

Settings merge in this order (later wins): the file's section, the protocol's section,
the architecture's ([archs.*]), the dataset entry's own, the protocol's entry for that
dataset.
"""

from __future__ import annotations

import copy
import itertools
import tomllib
from pathlib import Path
from typing import Any

from ecgcore.errors import EcgcoreError

# section -> allowed keys (None: any key, validated later by the section's own dataclass)
SCHEMA: dict[str, set[str] | None] = {
    "source": {"dataset", "task", "options", "min_positives", "train_fraction", "exclude_sources"},
    "target": {"dataset", "task", "options", "min_positives", "challenge_weights", "exclude_sources"},
    "prep": None,
    "split": None,
    "pretrain_split": None,
    "train": None,
    "pretrain": None,
    "strategy_options": None,
    "report": {"test_every_epoch"},
    "archs": None,      # {arch: {train, pretrain}}: settings of one architecture
    "datasets": None,   # {key: entry}; entries checked against DATASET_KEYS
    "protocols": None,  # {name: protocol}; protocols checked against PROTOCOL_KEYS
    "grid": {"arch", "strategy", "train_fraction", "train_n", "seed", "source", "target",
             "protocol", "task", "checkpoint", "pretrain_method"},
}
TOP_LEVEL = {"name", "description", "demo", "protocol", *SCHEMA}
GRID_DEFAULTS: dict[str, list[Any]] = {"train_fraction": [1.0], "seed": [0]}
# Sections a protocol may override (each merged over the file's own).
OVERRIDABLE: tuple[str, ...] = ("prep", "split", "pretrain_split", "train", "pretrain",
                                "strategy_options", "report")
DATASET_KEYS = {"dataset", "task", "options", "min_positives", "challenge_weights",
                "exclude_sources", "train_fraction", "prep", "split", "pretrain_split"}
PROTOCOL_KEYS = {"description", "seed", "datasets", *OVERRIDABLE}


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


def _names(keys: list[str]) -> str:
    """Keys for a one-line message: as written, or quoted when they hold line breaks or
    other unprintable characters (a key can be any TOML string)."""
    return ", ".join(key if key.isprintable() else repr(key) for key in keys)


def validate(config: dict[str, Any], where: str) -> None:
    unknown = sorted(set(config) - TOP_LEVEL)
    if unknown:
        raise ExperimentError(f"{where}: unknown key(s) {_names(unknown)}; "
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
                raise ExperimentError(f"{where}: unknown key(s) in [{section}]: {_names(bad)}; "
                                      f"known: {', '.join(sorted(keys))}")
    grid = config.get("grid", {})
    for key, values in grid.items():
        if not isinstance(values, list):
            grid[key] = [values]
    if not grid.get("target") and ("target" not in config or "dataset" not in config["target"]):
        raise ExperimentError(f"{where}: [target] dataset is required")
    for key in ("arch", "strategy"):
        if not grid.get(key):
            raise ExperimentError(f"{where}: [grid] {key} needs at least one value")
    if grid.get("train_n") and "train_fraction" in grid:
        raise ExperimentError(f"{where}: [grid] gives train_fraction and train_n; use one")
    _check_types(config, where)
    _validate_tables(config, where)


def _validate_tables(config: dict[str, Any], where: str) -> None:
    """[datasets.*] entries, [protocols.*] and the grid keys that name them."""
    datasets = config.get("datasets", {})
    for key, entry in datasets.items():
        if not isinstance(entry, dict) or "dataset" not in entry:
            raise ExperimentError(f"{where}: [datasets.{key}] must be a table with a dataset")
        _known_keys(entry, DATASET_KEYS, f"{where}: [datasets.{key}]")
    protocols = config.get("protocols", {})
    for name, protocol in protocols.items():
        if not isinstance(protocol, dict):
            raise ExperimentError(f"{where}: [protocols.{name}] must be a table")
        _known_keys(protocol, PROTOCOL_KEYS, f"{where}: [protocols.{name}]")
        for key, entry in protocol.get("datasets", {}).items():
            if key not in datasets:
                raise ExperimentError(f"{where}: [protocols.{name}.datasets.{key}]: no "
                                      f"[datasets.{key}] entry")
            _known_keys(entry, {"prep", "split", "pretrain_split"},
                        f"{where}: [protocols.{name}.datasets.{key}]")
        if "seed" in protocol and not isinstance(protocol["seed"], list):
            protocol["seed"] = [protocol["seed"]]
    for arch, table in config.get("archs", {}).items():
        if not isinstance(table, dict):
            raise ExperimentError(f"{where}: [archs.{arch}] must be a table")
        _known_keys(table, {"train", "pretrain"}, f"{where}: [archs.{arch}]")
    if config.get("protocol") and protocols:
        raise ExperimentError(f"{where}: give protocol = \"...\" or [protocols.*], not both")
    grid = config.get("grid", {})
    for key in ("source", "target"):
        for value in grid.get(key, []):
            if value not in datasets:
                raise ExperimentError(f"{where}: [grid] {key} {value!r} is not a [datasets] entry; "
                                      f"known: {', '.join(datasets) or 'none'}")
    for value in grid.get("protocol", []):
        if value not in protocols:
            raise ExperimentError(f"{where}: [grid] protocol {value!r} is not a [protocols] entry; "
                                  f"known: {', '.join(protocols) or 'none'}")


def _known_keys(table: dict[str, Any], allowed: set[str], where: str) -> None:
    bad = sorted(set(table) - allowed)
    if bad:
        raise ExperimentError(f"{where}: unknown key(s) {_names(bad)}; "
                              f"known: {', '.join(sorted(allowed))}")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


# The types of the values the planner uses itself (sections with their own dataclass, such
# as [train], check their values there): a wrong type is an error naming the key, never a
# TypeError deep in the planner. key -> (check, what the key must be).
_TEXT = (lambda v: isinstance(v, str), "a string")
_TABLE = (lambda v: isinstance(v, dict), "a table")
ENTRY_TYPES: dict[str, tuple[Any, str]] = {
    "dataset": _TEXT, "task": _TEXT, "options": _TABLE, "challenge_weights": _TEXT,
    "min_positives": (_is_integer, "an integer"), "train_fraction": (_is_number, "a number"),
    "exclude_sources": (_is_strings, "a list of strings"),
    "prep": _TABLE, "split": _TABLE, "pretrain_split": _TABLE,
}
TOP_TYPES: dict[str, tuple[Any, str]] = {
    "name": _TEXT, "description": _TEXT, "protocol": _TEXT,
    "demo": (lambda v: isinstance(v, bool), "true or false"),
}
PROTOCOL_TYPES: dict[str, tuple[Any, str]] = {
    "description": _TEXT, "datasets": _TABLE, **{key: _TABLE for key in OVERRIDABLE}}
GRID_TYPES: dict[str, tuple[Any, str]] = {
    "train_fraction": (_is_number, "numbers"), "train_n": (_is_integer, "integers"),
    "seed": (_is_integer, "integers"), **{key: (_TEXT[0], "strings") for key in
                                          ("arch", "strategy", "source", "target", "protocol", "task",
                                           "checkpoint", "pretrain_method")}}


def _check_table(table: Any, types: dict[str, tuple[Any, str]], where: str) -> None:
    if not isinstance(table, dict):
        return  # "must be a table" is said where the table is used
    for key, (ok, what) in types.items():
        if key in table and not ok(table[key]):
            raise ExperimentError(f"{where} {key} must be {what}, got {table[key]!r}")


def _check_types(config: dict[str, Any], where: str) -> None:
    """Every value the planner reads has the type it needs (see ENTRY_TYPES …)."""
    _check_table(config, TOP_TYPES, f"{where}:")
    grid = config.get("grid", {})
    for role in ("source", "target"):
        _check_table(config.get(role), ENTRY_TYPES, f"{where}: [{role}]")
        if isinstance(config.get(role), dict) and "dataset" not in config[role] and not grid.get(role):
            raise ExperimentError(f"{where}: [{role}] dataset is required")
    for key, values in grid.items():
        ok, what = GRID_TYPES[key]
        bad = [v for v in values if not ok(v)]
        if bad:
            raise ExperimentError(f"{where}: [grid] {key} must hold {what}, got {bad[0]!r}")
    for key, entry in (config.get("datasets") or {}).items():
        _check_table(entry, ENTRY_TYPES, f"{where}: [datasets.{key}]")
    for name, protocol in (config.get("protocols") or {}).items():
        _check_table(protocol, PROTOCOL_TYPES, f"{where}: [protocols.{name}]")
        if not isinstance(protocol, dict):
            continue
        seeds = protocol.get("seed", [])
        if not all(_is_integer(v) for v in (seeds if isinstance(seeds, list) else [seeds])):
            raise ExperimentError(f"{where}: [protocols.{name}] seed must hold integers, got {seeds!r}")
        for key, entry in (protocol.get("datasets") or {}).items():
            if not isinstance(entry, dict):
                raise ExperimentError(f"{where}: [protocols.{name}.datasets.{key}] must be a table")
            _check_table(entry, {k: _TABLE for k in entry}, f"{where}: [protocols.{name}.datasets.{key}]")


def grid_points(config: dict[str, Any]) -> list[dict[str, Any]]:
    """Every grid point in file order: protocol, target, source, task outermost (when the
    file uses them), checkpoint, pretraining method, then arch, strategy, training size,
    seed. A point carries the keys arch, strategy, train_fraction, seed, and protocol /
    target / source / task / train_n / checkpoint / pretrain_method only when the file uses
    them ("none", the [source] dataset's pretraining, is no checkpoint key). A point whose
    source is its target is left out."""
    grid = {**GRID_DEFAULTS, **copy.deepcopy(config.get("grid", {}))}
    protocols = config.get("protocols", {})
    names = grid.get("protocol") or list(protocols) or [None]
    sizes: list[tuple[float, int | None]] = (
        [(1.0, int(n)) for n in grid["train_n"]] if grid.get("train_n")
        else [(float(f), None) for f in grid["train_fraction"]])
    points: list[dict[str, Any]] = []
    for protocol in names:
        seeds = protocols.get(protocol, {}).get("seed", grid["seed"]) if protocol else grid["seed"]
        for target in grid.get("target") or [None]:
            for source in grid.get("source") or [None]:
                if source is not None and source == target:
                    continue
                for task in grid.get("task") or [None]:
                    for checkpoint, method in itertools.product(grid.get("checkpoint") or [None],
                                                                grid.get("pretrain_method") or [None]):
                        for arch in grid["arch"]:
                            for strategy in grid["strategy"]:
                                for fraction, n in sizes:
                                    for seed in seeds:
                                        point = {"arch": arch, "strategy": strategy,
                                                 "train_fraction": fraction, "seed": int(seed)}
                                        extra = {"protocol": protocol, "target": target,
                                                 "source": source, "task": task, "train_n": n,
                                                 "checkpoint": None if checkpoint == "none" else checkpoint,
                                                 "pretrain_method": method}
                                        point.update({k: v for k, v in extra.items() if v is not None})
                                        points.append(point)
    return points
