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
bare loop on in-memory tensors. Bound for CUDA, the thread also pins each batch, so its
copy to the GPU does not block; and when the training set fits in the GPU's memory it
lives there instead (`ecgcore.train.device_data`), its batches cut by torch on the device.

Randomness (the shuffle and the crop offsets) comes only from the `torch.Generator`
passed in, so a run is reproducible from its seed and resumable from the generator state.

A source too large for memory (or for the page cache) is streamed instead: `ShardStream`
reads contiguous blocks of rows (`ecgcore.data.prepare.shards`), a bounded number at a
time, shuffled by shard and within a buffer of shards; `streamed_batches` hands each batch
to the same objective `batch(data, rows, length, generator)` through `StreamedRows`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import torch
from numpy.lib.stride_tricks import sliding_window_view

from ecgcore.data.pipeline import TaskDataset
from ecgcore.data.prepare.shards import MemmapShards, ShardSource
from ecgcore.errors import EcgcoreError
from ecgcore.train.device import pinned_for
from ecgcore.train.objective import Batch

if TYPE_CHECKING:
    from ecgcore.train.epoch import Setup

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
    starts = crop_starts(valid_samples(data, rows), length, generator)
    x = data.scale(random_crops(x, length, starts))
    return torch.from_numpy(x), torch.from_numpy(data.y[rows].astype(np.float32))


def crop_starts(valid: np.ndarray, length: int, generator: torch.Generator) -> np.ndarray:
    """One random crop offset per row (one draw each from `generator`), uniform over the
    offsets that keep a crop of `length` inside the row's `valid` samples (0 when shorter).
    Shared by `training_batch` and the device-resident `ResidentTrainingSet.batch`, so both
    draw the same offsets from the same generator state."""
    highest = np.maximum(valid - length, 0)
    uniform = torch.rand(valid.size, generator=generator, dtype=torch.float64).numpy()
    return np.minimum((uniform * (highest + 1)).astype(np.int64), highest)


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
    return torch.from_numpy(windows), torch.from_numpy(windows_used(starts, valid, length))


def windows_used(starts: np.ndarray, valid: np.ndarray, length: int) -> np.ndarray:
    """(B, n_windows): which windows starting at `starts` lie inside each record's `valid`
    samples of real signal (always the first, even in a record shorter than a window)."""
    return starts[None, :] + length <= np.maximum(np.asarray(valid), length)[:, None]


# ---------------------------------------------------------------------------------------------
# streaming: batches from a source read shard by shard (memory bounded whatever its size)


