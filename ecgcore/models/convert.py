"""Loading weights saved by other projects' code: their state-dict keys renamed to ours."""

from __future__ import annotations

from collections.abc import Mapping

import torch


def rename_state_dict(state: Mapping[str, torch.Tensor],
                      prefixes: Mapping[str, str]) -> dict[str, torch.Tensor]:
    """Keys starting with a `prefixes` key get that prefix replaced (first match wins);
    floating tensors become float32 (Nguyen & Do's code runs in float64)."""
    renamed = {}
    for key, value in state.items():
        for theirs, ours in prefixes.items():
            if key.startswith(theirs):
                key = ours + key[len(theirs):]
                break
        renamed[key] = value.float() if value.is_floating_point() else value
    return renamed
