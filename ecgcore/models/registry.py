"""One registry of architectures: name -> `Architecture`; `create_model` is the only way in.

The model modules are listed here (each offers its `ARCHITECTURES`), rather than each
registering itself when imported, so nothing registers by side effect and the order
`list_models` shows them in is read in one place.
"""

from __future__ import annotations

import functools
from typing import Any

from ecgcore.checkpoint import Checkpoint
from ecgcore.errors import EcgcoreError
from ecgcore.models import (
    benchmark_cnn,
    benchmark_rnn,
    ecg_jepa,
    ecgfounder,
    ecglib,
    nguyen_do_resnet,
    nguyen_do_rnn,
    small,
)
from ecgcore.models.base import Architecture, ECGClassifier
from ecgcore.models.token_head import has_tokens, with_token_head

MODEL_MODULES = (nguyen_do_resnet, nguyen_do_rnn, small, benchmark_cnn, benchmark_rnn, ecglib, ecgfounder,
                 ecg_jepa)


def _collect() -> dict[str, Architecture]:
    models: dict[str, Architecture] = {}
    for module in MODEL_MODULES:
        for architecture in module.ARCHITECTURES:
            if architecture.name in models:
                raise ValueError(f"model {architecture.name!r} offered twice ({module.__name__})")
            models[architecture.name] = architecture
    return models


MODELS: dict[str, Architecture] = _collect()


def create_model(name: str, n_leads: int = 12, n_classes: int = 5, n_samples: int = 1000,
                 **config: Any) -> ECGClassifier:
    """Build a registered model; its `config` records everything needed to rebuild it.
    A `token_head` entry (what an attention probe's model.pt records) wraps the model with
    that attention head (`ecgcore.models.token_head`)."""
    if name not in MODELS:
        raise EcgcoreError(f"unknown architecture {name!r}; known: {', '.join(sorted(MODELS))}")
    token_head = config.pop("token_head", None)
    try:
        model = MODELS[name].build(n_leads=n_leads, n_classes=n_classes, n_samples=n_samples, **config)
    except TypeError as exc:
        raise EcgcoreError(f"architecture {name!r}: {exc}") from exc
    model.name = name
    # What the builder set wins over the request (a model with a fixed input shape says so).
    model.config = {"n_leads": n_leads, "n_classes": n_classes, "n_samples": n_samples, **config,
                    **model.config}
    if token_head is not None:
        try:
            return with_token_head(model, n_classes, **token_head)
        except (TypeError, ValueError) as exc:
            raise EcgcoreError(f"architecture {name!r}: {exc}") from exc
    return model


def model_from(checkpoint: Checkpoint) -> ECGClassifier:
    """The model a checkpoint names (architecture and config), with its weights loaded
    strictly: how a run's model.pt becomes a model again."""
    model = create_model(checkpoint.model_name, **checkpoint.model_config)
    model.load_state_dict(checkpoint.state_dict)
    return model


@functools.lru_cache(maxsize=None)
def layer_group_count(name: str) -> int:
    """How many layer groups the architecture has (built once per process at its
    defaults): what a strategy needs to lay out its phases before any data is read."""
    return len(create_model(name).layer_groups())


@functools.lru_cache(maxsize=None)
def offers_tokens(name: str) -> bool:
    """Whether the architecture has a token sequence (`ECGClassifier.tokens`), what an
    attention probe attends over (built once per process at its defaults)."""
    return has_tokens(create_model(name))


def list_models() -> dict[str, str]:
    """name -> one-line description."""
    return {name: architecture.description for name, architecture in MODELS.items()}
