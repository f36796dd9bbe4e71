"""Batches from a TaskDataset: shuffled random crops for training, sliding windows for evaluation.

Why no DataLoader and no worker processes: the prepared array X is a memmap of float32
windows already preprocessed on disk (the page cache holds it after the first epoch),
so a batch is one fancy-index read plus a scaler and a crop — about 60 microseconds per
10 s record at 100 Hz, a sixth of small_cnn's training step per record on a 2.5 s crop
(one CPU thread) and far less for larger models or 10 s windows. Worker processes would
add start-up, pickling of every batch and a second copy, and make seeding harder.
Instead `prefetch` prepares the next batch in one background thread while the model
trains on the current one (numpy and torch release the GIL for this work), which hides
it when a core is free; benchmarks/bench_training.py measures what remains against a
bare loop on in-memory tensors.

Randomness (the shuffle and the crop offsets) comes only from the `torch.Generator`
passed in, so a run is reproducible from its seed and resumable from the generator state.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import numpy as np
import torch
from numpy.lib.stride_tricks import sliding_window_view

from ecgcore.data.pipeline import TaskDataset
from ecgcore.errors import EcgcoreError

Item = TypeVar("Item")
Loaded = TypeVar("Loaded")


def crop_length(data: TaskDataset, crop_seconds: float | None) -> int:
    """Samples per training crop / evaluation window (the whole window when None)."""
    window = int(data.X.shape[2])
    if crop_seconds is None:
        return window
    length = round(crop_seconds * data.prep.fs)
    if not 1 <= length <= window:
        raise EcgcoreError(f"{data.name}: crop of {crop_seconds} s is {length} samples at "
                           f"{data.prep.fs:g} Hz, but the prepared window has {window}")
    return length


def window_starts(n_samples: int, length: int) -> np.ndarray:
    """Sliding-window offsets: every half window from 0, plus one window flush with the
    end when the stride does not land there, so every sample is covered."""
    stride = max(length // 2, 1)
    starts = list(range(0, n_samples - length + 1, stride))
    if starts[-1] != n_samples - length:
        starts.append(n_samples - length)
    return np.asarray(starts, dtype=np.int64)


def random_crops(x: np.ndarray, length: int, starts: np.ndarray) -> np.ndarray:
    """x (B, leads, T) -> (B, leads, length), row b cut at starts[b]; one vectorised gather."""
    if length == x.shape[2]:
        return x
    windows = sliding_window_view(x, length, axis=2)  # (B, leads, T - length + 1, length), a view
    return np.ascontiguousarray(windows[np.arange(x.shape[0]), :, starts])


def shuffled_batches(index: np.ndarray, batch_size: int, generator: torch.Generator,
                     rank: int = 0, world_size: int = 1) -> list[np.ndarray]:
    """The epoch's training rows in a fresh random order, cut into batches.

    Under torchrun every process draws the same order (same generator state) and takes
    every world_size-th row from `rank`; the order is padded by wrapping around so all
    processes run the same number of steps (DistributedDataParallel needs that).
    """
    order = index[torch.randperm(index.size, generator=generator).numpy()]
    if world_size > 1:
        total = -(-order.size // world_size) * world_size
        order = np.resize(order, total)[rank::world_size]
    batches = [order[i:i + batch_size] for i in range(0, order.size, batch_size)]
    if len(batches) > 1 and batches[-1].size == 1:  # batch norm cannot train on one record
        batches[-2:] = [np.concatenate(batches[-2:])]
    return batches


def valid_samples(data: TaskDataset, rows: np.ndarray) -> np.ndarray:
    """Samples of real signal in each row's window; the rest of a short record's window is
    zero padding (`lengths` from preprocessing; the whole window when unknown)."""
    window = int(data.X.shape[2])
    if data.lengths is None:
        return np.full(rows.size, window, dtype=np.int64)
    return np.clip(np.asarray(data.lengths)[rows], 0, window).astype(np.int64)


def training_batch(data: TaskDataset, rows: np.ndarray, length: int,
                   generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs (random crops) and float targets of these rows, as CPU tensors. A crop
    starts anywhere that keeps it inside the real signal (at 0 when the record is
    shorter than the crop), never in a zero-padded tail. The scaler runs on the crops
    only (it is per lead, so this equals cropping scaled rows, at a fraction of the work)."""
    x = data.raw_rows(rows)
    highest = np.maximum(valid_samples(data, rows) - length, 0)
    uniform = torch.rand(rows.size, generator=generator, dtype=torch.float64).numpy()
    starts = np.minimum((uniform * (highest + 1)).astype(np.int64), highest)
    x = data.scale(random_crops(x, length, starts))
    return torch.from_numpy(x), torch.from_numpy(data.y[rows].astype(np.float32))


def prefetch(items: Sequence[Item], load: Callable[[Item], Loaded]) -> Iterator[Loaded]:
    """`load(item)` for each item in order, the next one loading in a background thread
    while the caller works on the current one. Loads run one at a time and in order, so
    a seeded generator used by `load` draws exactly as without the thread."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="ecgcore-batch") as pool:
        pending = pool.submit(load, items[0]) if len(items) else None
        for item in items[1:]:
            ready = pending.result()
            pending = pool.submit(load, item)
            yield ready
        if pending is not None:
            yield pending.result()


def evaluation_batches(data: TaskDataset, index: np.ndarray, length: int, batch_size: int,
                       ) -> Iterator[tuple[np.ndarray, torch.Tensor, torch.Tensor]]:
    """(rows, windows, use) per batch of records: windows is (rows * n_windows, leads,
    length), the windows of each record consecutive; `use` (rows, n_windows) marks the
    windows to aggregate: those inside the real signal (a zero-padded short record keeps
    only its windows before the padding, and always its first)."""
    for i in range(0, index.size, batch_size):
        rows = index[i:i + batch_size]
        windows, use = record_windows(data.batch(rows), valid_samples(data, rows), length)
        yield rows, windows, use


def record_windows(x: np.ndarray, valid: np.ndarray, length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """x (B, leads, T) -> (windows (B * n_windows, leads, length), use (B, n_windows)):
    the sliding windows of each record, consecutive, and which of them lie inside its
    `valid` samples of real signal (always the first). Shared by evaluation and by
    `ecgcore.views.scoring`, so files are scored exactly as the run's test records were."""
    starts = window_starts(int(x.shape[2]), length)
    windows = sliding_window_view(x, length, axis=2)[:, :, starts]  # (B, leads, W, length)
    windows = np.ascontiguousarray(windows.transpose(0, 2, 1, 3)).reshape(-1, x.shape[1], length)
    use = starts[None, :] + length <= np.maximum(np.asarray(valid), length)[:, None]
    return torch.from_numpy(windows), torch.from_numpy(use)
