"""Moving weights from a source checkpoint into a model, with strict checks.

Loading is all or nothing: every tensor of the model (parameters and buffers such as
batch-norm running statistics) except the final Linear must be in the source with
the same shape, and the source must hold nothing else. A mismatch (another
architecture, another width, another number of leads) is an EcgcoreError naming
the first offending tensors, never a silent partial load.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ecgcore.checkpoint import Checkpoint
from ecgcore.errors import EcgcoreError
from ecgcore.models.base import ECGClassifier
from ecgcore.transfer.class_mapping import class_mapping

_SHOWN = 4  # offending tensors named in an error message


def final_linear_name(model: ECGClassifier) -> str:
    """Qualified module name of the head's last Linear (the layer `reset_head` replaces)."""
    linears = [m for m in model.head.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise EcgcoreError(f"model {_label(model)}: its head has no Linear layer")
    last = linears[-1]
    for name, module in model.named_modules():
        if module is last:
            return name
    raise EcgcoreError(f"model {_label(model)}: the head's last Linear is not a submodule of the model")


def final_linear_keys(model: ECGClassifier) -> set[str]:
    prefix = final_linear_name(model)
    return {f"{prefix}.{key}" for key in dict(model.get_submodule(prefix).state_dict())}


def _label(model: ECGClassifier) -> str:
    return getattr(model, "name", "") or type(model).__name__


def _check_architecture(model: ECGClassifier, source: Checkpoint) -> None:
    name = getattr(model, "name", "")
    if name and source.model_name and name != source.model_name:
        raise EcgcoreError(f"the source model is a {source.model_name!r}, this run builds a {name!r}: "
                           "transfer needs the same architecture")


def _mismatches(expected: dict[str, torch.Tensor], given: dict[str, torch.Tensor]) -> list[str]:
    problems = [f"{key} missing from the source" for key in expected if key not in given]
    problems += [f"{key} in the source but not in this model" for key in given if key not in expected]
    problems += [f"{key}: source {tuple(given[key].shape)}, model {tuple(value.shape)}"
                 for key, value in expected.items() if key in given and given[key].shape != value.shape]
    return problems


def load_source(model: ECGClassifier, source: Checkpoint, *, include_final: bool) -> int:
    """Copy the source's tensors into `model` (all of them, or all but the final Linear).
    Returns how many tensors were loaded."""
    _check_architecture(model, source)
    skip = set() if include_final else final_linear_keys(model)
    expected = {k: v for k, v in model.state_dict().items() if k not in skip}
    given = {k: v for k, v in source.state_dict.items() if k not in skip}
    problems = _mismatches(expected, given)
    if problems:
        more = f" (and {len(problems) - _SHOWN} more)" if len(problems) > _SHOWN else ""
        raise EcgcoreError(f"source model ({source.model_name}, {source.model_config}) does not fit "
                           f"this {_label(model)} ({model.config}): {'; '.join(problems[:_SHOWN])}{more}")
    result = model.load_state_dict(given, strict=False)
    left = set(result.missing_keys) - skip
    if left or result.unexpected_keys:
        raise EcgcoreError(f"source model: not loaded: {sorted(left)[:_SHOWN]}, "
                           f"unexpected: {sorted(result.unexpected_keys)[:_SHOWN]}")
    return len(given)


@torch.no_grad()
def copy_shared_head_rows(model: ECGClassifier, source: Checkpoint,
                          target_classes: Sequence[str]) -> list[str]:
    """Copy the source head's weight row and bias of every class source and target share
    into the (freshly reset) head; other rows keep their fresh initialisation. Returns the
    target classes whose rows were kept (none from a source that learnt no class, such as a
    self-supervised encoder, whose one-output head was never trained)."""
    if not source.classes:
        return []
    prefix = final_linear_name(model)
    layer = model.get_submodule(prefix)
    weight = source.state_dict.get(f"{prefix}.weight")
    if weight is None:
        raise EcgcoreError(f"source model has no head layer {prefix!r}: cannot keep its class rows")
    if weight.shape[0] != len(source.classes):
        raise EcgcoreError(f"source head has {weight.shape[0]} outputs but the source lists "
                           f"{len(source.classes)} classes")
    if weight.shape[1] != layer.in_features:
        raise EcgcoreError(f"source head takes {weight.shape[1]} features, this model's head "
                           f"{layer.in_features} (another input length?): cannot keep its class rows")
    if layer.out_features != len(target_classes):
        raise EcgcoreError(f"model head has {layer.out_features} outputs for {len(target_classes)} "
                           "target classes")
    bias = source.state_dict.get(f"{prefix}.bias")
    mapping = class_mapping(source.classes, target_classes)
    for t_index, s_index in mapping.items():
        layer.weight[t_index] = weight[s_index].to(layer.weight)
        if layer.bias is not None and bias is not None:
            layer.bias[t_index] = bias[s_index].to(layer.bias)
    return [target_classes[i] for i in sorted(mapping)]
