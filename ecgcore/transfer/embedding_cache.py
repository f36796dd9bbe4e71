"""The on-disk cache of a frozen encoder's embeddings, so probes on it never run it twice.

A probe (`embedding_probe`, `attention_probe`) trains only a head on the frozen encoder's
output. Encoding is nearly all of its cost, and every training fraction, seed of the head
and second probe of the same encoder on the same prepared data encodes the same records the
same way; so the embeddings of EVERY row of the prepared array are computed once and kept
under `$ECGCORE_HOME/cache/embeddings/<key>/`, memory-mapped like the signal cache
(`ecgcore.data.prepare.cache`, whose temp-folder, meta-last and atomic-publish helpers this
reuses):
  values.npy       "pooled": float32 (n_records, dim), the features the model's final Linear
                   sees (`embed(x)` for a one-Linear head), whole prepared window, eval mode;
                   "tokens": float16 (n_records, tokens, dim), `model.tokens(x)` averaged in
                   groups of `group` adjacent tokens (`token_head.token_group`) so that at most
                   `max_tokens` remain
  record_ids.json  the record of each row (the prepared array's order)
  meta.json        key, kind, shape, group, source identity, seconds -- written LAST

Why tokens are float16 and grouped: ECG-JEPA gives 400 tokens of 768 per record, 1.2 MB in
float32, 27 GB for PTB-XL's 21,837 records. Grouping to at most 80 tokens (5 patches of one
lead, 1 s, per token) and float16 bring that to 123 KB a record, 2.7 GB; ECGFounder's 20
time steps of 1,024 stay ungrouped (41 KB a record). The attention head applies the same
grouping, so the saved model computes what was trained; the float16 rounding (relative
5e-4) is far below the noise of training the head by SGD, but it means a run's predictions
(scored from the cache) and model.pt re-scoring the same records agree to about 1e-3, not
bit for bit. Pooled embeddings stay float32: they are small, and the logistic-regression
probe folded into the final Linear reproduces scikit-learn's probabilities from them.

The key hashes what determines the values: the source's weights (the registered
checkpoint's file SHA-256 in `Checkpoint.extra["sha256"]`, else a SHA-256 of the source's
state dict), the architecture and its config (less the class count), the prepared array's
own cache key (its folder name; a content hash for a dataset built without one), the
preprocessing, the train-fitted standard scaler when there is one (it depends on the split,
so such data gets one entry per split and fraction; input contracts normalise per record
and need none), the kind, `max_tokens` and the compute precision. Two processes building
the same key both compute it; the first to publish wins.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ecgcore import workspace
from ecgcore.checkpoint import Checkpoint
from ecgcore.data.pipeline import TaskDataset
from ecgcore.data.prepare.cache import (
    new_temp_dir,
    publish,
    remove_stale_temps,
    write_meta,
)
from ecgcore.errors import EcgcoreError
from ecgcore.models.base import ECGClassifier
from ecgcore.models.token_head import (
    final_linear_of,
    group_tokens,
    has_tokens,
    token_group,
)
from ecgcore.train.config import TrainConfig
from ecgcore.train.data import crop_length, prefetch
from ecgcore.train.device import autocast, effective_precision, to_device

log = logging.getLogger(__name__)

EMBEDDING_FORMAT = 1  # bump when the entry layout or what a kind holds changes
POOLED, TOKENS = "pooled", "tokens"
KINDS: tuple[str, ...] = (POOLED, TOKENS)
MAX_TOKENS = 80
"""Most tokens kept per record (see the module docstring for the sizes this gives)."""
SUBDIR = "embeddings"
VALUES, RECORDS, META = "values.npy", "record_ids.json", "meta.json"
DTYPES: dict[str, type] = {POOLED: np.float32, TOKENS: np.float16}
LOG_STEPS = 10  # progress lines per extraction

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Embeddings:
    """One cache entry: row i of `values` (a read-only memmap) is `record_ids[i]`, in the
    prepared array's order. `extracted` is True when this call ran the encoder, False on a
    cache hit. `group`: tokens averaged per token kept (1 for pooled)."""

    values: np.ndarray
    record_ids: list[str]
    kind: str
    key: str
    path: Path
    group: int = 1
    extracted: bool = False
    meta: dict[str, Any] = field(default_factory=dict, repr=False)

    def take(self, rows: np.ndarray) -> np.ndarray:
        """Rows as float32 in memory (read in row order, returned in the order asked)."""
        rows = np.asarray(rows, dtype=np.int64)
        order = np.argsort(rows, kind="stable")
        out = np.empty((rows.size, *self.values.shape[1:]), dtype=np.float32)
        out[order] = self.values[rows[order]]
        return out


def embeddings_dir(cache_dir: Path | None = None) -> Path:
    return (cache_dir if cache_dir is not None else workspace.cache_dir()) / SUBDIR


def require_whole_window(data: TaskDataset, train: TrainConfig, strategy: str) -> None:
    """Refuse a crop: the cache holds one embedding of each record's whole prepared window,
    which is what the saved model scores only when it is not asked to score crops."""
    if train.crop_seconds is not None and crop_length(data, train.crop_seconds) != data.X.shape[2]:
        raise EcgcoreError(f"strategy {strategy} embeds each record's whole prepared window "
                           f"({data.X.shape[2]} samples); train.crop_seconds={train.crop_seconds:g} would "
                           "score crops of it instead: leave crop_seconds unset for probes")


# ------------------------------------------------------------------ key

def weights_identity(source: Checkpoint) -> str:
    """"sha256:<file digest>" of a registered checkpoint, else "state:<digest>" of the
    source's state dict (names, dtypes, shapes and bytes of every tensor)."""
    recorded = source.extra.get("sha256")
    if isinstance(recorded, str) and recorded:
        return f"sha256:{recorded}"
    digest = hashlib.sha256()
    for name in sorted(source.state_dict):
        tensor = source.state_dict[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}\n".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy())  # the bytes, not a copy
    return f"state:{digest.hexdigest()}"


