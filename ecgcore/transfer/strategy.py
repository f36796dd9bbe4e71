"""The strategy interface, the one place that turns a per-group schedule into an EpochPlan,
and the registry.

A strategy's schedule is a tuple of learning-rate multipliers, one per layer group
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

from torch import nn

from ecgcore.checkpoint import Checkpoint
from ecgcore.errors import EcgcoreError
from ecgcore.models.base import ECGClassifier
from ecgcore.transfer.base import EpochPlan
from ecgcore.transfer.options import StrategyOptions

Rates = tuple[float | None, ...]


@dataclass
class SetupReport:
    """What `setup` did, for the run log and results: how many tensors came from the source,
    which target classes kept their source head rows, the head size."""

    loaded: int = 0
    kept_head_rows: list[str] = field(default_factory=list)
    n_classes: int = 0


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
    def rates(self, n_groups: int, epoch: int, options: StrategyOptions) -> Rates:
        """LR multiplier per layer group at 0-based `epoch`; None = frozen."""

    def plan(self, model: ECGClassifier, epoch: int, base_lr: float,
             options: StrategyOptions | None = None) -> EpochPlan:
        """The plan of 0-based `epoch`; also sets `requires_grad` on every parameter.
        `options` defaults to StrategyOptions(), so `plan_fn=strategy.plan` works as is."""
        if epoch < 0:
            raise EcgcoreError(f"strategy {self.name}: epoch must be >= 0, got {epoch}")
        groups = checked_groups(model)
        return plan_from_rates(groups, self.rates(len(groups), epoch, options or StrategyOptions()), base_lr)

    def check_source(self, source: Checkpoint | None) -> None:
        """A clear error when a strategy that loads weights got no source."""
        if self.needs_source and source is None:
            raise EcgcoreError(f"strategy {self.name!r} needs a source (pretrained) model; none was given")


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


def plan_from_rates(groups: Sequence[nn.Module], rates: Rates, base_lr: float) -> EpochPlan:
    """Turn multipliers into requires_grad flags, optimizer groups, frozen modules and a
    signature (group index and absolute LR of every trained group)."""
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
