"""One registry of architectures: name -> builder; `create_model` is the only way in."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from ecgcore.errors import EcgcoreError
from ecgcore.models.base import ECGClassifier

Builder = Callable[..., ECGClassifier]
MODELS: dict[str, tuple[Builder, str]] = {}


def register_model(name: str, description: str) -> Callable[[Builder], Builder]:
    """Decorator for a builder `f(n_leads, n_classes, n_samples, **config) -> ECGClassifier`."""

    def wrap(builder: Builder) -> Builder:
        if name in MODELS:
            raise ValueError(f"model {name!r} registered twice")
        MODELS[name] = (builder, description)
        return builder

    return wrap


def create_model(name: str, n_leads: int = 12, n_classes: int = 5, n_samples: int = 1000,
                 **config: Any) -> ECGClassifier:
    """Build a registered model; its `config` records everything needed to rebuild it."""
    if name not in MODELS:
        raise EcgcoreError(f"unknown architecture {name!r}; known: {', '.join(sorted(MODELS))}")
    builder, _ = MODELS[name]
    try:
        model = builder(n_leads=n_leads, n_classes=n_classes, n_samples=n_samples, **config)
    except TypeError as exc:
        raise EcgcoreError(f"architecture {name!r}: {exc}") from exc
    model.name = name
    model.config = {"n_leads": n_leads, "n_classes": n_classes, "n_samples": n_samples, **config}
    return model


@functools.lru_cache(maxsize=None)
def layer_group_count(name: str) -> int:
    """How many layer groups the architecture has (built once per process at its
    defaults): what a strategy needs to lay out its phases before any data is read."""
    return len(create_model(name).layer_groups())


def list_models() -> dict[str, str]:
    """name -> one-line description."""
    return {name: description for name, (_, description) in MODELS.items()}
