"""Model zoo: one registry, one interface (see base.ECGClassifier).

Importing this package registers every architecture (each module decorates its builders).
"""

from ecgcore.models.base import ECGClassifier
from ecgcore.models.registry import MODELS, create_model, list_models, register_model
from ecgcore.models import nguyen_do_resnet, nguyen_do_rnn, small  # noqa: F401,E402  (registers)
from ecgcore.models import benchmark_cnn, benchmark_rnn  # noqa: F401,E402  (registers)
from ecgcore.models import ecglib  # noqa: F401,E402  (registers)

__all__ = ["ECGClassifier", "MODELS", "create_model", "list_models", "register_model"]
