"""From a validated experiment file to the runs it means: one pretraining per (source,
architecture, seed, settings), shared by every strategy that needs it, and one target
run per grid point. Each run is identified by the hash of its full config, so a run
that already finished is reused instead of trained again.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ecgcore import workspace
from ecgcore.data.pipeline import SplitConfig
from ecgcore.data.prepare import PrepConfig
from ecgcore.errors import EcgcoreError
from ecgcore.experiments.spec import ExperimentError, grid_points
from ecgcore.data.labels import check_task_name
from ecgcore.models import MODELS
from ecgcore.models.registry import layer_group_count
from ecgcore.runs import config_hash
from ecgcore.train import TrainConfig
from ecgcore.transfer import STRATEGIES, StrategyOptions


@dataclass(frozen=True)
class RunSpec:
    """One run to do: its kind, its full config (what config.json holds) and its hash."""

    kind: str  # "pretrain" | "target"
    config: dict[str, Any]
    hash: str
    depends_on: str | None = None  # hash of the pretraining run it needs
    missing: tuple[str, ...] = ()  # datasets not found (only in a lenient plan, e.g. a dry run)

    @property
    def label(self) -> str:
        c = self.config
        where = f"[{c['protocol']}] " if c.get("protocol") else ""
        task = f" task {c['data']['task']}" if c.get("task_from_grid") else ""
        if self.kind == "pretrain":
            return (f"{where}pretrain {c['arch']} on {Path(c['data']['dataset']).name}{task} "
                    f"(seed {c['seed']})")
        source = f" from {Path(c['source']['dataset']).name}" if c.get("source") else ""
        size = f"n {c['train_n']}" if c.get("train_n") else f"fraction {c['train_fraction']}"
        return (f"{where}{c['arch']} {c['strategy']}{source} on {Path(c['data']['dataset']).name}"
                f"{task} {size} seed {c['seed']}")


def resolve_dataset(name_or_path: str) -> str:
    """A workspace dataset name or a folder path -> the folder's absolute path."""
    found = find_dataset(name_or_path)
    if found is not None:
        return found
    known = ", ".join(e.name for e in workspace.list_datasets()) or "none"
    raise ExperimentError(f"dataset {name_or_path!r} is neither a workspace dataset ({known}) "
                          "nor a folder")


def find_dataset(name_or_path: str) -> str | None:
    """The folder of a workspace dataset name or path, or None when there is none."""
    for entry in workspace.list_datasets():
        if entry.name == name_or_path:
            return str(entry.path.resolve())
    path = Path(name_or_path).expanduser()
    return str(path.resolve()) if path.is_dir() else None


def _checked(values: dict[str, Any], key: str, cls: Any) -> dict:
    """Validate a section's merged values through its dataclass (unknown keys, bad values
    -> one clear line naming the section)."""
    try:
        return cls.from_dict(values).to_dict()
    except (TypeError, ValueError, KeyError) as exc:
        raise ExperimentError(f"[{key}]: " + str(exc).replace("\n", "\\n")) from exc


def _data(section: dict[str, Any], missing: list[str] | None = None) -> dict[str, Any]:
    """The run config's data entry. With `missing` (a lenient plan), a dataset that is not
    found keeps its name and is listed there instead of stopping the plan."""
    name = section["dataset"]
    try:
        check_task_name(section.get("task", "dataset_labels"))
    except EcgcoreError as exc:
        raise ExperimentError(f"dataset {name!r}: {exc}") from exc
    found = find_dataset(name) if missing is not None else resolve_dataset(name)
    if found is None and missing is not None:
        missing.append(name)
    data = {"dataset": found or name, "task": section.get("task", "dataset_labels"),
            "options": dict(section.get("options", {})),
            "min_positives": int(section.get("min_positives", 10)),
            "challenge_weights": (str(Path(section["challenge_weights"]).expanduser().resolve())
                                  if section.get("challenge_weights") else None)}
    if section.get("exclude_sources"):  # only when used: older configs keep their hashes
        data["exclude_sources"] = sorted(str(s) for s in section["exclude_sources"])
    return data


