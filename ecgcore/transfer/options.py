"""The knobs of the transfer strategies, one frozen value stored in every run config.

One options object serves every strategy; each strategy reads only the fields it
documents (see `ecgcore.transfer.strategies`), so a grid over strategies can share
one options table.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from ecgcore.errors import EcgcoreError


class StrategyOptionError(EcgcoreError, ValueError):
    """A bad strategy option (also a ValueError, so config validators that catch those see it)."""


@dataclass(frozen=True)
class StrategyOptions:
    """freeze_groups     partial_freeze: the first k layer groups are frozen (k < number of groups)
    head_epochs       lp_ft: linear-probe epochs before the full fine-tune;
                      discriminative_lr: head-only epochs first (the PTB-XL benchmark: 30,
                      then 30 more for all groups: epochs = 60); 0 skips that phase
    lr_low, lr_high   discriminative_lr's last phase: the first group trains at lr*lr_low, the
                      head at lr*lr_high, evenly on a log scale in between, as fastai's
                      even_mults (the benchmark: slice(lr/1000, lr/10), i.e. 1e-3 .. 1e-1)
    unfreeze_epochs   gradual_unfreeze: epochs of each unfreezing stage (ULMFiT: 1)
    layer_lr_decay    gradual_unfreeze: each layer group trains at 1/decay of the group above
                      (ULMFiT: 2.6)
    keep_shared_head  strategies that load a source: keep the source head's rows (weights and
                      bias) of the classes source and target share; other rows start fresh
    """

    freeze_groups: int = 2
    head_epochs: int = 3
    lr_low: float = 1e-3
    lr_high: float = 1e-1
    keep_shared_head: bool = False
    unfreeze_epochs: int = 1
    layer_lr_decay: float = 2.6

    def __post_init__(self) -> None:
        for name in ("freeze_groups", "head_epochs", "unfreeze_epochs"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise StrategyOptionError(f"strategy option {name} must be a whole number >= 0, got {value!r}")
        if self.unfreeze_epochs < 1:
            raise StrategyOptionError(f"strategy option unfreeze_epochs must be >= 1, got {self.unfreeze_epochs}")
        for name in ("lr_low", "lr_high", "layer_lr_decay"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise StrategyOptionError(f"strategy option {name} must be a number > 0, got {value!r}")
            object.__setattr__(self, name, float(value))
        if self.lr_low > self.lr_high:
            raise StrategyOptionError(f"strategy options: lr_low ({self.lr_low}) is above lr_high ({self.lr_high})")
        if not isinstance(self.keep_shared_head, bool):
            raise StrategyOptionError(f"strategy option keep_shared_head must be true or false, "
                               f"got {self.keep_shared_head!r}")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types, the form stored in `config.json`."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> StrategyOptions:
        """Missing keys take their defaults; an unknown key is an error naming it (a typo in a
        config must not silently fall back to a default)."""
        data = dict(data or {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise StrategyOptionError(f"unknown strategy option(s) {', '.join(unknown)}; "
                               f"known: {', '.join(sorted(known))}")
        return cls(**data)
