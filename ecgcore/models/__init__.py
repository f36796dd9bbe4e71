"""Model zoo: one registry, one interface (see base.ECGClassifier).

Importing this package registers every architecture (each module decorates its builders).
"""

from ecgcore.models.base import ECGClassifier
from ecgcore.models.registry import MODELS, create_model, list_models, register_model

__all__ = ["ECGClassifier", "MODELS", "create_model", "list_models", "register_model"]