def _merged(*tables: dict[str, Any] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for table in tables:
        out.update(table or {})
    return out


class _Layers:
    """The settings of one grid point, merged in order: the file's section, the point's
    protocol, its architecture, the dataset entry, the protocol's entry for that dataset
    (later wins)."""

    def __init__(self, config: dict[str, Any], protocol: str | None, arch: str) -> None:
        self.config = config
        self.protocol = config.get("protocols", {}).get(protocol, {}) if protocol else {}
        self.arch = config.get("archs", {}).get(arch, {})

    def section(self, key: str, dataset_key: str | None = None, base: dict | None = None) -> dict:
        entry = self.config.get("datasets", {}).get(dataset_key, {}) if dataset_key else {}
        own = self.protocol.get("datasets", {}).get(dataset_key, {}) if dataset_key else {}
        return _merged(base, self.config.get(key), self.protocol.get(key), self.arch.get(key),
                       entry.get(key), own.get(key))

    def dataset(self, role: str, key: str | None, task: str | None) -> dict[str, Any] | None:
        """The [source]/[target] section, or the [datasets] entry the grid names."""
        if key is None:
            section = self.config.get(role)
        else:
            section = self.config["datasets"][key]
        if section is None:
            return None
        return {**section, "task": task} if task else dict(section)


def expand(config: dict[str, Any], strict: bool = True) -> list[RunSpec]:
    """Pretraining runs first (deduplicated by hash), then target runs in grid order
    (deduplicated too: a scratch run does not depend on the grid's source).

    `strict=False` plans even when a dataset is not found (each spec lists its missing
    datasets, and its config names the dataset as written): what a dry run shows."""
    experiment = config.get("name", "experiment")
    pretrains: dict[str, RunSpec] = {}
    targets: dict[str, RunSpec] = {}
    for point in grid_points(config):
        arch, strategy_name = point["arch"], point["strategy"]
        if arch not in MODELS:
            raise ExperimentError(f"unknown architecture {arch!r}; known: {', '.join(sorted(MODELS))}")
        if strategy_name not in STRATEGIES:
            raise ExperimentError(f"unknown strategy {strategy_name!r}; known: {', '.join(STRATEGIES)}")
        strategy = STRATEGIES[strategy_name]
        protocol = point.get("protocol") or config.get("protocol")
        layers = _Layers(config, point.get("protocol"), arch)
        missing: list[str] | None = None if strict else []
        target_section = layers.dataset("target", point.get("target"), point.get("task"))
        source_section = layers.dataset("source", point.get("source"), point.get("task"))
        target = _data(target_section, missing)  # type: ignore[arg-type]
        tag = {"protocol": protocol} if protocol else {}
        if point.get("task"):
            tag["task_from_grid"] = True
        options = _checked(layers.section("strategy_options"), "strategy_options", StrategyOptions)
        train = _checked(layers.section("train"), "train", TrainConfig)
        if strategy.trains:
            try:
                strategy.check_epochs(layer_group_count(arch), train["epochs"],
                                      StrategyOptions.from_dict(options))
            except EcgcoreError as exc:
                raise ExperimentError(f"{arch} {strategy_name}: {exc}") from exc
        prep = _checked(layers.section("prep", point.get("target")), "prep", PrepConfig)
        split = _checked(layers.section("split", point.get("target")), "split", SplitConfig)

        pretrain_hash = None
        source = None
        if strategy.needs_source:
            if source_section is None:
                raise ExperimentError(f"strategy {strategy_name!r} needs a [source] dataset")
            source = _data(source_section, missing)
            source_fraction = float(source_section.get("train_fraction", 1.0))
            key = point.get("source")
            pretrain_split = layers.section("pretrain_split", key, base={
                "seed": point["seed"],
                "train_fraction": source_fraction if source_fraction < 1.0 else None})
            pretrain_train = _merged(config.get("train"), layers.protocol.get("train"),
                                     layers.arch.get("train"), config.get("pretrain"),
                                     layers.protocol.get("pretrain"), layers.arch.get("pretrain"))
            pre_config = {
                "kind": "pretrain", "experiment": experiment, "arch": arch, "seed": point["seed"],
                "train_fraction": source_fraction,
                "data": source, "shared_with": target["dataset"] if source["task"] == "shared" else None,
                "prep": _checked(layers.section("prep", key), "prep", PrepConfig),
                "split": _checked(pretrain_split, "pretrain_split", SplitConfig),
                "train": {**_checked(pretrain_train, "pretrain", TrainConfig), "seed": point["seed"]},
                **tag,
            }
            pretrain_hash = config_hash(pre_config)
            pretrains.setdefault(pretrain_hash, RunSpec("pretrain", pre_config, pretrain_hash,
                                                        missing=_missing_of(missing, source)))
        # The split (and so the test set) is the same for every seed and strategy, so runs
        # compare on the same records; the seed varies initialisation and batch order.
        run_split = {**split, "train_fraction": None if point["train_fraction"] >= 1.0
                     else point["train_fraction"]}
        size: dict[str, Any] = {}
        if layers.section("report").get("test_every_epoch"):  # only when asked: hashes stay
            size["report"] = {"test_every_epoch": True}
        if point.get("train_n"):
            run_split["train_n"] = point["train_n"]
            size["train_n"] = point["train_n"]
        run_config = {
            "kind": "target", "experiment": experiment, "arch": arch, "strategy": strategy_name,
            "strategy_options": options, "seed": point["seed"], "data": target,
            "source": copy.deepcopy(source) if strategy.needs_source else None,
            "pretrain_hash": pretrain_hash, "prep": prep, "split": run_split,
            "train_fraction": point["train_fraction"], "train": {**train, "seed": point["seed"]},
            **size, **tag,
        }
        run_hash = config_hash(run_config)
        targets.setdefault(run_hash, RunSpec("target", run_config, run_hash, pretrain_hash,
                                             missing=tuple(dict.fromkeys(missing or ()))))
    return [*pretrains.values(), *targets.values()]


def _missing_of(missing: list[str] | None, data: dict[str, Any]) -> tuple[str, ...]:
    return (data["dataset"],) if missing and data["dataset"] in missing else ()