def dataset_identity(data: TaskDataset) -> str:
    """The prepared array's cache key (its entry folder's name), or for a dataset built
    without the cache a digest of its rows and record ids."""
    if data.cache_path:
        return f"prepared:{Path(data.cache_path).name}"
    digest = hashlib.sha256("\0".join(data.record_ids).encode())
    for start in range(0, len(data), 256):
        digest.update(np.ascontiguousarray(data.X[start:start + 256], dtype=np.float32).tobytes())
    return f"rows:{digest.hexdigest()}"


def _scaler_identity(data: TaskDataset) -> str | None:
    if data.scaler is None:
        return None
    mean, std = (np.ascontiguousarray(part, dtype=np.float64) for part in data.scaler)
    return hashlib.sha256(mean.tobytes() + std.tobytes()).hexdigest()


def embedding_key(model: ECGClassifier, source: Checkpoint, data: TaskDataset, kind: str,
                  max_tokens: int = MAX_TOKENS, precision: str = "float32", weights: str | None = None) -> str:
    """Hash of what determines an entry's values (see the module docstring). `weights`: the
    source's `weights_identity` when the caller has it already (hashing ECGFounder's state
    dict takes 0.2 s)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    head = {"format": EMBEDDING_FORMAT, "weights": weights or weights_identity(source), "arch": model.name,
            "model_config": {k: v for k, v in model.config.items() if k != "n_classes"},
            "dataset": dataset_identity(data), "prep": data.prep.to_dict(), "scaler": _scaler_identity(data),
            "kind": kind, "max_tokens": max_tokens if kind == TOKENS else None, "precision": precision}
    return hashlib.sha256(json.dumps(head, sort_keys=True, default=str).encode()).hexdigest()[:24]


# ------------------------------------------------------------------ entries

def open_embeddings(path: Path) -> Embeddings | None:
    """The entry at `path`, or None when it is absent or incomplete."""
    try:
        meta = json.loads((path / META).read_text())
        if (not meta.get("complete") or meta.get("embedding_format") != EMBEDDING_FORMAT
                or meta.get("key") != path.name or meta.get("kind") not in KINDS):
            return None
        values = np.load(path / VALUES, mmap_mode="r")
        record_ids = json.loads((path / RECORDS).read_text())
    except (OSError, ValueError, TypeError, KeyError, json.JSONDecodeError):
        return None
    if list(values.shape) != meta.get("shape") or len(record_ids) != values.shape[0]:
        return None
    return Embeddings(values=values, record_ids=[str(r) for r in record_ids], kind=meta["kind"], key=meta["key"],
                      path=path, group=int(meta.get("group", 1)), meta=meta)


def cached_embeddings(model: ECGClassifier, source: Checkpoint, data: TaskDataset, kind: str, *,
                      max_tokens: int = MAX_TOKENS, batch_size: int = 256, device: torch.device | None = None,
                      precision: str = "float32", cache_dir: Path | None = None,
                      progress: Progress | None = None, stop: Callable[[], bool] | None = None) -> Embeddings:
    """The embeddings of every row of `data` by `model` (set up from `source`): read from the
    cache, or extracted (batches of `batch_size` under torch.no_grad, eval mode, progress
    logged and passed to `progress(done, total)`) and published there first. `stop()` is
    asked after every batch (a run's callbacks: a cancelled job stops there); True abandons
    the extraction, leaving no entry."""
    device = device or torch.device("cpu")
    precision = effective_precision(device, precision)
    if kind == TOKENS and not has_tokens(model):
        raise EcgcoreError(f"model {model.name or type(model).__name__} offers no token sequence: "
                           "token embeddings (an attention probe) need one (ecgfounder, ecg_jepa and "
                           "their demo sizes have it)")
    root = embeddings_dir(cache_dir)
    root.mkdir(parents=True, exist_ok=True)
    weights = weights_identity(source)
    key = embedding_key(model, source, data, kind, max_tokens, precision, weights)
    cached = open_embeddings(root / key)
    if cached is not None and cached.record_ids == list(data.record_ids):
        log.info("embeddings: %s of %d records from the cache (%s)", kind, len(cached.record_ids), key)
        return cached
    remove_stale_temps(root)
    temp = new_temp_dir(root, key)
    try:
        started = time.perf_counter()
        values, group = _extract(model, data, kind, max_tokens, batch_size, device, precision,
                                 temp / VALUES, progress, should_stop=stop)
        seconds = time.perf_counter() - started
        (temp / RECORDS).write_text(json.dumps(list(data.record_ids)))
        write_meta(temp, {"embedding_format": EMBEDDING_FORMAT, "key": key, "kind": kind, "shape": list(values.shape),
                          "dtype": str(values.dtype), "group": group, "max_tokens": max_tokens,
                          "weights": weights, "arch": model.name, "dataset": data.name,
                          "prep": data.prep.to_dict(), "precision": precision, "seconds": round(seconds, 3)})
        del values
        final = publish(temp, root / key, is_complete=lambda path: open_embeddings(path) is not None)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    entry = open_embeddings(final)
    if entry is None:
        raise EcgcoreError(f"embedding cache entry {final} could not be read back")
    log.info("embeddings: %s of %d records extracted in %.1f s (%.1f records/s), cached as %s",
             kind, len(data), seconds, len(data) / max(seconds, 1e-9), key)
    return dataclasses.replace(entry, extracted=True)


# ------------------------------------------------------------------ extraction

def _extract(model: ECGClassifier, data: TaskDataset, kind: str, max_tokens: int, batch_size: int,
             device: torch.device, precision: str, path: Path,
             progress: Progress | None, should_stop: Callable[[], bool] | None) -> tuple[np.ndarray, int]:
    """Fill `path` (a .npy memmap made once the first batch gives the shape) with every
    row's embedding; returns the array and the token group."""
    total = len(data)
    spans = [(start, min(start + batch_size, total)) for start in range(0, total, batch_size)]
    out: np.ndarray | None = None
    group = 1
    done, next_log = 0, total / LOG_STEPS
    started = time.perf_counter()
    was_training = model.training
    model.to(device).eval()
    log.info("embeddings: extracting %s of %d records with %s, %d per batch", kind, total, model.name, batch_size)
    try:
        with torch.no_grad(), _features(model, kind) as features:
            for (start, stop), x in prefetch(spans, lambda span: (span, _rows(data, *span))):
                with autocast(device, precision):
                    values = features(to_device(x, device)).float()
                if kind == TOKENS:
                    if out is None:
                        group = token_group(values.shape[1], max_tokens)
                    values = group_tokens(values, group)
                batch = values.cpu().numpy()
                if out is None:
                    out = np.lib.format.open_memmap(path, mode="w+", dtype=DTYPES[kind], shape=(total, *batch.shape[1:]))
                stored = batch.astype(DTYPES[kind])
                if not np.isfinite(stored).all():
                    raise EcgcoreError(f"embeddings of rows {start}-{stop - 1} are not finite in "
                                       f"{np.dtype(DTYPES[kind]).name} (NaN in the input, or values beyond its range)")
                out[start:stop] = stored
                done = stop
                if progress is not None:
                    progress(done, total)
                if done >= next_log or done == total:
                    rate = done / max(time.perf_counter() - started, 1e-9)
                    log.info("embeddings: %d / %d records (%.1f records/s)", done, total, rate)
                    next_log += total / LOG_STEPS
                if should_stop is not None and done < total and should_stop():
                    raise EcgcoreError(f"embedding extraction stopped after {done} of {total} records")
    finally:
        model.train(was_training)
    if out is None:
        raise EcgcoreError(f"{data.name}: no records to embed")
    out.flush()
    return out, group


def _rows(data: TaskDataset, start: int, stop: int) -> torch.Tensor:
    """Rows start..stop-1 as the model is fed them (`data.batch`), in writable memory."""
    x = data.batch(slice(start, stop))
    return torch.from_numpy(x if x.flags.writeable else x.copy())


@contextmanager
def _features(model: ECGClassifier, kind: str) -> Iterator[Callable[[torch.Tensor], torch.Tensor]]:
    """x -> the batch's features: for "pooled" the input of the model's final Linear (a
    forward pre-hook catches it during the ordinary forward, so any head works), for
    "tokens" `model.tokens(x)`."""
    if kind == TOKENS:
        yield model.tokens
        return
    caught: list[torch.Tensor] = []
    layer = model.get_submodule(final_linear_of(model))
    handle = layer.register_forward_pre_hook(lambda module, args: caught.append(args[0]))

    def pooled(x: torch.Tensor) -> torch.Tensor:
        caught.clear()
        model(x)
        return caught[0]

    try:
        yield pooled
    finally:
        handle.remove()
