"""One record's explanation with a finished run: what the model looked at for one class.

The record is preprocessed exactly as `predict` does (`prepare_input`: the run's sampling
rate, leads, window and normalisation), so the attribution is aligned sample for sample
with the (leads, samples) input the model scored, at the run's sampling rate.

Windows: when the run evaluates on sliding crops (`train.crop_seconds`), the model never
sees the whole record at once. Every crop window the run's protocol uses for this record
(`record_windows`: half-window strides, windows inside the real signal) is attributed on
its own and the maps are stitched by averaging where windows overlap; samples no used
window covers (zero padding past the real signal) get 0. This is done for both
aggregations: with "max" the probability comes from one window, but a map of the whole
record shows the clinician what each window's call rested on. Without crops there is one
window, the whole prepared record.

`probability` is the run's own probability for the class (`predict.score`: the same
windows and aggregation), so it equals what `predict` prints for the file.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ecgcore.data.recordset import Signal
from ecgcore.errors import EcgcoreError
from ecgcore.explain.methods import AttributionOptions, attribute, get_method
from ecgcore.views.scoring import LoadedRun, load_run, prepare_input, read_record_file, score
from ecgcore.train.data import window_starts

OCCLUSION_SECONDS = 0.5  # the sliding occlusion window (per lead) used by explain_signal


@dataclass(frozen=True)
class Explanation:
    """What drove one class's probability on one record.

    attribution      (leads, samples) float32 at `fs`, aligned with `signal`; sign and
                     scale depend on `method` (see `ecgcore.explain.methods`)
    lead_importance  {lead: share}, non-negative, summing to 1 (all 0 when the model's
                     output does not depend on the record at all)
    probability      the run's probability for `class_code` on this record
    signal           (leads, samples) the preprocessed input the attribution explains
    n_valid          how many leading samples are real signal (the rest is zero padding)
    """

    leads: list[str]
    fs: float
    method: str
    class_code: str
    class_name: str
    attribution: np.ndarray
    lead_importance: dict[str, float]
    probability: float
    signal: np.ndarray
    record: str = "record"
    n_valid: int = 0

    def to_json(self) -> dict[str, Any]:
        """Plain JSON types; samples rounded to 6 significant digits."""
        return {
            "record": self.record, "method": self.method, "class": self.class_code,
            "class_name": self.class_name, "probability": float(self.probability),
            "leads": list(self.leads), "fs": float(self.fs), "n_samples": int(self.attribution.shape[1]),
            "n_valid": int(self.n_valid),
            "lead_importance": {lead: float(v) for lead, v in self.lead_importance.items()},
            "attribution": [[float(f"{v:.6g}") for v in row] for row in self.attribution.tolist()],
        }


def class_index(run: LoadedRun, class_code: str) -> int:
    classes = list(run.checkpoint.classes)
    if class_code not in classes:
        known = ", ".join(f"{c} ({n})" for c, n in zip(classes, run.checkpoint.class_names))
        raise EcgcoreError(f"class {class_code!r} is not one of run {run.run_id}'s classes: {known}")
    return classes.index(class_code)


def window_length(run: LoadedRun, n_samples: int) -> int:
    """The length of the windows the run's model scores (as `predict.score`)."""
    if not run.train.crop_seconds:
        return n_samples
    return min(n_samples, int(round(run.train.crop_seconds * run.prep.fs)))


def stitched_attribution(model: torch.nn.Module, x: np.ndarray, n_valid: int, length: int,
                         target: int, method: str, options: AttributionOptions) -> np.ndarray:
    """Attribute each used window of x (leads, samples) and average where they overlap."""
    total = np.zeros(x.shape, dtype=np.float64)
    count = np.zeros(x.shape[1], dtype=np.int64)
    reach = max(int(n_valid), length)
    for start in window_starts(x.shape[1], length):
        if start + length > reach:
            continue  # a window of padding only: the run's protocol does not score it
        window = torch.from_numpy(np.ascontiguousarray(x[None, :, start:start + length]))
        total[:, start:start + length] += attribute(model, window, target, method, options)
        count[start:start + length] += 1
    return (total / np.maximum(count, 1)).astype(np.float32)


def shares(scores: np.ndarray) -> np.ndarray:
    """Non-negative scores -> shares summing to 1 (all zero stays all zero)."""
    scores = np.nan_to_num(np.asarray(scores, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    total = float(scores.sum())
    return scores / total if total > 0 else np.zeros_like(scores)


def explain_signal(run: LoadedRun, signal: Signal, class_code: str, method: str = "ig",
                   record: str = "record", options: AttributionOptions | None = None) -> Explanation:
    """Attribution of `class_code`'s probability on one record, by `method`."""
    chosen = get_method(method)
    target = class_index(run, class_code)
    x, n_valid = prepare_input(run, signal, record)
    fs = float(run.prep.fs)
    options = options or AttributionOptions()
    if options.occlusion_window is None:
        options = dataclasses.replace(options, occlusion_window=max(1, round(OCCLUSION_SECONDS * fs)))

    def probability(values: np.ndarray) -> float:
        return float(score(run, values[None], np.array([n_valid]))[0, target])

    attribution = stitched_attribution(run.model, x, n_valid, window_length(run, x.shape[1]),
                                       target, method, options)
    leads = [str(lead) for lead in run.prep.leads]
    importance = shares(chosen.lead_scores(probability, x, attribution))
    return Explanation(
        leads=leads, fs=fs, method=method, class_code=class_code,
        class_name=run.checkpoint.class_names[target], attribution=attribution,
        lead_importance=dict(zip(leads, (float(v) for v in importance))),
        probability=probability(x), signal=x, record=record, n_valid=int(n_valid))


def explain_file(run_id: str, path: Path | str, class_code: str, method: str = "ig",
                 options: AttributionOptions | None = None) -> Explanation:
    """`explain_signal` for a WFDB/Challenge record file (.hea, .dat or .mat)."""
    get_method(method)  # an unknown method fails before the model is loaded
    run = load_run(run_id)
    return explain_signal(run, read_record_file(path), class_code, method, Path(path).stem, options)
