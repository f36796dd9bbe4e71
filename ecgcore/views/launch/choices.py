"""The Launch form's choices as data, and the experiment config they mean.

The form and the CLI must mean the same thing by a grid, so the form does not build
runs itself: `experiment_config` writes the same dictionary an `experiments/*.toml`
file parses to (checked by `ecgcore.experiments.spec.validate`), and `plan.expand`
turns it into runs exactly as `python -m ecgcore submit` would. Settings the form does
not expose (preprocessing, split, crops, early stopping, strategy options) take the
values of `experiments/quickstart.toml`, the preset the app's first launch uses.

Sources are a pretraining dataset (its own pretraining, as always), registered
foundation-model checkpoints (`ecgcore.foundation`), or both: the checkpoints become the
grid's `checkpoint` axis ("none" standing for the dataset's pretraining), so the planner
pairs each checkpoint with its own architecture and leaves the other points out. An
architecture with an input contract (a foundation model's) trains on its whole contract
window ([archs.<name>.train] crop_seconds), not on the random crops the small models use:
its weights only know inputs of that length.
"""

from __future__ import annotations

import copy
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from ecgcore.errors import EcgcoreError
from ecgcore.experiments.spec import ExperimentError, validate
from ecgcore.foundation import RegisteredCheckpoint, list_checkpoints
from ecgcore.models import MODELS
from ecgcore.train.config import DEVICES, TrainConfig
from ecgcore.train.device import AVAILABLE
from ecgcore.transfer import STRATEGIES

# Fixed settings of a launched grid (those of experiments/quickstart.toml).
PREP: dict[str, Any] = {"fs": 100, "seconds": 10, "normalize": "zscore"}
SPLIT: dict[str, Any] = {"method": "patient", "val": 0.15, "test": 0.3}
TRAIN_EXTRA: dict[str, Any] = {"crop_seconds": 2.5, "eval_aggregate": "max", "early_stopping_patience": 6}
STRATEGY_OPTIONS: dict[str, Any] = {"head_epochs": 3, "keep_shared_head": True}

#: Task names a dataset may use besides the named tasks of ecgcore.data.labels.
EXPERIMENT_TASKS: dict[str, str] = {
    "dataset_labels": "every class with at least `min_positives` labelled records in the dataset",
    "shared": "the classes the source and the target both label",
}


class LaunchError(EcgcoreError):
    """Choices that cannot be launched; the message says which choice and why."""


@dataclass(frozen=True)
class LaunchChoices:
    """Everything the Launch form asks for.

    target / source      workspace dataset names (source None: no pretraining)
    checkpoints          registered checkpoint names to start from, beside or instead of
                         the source dataset (each with the architecture it loads into)
    target_task          "dataset_labels", "shared" or a named task (`python -m ecgcore tasks`)
    source_task          the task the source is pretrained on ("shared" by default, so the
                         pretrained head's classes are the target's)
    min_positives        a class needs this many labelled records for "dataset_labels"
    archs, strategies, fractions, seeds   the grid (fractions of the target's training records)
    epochs, lr, batch_size, device        training; pretrain_epochs None = epochs
    name                 the experiment name (part of every run's config, so of its hash:
                         launching the same choices again reuses the finished runs)
    """

    target: str
    source: str | None = None
    target_task: str = "dataset_labels"
    source_task: str = "shared"
    min_positives: int = 20
    archs: tuple[str, ...] = ("small_cnn",)
    strategies: tuple[str, ...] = ("scratch", "finetune")
    fractions: tuple[float, ...] = (1.0,)
    seeds: tuple[int, ...] = (0,)
    epochs: int = 10
    pretrain_epochs: int | None = None
    lr: float = 0.003
    batch_size: int = 64
    device: str = "auto"
    name: str = "launch"
    train_extra: dict[str, Any] = field(default_factory=lambda: dict(TRAIN_EXTRA))
    checkpoints: tuple[str, ...] = ()

    @property
    def has_source(self) -> bool:
        """A source dataset or a checkpoint: something strategies that need a source start from."""
        return bool(self.source or self.checkpoints)

    @property
    def needs_source(self) -> list[str]:
        """The chosen strategies that start from a pretrained source model."""
        return [s for s in self.strategies if s in STRATEGIES and STRATEGIES[s].needs_source]

    @property
    def input_seconds(self) -> float:
        """Length of one training input (the random crop, or the whole window)."""
        return float(self.train_extra.get("crop_seconds") or PREP["seconds"])

    @property
    def input_samples(self) -> int:
        return round(self.input_seconds * PREP["fs"])


