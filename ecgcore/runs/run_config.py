"""`RunConfig`: one run's full configuration as a typed value, and its config.json spelling.

The planner (`ecgcore.experiments.run_plan`) builds a RunConfig per run; the runner, the
index and the views read its parts by attribute. `to_dict()` is the exact JSON a run's
config.json holds (the key order of today's files, and keys that are written only when
used), so `config_hash(config.to_dict())` is the hash that identifies the run.
`RunConfig.from_dict` reads any config.json written so far: a part missing from an older
file takes its default. Such a file reads, but its `to_dict()` spells today's keys, so
an old run keeps the hash recorded in its results.json, not one recomputed from it.

    RunConfig
      kind            "pretrain" | "target"
      experiment      the experiment file's name
      model           ModelConfig: the architecture
      seed            initialisation and batch order (the split has its own seed)
      data            DataConfig: the dataset trained on (the source for a pretraining run)
      prep, split, train   PrepConfig, SplitConfig, TrainConfig
      train_fraction  the fraction of the training split asked for
      strategy        StrategyConfig (target runs only): the transfer strategy and its options
      source          SourceConfig (target runs that start from a source): the source
                      dataset and the hash of its pretraining run, or a registered
                      foundation-model checkpoint (`source_checkpoint` in config.json)
      shared_with     pretraining runs on the "shared" task: the dataset whose classes
                      are shared (the target)
      pretrain_method PretrainMethodConfig (pretraining runs only): a self-supervised
                      method and its settings (`ecgcore.ssl.methods`); None is supervised
                      pretraining, and config.json then has no `pretrain_method` key, as
                      before the methods existed
      train_n, report, protocol, task_from_grid
                      written only when used, so configs made before each existed keep
                      their hashes
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ecgcore.data.pipeline import SplitConfig
from ecgcore.data.prepare.config import PrepConfig
from ecgcore.errors import EcgcoreError
from ecgcore.train.config import TrainConfig
from ecgcore.transfer.options import StrategyOptions

KINDS: tuple[str, ...] = ("pretrain", "target")
#: What a target run without a strategy does (configs written by hand, and the results of
#: pretraining runs, which train from a random initialisation).
DEFAULT_STRATEGY = "scratch"


class RunConfigError(EcgcoreError, ValueError):
    """A mapping that is not a run config; the message names the key."""


def _known(data: Mapping[str, Any], allowed: tuple[str, ...], where: str) -> None:
    if not isinstance(data, Mapping):
        raise RunConfigError(f"{where} must be a JSON object, got {type(data).__name__}")
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise RunConfigError(f"{where}: unknown key(s) {', '.join(map(str, unknown))}; "
                             f"known: {', '.join(allowed)}")


@dataclass(frozen=True)
class DataConfig:
    """One dataset of a run: its folder, the label task, the reader's options, the least
    number of positives a class needs, the Challenge 2021 weights (target runs, optional)
    and the Challenge sources left out (written only when used)."""

    dataset: str
    task: str = "dataset_labels"
    options: dict[str, Any] = field(default_factory=dict)
    min_positives: int = 10
    challenge_weights: str | None = None
    exclude_sources: tuple[str, ...] = ()

    KEYS = ("dataset", "task", "options", "min_positives", "challenge_weights", "exclude_sources")

    @property
    def name(self) -> str:
        """The dataset's folder name (what results.json and the index call it)."""
        return Path(self.dataset).name

    def to_dict(self) -> dict[str, Any]:
        data = {"dataset": self.dataset, "task": self.task, "options": copy.deepcopy(self.options),
                "min_positives": self.min_positives, "challenge_weights": self.challenge_weights}
        if self.exclude_sources:
            data["exclude_sources"] = list(self.exclude_sources)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "data") -> DataConfig:
        _known(data, cls.KEYS, where)
        if not isinstance(data.get("dataset"), str):
            raise RunConfigError(f"{where}: dataset must be a folder path, got {data.get('dataset')!r}")
        return cls(dataset=data["dataset"], task=str(data.get("task", "dataset_labels")),
                   options=copy.deepcopy(dict(data.get("options") or {})),
                   min_positives=int(data.get("min_positives", 10)),
                   challenge_weights=data.get("challenge_weights"),
                   exclude_sources=tuple(str(s) for s in data.get("exclude_sources") or ()))


@dataclass(frozen=True)
class ModelConfig:
    """The model a run trains: its architecture (`ecgcore.models.MODELS`)."""

    arch: str


@dataclass(frozen=True)
class StrategyConfig:
    """How a target run starts and trains (`ecgcore.transfer.STRATEGIES`) and its options."""

    name: str = DEFAULT_STRATEGY
    options: StrategyOptions = field(default_factory=StrategyOptions)


@dataclass(frozen=True)
class CheckpointRef:
    """A registered foundation-model checkpoint a run starts from: its registry name, the
    SHA-256 of its file (what identifies the weights, so the run's hash changes with the
    file) and the architecture it loads into."""

    name: str
    sha256: str
    arch: str

    KEYS = ("name", "sha256", "arch")

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "sha256": self.sha256, "arch": self.arch}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CheckpointRef:
        _known(data, cls.KEYS, "source_checkpoint")
        missing = [key for key in cls.KEYS if not isinstance(data.get(key), str)]
        if missing:
            raise RunConfigError(f"source_checkpoint: {', '.join(missing)} must be strings")
        return cls(data["name"], data["sha256"], data["arch"])


