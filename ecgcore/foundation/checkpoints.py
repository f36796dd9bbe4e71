"""The checkpoint registry: foundation-model files the user downloaded, registered by path
with their SHA-256, so a run can start from one and say exactly which file it was.

A record is `$ECGCORE_HOME/checkpoints/<name>.json` (`RegisteredCheckpoint`); the file
itself stays where the user keeps it. Registering reads the file with
`torch.load(weights_only=True)` (tensors and plain containers only: nothing in it can
run), converts it with its catalogue entry's converter and checks every tensor against
the architecture the entry fixes, so a file of another model, size or lead count, or with
one renamed key, is refused with the first mismatches named. Loading hashes the file
again and refuses it if it changed since. A refused file never writes, overwrites or
deletes a record.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import re
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from ecgcore import workspace
from ecgcore.checkpoint import Checkpoint
from ecgcore.data.prepare import PrepConfig
from ecgcore.errors import EcgcoreError
from ecgcore.foundation.catalogue import FoundationModel, get_foundation_model
from ecgcore.transfer.loading import final_linear_keys

log = logging.getLogger(__name__)

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_SHOWN = 5  # mismatches named per kind in an error
_LOCK = ".registry.lock"


class CheckpointFileError(EcgcoreError):
    """The file is not a checkpoint of the model it was registered as (unreadable, not
    loadable with weights_only, or tensors that do not fit the architecture)."""


@dataclass(frozen=True)
class RegisteredCheckpoint:
    """One registered checkpoint file: `model` is its catalogue entry's name, `arch` the
    architecture that rebuilds it, `path` where the file is (absolute), `sha256` and
    `size_bytes` what it was when registered, `added` the unix time; the licence,
    provenance and training data are the catalogue entry's (plus any note given when it
    was added); `contract` is the input contract every input to it is prepared by."""

    name: str
    model: str
    arch: str
    path: str
    sha256: str
    size_bytes: int
    added: float
    licence: str
    commercial_use: bool
    provenance: str
    pretrained_on: tuple[str, ...]
    contract: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "pretrained_on": list(self.pretrained_on)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RegisteredCheckpoint:
        return cls(name=str(data["name"]), model=str(data["model"]), arch=str(data["arch"]),
                   path=str(data["path"]), sha256=str(data["sha256"]), size_bytes=int(data["size_bytes"]),
                   added=float(data["added"]), licence=str(data["licence"]),
                   commercial_use=bool(data["commercial_use"]), provenance=str(data["provenance"]),
                   pretrained_on=tuple(str(d) for d in data["pretrained_on"]), contract=dict(data["contract"]))

    @property
    def entry(self) -> FoundationModel:
        return get_foundation_model(self.model)

    def load(self) -> Checkpoint:
        """The weights as an ecgcore `Checkpoint` a run can start from
        (`ecgcore.transfer.loading.load_source(model, checkpoint, include_final=False)`).
        Refuses a file that is gone or no longer has the registered SHA-256."""
        path = Path(self.path)
        if not path.is_file():
            raise CheckpointFileError(f"checkpoint {self.name!r}: its file {path} is gone; put it back "
                                      f"or remove the checkpoint and add it again")
        digest = sha256_of(path)
        if digest != self.sha256:
            raise CheckpointFileError(f"checkpoint {self.name!r}: {path} changed since it was registered "
                                      f"(SHA-256 {digest[:12]}…, registered {self.sha256[:12]}…); "
                                      f"remove the checkpoint and add the new file")
        entry = self.entry
        state, config = _checked_state(path, entry)
        return Checkpoint(
            state_dict=state, model_name=self.arch, model_config=config, classes=[], class_names=[],
            prep=entry.contract.prep_config(PrepConfig()).to_dict(), stage="checkpoint", seen={},
            extra={"checkpoint": self.name, "sha256": self.sha256, "model": self.model,
                   "licence": self.licence, "commercial_use": self.commercial_use,
                   "pretrained_on": list(self.pretrained_on), "synthetic": entry.synthetic})


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1024 * 1024):
            digest.update(block)
    return digest.hexdigest()


def _listed(items: list[str]) -> str:
    more = f" (+{len(items) - _SHOWN} more)" if len(items) > _SHOWN else ""
    return ", ".join(items[:_SHOWN]) + more


def _read_payload(path: Path, entry: FoundationModel) -> Mapping[str, Any]:
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointFileError(f"{path}: no such file") from None
    except Exception as exc:  # noqa: BLE001 -- torch raises pickle, zip and runtime errors alike
        raise CheckpointFileError(f"{path}: not loadable as a {entry.title} checkpoint with weights_only=True "
                                  f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from None
    if not isinstance(payload, Mapping):
        raise CheckpointFileError(f"{path}: holds a {type(payload).__name__}, not a {entry.title} checkpoint")
    return payload


def _checked_state(path: Path, entry: FoundationModel) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The file's tensors in our key naming, and the config that rebuilds the model they
    fit: the entry's converter, then every tensor against the entry's architecture built
    at the entry's settings (on the meta device: shapes only). A final Linear the file does
    not hold (ECG-JEPA's files have no head) may be missing; nothing else may."""
    try:
        state = entry.convert(_read_payload(path, entry))
    except CheckpointFileError:
        raise
    except EcgcoreError as exc:
        raise CheckpointFileError(f"{path}: {exc}") from None
    head = sorted(final_linear_keys(entry.build()))
    weight = next((key for key in head if key.endswith("weight")), "")
    model = entry.build(int(state[weight].shape[0]) if weight in state and state[weight].ndim == 2 else 1)
    expected = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    optional = set(head)
    missing = [key for key in expected if key not in state and key not in optional]
    unexpected = [key for key in state if key not in expected]
    shapes = [f"{key} {tuple(state[key].shape)} in the file, {expected[key]} in the model"
              for key in expected if key in state and tuple(state[key].shape) != expected[key]]
    if missing or unexpected or shapes:
        problems = [f"{label}: {_listed(found)}" for label, found in
                    (("missing", missing), ("unexpected", unexpected), ("shape mismatches", shapes)) if found]
        raise CheckpointFileError(f"{path} does not fit {entry.name} ({entry.arch} with "
                                  f"{dict(entry.config) or 'its default settings'}): " + "; ".join(problems))
    return state, dict(model.config)


