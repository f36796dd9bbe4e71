"""The transfer strategies the papers compare, one class each, registered by name.

Layer groups come from `model.layer_groups()` (input to output, head last); n is
their number and "the head" is the last group. Epochs are 0-based. "lr" is the base
learning rate the trainer passes to `plan` (its scheduler may scale it within an
epoch; the ratios between groups stay as below).

| strategy          | loads from source       | trains (LR multiplier per group)                       |
|-------------------|-------------------------|--------------------------------------------------------|
| scratch           | nothing                 | every group at lr                                      |
| finetune          | all but the final Linear| every group at lr (Nguyen & Do)                        |
| linear_probe      | all but the final Linear| head at lr; backbone frozen incl. BN statistics        |
| partial_freeze    | all but the final Linear| groups 0..k-1 frozen (k = freeze_groups), rest at lr   |
| gradual_unfreeze  | all but the final Linear| epoch e: the top e+1 groups at lr (ULMFiT)             |
| discriminative_lr | all but the final Linear| epochs < head_epochs: head at lr; then group i of the  |
|                   |                         | n-1 backbone groups at lr*lr_low*(lr_high/lr_low)^(i/(n-2))|
|                   |                         | (first lr*lr_low, last backbone lr*lr_high; one        |
|                   |                         | backbone group: lr*lr_high), head at lr*lr_high        |
| lp_ft             | all but the final Linear| epochs < head_epochs: head at lr; then every group at lr|
| random_frozen     | nothing (random init)   | head at lr; random backbone frozen (honest baseline)   |
| source_only       | everything incl. head   | nothing: the source model is evaluated on shared classes|

"Head" here is the whole last group: in a model whose head is fc1 -> ReLU -> fc2, a
linear probe trains both; `reset_head` re-initialises only the final Linear.
Strategies that load a source can keep the source head rows of shared classes
(`StrategyOptions.keep_shared_head`).
"""

from __future__ import annotations

from collections.abc import Sequence

from ecgcore.checkpoint import Checkpoint
from ecgcore.errors import EcgcoreError
from ecgcore.models.base import ECGClassifier
from ecgcore.transfer.loading import copy_shared_head_rows, load_source
from ecgcore.transfer.options import StrategyOptions
from ecgcore.transfer.strategy import Rates, SetupReport, Strategy, register_strategy


def all_at(n_groups: int, rate: float = 1.0) -> Rates:
    return (rate,) * n_groups


def head_only(n_groups: int) -> Rates:
    return (None,) * (n_groups - 1) + (1.0,)


def geometric(n_groups: int, low: float, high: float) -> Rates:
    """Backbone groups spread geometrically from `low` (first) to `high` (last backbone
    group); the head at `high` (fastai's slice(lr*low, lr*high) over layer groups)."""
    backbone = n_groups - 1
    if backbone == 1:
        return (high, high)
    ratio = high / low
    return tuple(low * ratio ** (i / (backbone - 1)) for i in range(backbone)) + (high,)


class _RandomInit(Strategy):
    """Shared setup of strategies that start from the model's random initialisation."""

    needs_source = False

    def setup(self, model: ECGClassifier, source: Checkpoint | None, target_classes: Sequence[str],
              options: StrategyOptions) -> SetupReport:
        model.reset_head(len(target_classes))
        return SetupReport(loaded=0, n_classes=len(target_classes))


class _FromSource(Strategy):
    """Shared setup of strategies that start from the source backbone and a new head."""

    def setup(self, model: ECGClassifier, source: Checkpoint | None, target_classes: Sequence[str],
              options: StrategyOptions) -> SetupReport:
        self.check_source(source)
        assert source is not None
        model.reset_head(len(target_classes))
        loaded = load_source(model, source, include_final=False)
        kept = copy_shared_head_rows(model, source, target_classes) if options.keep_shared_head else []
        return SetupReport(loaded=loaded, kept_head_rows=kept, n_classes=len(target_classes))


@register_strategy
class Scratch(_RandomInit):
    name = "scratch"
    description = "Random initialisation, every layer trained on the target at one learning rate"

    def rates(self, n_groups: int, epoch: int, options: StrategyOptions) -> Rates:
        return all_at(n_groups)


@register_strategy
class Finetune(_FromSource):
    name = "finetune"
    description = "Source weights, new head, every layer trained at one learning rate (Nguyen & Do)"

    def rates(self, n_groups: int, epoch: int, options: StrategyOptions) -> Rates:
        return all_at(n_groups)


@register_strategy
class LinearProbe(_FromSource):
    name = "linear_probe"
    description = "Source backbone frozen (batch-norm statistics too); only the new head trains"

    def rates(self, n_groups: int, epoch: int, options: StrategyOptions) -> Rates:
        return head_only(n_groups)


@register_strategy
class PartialFreeze(_FromSource):
    name = "partial_freeze"
    description = "Source weights; the first k layer groups frozen, the rest trained (k = freeze_groups)"

    def rates(self, n_groups: int, epoch: int, options: StrategyOptions) -> Rates:
        k = options.freeze_groups
        if k >= n_groups:
            raise EcgcoreError(f"partial_freeze: freeze_groups={k}, but the model has {n_groups} layer "
                               f"groups and the last (the head) always trains: use at most {n_groups - 1}")
        return (None,) * k + all_at(n_groups - k)


@register_strategy
class GradualUnfreeze(_FromSource):
    name = "gradual_unfreeze"
    description = "Source weights; head first, then one more layer group from the top each epoch (ULMFiT)"

    def rates(self, n_groups: int, epoch: int, options: StrategyOptions) -> Rates:
        trained = min(n_groups, epoch + 1)
        return (None,) * (n_groups - trained) + all_at(trained)


@register_strategy
class DiscriminativeLR(_FromSource):
    name = "discriminative_lr"
    description = ("Source weights; head only for head_epochs, then all layers with learning rates "
                   "rising geometrically from lr*lr_low to lr*lr_high (PTB-XL benchmark)")

    def rates(self, n_groups: int, epoch: int, options: StrategyOptions) -> Rates:
        if epoch < options.head_epochs:
            return head_only(n_groups)
        return geometric(n_groups, options.lr_low, options.lr_high)


@register_strategy
class LinearProbeThenFinetune(_FromSource):
    name = "lp_ft"
    description = "Source weights; linear probe for head_epochs epochs, then every layer at one learning rate"

    def rates(self, n_groups: int, epoch: int, options: StrategyOptions) -> Rates:
        return head_only(n_groups) if epoch < options.head_epochs else all_at(n_groups)


@register_strategy
class RandomFrozen(_RandomInit):
    name = "random_frozen"
    description = "Random frozen encoder with a trained head: the baseline that keeps pretraining claims honest"

    def rates(self, n_groups: int, epoch: int, options: StrategyOptions) -> Rates:
        return head_only(n_groups)


@register_strategy
class SourceOnly(Strategy):
    name = "source_only"
    description = "The source model as it is, scored on the target's shared classes; no target training"
    trains = False

    def setup(self, model: ECGClassifier, source: Checkpoint | None, target_classes: Sequence[str],
              options: StrategyOptions) -> SetupReport:
        """Loads every tensor, the head included; the model's head takes the source's class
        count (the scores are mapped to target classes by `source_only_scores`)."""
        self.check_source(source)
        assert source is not None
        if model.n_classes != len(source.classes):
            model.reset_head(len(source.classes))
        loaded = load_source(model, source, include_final=True)
        return SetupReport(loaded=loaded, n_classes=len(source.classes))

    def rates(self, n_groups: int, epoch: int, options: StrategyOptions) -> Rates:
        return (None,) * n_groups
