"""Pooled embeddings of record files through a registered checkpoint (`python -m ecgcore
embed`): each record is read, prepared by the checkpoint's input contract exactly as a run
of that architecture prepares its data, and passed through the model's `embed` in eval
mode. For scripts, and for checking a converted checkpoint by hand against the authors'
code on the same file.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ecgcore.data import wfdbio
from ecgcore.data.prepare import PrepConfig
from ecgcore.data.prepare.per_record import preprocess_signal
from ecgcore.data.recordset import Signal
from ecgcore.errors import RecordError
from ecgcore.foundation.checkpoints import get_checkpoint
from ecgcore.models import create_model
from ecgcore.models.base import ECGClassifier
from ecgcore.transfer.loading import load_source

log = logging.getLogger(__name__)

_SIGNAL_SUFFIXES = (".dat", ".mat")


def header_of(file: Path | str) -> Path:
    """The `.hea` of a WFDB record named by its header, its `.dat`/`.mat`, or its path
    without extension (`records100/00000/00001_lr`)."""
    path = Path(file)
    suffix = path.suffix.lower()
    if suffix == ".hea":
        header = path
    elif suffix in _SIGNAL_SUFFIXES:
        header = path.with_suffix(".hea")
    else:
        header = path.with_name(path.name + ".hea")
    if not header.is_file():
        raise RecordError(path.name, f"no WFDB header {header} (give a .hea, its .dat/.mat, or the record "
                                     f"path without extension)")
    return header


def read_record(file: Path | str) -> tuple[str, Signal]:
    """(record name, signal in mV); NaN gaps are kept for the preparation to repair."""
    header = header_of(file)
    return header.stem, wfdbio.read_signal(header, record=header.stem, allow_nan=True)


def load_encoder(checkpoint: str) -> tuple[ECGClassifier, PrepConfig]:
    """The registered checkpoint's model (its weights loaded, eval mode) and the
    preparation its input contract gives."""
    source = get_checkpoint(checkpoint).load()
    model = create_model(source.model_name, **source.model_config)
    load_source(model, source, include_final=False)
    return model.eval(), PrepConfig.from_dict(source.prep)


@torch.no_grad()
def embed_files(checkpoint: str, files: Sequence[Path | str]) -> list[dict[str, Any]]:
    """One {"record", "checkpoint", "dim", "embedding"} per file, in order. Errors name the
    file and the reason (an unreadable record, a record without any wanted lead)."""
    model, prep = load_encoder(checkpoint)
    out: list[dict[str, Any]] = []
    for file in files:
        record, signal = read_record(file)
        window, info = preprocess_signal(signal, prep, prep.window, record)
        if info.missing_leads:
            log.warning("%s: leads %s missing, zero-filled for %s", record, ", ".join(info.missing_leads),
                        checkpoint)
        embedding = model.embed(torch.from_numpy(window)[None])[0].float()
        out.append({"record": record, "checkpoint": checkpoint, "dim": int(embedding.numel()),
                    "embedding": [float(v) for v in embedding.tolist()]})
    return out