def experiment_config(choices: LaunchChoices) -> dict[str, Any]:
    """The experiment file the choices mean, validated like a file (raises LaunchError)."""
    train = {**choices.train_extra, "epochs": int(choices.epochs), "batch_size": int(choices.batch_size),
             "lr": float(choices.lr), "device": choices.device}
    config: dict[str, Any] = {
        "name": choices.name or "launch",
        "description": "launched from the app",
        "target": {"dataset": choices.target, "task": choices.target_task,
                   "min_positives": int(choices.min_positives)},
        "prep": dict(PREP),
        "split": dict(SPLIT),
        "train": train,
        "strategy_options": dict(STRATEGY_OPTIONS),
        "grid": {"arch": list(choices.archs), "strategy": list(choices.strategies),
                 "train_fraction": [float(f) for f in choices.fractions],
                 "seed": [int(s) for s in choices.seeds]},
    }
    if choices.source:
        config["source"] = {"dataset": choices.source, "task": choices.source_task}
        if choices.source_task == "dataset_labels":  # the only source task it changes (and so hashes)
            config["source"]["min_positives"] = int(choices.min_positives)
        config["pretrain"] = {"epochs": int(choices.pretrain_epochs or choices.epochs)}
    if choices.checkpoints:  # "none": the source dataset's own pretraining, beside the checkpoints
        config["grid"]["checkpoint"] = (["none"] if choices.source else []) + list(choices.checkpoints)
    windows = {arch: contract_window(arch) for arch in choices.archs}
    archs = {arch: {"train": {"crop_seconds": seconds}} for arch, seconds in windows.items() if seconds is not None}
    if archs:
        config["archs"] = archs
    try:
        validate(config, "the launch form")
    except ExperimentError as exc:
        raise LaunchError(str(exc)) from exc
    return copy.deepcopy(config)


def contract_window(arch: str) -> float | None:
    """Seconds of an architecture's input contract window (None: no contract, or unknown arch)."""
    entry = MODELS.get(arch)
    contract = entry.contract if entry is not None else None
    return contract.n_samples / contract.fs if contract is not None else None


def registered_checkpoints() -> dict[str, RegisteredCheckpoint]:
    """The workspace's registered checkpoints by name."""
    return {record.name: record for record in list_checkpoints()}


