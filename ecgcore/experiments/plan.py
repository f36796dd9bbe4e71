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
from ecgcore.experiments.spec import ExperimentError, grid_points
from ecgcore.models import MODELS
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

    @property
    def label(self) -> str:
        c = self.config
        if self.kind == "pretrain":
            return f"pretrain {c['arch']} on {Path(c['data']['dataset']).name} (seed {c['seed']})"
        return (f"{c['arch']} {c['strategy']} on {Path(c['data']['dataset']).name} "
                f"fraction {c['train_fraction']} seed {c['seed']}")


def resolve_dataset(name_or_path: str) -> str:
    """A workspace dataset name or a folder path -> the folder's absolute path."""
    for entry in workspace.list_datasets():
        if entry.name == name_or_path:
            return str(entry.path.resolve())
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return str(path.resolve())
    known = ", ".join(e.name for e in workspace.list_datasets()) or "none"
    raise ExperimentError(f"dataset {name_or_path!r} is neither a workspace dataset ({known}) "
                          "nor a folder")


def _section(config: dict[str, Any], key: str, cls: Any, base: dict[str, Any] | None = None) -> dict:
    """Validate a section through its dataclass (unknown keys, bad values -> one clear line)."""
    values = {**(base or {}), **config.get(key, {})}
    try:
        return cls.from_dict(values).to_dict()
    except (TypeError, ValueError, KeyError) as exc:
        raise ExperimentError(f"[{key}]: {exc}") from exc


def _data(section: dict[str, Any]) -> dict[str, Any]:
    return {"dataset": resolve_dataset(section["dataset"]), "task": section.get("task", "dataset_labels"),
            "options": dict(section.get("options", {})),
            "min_positives": int(section.get("min_positives", 10)),
            "challenge_weights": (str(Path(section["challenge_weights"]).expanduser().resolve())
                                  if section.get("challenge_weights") else None)}


def expand(config: dict[str, Any]) -> list[RunSpec]:
    """Pretraining runs first (deduplicated by hash), then target runs in grid order."""
    experiment = config.get("name", "experiment")
    prep = _section(config, "prep", PrepConfig)
    train = _section(config, "train", TrainConfig)
    pretrain_train = _section(config, "pretrain", TrainConfig, base=config.get("train", {}))
    options = _section(config, "strategy_options", StrategyOptions)
    split = _section(config, "split", SplitConfig)
    target = _data(config["target"])
    source = _data(config["source"]) if "source" in config else None
    source_fraction = float(config.get("source", {}).get("train_fraction", 1.0))

    pretrains: dict[str, RunSpec] = {}
    targets: list[RunSpec] = []
    for point in grid_points(config):
        arch, strategy_name = point["arch"], point["strategy"]
        if arch not in MODELS:
            raise ExperimentError(f"unknown architecture {arch!r}; known: {', '.join(sorted(MODELS))}")
        if strategy_name not in STRATEGIES:
            raise ExperimentError(f"unknown strategy {strategy_name!r}; known: {', '.join(STRATEGIES)}")
        strategy = STRATEGIES[strategy_name]
        pretrain_hash = None
        if strategy.needs_source:
            if source is None:
                raise ExperimentError(f"strategy {strategy_name!r} needs a [source] dataset")
            pre_config = {
                "kind": "pretrain", "experiment": experiment, "arch": arch, "seed": point["seed"],
                "train_fraction": source_fraction,
                "data": source, "shared_with": target["dataset"] if source["task"] == "shared" else None,
                "prep": prep, "split": SplitConfig(
                    seed=point["seed"],
                    train_fraction=source_fraction if source_fraction < 1.0 else None).to_dict(),
                "train": {**pretrain_train, "seed": point["seed"]},
            }
            pretrain_hash = config_hash(pre_config)
            pretrains.setdefault(pretrain_hash, RunSpec("pretrain", pre_config, pretrain_hash))
        # The split (and so the test set) is the same for every seed and strategy, so runs
        # compare on the same records; the seed varies initialisation and batch order.
        run_split = {**split, "train_fraction": None if point["train_fraction"] >= 1.0
                     else point["train_fraction"]}
        run_config = {
            "kind": "target", "experiment": experiment, "arch": arch, "strategy": strategy_name,
            "strategy_options": options, "seed": point["seed"], "data": target,
            "source": copy.deepcopy(source) if strategy.needs_source else None,
            "pretrain_hash": pretrain_hash, "prep": prep, "split": run_split,
            "train_fraction": point["train_fraction"], "train": {**train, "seed": point["seed"]},
        }
        targets.append(RunSpec("target", run_config, config_hash(run_config), pretrain_hash))
    return [*pretrains.values(), *targets]
