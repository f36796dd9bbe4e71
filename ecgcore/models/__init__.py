"""Model zoo: one registry (`registry`: the model modules, each with its `ARCHITECTURES`),
one interface (see base.ECGClassifier)."""

from ecgcore.models.base import Architecture, ECGClassifier
from ecgcore.models.registry import MODELS, create_model, list_models

__all__ = ["Architecture", "ECGClassifier", "MODELS", "create_model", "list_models"]