def choice_problems(choices: LaunchChoices, datasets: Collection[str],
                    checkpoints: Mapping[str, RegisteredCheckpoint] | None = None) -> list[str]:
    """Why these choices cannot be launched (empty when they can), one sentence each.

    Covers what is known without reading the datasets; `ClassPlan.problems` adds what
    their labels say (a target without labels, nothing shared for source_only).
    `checkpoints`: the registered ones (default: the workspace's registry)."""
    problems: list[str] = []
    if choices.checkpoints:
        problems.extend(checkpoint_problems(choices, registered_checkpoints() if checkpoints is None
                                            else checkpoints))
    if not choices.target:
        problems.append("Choose a target dataset.")
    elif choices.target not in datasets:
        problems.append(f"Target {choices.target!r} is not a dataset in the workspace.")
    if choices.source and choices.source not in datasets:
        problems.append(f"Source {choices.source!r} is not a dataset in the workspace.")
    if choices.source and choices.source == choices.target:
        problems.append(f"Source and target are both {choices.target!r}: the pretrained model would "
                        "have seen the target's test records. Choose another source or none.")
    if not choices.has_source:
        needing = choices.needs_source
        if needing:
            problems.append(f"{', '.join(needing)} start(s) from a pretrained source model, and the "
                            "source is 'none': choose a source dataset or a checkpoint, or keep only "
                            f"{' and '.join(_no_source_strategies())}.")
    if not choices.source and choices.target_task == "shared":
        problems.append("The target task 'shared' means the classes source and target share: "
                        "it needs a source dataset.")
    for label, values, known in (("architecture", choices.archs, MODELS),
                                 ("strategy", choices.strategies, STRATEGIES)):
        if not values:
            problems.append(f"Choose at least one {label}.")
        unknown = [v for v in values if v not in known]
        if unknown:
            problems.append(f"Unknown {label} {', '.join(unknown)}; known: {', '.join(known)}.")
    if not choices.fractions:
        problems.append("Choose at least one target fraction.")
    bad = [f for f in choices.fractions if not 0.0 < float(f) <= 1.0]
    if bad:
        problems.append(f"Target fractions must be in (0, 1]; got {', '.join(map(str, bad))}.")
    if not choices.seeds:
        problems.append("Choose at least one seed.")
    if int(choices.min_positives) < 1:
        problems.append(f"min_positives must be at least 1, got {choices.min_positives}.")
    problems.extend(_train_problems(choices))
    return problems


def checkpoint_problems(choices: LaunchChoices, registered: Mapping[str, RegisteredCheckpoint]) -> list[str]:
    """What is wrong with the chosen checkpoints: unregistered, or not loadable into any
    chosen architecture; and, without a source dataset, an architecture no checkpoint loads
    into (the planner would leave its runs out, scratch included)."""
    problems: list[str] = []
    unknown = [name for name in choices.checkpoints if name not in registered]
    if unknown:
        known = ", ".join(registered) or "none yet (python -m ecgcore add-checkpoint PATH --model NAME)"
        problems.append(f"Checkpoint {', '.join(unknown)} is not registered; registered: {known}.")
    chosen = [registered[name] for name in choices.checkpoints if name in registered]
    for record in chosen:
        if record.arch not in choices.archs:
            problems.append(f"Checkpoint {record.name} loads into the architecture {record.arch}: add "
                            f"{record.arch} to the architectures, or the checkpoint has no run.")
    if chosen and "source_only" in choices.strategies:
        problems.append("source_only scores the target with the source model's own head, and a checkpoint "
                        "has none for the target's classes: drop source_only or the checkpoints.")
    if not choices.source and chosen:
        covered = {record.arch for record in chosen}
        alone = [arch for arch in choices.archs if arch not in covered]
        if alone:
            problems.append(f"{', '.join(alone)}: no chosen checkpoint loads into it and there is no source "
                            "dataset, so none of its runs (scratch included) would be planned; remove it or "
                            "choose a source dataset.")
    return problems


def _no_source_strategies() -> list[str]:
    return [name for name, strategy in STRATEGIES.items() if not strategy.needs_source]


def _train_problems(choices: LaunchChoices) -> list[str]:
    problems: list[str] = []
    try:
        TrainConfig.from_dict({**choices.train_extra, "epochs": choices.epochs,
                               "batch_size": choices.batch_size, "lr": choices.lr,
                               "device": choices.device})
        if choices.pretrain_epochs is not None:
            TrainConfig(epochs=choices.pretrain_epochs)
    except (TypeError, ValueError) as exc:
        problems.append(str(exc).removeprefix("TrainConfig: ").capitalize() + ".")
    if choices.device in DEVICES and choices.device != "auto" and not AVAILABLE[choices.device]():
        problems.append(f"Device {choices.device!r} is not available on this machine (the local "
                        "worker runs here); choose auto or cpu.")
    return problems
