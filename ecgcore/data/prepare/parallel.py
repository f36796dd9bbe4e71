"""Running the per-record pipeline over a recordset, in chunks, in parallel.

A chunk is a copy of the recordset holding only its records (pickles small), a
config and where its rows go in X. Each chunk buffers its rows and writes them
with one positioned write into the `.npy` file; only a small status dict per
record travels back. Results land in table order whatever order chunks finish in.

Scheduling (joblib, loky backend):
- n_jobs=1: everything in this process.
- n_jobs=k >= 2: k loky workers take the chunks; this process only collects.
- n_jobs=-1 (auto, joblib's -2, -3 … also accepted): this process starts working at
  once and times its first chunk; only if the rest would take longer than a worker
  needs to start (a fresh Python importing numpy, pandas and ecgcore: ~0.7-1 s on
  the 2-core reference machine) and cores are idle (load average) does it start up to
  cores-1 loky workers (joblib's reusable executor), and it keeps taking chunks from the same queue itself while they start
  and run. For 5,000 PTB-XL records at 100 Hz the whole job is ~2 s of work, so a
  pool started up front would eat most of the gain.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
from joblib.executor import get_memmapping_executor

from ecgcore.data.prepare.config import PrepConfig
from ecgcore.data.prepare.per_record import RecordInfo, preprocess_signal
from ecgcore.data.recordset import Recordset
from ecgcore.errors import RecordError

Progress = Callable[[int, int], None]
MIN_CHUNK, MAX_CHUNK, CHUNKS_PER_PROCESS = 16, 512, 16
MAX_CHUNK_BYTES = 64 << 20  # a chunk's rows are buffered in RAM before one write
WORKER_START_SECONDS = 1.0


@dataclass(frozen=True)
class RowTarget:
    """Where chunk rows go: the .npy file, the byte offset of its data, one row's shape."""

    path: Path
    offset: int
    row_shape: tuple[int, int]

    @property
    def row_bytes(self) -> int:
        return self.row_shape[0] * self.row_shape[1] * 4

    def write(self, start: int, rows: np.ndarray) -> None:
        """One positioned write per chunk (cheaper than faulting in memmap pages row by
        row). No fsync: the page cache is shared by every process, and the entry only
        counts as complete once meta.json is renamed into place after all chunks."""
        view = memoryview(np.ascontiguousarray(rows, dtype=np.float32)).cast("B")
        position = self.offset + start * self.row_bytes
        with open(self.path, "r+b") as handle:
            while len(view):
                written = os.pwrite(handle.fileno(), view, position)
                view, position = view[written:], position + written


