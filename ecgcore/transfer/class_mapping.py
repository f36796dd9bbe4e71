"""Which source class answers for which target class, and the source model's scores on the
target's classes (the `source_only` strategy, and the shared head rows of the others).

Classes match by their canonical SNOMED code (`ecgcore.data.labels.canonical`): "a|b"
keys count under their first code, and the Challenge equivalences (RBBB -> CRBBB,
LBBB -> CLBBB, SVPB -> PAC, VPB -> PVC) make e.g. "59118001" in one dataset and
"713427006|59118001" in another the same class. Non-SNOMED class names (PTB-XL "MI")
match only themselves.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ecgcore.data.labels import canonical


def class_mapping(source_classes: Sequence[str], target_classes: Sequence[str]) -> dict[int, int]:
    """target index -> source index for every target class that has a source counterpart.

    When several source classes share a canonical code (a source that kept RBBB and CRBBB
    apart), the one whose key equals the target key wins, else the first in source order.
    """
    by_code: dict[str, list[int]] = {}
    for index, key in enumerate(source_classes):
        by_code.setdefault(canonical(str(key)), []).append(index)
    mapping: dict[int, int] = {}
    for t_index, key in enumerate(target_classes):
        candidates = by_code.get(canonical(str(key)), [])
        if not candidates:
            continue
        exact = [s for s in candidates if source_classes[s] == key]
        mapping[t_index] = (exact or candidates)[0]
    return mapping


def shared_classes(source_classes: Sequence[str], target_classes: Sequence[str]) -> list[str]:
    """The target classes the source also has, in target order."""
    mapping = class_mapping(source_classes, target_classes)
    return [target_classes[i] for i in sorted(mapping)]


@dataclass
class MappedScores:
    """Source scores rearranged for the target.

    scores      (n, len(classes)) probabilities, columns in the order of `classes`
    classes     the target classes the source can score (target order)
    target_index  position of each of `classes` in the target class list
    unscorable  target classes without a source counterpart (reported, not scored)
    """

    scores: np.ndarray
    classes: list[str]
    target_index: list[int]
    unscorable: list[str]


def map_scores(source_scores: np.ndarray, source_classes: Sequence[str],
               target_classes: Sequence[str]) -> MappedScores:
    """Pick, for each scorable target class, the column of its source class."""
    source_scores = np.asarray(source_scores)
    if source_scores.ndim != 2 or source_scores.shape[1] != len(source_classes):
        raise ValueError(f"scores of shape {source_scores.shape} do not match "
                         f"{len(source_classes)} source classes")
    mapping = class_mapping(source_classes, target_classes)
    order = sorted(mapping)
    columns = [mapping[i] for i in order]
    return MappedScores(
        scores=source_scores[:, columns],
        classes=[target_classes[i] for i in order],
        target_index=order,
        unscorable=[key for i, key in enumerate(target_classes) if i not in mapping],
    )


@torch.no_grad()
def source_only_scores(model: torch.nn.Module, x: torch.Tensor | np.ndarray, source_classes: Sequence[str],
                       target_classes: Sequence[str]) -> MappedScores:
    """Run the source model (eval mode, sigmoid probabilities) on `x` (batch, leads, samples)
    and keep the columns of the target classes it can score."""
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        batch = torch.as_tensor(np.asarray(x, dtype=np.float32) if isinstance(x, np.ndarray) else x)
        probabilities = torch.sigmoid(model(batch.to(device).float())).cpu().numpy()
    finally:
        model.train(was_training)
    return map_scores(probabilities, source_classes, target_classes)