@dataclass(frozen=True)
class ShardStream:
    """Training batches from a `ShardSource` read in shards of `shard_size` consecutive rows,
    at most `buffer_shards` of them held at a time, for a source too large for memory.

    Per epoch, from one seed drawn from the fit's generator (`draw_epoch_seed`): the shard
    order is a random permutation; under torchrun process `rank` takes every world_size-th
    shard of it (disjoint shards, so the same code runs in one process, across GPUs or in
    a Ray job's processes); its shards are read `buffer_shards` at a time (a "window") and
    the rows of a window are shuffled together. Batches are cut from that row sequence; a
    batch that straddles two windows copies its first rows out before the older window is
    released, so besides the window only fewer than `batch_size` rows are held. Each
    window's shuffle comes from a generator seeded by (epoch seed, window), so `batches(...,
    start=k)` continues an epoch at batch k without reading the windows before it: a
    resumed stream equals the uninterrupted one.

    `index`: the rows to train on (sorted, unique; e.g. the training split); None = every
    row, with no per-row array at all (memory flat in the row count). Under torchrun every
    process runs the same number of steps (DistributedDataParallel needs that): each
    takes the first `epoch_rows(world_size)` rows of its sequence, the rows the
    `n_shards // world_size` smallest shards hold, so up to about a shard of rows per
    process sits out an epoch (other ones each epoch, the order being shuffled).
    """

    source: ShardSource
    shard_size: int = 512
    buffer_shards: int = 8
    batch_size: int = 64
    index: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.shard_size < 1 or self.buffer_shards < 1 or self.batch_size < 1:
            raise EcgcoreError(f"shard_size, buffer_shards and batch_size must be >= 1, got {self.shard_size}, "
                               f"{self.buffer_shards}, {self.batch_size}")
        if self.index is not None:
            index = np.asarray(self.index, dtype=np.int64)
            if index.size and (np.any(np.diff(index) <= 0) or index[0] < 0 or index[-1] >= self.source.shape[0]):
                raise EcgcoreError("a shard stream's rows must be sorted, unique and inside the source")
            object.__setattr__(self, "index", index)

    @property
    def n_shards(self) -> int:
        return -(-self.source.shape[0] // self.shard_size)

    def shard_counts(self) -> np.ndarray:
        """Rows used of each shard (every row of it when `index` is None)."""
        bounds = np.minimum(np.arange(self.n_shards + 1, dtype=np.int64) * self.shard_size, self.source.shape[0])
        if self.index is None:
            return np.diff(bounds)
        return np.diff(np.searchsorted(self.index, bounds))

    def epoch_rows(self, world_size: int = 1) -> int:
        """Rows each process trains on per epoch (all of them in a single process)."""
        counts = self.shard_counts()
        if world_size == 1:
            return int(counts.sum())
        if self.n_shards < world_size:
            raise EcgcoreError(f"{self.n_shards} shards cannot feed {world_size} processes: use smaller shards")
        return int(np.sort(counts)[: self.n_shards // world_size].sum())

    def batch_sizes(self, world_size: int = 1) -> list[int]:
        """The epoch's batch sizes; a last batch of one joins the one before (batch norm)."""
        rows = self.epoch_rows(world_size)
        sizes = [self.batch_size] * (rows // self.batch_size) + ([rows % self.batch_size] if rows % self.batch_size else [])
        if len(sizes) > 1 and sizes[-1] == 1:
            sizes[-2:] = [sizes[-2] + 1]
        return sizes

    def rank_shards(self, epoch_seed: int, rank: int = 0, world_size: int = 1) -> np.ndarray:
        """The shards process `rank` reads this epoch, in order."""
        order = torch.randperm(self.n_shards, generator=torch.Generator().manual_seed(epoch_seed)).numpy()
        return order[rank::world_size]

    def batches(self, epoch_seed: int, rank: int = 0, world_size: int = 1,
                start: int = 0) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(rows, raw signals (batch, leads, samples) in memory) of each batch of the epoch
        from batch `start` on."""
        mine = self.rank_shards(epoch_seed, rank, world_size)
        windows = [mine[i:i + self.buffer_shards] for i in range(0, mine.size, self.buffer_shards)]
        counts = self.shard_counts()
        window_starts = np.concatenate([[0], np.cumsum([counts[w].sum() for w in windows])]).astype(np.int64)
        bounds = np.concatenate([[0], np.cumsum(self.batch_sizes(world_size))]).astype(np.int64)
        held: _Window | None = None
        for b in range(start, bounds.size - 1):
            lo, hi = int(bounds[b]), int(bounds[b + 1])
            rows, parts = [], []
            while lo < hi:
                w = int(np.searchsorted(window_starts, lo, side="right")) - 1
                if held is None or held.number != w:
                    held = None  # release the older window before reading the next
                    held = self._window(windows[w], w, epoch_seed, rank, world_size)
                take = min(hi, int(window_starts[w + 1])) - lo
                part_rows, part_x = held.gather(lo - int(window_starts[w]), take)
                rows.append(part_rows)
                parts.append(part_x)
                lo += take
            yield np.concatenate(rows), (parts[0] if len(parts) == 1 else np.concatenate(parts))

    def _window(self, shards: np.ndarray, number: int, epoch_seed: int, rank: int, world_size: int) -> _Window:
        n = self.source.shape[0]
        blocks, owners, local, rows = [], [], [], []
        for j, shard in enumerate(int(k) for k in shards):
            first, last = shard * self.shard_size, min((shard + 1) * self.shard_size, n)
            used = (np.arange(first, last, dtype=np.int64) if self.index is None
                    else self.index[np.searchsorted(self.index, first):np.searchsorted(self.index, last)])
            blocks.append(self.source.read(first, last))
            owners.append(np.full(used.size, j, dtype=np.int64))
            local.append(used - first)
            rows.append(used)
        seed = (epoch_seed * 1_000_003 + number * world_size + rank + 1) % 2**63
        perm = torch.randperm(sum(r.size for r in rows), generator=torch.Generator().manual_seed(seed)).numpy()
        return _Window(number, blocks, np.concatenate(owners)[perm], np.concatenate(local)[perm],
                       np.concatenate(rows)[perm])


@dataclass(frozen=True)
class _Window:
    """The shards of one window held in memory and their rows in shuffled order."""

    number: int
    blocks: list[np.ndarray]
    owner: np.ndarray  # which block each shuffled row is in
    local: np.ndarray  # its row within that block
    rows: np.ndarray  # its row in the source

    def gather(self, offset: int, count: int) -> tuple[np.ndarray, np.ndarray]:
        owner, local = self.owner[offset:offset + count], self.local[offset:offset + count]
        out = np.empty((count, *self.blocks[0].shape[1:]), dtype=np.float32)
        for j in np.unique(owner):
            here = owner == j
            out[here] = self.blocks[int(j)][local[here]]
        return self.rows[offset:offset + count], out


def draw_epoch_seed(generator: torch.Generator) -> int:
    """One draw from the fit's generator that fixes a streamed epoch's order."""
    return int(torch.randint(0, 2**62, (1,), generator=generator).item())


@dataclass(frozen=True)
class UnlabelledRecords:
    """What a streamed batch reads of a source that is no TaskDataset (a generated one, as in
    benchmarks/ssl_streaming_memory.py): its sampling rate; no labels (zero columns, no
    memory), full-length records, no scaler, no patients."""

    n_rows: int
    fs: float

    @property
    def prep(self) -> UnlabelledRecords:
        return self  # `prep.fs`

    @property
    def lengths(self) -> None:
        return None

    @property
    def y(self) -> np.ndarray:
        return np.zeros((self.n_rows, 0), dtype=np.uint8)

    @property
    def patients(self) -> np.ndarray:
        raise EcgcoreError("a generated source has no patients (clocs: positives = 'recording')")

    def scale(self, x: np.ndarray) -> np.ndarray:
        return x


@dataclass(frozen=True)
class StreamedRows:
    """One streamed batch seen as the dataset an objective's `batch` reads (`training_batch`
    and the SSL methods read `raw_rows`, `scale`, `lengths`, `X.shape[2]`, `prep.fs`, `y`,
    `patients`): the batch's signals, already in memory, and the rest from `base` (the
    TaskDataset, or `UnlabelledRecords`). Asking for a row outside the batch is an error,
    never a read of the source."""

    rows: np.ndarray
    X: np.ndarray  # (len(rows), leads, samples), raw
    base: TaskDataset | UnlabelledRecords

    @property
    def prep(self) -> Any:
        return self.base.prep

    @property
    def lengths(self) -> np.ndarray | None:
        return self.base.lengths

    @property
    def y(self) -> np.ndarray:
        return self.base.y

    @property
    def patients(self) -> np.ndarray:
        return self.base.patients

    def scale(self, x: np.ndarray) -> np.ndarray:
        return self.base.scale(x)

    def raw_rows(self, index: np.ndarray) -> np.ndarray:
        order = np.argsort(self.rows, kind="stable")
        index = np.asarray(index, dtype=np.int64)
        at = np.minimum(np.searchsorted(self.rows, index, sorter=order), self.rows.size - 1)
        positions = order[at]
        if not np.array_equal(self.rows[positions], index):
            raise EcgcoreError("a streamed batch was asked for rows it does not hold")
        return self.X[positions]


def streamed_batches(stream: ShardStream, base: TaskDataset | UnlabelledRecords, make: Callable[[Any], Loaded],
                     epoch_seed: int, rank: int = 0, world_size: int = 1, start: int = 0) -> Iterator[Loaded]:
    """`make(StreamedRows)` of each batch of the epoch (an objective's `batch` with the
    length and generator bound), the shards read and the next batch made in a background
    thread while the caller trains on the current one (`prefetch`: in order, one at a time)."""
    source = stream.batches(epoch_seed, rank, world_size, start)
    steps = range(start, len(stream.batch_sizes(world_size)))
    return prefetch(steps, lambda _step: make(StreamedRows(*next(source), base)))


@dataclass(frozen=True)
class StreamSettings:
    """How `fit` streams a TaskDataset's training rows: shards of `shard_size` rows of the
    prepared memmap, `buffer_shards` held at a time (512 x 8 rows of 12 x 1,000 float32
    samples hold 200 MB)."""

    shard_size: int = 512
    buffer_shards: int = 8

    def stream(self, X: np.ndarray, train_rows: np.ndarray, batch_size: int) -> ShardStream:
        return ShardStream(MemmapShards(X), self.shard_size, self.buffer_shards, batch_size,
                           index=np.unique(train_rows))


def epoch_batches(setup: Setup) -> tuple[list[int], Iterator[Batch]]:
    """The size of each of an epoch's batches and an iterator over the objective's batches:
    the training rows shuffled whole (`shuffled_batches`) or, when the fit streams,
    `setup.stream`'s batches (its epoch seed the first draw from the fit's generator).

    With the training set on the device (`setup.resident`, only ever set for the default
    objective, whose batch is `training_batch`) a batch is a few device ops, made in order
    as the loop asks for it; host batches are made (and, bound for CUDA,
    pinned) in the prefetch thread while the model trains on the one before."""
    objective, ctx, device = setup.objective, setup.ctx, setup.device
    if setup.stream is None:
        rows_of = shuffled_batches(setup.train_index, setup.config.batch_size, setup.generator, ctx.rank,
                                   ctx.world_size)
        sizes = [rows.size for rows in rows_of]
        resident = setup.resident
        if resident is not None:
            return sizes, (resident.batch(rows, setup.length, setup.generator) for rows in rows_of)
        load = lambda rows: pinned_for(device, objective.batch(setup.data, rows, setup.length, setup.generator))
        return sizes, prefetch(rows_of, load)
    make = lambda view: pinned_for(device, objective.batch(view, view.rows, setup.length, setup.generator))
    return (setup.stream.batch_sizes(ctx.world_size),
            streamed_batches(setup.stream, setup.data, make, draw_epoch_seed(setup.generator), ctx.rank,
                             ctx.world_size))