def _record_path(name: str) -> Path:
    return workspace.checkpoints_dir() / f"{name}.json"


def _check_name(name: str) -> str:
    if not _NAME.fullmatch(name) or ".." in name:
        raise EcgcoreError(f"checkpoint name {name!r}: use letters, digits, '_', '-' and '.', "
                           f"starting with a letter or digit (at most 64 characters)")
    return name


@contextmanager
def _registry_lock() -> Iterator[None]:
    """One writer at a time (the app, the CLI and a download job may add at once)."""
    with (workspace.checkpoints_dir() / _LOCK).open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _write_record(record: RegisteredCheckpoint) -> None:
    target = _record_path(record.name)
    handle, temp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(handle, "w") as out:
            json.dump(record.to_dict(), out, indent=2)
            out.write("\n")
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def _read_record(path: Path) -> RegisteredCheckpoint:
    try:
        return RegisteredCheckpoint.from_dict(json.loads(path.read_text()))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise EcgcoreError(f"checkpoint record {path}: unreadable ({type(exc).__name__}: {exc})") from None


def add_checkpoint(path: Path | str, model: str, name: str | None = None,
                   note: str | None = None) -> RegisteredCheckpoint:
    """Register the checkpoint file at `path` as catalogue model `model`, under `name`
    (default: the model's name). The file is hashed, loaded with weights_only=True,
    converted and checked against the model's architecture; any misfit is refused naming
    the first mismatches. A name already registered to a file with another SHA-256 (or
    another model) is refused: remove it first. The same file again is no change (a new
    path for it is recorded). `note` is added to the provenance (e.g. the run a demo
    checkpoint was exported from). Nothing is written when anything is refused."""
    entry = get_foundation_model(model)
    name = _check_name(name if name is not None else entry.name)
    file = Path(path).expanduser().resolve()
    if not file.is_file():
        raise CheckpointFileError(f"{file}: no such checkpoint file")
    digest = sha256_of(file)
    _checked_state(file, entry)
    record = RegisteredCheckpoint(
        name=name, model=entry.name, arch=entry.arch, path=str(file), sha256=digest,
        size_bytes=file.stat().st_size, added=time.time(), licence=entry.licence,
        commercial_use=entry.commercial_use,
        provenance=entry.provenance + (f" {note.strip()}" if note and note.strip() else ""),
        pretrained_on=entry.pretrained_on, contract=entry.contract.to_dict())
    with _registry_lock():
        existing = _record_path(name)
        if existing.is_file():
            old = _read_record(existing)
            if old.sha256 != digest or old.model != entry.name:
                raise EcgcoreError(f"checkpoint {name!r} is already registered ({old.model}, SHA-256 "
                                   f"{old.sha256[:12]}…, {old.path}); remove it first or register the "
                                   f"file under another name")
            if old.path == record.path:
                log.info("checkpoint %s: already registered with this file", name)
                return old
            record = RegisteredCheckpoint(**{**asdict(old), "path": record.path})
            log.info("checkpoint %s: same file (SHA-256 %s…) now at %s", name, digest[:12], record.path)
        _write_record(record)
    log.info("registered checkpoint %s: %s, SHA-256 %s…, %d bytes", name, entry.name, digest[:12],
             record.size_bytes)
    return record


def list_checkpoints() -> list[RegisteredCheckpoint]:
    """Every registered checkpoint, by name (an unreadable record is skipped with a warning)."""
    records: list[RegisteredCheckpoint] = []
    for path in workspace.checkpoints_dir().glob("*.json"):
        try:
            records.append(_read_record(path))
        except EcgcoreError as exc:
            log.warning("%s", exc)
    return sorted(records, key=lambda record: record.name)


def get_checkpoint(name: str) -> RegisteredCheckpoint:
    """The checkpoint registered as `name`; an unknown name is an error naming the known ones."""
    path = _record_path(_check_name(name))
    if not path.is_file():
        known = ", ".join(record.name for record in list_checkpoints()) or "none"
        raise EcgcoreError(f"no checkpoint {name!r} is registered; registered: {known} "
                           f"(add one with `python -m ecgcore add-checkpoint PATH --model MODEL`)")
    return _read_record(path)


def remove_checkpoint(name: str) -> RegisteredCheckpoint:
    """Forget checkpoint `name` (its file is never touched); returns the record removed."""
    with _registry_lock():
        record = get_checkpoint(name)
        _record_path(name).unlink()
    log.info("removed checkpoint %s (its file %s is kept)", name, record.path)
    return record
