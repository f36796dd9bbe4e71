"""Model files (`model.pt`): weights plus everything needed to use them again.

A checkpoint stores the state dict, the model name and config (to rebuild it with
`ecgcore.models.create_model`), the class list and readable names (label order is
data), the preprocessing (`PrepConfig.to_dict()`), and provenance: which datasets
and record ids the weights have seen (and their signal fingerprints, so that a later run
finds its test records in them under any name, see `ecgcore.data.identity`), and the
stage ("pretrain", "target", …).
Files are written atomically (temp file, then rename) and loaded with
`torch.load(weights_only=True)`: only tensors and plain containers, nothing
unpickled that could execute code.
"""

from __future__ import annotations

import io
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ecgcore.errors import EcgcoreError

FORMAT_VERSION = 1


@dataclass
class Checkpoint:
    state_dict: dict[str, torch.Tensor]
    model_name: str
    model_config: dict[str, Any]
    classes: list[str]
    class_names: list[str]
    prep: dict[str, Any]
    stage: str = "target"
    seen: dict[str, list[str]] = field(default_factory=dict)  # dataset name -> record ids trained on
    extra: dict[str, Any] = field(default_factory=dict)  # JSON-like: run id, epoch, metrics, …
    # dataset name -> signal fingerprints of the records in `seen` (`Fingerprints.to_payload()`:
    # version, ids, int32 counts and hashes as bytes); {} in files made before fingerprints
    fingerprints: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_payload(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION, "state_dict": self.state_dict,
            "model_name": self.model_name, "model_config": self.model_config,
            "classes": list(self.classes), "class_names": list(self.class_names),
            "prep": self.prep, "stage": self.stage, "seen": self.seen, "extra": self.extra,
            "fingerprints": self.fingerprints,
        }


def write_torch_atomic(payload: Any, path: Path | str) -> Path:
    """`torch.save(payload)` to `path` atomically: serialized in memory first, then written
    to a temp file beside `path`, fsynced and renamed over it. A failed write (a full disk,
    a file size limit) removes the temp file, leaves the previous `path` as it was, and
    raises an EcgcoreError naming the file and the OS's reason. (torch writing straight to
    the file would report such a failure only as an opaque "unexpected pos" error, hence
    the memory copy: it costs one extra copy of the file's size while saving.)"""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(buffer.getbuffer())
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except OSError as exc:
        Path(temp).unlink(missing_ok=True)
        reason = exc.strerror or str(exc)
        raise EcgcoreError(f"{path}: could not be written ({reason}, errno {exc.errno}); "
                           f"the previous file, if any, is unchanged") from exc
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return path


def save_checkpoint(checkpoint: Checkpoint, path: Path | str) -> Path:
    """Write atomically: a crash mid-write never leaves a file that looks complete."""
    return write_torch_atomic(checkpoint.to_payload(), path)


def load_checkpoint(path: Path | str, map_location: str | torch.device = "cpu") -> Checkpoint:
    """Load with weights_only=True; a clear error for files that are not our checkpoints."""
    path = Path(path)
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError as exc:
        raise EcgcoreError(f"{path}: no such model file") from exc
    except Exception as exc:
        raise EcgcoreError(f"{path}: not a loadable model file ({type(exc).__name__}: {exc})") from exc
    if not isinstance(payload, dict) or payload.get("format_version") != FORMAT_VERSION:
        raise EcgcoreError(f"{path}: not an ecgcore model file (format_version missing or unknown)")
    return Checkpoint(
        state_dict=payload["state_dict"], model_name=payload["model_name"],
        model_config=dict(payload["model_config"]), classes=list(payload["classes"]),
        class_names=list(payload["class_names"]), prep=dict(payload["prep"]),
        stage=payload.get("stage", "target"), seen=dict(payload.get("seen", {})),
        extra=dict(payload.get("extra", {})), fingerprints=dict(payload.get("fingerprints", {})),
    )
