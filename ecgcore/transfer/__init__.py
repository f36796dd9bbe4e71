"""Transfer strategies: what a run loads from a pretrained (source) model, what it
re-initialises, what it freezes and at which learning rate each layer group trains.

- `get_strategy(name)` / `STRATEGIES` / `list_strategies()`: the registry
  (scratch, finetune, linear_probe, partial_freeze, gradual_unfreeze,
  discriminative_lr, lp_ft, random_frozen, source_only, and the probes on cached
  embeddings embedding_probe and attention_probe; table in `strategies`).
- `StrategyOptions`: the strategies' knobs, stored in run configs.
- Trainer protocol: `strategy.setup(model, source, target_classes, options)` once, then
  each epoch `plan = strategy.plan(model, epoch, lr, options)`; the plan has already set
  `requires_grad`; rebuild the optimizer when `plan.signature` changes; after
  `model.train()` call `.eval()` on every module in `plan.frozen`.
- `class_mapping`, `shared_classes`, `map_scores`, `source_only_scores`: source classes
  on target classes (canonical SNOMED codes).
- `check_leakage` (ids) / `leakage_report` (ids, where, warning line): target test records
  the source saw (PTB-XL inside Challenge 2021: HR00001 = PTB-XL ecg_id 1).
"""

from ecgcore.transfer import strategies as _strategies  # noqa: F401 -- registers the strategies
from ecgcore.transfer.base import EpochPlan
from ecgcore.transfer.class_mapping import (
    MappedScores,
    class_mapping,
    map_scores,
    shared_classes,
    source_only_scores,
)
from ecgcore.transfer.leakage import LeakageReport, check_leakage, leakage_report
from ecgcore.transfer.loading import (
    copy_shared_head_rows,
    final_linear_name,
    load_source,
)
from ecgcore.transfer.options import StrategyOptions
from ecgcore.transfer.strategy import (
    STRATEGIES,
    ScoredOutputs,
    SetupReport,
    Strategy,
    get_strategy,
    list_strategies,
    plan_from_rates,
    register_strategy,
)

__all__ = [
    "STRATEGIES", "EpochPlan", "LeakageReport", "MappedScores", "ScoredOutputs", "SetupReport", "Strategy",
    "StrategyOptions", "check_leakage", "class_mapping", "copy_shared_head_rows",
    "final_linear_name", "get_strategy", "leakage_report", "list_strategies", "load_source", "map_scores",
    "plan_from_rates", "register_strategy", "shared_classes", "source_only_scores",
]