# Kept by hand, not one joblib.Parallel call: a pool started up front costs most of a ~2 s build (measured).
def run_chunks(recordset: Recordset, config: PrepConfig, target: RowTarget, n_jobs: int,
               progress: Progress | None) -> list[dict[str, Any]]:
    """One status dict per record of `recordset`, in table order (see the module doc)."""
    total = len(recordset)
    processes = max_processes(n_jobs)
    chunk = min(MAX_CHUNK, max(MIN_CHUNK, math.ceil(total / (processes * CHUNKS_PER_PROCESS))))
    chunk = max(1, min(chunk, MAX_CHUNK_BYTES // target.row_bytes))
    queue = deque(range(0, total, chunk))
    infos: list[dict[str, Any]] = [{} for _ in range(total)]
    done = 0

    def collect(result: tuple[int, list[dict[str, Any]]]) -> None:
        nonlocal done
        start, chunk_infos = result
        infos[start:start + len(chunk_infos)] = chunk_infos
        done += len(chunk_infos)
        if progress is not None:
            progress(done, total)

    def task(start: int) -> tuple[Recordset, PrepConfig, RowTarget, int]:
        part = dataclasses.replace(recordset, table=recordset.table.iloc[start:start + chunk],
                                   unreadable=[])
        return part, config, target, start

    if progress is not None:
        progress(0, total)
    auto = n_jobs <= 0
    # auto: this process is one of the `processes` and runs the first chunk itself
    workers = min(processes - 1, len(queue) - 1) if auto else min(processes, len(queue))
    if auto and workers >= 1:
        began = time.perf_counter()
        collect(process_chunk(*task(queue.popleft())))
        remaining = (time.perf_counter() - began) / min(chunk, total) * (total - done)
        workers = min(workers, idle_cores())
        if remaining >= WORKER_START_SECONDS and workers >= 1:
            _share_with_workers(queue, task, collect, workers)
    elif workers >= 2:
        parallel = joblib.Parallel(n_jobs=workers, backend="loky", return_as="generator_unordered")
        for result in parallel(joblib.delayed(process_chunk)(*task(s)) for s in queue):
            collect(result)
        queue.clear()
    while queue:
        collect(process_chunk(*task(queue.popleft())))
    return infos


def _share_with_workers(queue: deque[int], task: Callable[[int], tuple[Any, ...]],
                        collect: Callable[[tuple[int, list[dict[str, Any]]]], None],
                        workers: int) -> None:
    """Auto mode: keep `workers` loky processes (joblib's own reusable executor -- the one
    `joblib.Parallel` uses, so the two share one warm pool instead of clobbering it) fed with up to two chunks each, while this process
    takes chunks from the same queue itself; returns when every chunk is done. (A joblib
    `Parallel` with one worker would run in this thread, hence the executor.)"""
    executor = get_memmapping_executor(workers)
    pending: set[Future[Any]] = set()

    def top_up() -> None:
        while len(pending) < 2 * workers and queue:
            pending.add(executor.submit(process_chunk, *task(queue.popleft())))

    def harvest(block: bool) -> None:
        finished = wait(pending, return_when=FIRST_COMPLETED).done if block else \
            {f for f in pending if f.done()}
        for future in finished:
            pending.discard(future)
            collect(future.result())

    try:
        top_up()
        while queue:
            collect(process_chunk(*task(queue.popleft())))
            harvest(block=False)
            top_up()
        while pending:
            harvest(block=True)
    finally:
        for future in pending:
            future.cancel()


def idle_cores() -> int:
    """Cores not busy besides this process (cores minus the 1-minute load average, which
    counts this process). A worker started on a saturated machine only takes CPU from
    this process: measured on the shared 2-core machine at load 3, 5,000 records took
    3.5-3.9 s with a worker and 2.4 s without."""
    cores = joblib.cpu_count()
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):  # no load average on this platform
        return cores - 1
    return max(0, int(cores - load + 0.5))


def max_processes(n_jobs: int) -> int:
    """joblib's convention: -1 all cores, -2 all but one, …; 0 is treated as -1."""
    if n_jobs >= 1:
        return n_jobs
    cores = joblib.cpu_count()
    return max(1, cores + 1 + (n_jobs if n_jobs < 0 else -1))


def process_chunk(part: Recordset, config: PrepConfig, target: RowTarget,
                  start: int) -> tuple[int, list[dict[str, Any]]]:
    """Read + preprocess the records of one chunk; rows `start + k` of X.

    Each record is read as `Recordset.read` reads it, from its reader's row, NaN/inf kept
    (preprocessing interpolates them). A record that fails is dropped with the reason."""
    rows = np.zeros((len(part), *target.row_shape), dtype=np.float32)
    infos: list[dict[str, Any]] = []
    for k, rid in enumerate(part.record_ids):
        try:
            signal = part.read(rid, allow_nonfinite=True)
            window, info = preprocess_signal(signal, config, target.row_shape[1], rid)
        except RecordError as exc:
            infos.append({"status": "dropped", "reason": exc.reason})
            continue
        except Exception as exc:  # one broken record must not sink the dataset
            infos.append({"status": "dropped", "reason": f"{type(exc).__name__}: {exc}"})
            continue
        rows[k] = window
        infos.append(ok_info(info))
    target.write(start, rows)
    return start, infos


def ok_info(info: RecordInfo) -> dict[str, Any]:
    """A kept record's status row (by hand: dataclasses.asdict costs ~40 us per record)."""
    return {
        "status": "ok", "reason": "", "fs_in": info.fs_in, "n_samples_in": info.n_samples_in,
        "n_valid": info.n_valid, "padded": info.padded, "truncated": info.truncated,
        "nan_interpolated": info.nan_interpolated, "nan_leads": info.nan_leads,
        "missing_leads": info.missing_leads, "lead_mask": info.lead_mask,
    }
