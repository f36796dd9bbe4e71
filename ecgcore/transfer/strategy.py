"""The strategy interface, the one place that turns a per-group schedule into an EpochPlan,
and the registry.

A strategy is a list of *phases* (`Phase`): e.g. "head" for 30 epochs, then "all" for
the rest. Each phase has its rates, its length, whether it starts a fresh optimisation
run (optimizer and LR schedule from the start, like a separate fastai `fit_one_cycle`)
or continues the previous one, and optional recipe settings (batch-norm layers of
frozen groups still training, a prescribed schedule and Adam betas). `check_epochs`
refuses a run too short to reach the last phase; the trainer counts early-stopping
patience only within the last phase.

A phase's rates are a tuple of learning-rate multipliers, one per layer group
(input to output, head last): `None` means frozen, a number means "trains at
base_lr * number". `plan_from_rates` is the single source of truth for what trains:
it sets `requires_grad` on every parameter itself (frozen groups False, trained
groups True), so a trainer that forgets to do so still trains exactly what the plan
says, and returns the frozen group modules so the trainer can hold them in eval mode
(frozen batch-norm statistics, no dropout).

Every schedule freezes a prefix of the groups (frozen groups all come before trained
ones). Gradients therefore never have to flow through a frozen module, which keeps
frozen recurrent layers in eval mode legal on cuDNN (its RNN backward refuses eval
mode) and saves the backward pass through the frozen part.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from torch import nn

from ecgcore.checkpoint import Checkpoint
from ecgcore.errors import EcgcoreError
from ecgcore.models.base import ECGClassifier
from ecgcore.transfer.base import EpochPlan
from ecgcore.transfer.options import StrategyOptions

if TYPE_CHECKING:
    from ecgcore.data.pipeline import TaskDataset
    from ecgcore.train import FitResult, TrainConfig
    from ecgcore.train.callbacks import Callback

Rates = tuple[float | None, ...]


@dataclass
class SetupReport:
    """What `setup` did, for the run log and results: how many tensors came from the source,
    which target classes kept their source head rows, the head size."""

    loaded: int = 0
    kept_head_rows: list[str] = field(default_factory=list)
    n_classes: int = 0


BN_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)  # fastai v1's bn_types


@dataclass(frozen=True)
class Phase:
    """One step of a strategy's recipe.

    name       shown in the run's history and results ("head", "all", ...)
    rates      LR multiplier per layer group (None = frozen), as `Strategy.rates`
    epochs     its length; None = the rest of the run (only the last phase)
    new_cycle  True: a fresh optimizer and the LR schedule from its start; False: the
               previous phase's optimizer (extended by newly trained groups) and schedule go on
    train_bn   batch-norm layers inside frozen groups still train (fastai's train_bn=True):
               their weight and bias at the head's rate, their statistics update, and
               frozen groups stay in train mode
    schedule   the LR schedule the recipe prescribes (None: TrainConfig.schedule)
    betas      the Adam betas the recipe prescribes (None: the optimizer's)
    """

    name: str
    rates: tuple[float | None, ...]
    epochs: int | None = None
    new_cycle: bool = True
    train_bn: bool = False
    schedule: str | None = None
    betas: tuple[float, float] | None = None


@dataclass(frozen=True)
class PlacedPhase:
    """A phase with its place in a run of known length: first epoch and epoch count
    (None: open-ended), and the cycle (optimisation run) it belongs to."""

    phase: Phase
    index: int
    first_epoch: int
    epochs: int | None
    cycle_start: int
    cycle_epochs: int | None
    n_phases: int

    def covers(self, epoch: int) -> bool:
        return epoch >= self.first_epoch and (self.epochs is None or epoch < self.first_epoch + self.epochs)

    def report(self, epochs_run: int) -> dict[str, Any]:
        """What results.json says of this phase after `epochs_run` epochs of the run."""
        ran = max(0, epochs_run - self.first_epoch)
        if self.epochs is not None:
            ran = min(ran, self.epochs)
        return {"name": self.phase.name, "first_epoch": self.first_epoch, "epochs_planned": self.epochs,
                "epochs_run": ran, "reached": epochs_run > self.first_epoch,
                "schedule": self.phase.schedule, "train_bn": self.phase.train_bn}


@dataclass(frozen=True)
class ScoredOutputs:
    """The target classes a model set up by a strategy can score, and for each the model's
    output column that holds its score (in the order of `classes`)."""

    classes: list[str]
    columns: list[int]

    def pick(self, scores: np.ndarray) -> np.ndarray:
        """The columns of `scores` (records x model outputs) that score `classes`: the array
        itself when those are all its columns in order (a copy would come out in another
        memory layout, and sums over it, such as the Brier score, in another last digit)."""
        if self.columns == list(range(scores.shape[1])):
            return scores
        return scores[:, self.columns]


def place_phases(phases: Sequence[Phase], epochs: int | None) -> list[PlacedPhase]:
    """Lay the phases out over a run of `epochs` epochs (None: open-ended). A cycle runs
    from a phase with new_cycle (or the first) up to the next such phase."""
    firsts: list[int] = []
    lengths: list[int | None] = []
    cycle_of: list[int] = []
    first = 0
    for index, phase in enumerate(phases):
        length = phase.epochs if phase.epochs is not None else (None if epochs is None else epochs - first)
        firsts.append(first)
        lengths.append(length)
        cycle_of.append(index if phase.new_cycle or index == 0 else cycle_of[-1])
        first += length or 0
    placed = []
    for index, phase in enumerate(phases):
        spans = [lengths[j] for j in range(len(phases)) if cycle_of[j] == cycle_of[index]]
        cycle_epochs = None if any(n is None for n in spans) else sum(n for n in spans if n is not None)
        placed.append(PlacedPhase(phase, index, firsts[index], lengths[index],
                                  firsts[cycle_of[index]], cycle_epochs, len(phases)))
    return placed


class Strategy(ABC):
    """What is loaded from the source, what is re-initialised, and what trains when.

    name         registry key (also the config value)
    description  one line, shown in the app
    needs_source True when setup loads a source checkpoint
    trains       False for strategies that only evaluate (source_only)
    """

    name: str = ""
    description: str = ""
    needs_source: bool = True
    trains: bool = True

    @abstractmethod
    def setup(self, model: ECGClassifier, source: Checkpoint | None, target_classes: Sequence[str],
              options: StrategyOptions) -> SetupReport:
        """Prepare `model` once before training (load source weights, new head)."""

    @abstractmethod
    def phases(self, n_groups: int, options: StrategyOptions) -> list[Phase]:
        """The recipe: phases in order; only the last may be open-ended (epochs None)."""

    def placed_phases(self, n_groups: int, epochs: int | None,
                      options: StrategyOptions | None = None) -> list[PlacedPhase]:
        return place_phases(self.phases(n_groups, options or StrategyOptions()), epochs)

    def phase_at(self, n_groups: int, epoch: int, options: StrategyOptions | None = None,
                 epochs: int | None = None) -> PlacedPhase:
        """The phase 0-based `epoch` belongs to (the last phase after the others)."""
        placed = self.placed_phases(n_groups, epochs, options)
        return next((p for p in placed if p.covers(epoch)), placed[-1])

    def rates(self, n_groups: int, epoch: int, options: StrategyOptions) -> Rates:
        """LR multiplier per layer group at 0-based `epoch`; None = frozen."""
        return self.phase_at(n_groups, epoch, options).phase.rates

    def phase_reports(self, n_groups: int, epochs: int, options: StrategyOptions,
                      epochs_run: int) -> list[dict[str, Any]]:
        """What results.json says of each phase after `epochs_run` of `epochs` epochs."""
        return [p.report(epochs_run) for p in self.placed_phases(n_groups, epochs, options)]

    def scored_outputs(self, source: Checkpoint | None, target_classes: Sequence[str]) -> ScoredOutputs:
        """Which target classes the model this strategy set up can score, and from which
        output columns: every target class, each from its own column (the model has a
        head of the target's classes)."""
        return ScoredOutputs(list(target_classes), list(range(len(target_classes))))

    def min_epochs(self, n_groups: int, options: StrategyOptions) -> int:
        """The fewest epochs that reach the last phase (one epoch of it)."""
        return sum(p.epochs or 0 for p in self.phases(n_groups, options)[:-1]) + 1

    def check_architecture(self, arch: str) -> None:
        """Refuse, before any run is planned, an architecture this strategy cannot work with
        (an EcgcoreError naming why); every architecture by default."""

    def check_epochs(self, n_groups: int, epochs: int, options: StrategyOptions) -> None:
        """One line refusing a run too short to reach the strategy's last phase."""
        needed = self.min_epochs(n_groups, options)
        if epochs < needed:
            phases = self.phases(n_groups, options)
            before = " + ".join(f"{p.name} {p.epochs}" for p in phases[:-1])
            raise EcgcoreError(f"strategy {self.name}: epochs={epochs} never reaches its last phase "
                               f"({phases[-1].name!r}), which starts after {before} epochs; "
                               f"set train.epochs >= {needed} or shorten the earlier phases")

    def plan(self, model: ECGClassifier, epoch: int, base_lr: float,
             options: StrategyOptions | None = None, epochs: int | None = None) -> EpochPlan:
        """The plan of 0-based `epoch` in a run of `epochs` epochs (None: open-ended); also
        sets `requires_grad` on every parameter. `options` defaults to StrategyOptions(),
        so `plan_fn=strategy.plan` works as is."""
        if epoch < 0:
            raise EcgcoreError(f"strategy {self.name}: epoch must be >= 0, got {epoch}")
        groups = checked_groups(model)
        here = self.phase_at(len(groups), epoch, options, epochs)
        plan = plan_from_rates(groups, here.phase.rates, base_lr, train_bn=here.phase.train_bn)
        plan.phase, plan.phase_index, plan.n_phases = here.phase.name, here.index, here.n_phases
        plan.cycle_start, plan.cycle_epochs = here.cycle_start, here.cycle_epochs
        plan.schedule, plan.betas = here.phase.schedule, here.phase.betas
        return plan

    def check_source(self, source: Checkpoint | None) -> None:
        """A clear error when a strategy that loads weights got no source."""
        if self.needs_source and source is None:
            raise EcgcoreError(f"strategy {self.name!r} needs a source (pretrained) model; none was given")


@dataclass
class ProbeFit:
    """What a strategy that fits on cached embeddings leaves for its run: the model to save
    (the fitted probe is its head), the fit as results.json reports it, the phases (with the
    probe's own report under "probe"), and `scores(rows)`: sigmoid scores of any rows of the
    run's data computed from the cached embeddings, so evaluation runs no encoder."""

    model: ECGClassifier
    fit: FitResult
    phases: list[dict[str, Any]]
    scores: Callable[[np.ndarray], np.ndarray]


EveryEpoch = Callable[[nn.Module, "TaskDataset"], "Callback"]
"""Makes the test-every-epoch callback for the module that trains and the data it sees."""


class EmbeddingStrategy(Strategy):
    """A strategy that trains only a head on the frozen source encoder's embeddings, read
    from (or first written to) the embedding cache: the run's `perform` calls
    `fit_embeddings` instead of the trainer, and its evaluation scores from the cache."""

    @abstractmethod
    def fit_embeddings(self, model: ECGClassifier, source: Checkpoint | None, data: TaskDataset,
                       train: TrainConfig, *, checkpoint_dir: Path, callbacks: Sequence[Callback] = (),
                       every_epoch: EveryEpoch | None = None) -> ProbeFit:
        """Fit the head of `model` (already `setup` from `source`; None for a strategy that
        needs none) on `data`'s training split."""


def checked_groups(model: ECGClassifier) -> list[nn.Module]:
    """`model.layer_groups()` after checking the interface's promise: at least two groups
    (backbone and head), every parameter in exactly one group."""
    groups = list(model.layer_groups())
    name = getattr(model, "name", "") or type(model).__name__
    if len(groups) < 2:
        raise EcgcoreError(f"model {name}: layer_groups() gave {len(groups)} group(s); "
                           "strategies need at least a backbone group and the head")
    owner: dict[int, int] = {}
    for index, group in enumerate(groups):
        for param in group.parameters():
            if id(param) in owner:
                raise EcgcoreError(f"model {name}: a parameter is in layer groups {owner[id(param)]} "
                                   f"and {index}")
            owner[id(param)] = index
    outside = [pname for pname, param in model.named_parameters() if id(param) not in owner]
    if outside:
        raise EcgcoreError(f"model {name}: parameters in no layer group: {', '.join(outside[:5])}")
    return groups


def plan_from_rates(groups: Sequence[nn.Module], rates: Rates, base_lr: float,
                    train_bn: bool = False) -> EpochPlan:
    """Turn multipliers into requires_grad flags, optimizer groups, frozen modules and a
    signature (group index and absolute LR of every trained group). With `train_bn`, the
    batch-norm layers of frozen groups train at the head's rate and frozen groups are not
    held in eval mode (fastai's `freeze()` with train_bn=True)."""
    if len(rates) != len(groups):
        raise ValueError(f"{len(rates)} rates for {len(groups)} layer groups")
    first_trained = next((i for i, rate in enumerate(rates) if rate is not None), len(rates))
    if any(rate is None for rate in rates[first_trained:]):
        raise ValueError(f"frozen groups must come before trained ones, got {rates}")
    param_groups: list[dict] = []
    frozen: list[nn.Module] = []
    signature: list[tuple[int, float]] = []
    for index, (group, rate) in enumerate(zip(groups, rates)):
        params = list(group.parameters())
        for param in params:
            param.requires_grad_(rate is not None)
        if rate is None:
            if train_bn:
                bn_params = [q for m in group.modules() if isinstance(m, BN_TYPES) for q in m.parameters()]
                for param in bn_params:
                    param.requires_grad_(True)
                if bn_params:
                    lr = float(base_lr) * float(rates[-1] or 0.0)
                    signature.append((f"bn{index}", lr))
                    param_groups.append({"params": bn_params, "lr": lr, "group": index})
            else:
                frozen.append(group)
            continue
        lr = float(base_lr) * float(rate)
        signature.append((index, lr))
        if params:
            param_groups.append({"params": params, "lr": lr, "group": index})
    return EpochPlan(param_groups=param_groups, frozen=frozen, signature=tuple(signature))


STRATEGIES: dict[str, Strategy] = {}


def register_strategy(cls: Callable[[], Strategy]) -> Callable[[], Strategy]:
    """Class decorator: one instance per strategy, keyed by its name."""
    strategy = cls()
    if not strategy.name or strategy.name in STRATEGIES:
        raise ValueError(f"strategy {strategy.name!r} has no name or is registered twice")
    STRATEGIES[strategy.name] = strategy
    return cls


def get_strategy(name: str) -> Strategy:
    if name not in STRATEGIES:
        raise EcgcoreError(f"unknown transfer strategy {name!r}; known: {', '.join(STRATEGIES)}")
    return STRATEGIES[name]


def list_strategies() -> dict[str, str]:
    """name -> one-line description, in registration order."""
    return {name: strategy.description for name, strategy in STRATEGIES.items()}
