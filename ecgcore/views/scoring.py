"""Scoring ECG files on disk with a finished run's model, preprocessed exactly as that
run's training data was (the model file carries the preprocessing, the class list and,
for dataset-level scaling, the training split's scaler).

`python -m ecgcore predict --run RUN FILE… --json` prints one object per file:
{"record", "file", "probabilities": {class: p}, "names": {class: name}, "thresholds",
"thresholds_source", "called", "rhythm_conflict", "record_facts", "provenance",
"research_use"} (see `predict_files`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ecgcore.checkpoint import Checkpoint
from ecgcore.data import wfdbio
from ecgcore.data.prepare import PrepConfig, apply_standard_scaler
from ecgcore.data.prepare.per_record import preprocess_signal
from ecgcore.data.recordset import Signal
from ecgcore.errors import EcgcoreError, RecordError
from ecgcore.models.registry import model_from
from ecgcore.runs import RunStore
from ecgcore.train import TrainConfig, select_device
from ecgcore.train.data import record_windows
from ecgcore.train.loop import aggregate_windows
from ecgcore.views.calls import make_calls, rhythm_conflict, run_thresholds
from ecgcore.views.provenance import RESEARCH_USE, run_provenance
from ecgcore.views.record_facts import facts_from_comments

# A record file's header: WFDB/Challenge records are named by any of their files.
HEADER_FOR_SUFFIX = {".hea": "", ".mat": ".hea", ".dat": ".hea"}


@dataclass
class LoadedRun:
    """A run's model ready to score: model in eval mode, its checkpoint and train settings."""

    run_id: str
    model: torch.nn.Module
    checkpoint: Checkpoint
    train: TrainConfig
    device: torch.device

    @property
    def prep(self) -> PrepConfig:
        return PrepConfig.from_dict(self.checkpoint.prep)


def load_run(run_id: str) -> LoadedRun:
    folder = RunStore().get(run_id)
    checkpoint = folder.load_model()
    model = model_from(checkpoint)
    train = folder.run_config.train
    device = select_device(train.device)
    return LoadedRun(run_id, model.to(device).eval(), checkpoint, train, device)


def read_record_file(path: Path | str) -> Signal:
    """A WFDB or Challenge record named by its .hea, .mat or .dat file (NaN gaps kept:
    preprocessing interpolates them as it did for training)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in HEADER_FOR_SUFFIX:
        raise RecordError(path.name, f"unsupported file type {suffix or '(none)'}; "
                                     "give a WFDB record (.hea, .dat or .mat)")
    header = path if suffix == ".hea" else path.with_suffix(".hea")
    if not header.is_file():
        raise RecordError(path.name, f"header {header.name} not found next to it")
    return wfdbio.read_signal(header, record=header.stem, allow_nan=True)


def prepare_input(run: LoadedRun, signal: Signal, record: str) -> tuple[np.ndarray, int]:
    """One record as the run's model saw its training data: (leads, samples) float32, and
    how many of those samples are real signal (the rest is zero padding)."""
    prep = run.prep
    length = int(round(prep.seconds * prep.fs))
    window, info = preprocess_signal(signal, prep, length, record)
    if prep.normalize == "standard":
        scaler = run.checkpoint.extra.get("standard_scaler")
        if not scaler:
            raise EcgcoreError(f"run {run.run_id}: the model file lacks its training scaler")
        window = apply_standard_scaler(window, scaler["mean"], scaler["std"])
    return window.astype(np.float32, copy=False), info.n_valid


@torch.no_grad()
def score(run: LoadedRun, x: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """(records, leads, samples) -> sigmoid scores, with the run's evaluation protocol
    (the trainer's own windows and aggregation: crop-length windows, stride half a window,
    mean or max over the windows inside the real signal)."""
    length = x.shape[2] if not run.train.crop_seconds else int(round(run.train.crop_seconds * run.prep.fs))
    windows, use = record_windows(x, valid, min(length, x.shape[2]))
    logits = run.model(windows.to(run.device))
    scores = torch.sigmoid(logits.float()).cpu().reshape(*use.shape, -1)
    return aggregate_windows(scores, use, run.train.eval_aggregate).numpy()


def _header_facts(file: Path | str) -> dict[str, Any] | None:
    """Age, sex and recorded Dx codes from the record's header comments, when it has any."""
    path = Path(file)
    facts = facts_from_comments(wfdbio.read_header(path.with_suffix(".hea")).comments)
    return None if facts is None else {"age": facts.age, "sex": facts.sex,
                                       "diagnoses": list(facts.diagnoses)}


def predict_files(run_id: str, files: list[Path | str]) -> list[dict[str, Any]]:
    """Per file: probabilities per class, the run's thresholds and the called classes (most
    probable first), called rhythms that exclude each other (or None), the record header's
    age/sex/Dx (or None), and what the model rests on (`provenance`, `research_use`).
    Errors name the file and the reason."""
    run = load_run(run_id)
    classes, names = run.checkpoint.classes, run.checkpoint.class_names
    folder = RunStore().get(run_id)
    thresholds = run_thresholds(folder.results(), classes)
    prov = run_provenance(run_id)
    out: list[dict[str, Any]] = []
    for file in files:
        record = Path(file).stem
        window, n_valid = prepare_input(run, read_record_file(file), record)
        probabilities = {c: float(p) for c, p in zip(classes, score(run, window[None], np.array([n_valid]))[0])}
        calls = make_calls(probabilities, thresholds)
        conflict = rhythm_conflict(calls)
        out.append({"record": record, "file": str(file), "probabilities": probabilities,
                    "names": dict(zip(classes, names)),
                    "thresholds": {c: thresholds[c] for c in classes},
                    "thresholds_source": thresholds.source,
                    "called": [c.code for c in calls if c.called],
                    "rhythm_conflict": list(conflict.codes) if conflict else None,
                    "record_facts": _header_facts(file),
                    "provenance": {"line": prov.line(), "synthetic": prov.synthetic,
                                   "warning": prov.warning},
                    "research_use": RESEARCH_USE})
    return out
