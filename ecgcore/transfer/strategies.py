"""The transfer strategies the papers compare, one class each, registered by name.

Layer groups come from `model.layer_groups()` (input to output, head last); n is
their number and "the head" is the last group. Epochs are 0-based. "lr" is the base
learning rate of the run. A strategy is a list of phases (`Phase`); a phase marked
"new cycle" starts a fresh optimizer and LR schedule; the last phase runs to the end of
the run, and only within it does early stopping count and the best epoch get chosen.

| strategy          | loads from source        | phases (LR multiplier per group)                             |
|-------------------|--------------------------|--------------------------------------------------------------|
| scratch           | nothing                  | all: every group at lr                                       |
| finetune          | all but the final Linear | all: every group at lr (Nguyen & Do)                         |
| linear_probe      | all but the final Linear | head: head at lr; backbone frozen incl. BN statistics        |
| partial_freeze    | all but the final Linear | groups 0..k-1 frozen (k = freeze_groups), rest at lr         |
| gradual_unfreeze  | all but the final Linear | ULMFiT (Howard & Ruder 2018): group i at lr/2.6^(n-1-i)       |
|                   |                          | (layer_lr_decay); stage k = 1..n-1 trains the top k groups   |
|                   |                          | for unfreeze_epochs, then all groups for the rest; one       |
|                   |                          | slanted triangular schedule (stlr) over the whole run; Adam  |
|                   |                          | betas (0.7, 0.99)                                            |
| discriminative_lr | all but the final Linear | the PTB-XL benchmark's fine-tuning (fastai 1.0.61): new head |
|                   |                          | Kaiming-normal, zero bias; head: head_epochs epochs, head at |
|                   |                          | lr, BN layers of frozen groups train too (train_bn); then    |
|                   |                          | all: a new one-cycle over every group at                     |
|                   |                          | even_mults(lr*lr_low, lr*lr_high, n), head included (the     |
|                   |                          | benchmark: slice(lr/1000, lr/10)); both fastai_onecycle      |
| lp_ft             | all but the final Linear | linear probe: head at lr for head_epochs (new cycle); all:   |
|                   |                          | every group at lr (new cycle)                                |
| random_frozen     | nothing (random init)    | head: head at lr; random backbone frozen (honest baseline)   |
| source_only       | everything incl. head    | nothing: the source model is evaluated on shared classes     |
| embedding_probe   | all but the final Linear | probe: no epochs; ecg-fix's per-class logistic regression on |
|                   |                          | the cached embeddings (the final Linear's input), grid       |
|                   |                          | scaler x C x class_weight chosen on validation log-loss,     |
|                   |                          | folded into the final Linear (`embedding_probe`)             |
| attention_probe   | all but the final Linear | probe: a learnable-query attention head over the cached      |
|                   |                          | token embeddings at lr, encoder frozen (the ICLR 2026 FM     |
|                   |                          | benchmark's "frozen" mode; `attention_probe`); the head      |
|                   |                          | replaces the model's head in model.pt                        |
| random_embedding_ | nothing (random init)    | probe: embedding_probe's regressions on a random, frozen     |
| probe             |                          | encoder of the same architecture (ecg-fix's baseline: read   |
|                   |                          | every embedding probe next to it)                            |

"Head" here is the whole last group: in a model whose head is fc1 -> ReLU -> fc2, a
linear probe trains both; `reset_head` re-initialises only the final Linear.
Strategies that load a source can keep the source head rows of shared classes
(`StrategyOptions.keep_shared_head`). The two probes (`EmbeddingStrategy`) never run the
trainer through the encoder: a run's `perform` calls their `fit_embeddings`, which reads the
frozen encoder's embeddings from the embedding cache (extracting them once per source,
prepared data and kind), and their test scores come from that cache too.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ecgcore.checkpoint import Checkpoint
from ecgcore.errors import EcgcoreError
from ecgcore.models.base import ECGClassifier
from ecgcore.models.registry import offers_tokens
from ecgcore.transfer.class_mapping import class_mapping
from ecgcore.transfer.loading import (
    copy_shared_head_rows,
    final_linear_name,
    load_source,
)
from ecgcore.transfer.options import StrategyOptions
from ecgcore.transfer.strategy import (
    EmbeddingStrategy,
    EveryEpoch,
    Phase,
    ProbeFit,
    Rates,
    ScoredOutputs,
    SetupReport,
    Strategy,
    register_strategy,
)

if TYPE_CHECKING:
    from ecgcore.data.pipeline import TaskDataset
    from ecgcore.train import TrainConfig
    from ecgcore.train.callbacks import Callback


def all_at(n_groups: int, rate: float = 1.0) -> Rates:
    return (rate,) * n_groups


def head_only(n_groups: int) -> Rates:
    return (None,) * (n_groups - 1) + (1.0,)


def even_mults(low: float, high: float, n_groups: int) -> Rates:
    """fastai v1's `even_mults(start, stop, n)`, what `lr_range(slice(start, stop))` gives
    the layer groups: n values from `low` (first group) to `high` (the head), evenly
    spaced on a log scale, every group including the head."""
    if n_groups == 1:
        return (high,)
    step = (high / low) ** (1 / (n_groups - 1))
    return tuple(low * step ** i for i in range(n_groups))


def layer_decay(n_groups: int, decay: float) -> Rates:
    """ULMFiT's discriminative rates: the head at 1, each group below at 1/decay of the
    group above (eta^{l-1} = eta^l / 2.6)."""
    return tuple(decay ** -(n_groups - 1 - i) for i in range(n_groups))


def one_phase(name: str, rates: Rates) -> list[Phase]:
    return [Phase(name, rates)]


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

    def phases(self, n_groups: int, options: StrategyOptions) -> list[Phase]:
        return one_phase("all", all_at(n_groups))


@register_strategy
class Finetune(_FromSource):
    name = "finetune"
    description = "Source weights, new head, every layer trained at one learning rate (Nguyen & Do)"

    def phases(self, n_groups: int, options: StrategyOptions) -> list[Phase]:
        return one_phase("all", all_at(n_groups))


@register_strategy
class LinearProbe(_FromSource):
    name = "linear_probe"
    description = "Source backbone frozen (batch-norm statistics too); only the new head trains"

    def phases(self, n_groups: int, options: StrategyOptions) -> list[Phase]:
        return one_phase("head", head_only(n_groups))


@register_strategy
class PartialFreeze(_FromSource):
    name = "partial_freeze"
    description = "Source weights; the first k layer groups frozen, the rest trained (k = freeze_groups)"

    def phases(self, n_groups: int, options: StrategyOptions) -> list[Phase]:
        k = options.freeze_groups
        if k >= n_groups:
            raise EcgcoreError(f"partial_freeze: freeze_groups={k}, but the model has {n_groups} layer "
                               f"groups and the last (the head) always trains: use at most {n_groups - 1}")
        return one_phase(f"groups {k}-{n_groups - 1}", (None,) * k + all_at(n_groups - k))


@register_strategy
class GradualUnfreeze(_FromSource):
    name = "gradual_unfreeze"
    description = ("ULMFiT (Howard & Ruder 2018): head first, one more layer group from the top every "
                   "unfreeze_epochs, each group at lr/2.6 of the one above, one slanted triangular schedule")

    ADAM_BETAS = (0.7, 0.99)  # the ULMFiT paper's Adam settings

    def phases(self, n_groups: int, options: StrategyOptions) -> list[Phase]:
        rates = layer_decay(n_groups, options.layer_lr_decay)
        stages = [Phase(f"top {k} group{'s' if k > 1 else ''}", (None,) * (n_groups - k) + rates[-k:],
                        epochs=options.unfreeze_epochs, new_cycle=k == 1, schedule="stlr",
                        betas=self.ADAM_BETAS) for k in range(1, n_groups)]
        return [*stages, Phase("all", rates, new_cycle=not stages, schedule="stlr", betas=self.ADAM_BETAS)]


@register_strategy
class DiscriminativeLR(_FromSource):
    name = "discriminative_lr"
    description = ("The PTB-XL benchmark's fine-tuning (fastai 1.0.61): head only for head_epochs (batch-norm "
                   "layers train too), then a new one-cycle over all layers at lr*lr_low .. lr*lr_high, head included")

    def setup(self, model: ECGClassifier, source: Checkpoint | None, target_classes: Sequence[str],
              options: StrategyOptions) -> SetupReport:
        """As every source strategy, then the new output layer as the benchmark makes it:
        `apply_init(nn.Linear(...), nn.init.kaiming_normal_)`, i.e. Kaiming-normal
        weights and zero bias (kept source rows are copied in again after)."""
        report = super().setup(model, source, target_classes, options)
        layer = model.get_submodule(final_linear_name(model))
        with torch.no_grad():
            nn.init.kaiming_normal_(layer.weight)
            if layer.bias is not None:
                layer.bias.zero_()
        if options.keep_shared_head and source is not None:
            copy_shared_head_rows(model, source, target_classes)
        return report

    def phases(self, n_groups: int, options: StrategyOptions) -> list[Phase]:
        head = Phase("head", head_only(n_groups), epochs=options.head_epochs, train_bn=True,
                     schedule="fastai_onecycle")
        final = Phase("all", even_mults(options.lr_low, options.lr_high, n_groups), schedule="fastai_onecycle")
        return [head, final] if options.head_epochs else [final]


@register_strategy
class LinearProbeThenFinetune(_FromSource):
    name = "lp_ft"
    description = ("Source weights; linear probe for head_epochs epochs, then every layer at one learning rate "
                   "(each phase its own optimizer and schedule)")

    def phases(self, n_groups: int, options: StrategyOptions) -> list[Phase]:
        probe = Phase("linear probe", head_only(n_groups), epochs=options.head_epochs)
        final = Phase("all", all_at(n_groups))
        return [probe, final] if options.head_epochs else [final]


@register_strategy
class RandomFrozen(_RandomInit):
    name = "random_frozen"
    description = "Random frozen encoder with a trained head: the baseline that keeps pretraining claims honest"

    def phases(self, n_groups: int, options: StrategyOptions) -> list[Phase]:
        return one_phase("head", head_only(n_groups))


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

    def phases(self, n_groups: int, options: StrategyOptions) -> list[Phase]:
        return one_phase("none", (None,) * n_groups)

    def phase_reports(self, n_groups: int, epochs: int, options: StrategyOptions,
                      epochs_run: int) -> list[dict[str, Any]]:
        """None: nothing trains."""
        return []

    def scored_outputs(self, source: Checkpoint | None, target_classes: Sequence[str]) -> ScoredOutputs:
        """The target classes the source head knows, each from its source class's column
        (`class_mapping`); the others cannot be scored and are reported apart."""
        self.check_source(source)
        assert source is not None
        mapping = class_mapping(source.classes, target_classes)  # target index -> source index
        if not mapping:
            raise RuntimeError("source_only: the source model knows none of the target classes")
        target_index = sorted(mapping)
        return ScoredOutputs([target_classes[t] for t in target_index], [mapping[t] for t in target_index])


class _Probe(_FromSource, EmbeddingStrategy):
    """Shared by the probes: set up as every source strategy (source backbone, fresh final
    Linear), one phase "probe" in which only the head trains.

    Their fits are imported when called: they use the trainer, whose package imports
    `ecgcore.transfer.base` and so runs this package's __init__ (which registers these
    strategies) while the trainer is still half-imported."""

    def phases(self, n_groups: int, options: StrategyOptions) -> list[Phase]:
        return one_phase("probe", head_only(n_groups))


@register_strategy
class EmbeddingProbe(_Probe):
    name = "embedding_probe"
    description = ("ecg-fix's linear probe: per-class logistic regression on the frozen source encoder's cached "
                   "embeddings, scaler x C x class weight chosen on validation log-loss, folded into the final Linear")

    def fit_embeddings(self, model: ECGClassifier, source: Checkpoint, data: TaskDataset,
                       train: TrainConfig, *, checkpoint_dir: Path, callbacks: Sequence[Callback] = (),
                       every_epoch: EveryEpoch | None = None) -> ProbeFit:
        """No epochs: the phase is reached once the probes are fitted."""
        phase = {"name": "probe", "first_epoch": 0, "epochs_planned": None, "epochs_run": 0, "reached": True,
                 "schedule": None, "train_bn": False}
        from ecgcore.transfer.embedding_probe import fit_embedding_probe

        return fit_embedding_probe(model, source, data, train, phase, callbacks)


@register_strategy
class RandomEmbeddingProbe(_RandomInit, EmbeddingStrategy):
    name = "random_embedding_probe"
    description = ("ecg-fix's honest baseline: embedding_probe's logistic regressions on a random, frozen encoder "
                   "of the same architecture")

    def phases(self, n_groups: int, options: StrategyOptions) -> list[Phase]:
        return one_phase("probe", head_only(n_groups))

    def fit_embeddings(self, model: ECGClassifier, source: Checkpoint | None, data: TaskDataset,
                       train: TrainConfig, *, checkpoint_dir: Path, callbacks: Sequence[Callback] = (),
                       every_epoch: EveryEpoch | None = None) -> ProbeFit:
        """The embedding probe with the model's own random initialisation as its "source":
        those weights (a function of the run's seed) identify its cached embeddings, so the
        fractions of one seed share one extraction."""
        random_encoder = Checkpoint(
            state_dict={key: value.detach().clone() for key, value in model.state_dict().items()},
            model_name=model.name, model_config=dict(model.config), classes=[], class_names=[],
            prep=data.prep.to_dict(), stage="random")
        return EmbeddingProbe().fit_embeddings(model, random_encoder, data, train, checkpoint_dir=checkpoint_dir,
                                               callbacks=callbacks, every_epoch=every_epoch)


@register_strategy
class AttentionProbe(_Probe):
    name = "attention_probe"
    description = ("The ECG FM benchmark's frozen mode: a learnable-query attention head over the frozen source "
                   "encoder's cached token embeddings, trained at lr")

    def check_architecture(self, arch: str) -> None:
        """Refuses, before any run, an architecture without a token sequence (recurrent models)."""
        if not offers_tokens(arch):
            raise EcgcoreError(f"attention_probe needs a model with a token sequence; {arch} has none "
                               "(ecgfounder, ecg_jepa, their demo sizes and the convolutional models have one)")

    def fit_embeddings(self, model: ECGClassifier, source: Checkpoint, data: TaskDataset,
                       train: TrainConfig, *, checkpoint_dir: Path, callbacks: Sequence[Callback] = (),
                       every_epoch: EveryEpoch | None = None) -> ProbeFit:
        from ecgcore.transfer.attention_probe import fit_attention_probe

        [phase] = self.phase_reports(len(model.layer_groups()), train.epochs, StrategyOptions(), epochs_run=0)
        return fit_attention_probe(model, source, data, train, phase, checkpoint_dir=checkpoint_dir,
                                   callbacks=callbacks, every_epoch=every_epoch)
