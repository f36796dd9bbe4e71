"""Foundation-model checkpoints as sources (`ecgcore.foundation`).

- `catalogue`: the models whose published files can be registered (`FOUNDATION_MODELS`:
  architecture, file format and converter, licence, provenance, training data).
- `checkpoints`: the registry of checkpoint files on disk (`add_checkpoint`,
  `list_checkpoints`, `get_checkpoint`, `remove_checkpoint`; `RegisteredCheckpoint.load()`
  gives the `Checkpoint` a run starts from).
- `embed`: pooled embeddings of record files through a registered checkpoint, its input
  contract applied (`python -m ecgcore embed`).
"""

from ecgcore.foundation.catalogue import (
    FOUNDATION_MODELS,
    FoundationModel,
    get_foundation_model,
)
from ecgcore.foundation.checkpoints import (
    CheckpointFileError,
    RegisteredCheckpoint,
    add_checkpoint,
    get_checkpoint,
    list_checkpoints,
    remove_checkpoint,
)

__all__ = ["FOUNDATION_MODELS", "CheckpointFileError", "FoundationModel", "RegisteredCheckpoint",
           "add_checkpoint", "get_checkpoint", "get_foundation_model", "list_checkpoints",
           "remove_checkpoint"]