#: What a target run starts from (results.json `source_kind`).
SOURCE_KINDS: tuple[str, ...] = ("none", "pretraining", "checkpoint")


@dataclass(frozen=True)
class SourceConfig:
    """Where a target run's starting weights come from: the source dataset and the config
    hash of the pretraining run on it, or (`checkpoint`, with no data) a registered
    foundation-model checkpoint."""

    data: DataConfig | None
    pretrain_hash: str | None
    checkpoint: CheckpointRef | None = None

    def __post_init__(self) -> None:
        if (self.data is None) == (self.checkpoint is None):
            raise RunConfigError("source: either a dataset (own pretraining) or a checkpoint, not both")
        if self.checkpoint is not None and self.pretrain_hash:
            raise RunConfigError("source: a checkpoint source has no pretraining run")

    @property
    def kind(self) -> str:
        """"checkpoint" or "pretraining" (see SOURCE_KINDS)."""
        return "checkpoint" if self.checkpoint is not None else "pretraining"

    @property
    def name(self) -> str:
        """What results.json calls the source: the dataset's folder name or the checkpoint's name."""
        if self.checkpoint is not None:
            return self.checkpoint.name
        assert self.data is not None
        return self.data.name


@dataclass(frozen=True)
class PretrainMethodConfig:
    """A self-supervised pretraining method (`ecgcore.ssl.methods.PRETRAIN_METHODS`) and its
    settings, every one explicit (the planner fills in the method's defaults, so the hash
    names what was run, whatever later versions choose as defaults). Supervised pretraining
    has none (RunConfig.pretrain_method is None)."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)

    KEYS = ("name", "options")

    def __post_init__(self) -> None:
        if not self.name or self.name == SUPERVISED:
            raise RunConfigError(f"pretrain_method: supervised pretraining has no method part; got {self.name!r}")

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "options": copy.deepcopy(self.options)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PretrainMethodConfig:
        _known(data, cls.KEYS, "pretrain_method")
        if not isinstance(data.get("name"), str):
            raise RunConfigError(f"pretrain_method: name must be a string, got {data.get('name')!r}")
        options = data.get("options") or {}
        if not isinstance(options, Mapping):
            raise RunConfigError("pretrain_method: options must be a JSON object")
        return cls(data["name"], copy.deepcopy(dict(options)))


#: The pretraining that learns from labels (no `pretrain_method` part in config.json).
SUPERVISED = "supervised"


@dataclass(frozen=True)
class ReportConfig:
    """What a run reports besides its result: the test split scored after every epoch."""

    test_every_epoch: bool = False


_TOP_KEYS: tuple[str, ...] = (
    "kind", "experiment", "arch", "strategy", "strategy_options", "seed", "train_fraction", "data",
    "shared_with", "source", "pretrain_hash", "source_checkpoint", "prep", "split", "train", "pretrain_method",
    "report", "train_n", "protocol", "task_from_grid")


@dataclass(frozen=True)
class RunConfig:
    """One run's configuration (see the module docstring for its parts)."""

    kind: str
    experiment: str | None
    model: ModelConfig
    seed: int
    data: DataConfig
    prep: PrepConfig = field(default_factory=PrepConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    train_fraction: float = 1.0
    strategy: StrategyConfig | None = None
    source: SourceConfig | None = None
    shared_with: str | None = None
    train_n: int | None = None
    report: ReportConfig = field(default_factory=ReportConfig)
    protocol: str | None = None
    task_from_grid: bool = False
    pretrain_method: PretrainMethodConfig | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise RunConfigError(f"run config: kind must be one of {KINDS}, got {self.kind!r}")
        if self.kind == "pretrain" and (self.strategy is not None or self.source is not None):
            raise RunConfigError("run config: a pretraining run has no strategy and no source")
        if self.kind == "target" and self.strategy is None:
            raise RunConfigError("run config: a target run needs a strategy")
        if self.kind == "target" and self.pretrain_method is not None:
            raise RunConfigError("run config: pretrain_method belongs to pretraining runs")
        if self.kind == "target" and self.shared_with is not None:
            raise RunConfigError("run config: shared_with belongs to pretraining runs (a target "
                                 "run shares classes with its source)")

    # -- reading ---------------------------------------------------------------------------
    @property
    def effective_strategy(self) -> StrategyConfig:
        """The strategy the run trains with: its own, or for a pretraining run (which has
        none) scratch with the default options."""
        return self.strategy if self.strategy is not None else StrategyConfig()

    @property
    def strategy_name(self) -> str:
        """The strategy as results.json names it ("scratch" for a pretraining run)."""
        return self.effective_strategy.name

    @property
    def shared_partner(self) -> str | None:
        """The other dataset of a "shared" task (the classes both label): the target of a
        pretraining run, the source of a target run."""
        if self.shared_with:
            return self.shared_with
        return self.source.data.dataset if self.source is not None and self.source.data is not None else None

    @property
    def method_name(self) -> str:
        """The pretraining method: "supervised" or a self-supervised method's name."""
        return self.pretrain_method.name if self.pretrain_method is not None else SUPERVISED

    @property
    def source_kind(self) -> str:
        """"none", "pretraining" or "checkpoint" (SOURCE_KINDS): what the run starts from."""
        return self.source.kind if self.source is not None else "none"

    @classmethod
    def from_dict(cls, config: Mapping[str, Any]) -> RunConfig:
        """The RunConfig of a config.json (today's or older); RunConfigError for a mapping
        that is not one (an unknown key, a missing arch or data, a bad section)."""
        _known(config, _TOP_KEYS, "run config")
        for key in ("arch", "data"):
            if key not in config:
                raise RunConfigError(f"run config: no {key!r}")
        kind = config.get("kind", "target")
        if kind == "pretrain" and (config.get("strategy") or config.get("strategy_options")):
            raise RunConfigError("run config: a pretraining run has no strategy")
        try:
            strategy = None
            if kind == "target":
                strategy = StrategyConfig(str(config.get("strategy") or DEFAULT_STRATEGY),
                                          StrategyOptions.from_dict(config.get("strategy_options")))
            source = None
            if config.get("source_checkpoint") is not None:
                if config.get("source") is not None or config.get("pretrain_hash"):
                    raise RunConfigError("run config: source_checkpoint beside a source dataset")
                source = SourceConfig(None, None, CheckpointRef.from_dict(config["source_checkpoint"]))
            elif config.get("source") is not None:
                source = SourceConfig(DataConfig.from_dict(config["source"], "source"),
                                      config.get("pretrain_hash"))
            elif config.get("pretrain_hash"):
                raise RunConfigError("run config: a pretrain_hash without a source")
            return cls(
                kind=kind, experiment=config.get("experiment"), model=ModelConfig(str(config["arch"])),
                seed=int(config.get("seed", 0)), data=DataConfig.from_dict(config["data"]),
                prep=PrepConfig.from_dict(dict(config.get("prep") or {})),
                split=SplitConfig.from_dict(config.get("split") or {}),
                train=TrainConfig.from_dict(config.get("train") or {}),
                train_fraction=config.get("train_fraction", 1.0),
                strategy=strategy, source=source, shared_with=config.get("shared_with"),
                train_n=config.get("train_n"),
                report=ReportConfig(**_report(config.get("report"))),
                protocol=config.get("protocol"), task_from_grid=bool(config.get("task_from_grid")),
                pretrain_method=(PretrainMethodConfig.from_dict(config["pretrain_method"])
                                 if config.get("pretrain_method") is not None else None))
        except RunConfigError:
            raise
        except (TypeError, ValueError, KeyError) as exc:
            raise RunConfigError(f"run config: {exc}") from exc

    # -- writing ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """config.json: the keys in the order runs have always written them (pretraining
        and target runs differ), optional keys only when used."""
        out: dict[str, Any] = {"kind": self.kind, "experiment": self.experiment, "arch": self.model.arch}
        if self.kind == "pretrain":
            out.update(seed=self.seed, train_fraction=self.train_fraction, data=self.data.to_dict(),
                       shared_with=self.shared_with, prep=self.prep.to_dict(),
                       split=self.split.to_dict(), train=self.train.to_dict())
            if self.pretrain_method is not None:
                out["pretrain_method"] = self.pretrain_method.to_dict()  # only when self-supervised
        else:
            assert self.strategy is not None  # __post_init__
            source_data = self.source.data if self.source is not None else None
            out.update(strategy=self.strategy.name, strategy_options=self.strategy.options.to_dict(),
                       seed=self.seed, data=self.data.to_dict(),
                       source=source_data.to_dict() if source_data is not None else None,
                       pretrain_hash=self.source.pretrain_hash if self.source is not None else None)
            if self.source is not None and self.source.checkpoint is not None:
                out["source_checkpoint"] = self.source.checkpoint.to_dict()  # only when used
            out.update(prep=self.prep.to_dict(), split=self.split.to_dict(),
                       train_fraction=self.train_fraction, train=self.train.to_dict())
        if self.report.test_every_epoch:
            out["report"] = dataclasses.asdict(self.report)
        if self.train_n:
            out["train_n"] = self.train_n
        if self.protocol:
            out["protocol"] = self.protocol
        if self.task_from_grid:
            out["task_from_grid"] = True
        return out


def _report(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    _known(value, tuple(f.name for f in dataclasses.fields(ReportConfig)), "report")
    return dict(value)


def source_kind_of(results: Mapping[str, Any]) -> str:
    """A finished run's source kind (SOURCE_KINDS) from its results.json: the recorded
    `source_kind`, or for a run written before it was recorded "pretraining" when it
    names a source and "none" otherwise (checkpoint sources did not exist then)."""
    kind = results.get("source_kind")
    if kind in SOURCE_KINDS:
        return str(kind)
    return "pretraining" if results.get("source") else "none"
