"""From a validated experiment file to the runs it means: one pretraining per (source,
architecture, seed, settings), shared by every strategy that needs it, and one target
run per grid point. Each run is identified by the hash of its full config, so a run
that already finished is reused instead of trained again.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from ecgcore import workspace
from ecgcore.data.labels import UNLABELLED, check_task_name
from ecgcore.data.pipeline import SplitConfig
from ecgcore.data.prepare import PrepConfig
from ecgcore.errors import EcgcoreError
from ecgcore.experiments.spec import ExperimentError, grid_points
from ecgcore.foundation.catalogue import FOUNDATION_MODELS
from ecgcore.foundation.checkpoints import get_checkpoint
from ecgcore.models import MODELS
from ecgcore.models.registry import layer_group_count
from ecgcore.runs import config_hash
from ecgcore.runs.run_config import (
    SUPERVISED,
    CheckpointRef,
    DataConfig,
    ModelConfig,
    PretrainMethodConfig,
    ReportConfig,
    RunConfig,
    SourceConfig,
    StrategyConfig,
)
from ecgcore.ssl.methods import method_config, method_settings_names
from ecgcore.train import TrainConfig
from ecgcore.transfer import STRATEGIES, StrategyOptions


@dataclass(frozen=True)
class RunSpec:
    """One run to do: its typed config, its hash (the hash of `config`, what config.json
    holds), the pretraining run it needs, and, in a lenient plan, the datasets not found."""

    run_config: RunConfig
    hash: str
    depends_on: str | None = None  # hash of the pretraining run it needs
    missing: tuple[str, ...] = ()  # datasets not found (only in a lenient plan, e.g. a dry run)
    source_method: str | None = None  # the self-supervised method of the pretraining it needs (labels only)

    @classmethod
    def from_config(cls, config: Mapping[str, Any], hash: str, depends_on: str | None = None) -> RunSpec:
        """The spec of a run planned earlier, from the config and hash it was planned with
        (a job's payload): the hash is kept as given, never recomputed."""
        return cls(RunConfig.from_dict(config), hash, depends_on)

    @property
    def kind(self) -> str:
        """"pretrain" or "target"."""
        return self.run_config.kind

    @property
    def config(self) -> dict[str, Any]:
        """The config as config.json, the job queue and `run --dry-run --json` spell it."""
        return self.run_config.to_dict()

    @property
    def label(self) -> str:
        c = self.run_config
        where = f"[{c.protocol}] " if c.protocol else ""
        task = f" task {c.data.task}" if c.task_from_grid else ""
        if c.kind == "pretrain":
            how = f" ({c.method_name}, no labels)" if c.pretrain_method is not None else ""
            return f"{where}pretrain {c.model.arch} on {c.data.name}{task}{how} (seed {c.seed})"
        source = "" if c.source is None else (
            f" from checkpoint {c.source.name}" if c.source.kind == "checkpoint" else f" from {c.source.name}")
        if self.source_method:
            source += f" ({self.source_method})"
        size = f"n {c.train_n}" if c.train_n else f"fraction {c.train_fraction}"
        return (f"{where}{c.model.arch} {c.strategy_name}{source} on {c.data.name}"
                f"{task} {size} seed {c.seed}")


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


Section = TypeVar("Section")


def _checked(values: dict[str, Any], key: str, cls: type[Section]) -> Section:
    """A section's merged values as its dataclass (unknown keys, bad values -> one clear
    line naming the section)."""
    try:
        return cls.from_dict(values)  # type: ignore[attr-defined]
    except (TypeError, ValueError, KeyError) as exc:
        raise ExperimentError(f"[{key}]: " + str(exc).replace("\n", "\\n")) from exc


def _data(section: dict[str, Any], missing: list[str] | None = None) -> DataConfig:
    """The run config's data part. With `missing` (a lenient plan), a dataset that is not
    found keeps its name and is listed there instead of stopping the plan."""
    name = section["dataset"]
    try:
        check_task_name(section.get("task", "dataset_labels"))
    except EcgcoreError as exc:
        raise ExperimentError(f"dataset {name!r}: {exc}") from exc
    found = find_dataset(name) if missing is not None else resolve_dataset(name)
    if found is None and missing is not None:
        missing.append(name)
    return DataConfig(
        dataset=found or name, task=section.get("task", "dataset_labels"),
        options=dict(section.get("options", {})), min_positives=int(section.get("min_positives", 10)),
        challenge_weights=(str(Path(section["challenge_weights"]).expanduser().resolve())
                           if section.get("challenge_weights") else None),
        exclude_sources=tuple(sorted(str(s) for s in section.get("exclude_sources") or ())))


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
    pretrains: dict[str, RunSpec] = {}
    targets: dict[str, RunSpec] = {}
    for point in grid_points(config):
        _check_names(point)
        missing: list[str] | None = None if strict else []
        checkpoint = _checkpoint_ref(point["checkpoint"], missing) if point.get("checkpoint") else None
        if checkpoint is not None and checkpoint.arch != point["arch"]:
            continue  # another architecture's checkpoint: not a point of this grid
        target_data = _target_data(config, point, missing)
        target = _target_config(config, point, target_data)
        pretrain = None
        if checkpoint is not None:
            if STRATEGIES[point["strategy"]].needs_source:
                target = dataclasses.replace(target, source=SourceConfig(None, None, checkpoint))
        else:
            pretrain = _pretrain_spec(config, point, target_data, missing)
        if pretrain is not None:
            pretrains.setdefault(pretrain.hash, pretrain)
            target = dataclasses.replace(target, source=SourceConfig(pretrain.run_config.data, pretrain.hash))
        run_hash = config_hash(target.to_dict())
        method = pretrain.run_config.pretrain_method if pretrain is not None else None
        targets.setdefault(run_hash, RunSpec(target, run_hash, pretrain.hash if pretrain else None,
                                             missing=tuple(dict.fromkeys(missing or ())),
                                             source_method=method.name if method is not None else None))
    return [*pretrains.values(), *targets.values()]


def _checkpoint_ref(name: str, missing: list[str] | None) -> CheckpointRef:
    """The registered checkpoint a grid point names. Strict plans need it registered; a
    lenient plan (a dry run) lists an unregistered one as missing and takes its
    architecture from the foundation-model catalogue (the demo checkpoints are made by
    `run` when the file says `demo = true`)."""
    try:
        record = get_checkpoint(name)
    except EcgcoreError as exc:
        if missing is None or name not in FOUNDATION_MODELS:
            raise ExperimentError(f"[grid] checkpoint {name!r}: {exc}") from exc
        missing.append(f"checkpoint {name}")
        return CheckpointRef(name, "unregistered", FOUNDATION_MODELS[name].arch)
    return CheckpointRef(record.name, record.sha256, record.arch)


def prepared_for(arch: str, prep: PrepConfig) -> PrepConfig:
    """The preprocessing of an architecture's runs: `prep`, or for a model that declares
    an input contract (a foundation model's) `prep` with the contract imposed, whatever
    the source or strategy, so the runs of one architecture see the same input."""
    contract = MODELS[arch].contract
    return contract.prep_config(prep) if contract is not None else prep


def trained_for(arch: str, train: TrainConfig, seed: int) -> TrainConfig:
    """A run's training settings with its seed; a model that declares an input contract
    trains on the contract's whole window (its input is the contract's, so `crop_seconds`,
    random crops for models that take any length, does not apply to it)."""
    if MODELS[arch].contract is not None:
        train = dataclasses.replace(train, crop_seconds=None)
    return dataclasses.replace(train, seed=seed)


def _check_names(point: dict[str, Any]) -> None:
    if point["arch"] not in MODELS:
        raise ExperimentError(f"unknown architecture {point['arch']!r}; known: {', '.join(sorted(MODELS))}")
    if point["strategy"] not in STRATEGIES:
        raise ExperimentError(f"unknown strategy {point['strategy']!r}; known: {', '.join(STRATEGIES)}")


def _tags(config: dict[str, Any], point: dict[str, Any]) -> dict[str, Any]:
    """The protocol a run belongs to, and whether the grid chose its task."""
    return {"protocol": point.get("protocol") or config.get("protocol") or None,
            "task_from_grid": bool(point.get("task"))}


def _target_data(config: dict[str, Any], point: dict[str, Any], missing: list[str] | None) -> DataConfig:
    layers = _Layers(config, point.get("protocol"), point["arch"])
    section = layers.dataset("target", point.get("target"), point.get("task"))
    return _data(section, missing)  # type: ignore[arg-type]


def _pretrain_spec(config: dict[str, Any], point: dict[str, Any], target: DataConfig,
                   missing: list[str] | None) -> RunSpec | None:
    """The pretraining run a grid point's strategy starts from (None: it needs none)."""
    arch, strategy_name = point["arch"], point["strategy"]
    if not STRATEGIES[strategy_name].needs_source:
        return None
    layers = _Layers(config, point.get("protocol"), arch)
    section = layers.dataset("source", point.get("source"), point.get("task"))
    if section is None:
        raise ExperimentError(f"strategy {strategy_name!r} needs a [source] dataset")
    source = _data(section, missing)
    source_fraction = float(section.get("train_fraction", 1.0))
    key = point.get("source")
    split = layers.section("pretrain_split", key, base={
        "seed": point["seed"], "train_fraction": source_fraction if source_fraction < 1.0 else None})
    train = _merged(config.get("train"), layers.protocol.get("train"), layers.arch.get("train"),
                    config.get("pretrain"), layers.protocol.get("pretrain"), layers.arch.get("pretrain"))
    method = _pretrain_method(point, train)  # takes the method's keys out of `train`
    if method is not None:  # self-supervised: the source's records, not its labels
        source = dataclasses.replace(source, task=UNLABELLED)
        if strategy_name == "source_only":
            raise ExperimentError(f"strategy 'source_only' scores the source model's head, which {method.name} "
                                  "pretraining does not train: use a strategy that trains a head")
    elif source.task == UNLABELLED:
        raise ExperimentError("the source task 'unlabelled' has no classes to learn: only a self-supervised "
                              "[pretrain] method (simclr, clocs, masked) can pretrain on it")
    run_config = RunConfig(
        kind="pretrain", experiment=config.get("name", "experiment"), model=ModelConfig(arch),
        seed=point["seed"], train_fraction=source_fraction, data=source,
        shared_with=target.dataset if source.task == "shared" else None, pretrain_method=method,
        prep=prepared_for(arch, _checked(layers.section("prep", key), "prep", PrepConfig)),
        split=_checked(split, "pretrain_split", SplitConfig),
        train=trained_for(arch, _checked(train, "pretrain", TrainConfig), point["seed"]),
        **_tags(config, point))
    run_hash = config_hash(run_config.to_dict())
    return RunSpec(run_config, run_hash, missing=_missing_of(missing, source))


def _pretrain_method(point: dict[str, Any], train: dict[str, Any]) -> PretrainMethodConfig | None:
    """The pretraining method of a grid point ([grid] pretrain_method, else [pretrain] method,
    else supervised) with its settings; `method` and every method setting are taken out of
    `train` (the merged [pretrain] table), which keeps the training settings only."""
    name = train.pop("method", SUPERVISED)
    name = point.get("pretrain_method", name)
    options = {key: train.pop(key) for key in sorted(set(train) & method_settings_names())}
    try:
        return method_config(name, options)
    except EcgcoreError as exc:
        raise ExperimentError(f"[pretrain]: {exc}") from exc


def _target_config(config: dict[str, Any], point: dict[str, Any], target: DataConfig) -> RunConfig:
    """The target run of a grid point, without its source (`expand` adds the pretraining
    run it starts from)."""
    arch, strategy_name = point["arch"], point["strategy"]
    if target.task == UNLABELLED:
        raise ExperimentError("the target task 'unlabelled' has no classes: it serves self-supervised "
                              "pretraining only")
    layers = _Layers(config, point.get("protocol"), arch)
    options = _checked(layers.section("strategy_options"), "strategy_options", StrategyOptions)
    train = _checked(layers.section("train"), "train", TrainConfig)
    try:  # before any run is done: a run too short for its strategy's last phase
        STRATEGIES[strategy_name].check_architecture(arch)
        STRATEGIES[strategy_name].check_epochs(layer_group_count(arch), train.epochs, options)
    except EcgcoreError as exc:
        raise ExperimentError(f"{arch} {strategy_name}: {exc}") from exc
    prep = prepared_for(arch, _checked(layers.section("prep", point.get("target")), "prep", PrepConfig))
    split = _checked(layers.section("split", point.get("target")), "split", SplitConfig)
    # The split (and so the test set) is the same for every seed and strategy, so runs
    # compare on the same records; the seed varies initialisation and batch order.
    fraction = point["train_fraction"]
    try:  # the grid's fraction or size with the file's [split] (which may name a size itself)
        split = dataclasses.replace(split, train_fraction=None if fraction >= 1.0 else fraction,
                                    **({"train_n": point["train_n"]} if point.get("train_n") else {}))
    except (TypeError, ValueError) as exc:
        raise ExperimentError(f"[split] with grid train_fraction {fraction}: {exc}") from exc
    return RunConfig(
        kind="target", experiment=config.get("name", "experiment"), model=ModelConfig(arch),
        strategy=StrategyConfig(strategy_name, options), seed=point["seed"], data=target,
        prep=prep, split=split, train_fraction=fraction,
        train=trained_for(arch, train, point["seed"]), train_n=point.get("train_n"),
        report=ReportConfig(test_every_epoch=bool(layers.section("report").get("test_every_epoch"))),
        **_tags(config, point))


def _missing_of(missing: list[str] | None, data: DataConfig) -> tuple[str, ...]:
    return (data.dataset,) if missing and data.dataset in missing else ()
