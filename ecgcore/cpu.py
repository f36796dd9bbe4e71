"""How many torch threads a CPU run uses: the cores other programs leave free, not the
cores present.

PyTorch's CPU kernels split each operation over `torch.get_num_threads()` OpenMP threads
and wait for the slowest. When another program keeps one of two cores busy, the thread
that shares its core runs at half speed and the other spins waiting for it: a 2-thread
small_cnn step measured 2-4x slower than with one thread (benchmarks/bench_contention.py).
So a run measures how busy the machine is and takes

    threads = max(1, min(cap, floor(cores - others_busy + CORE_SLACK)))

where `cores` are the CPUs this process may run on, `others_busy` the cores other
programs kept busy (a core counts as free while at most `CORE_SLACK` of it is busy) and
`cap` the job's share of the machine: the worker's ECGCORE_TORCH_THREADS (cores // slots)
for a queued job, every core for `python -m ecgcore run`. It chooses at the start of a run
(over the time the run spent preparing its data, at least `START_SECONDS`) and writes the
choice to the run's log. The thread count changes the last bits of float sums, which
training amplifies (two Adam runs of small_cnn differ by ~0.03 in their logits after 20
steps at 1 vs 2 threads), so a run asking for deterministic training (`train.deterministic`,
the default: bit-equal resumes) keeps that count to its end and a resumed attempt reuses
it (`checkpoints/threads.json`); a run with `deterministic = false` chooses again after
every epoch (over that epoch, or the last few when they were shorter than `EPOCH_SECONDS`).

`others_busy` comes from /proc/stat: the busy time of this process's CPUs minus this
process's own CPU time (all its threads), over wall time. Written by hand: psutil is not
a dependency and would add nothing but the parsing of the same file. Without /proc/stat
(macOS, Windows) the 1-minute load average stands in for it.
"""

from __future__ import annotations

import json
import math
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: Environment variable a worker sets for each CPU job: its share of the cores (the cap).
THREADS_ENV = "ECGCORE_TORCH_THREADS"
#: Set to "0" to keep the thread count fixed (the worker's share, else torch's default of
#: every core), as before this module: benchmarks/bench_contention.py compares the two.
ADAPT_ENV = "ECGCORE_ADAPT_THREADS"
#: A core counts as free while other programs keep at most this much of it busy.
CORE_SLACK = 0.25
#: The shortest interval the first choice of a run is measured over (it waits the rest):
#: ~10 ticks per CPU, so a quiet machine reads below CORE_SLACK and a busy core near 1.
START_SECONDS = 0.1
#: The shortest interval a later choice is measured over: epochs shorter than this are
#: pooled with the next ones (a 10 ms tick per core makes shorter readings noisy).
EPOCH_SECONDS = 1.0


def cpu_cores() -> int:
    """The CPUs this process may run on (its affinity), else the machine's count."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def choose_threads(cap: int, cores: int, others_busy: float) -> int:
    """Threads for a run allowed `cap` threads on `cores` CPUs while other programs keep
    `others_busy` cores busy."""
    free = math.floor(cores - max(0.0, others_busy) + CORE_SLACK)
    return max(1, min(int(cap), free))


def thread_cap(cores: int | None = None) -> int:
    """A run's most threads: the share its worker gave it, else every core."""
    cores = cpu_cores() if cores is None else cores
    value = os.environ.get(THREADS_ENV, "").strip()
    return max(1, int(value)) if value.isdigit() else max(1, cores)


@dataclass(frozen=True)
class CpuReading:
    """Cumulative counters at one moment: wall seconds, busy core-seconds of the CPUs we
    may use, and this process's own CPU seconds."""

    wall: float
    busy: float
    own: float

    def others_since(self, earlier: "CpuReading") -> float:
        """Cores other programs kept busy, on average, since `earlier`."""
        span = self.wall - earlier.wall
        if span <= 0:
            return 0.0
        return max(0.0, ((self.busy - earlier.busy) - (self.own - earlier.own)) / span)


def _read_proc_stat() -> str:
    with open("/proc/stat") as handle:
        return handle.read()


class ProcStatReader:
    """CpuReadings from /proc/stat (per-CPU lines of `cpus`: user + nice + system + irq +
    softirq + steal jiffies) and `time.process_time()`; every source can be injected."""

    def __init__(self, cpus: set[int] | None = None, hz: int | None = None,
                 read_stat: Callable[[], str] = _read_proc_stat,
                 own_seconds: Callable[[], float] = time.process_time,
                 wall: Callable[[], float] = time.monotonic) -> None:
        if cpus is None:
            try:
                cpus = set(os.sched_getaffinity(0))
            except AttributeError:
                cpus = set(range(os.cpu_count() or 1))
        self.cpus = {f"cpu{i}" for i in cpus}
        self.hz = hz or os.sysconf("SC_CLK_TCK")
        self.read_stat, self.own_seconds, self.wall = read_stat, own_seconds, wall

    def read(self) -> CpuReading:
        jiffies = 0
        for line in self.read_stat().splitlines():
            name, _, rest = line.partition(" ")
            if name in self.cpus:
                fields = [int(v) for v in rest.split()]
                # user nice system idle iowait irq softirq steal (guest is inside user)
                jiffies += sum(fields[:3]) + sum(fields[5:8])
        return CpuReading(wall=self.wall(), busy=jiffies / self.hz, own=self.own_seconds())


class LoadAvgReader:
    """Where /proc/stat is missing: the 1-minute load average, less this process's own
    recent CPU use, as a reading whose `busy` grows at that rate."""

    def __init__(self) -> None:
        self._last: CpuReading | None = None

    def read(self) -> CpuReading:
        now, own = time.monotonic(), time.process_time()
        if self._last is None:
            self._last = CpuReading(now, 0.0, own)
            return self._last
        span = max(now - self._last.wall, 1e-9)
        own_rate = (own - self._last.own) / span
        others = max(0.0, os.getloadavg()[0] - own_rate)
        self._last = CpuReading(now, self._last.busy + (others + own_rate) * span, own)
        return self._last


def default_reader() -> Any:
    return ProcStatReader() if os.path.exists("/proc/stat") else LoadAvgReader()


class ThreadGovernor:
    """Trainer callback for CPU runs: chooses the torch thread count from the free cores at
    `start()` (over the time since it was made) and, with `every_epoch`, after every epoch
    (over the epoch). With `record` (a JSON file) the first choice is written there, and a
    later `start()` that finds it (a resumed run) keeps that count instead of choosing."""

    def __init__(self, cap: int | None = None, cores: int | None = None, reader: Any = None,
                 min_seconds: float = START_SECONDS,
                 every_epoch: bool = True, record: Path | None = None) -> None:
        self.cores = cpu_cores() if cores is None else cores
        self.cap = thread_cap(self.cores) if cap is None else max(1, cap)
        self.reader = reader or default_reader()
        self.min_seconds = min_seconds
        self.every_epoch, self.record = every_epoch, record
        self.threads: int | None = None
        self.first: int | None = None
        self.chosen: list[int] = []
        self.others: list[float] = []
        self._last = self.reader.read()

    def _measure(self, reading: CpuReading | None = None) -> float:
        reading = reading or self.reader.read()
        others = reading.others_since(self._last)
        self._last = reading
        self.others.append(others)
        return others

    def _busy(self, others: float) -> str:
        return f"other programs kept {others:.1f} of {self.cores} cores busy"

    def start(self) -> int:
        """The first choice (before training); returns the thread count set."""
        import torch

        kept = self._recorded()
        if kept is not None:
            self.threads = self.first = kept
            self.chosen.append(kept)
            torch.set_num_threads(kept)
            log.debug(f"torch threads: {kept} (kept from the run's first attempt, so the resumed run "
                     "computes as an uninterrupted one would)")
            return kept
        reading = self.reader.read()
        if reading.wall - self._last.wall < self.min_seconds:
            time.sleep(self.min_seconds - (reading.wall - self._last.wall))
            reading = self.reader.read()
        others = self._measure(reading)
        self.threads = self.first = choose_threads(self.cap, self.cores, others)
        self.chosen.append(self.threads)
        torch.set_num_threads(self.threads)
        log.debug(f"torch threads: {self.threads} (cap {self.cap} of {self.cores} cores; {self._busy(others)}"
                 + ("" if self.every_epoch else "; kept for the whole run: it asks for deterministic training")
                 + ")")
        if self.record is not None:
            self.record.parent.mkdir(parents=True, exist_ok=True)
            self.record.write_text(json.dumps({"threads": self.threads}))
        return self.threads

    def _recorded(self) -> int | None:
        if self.record is None or not self.record.is_file():
            return None
        try:
            return max(1, int(json.loads(self.record.read_text())["threads"]))
        except (ValueError, KeyError, TypeError):
            return None

    def on_epoch_end(self, row: dict[str, Any]) -> None:
        import torch

        if self.threads is None:
            self.start()
            return
        if not self.every_epoch:
            return
        reading = self.reader.read()
        if reading.wall - self._last.wall < EPOCH_SECONDS:
            return  # measured over this epoch and the next ones together
        others = self._measure(reading)
        threads = choose_threads(self.cap, self.cores, others)
        self.chosen.append(threads)
        if threads != self.threads:
            log.debug(f"torch threads: {self.threads} -> {threads} after epoch {row.get('epoch')} "
                     f"({self._busy(others)})")
            self.threads = threads
            torch.set_num_threads(threads)

    def on_step(self, epoch: int, step: int, n_steps: int) -> None:
        return None

    def should_stop(self) -> bool:
        return False

    def summary(self) -> dict[str, Any]:
        """For results.json: the cores, the cap, the first choice, the range of choices, how
        often it changed and the most cores other programs were seen to keep busy."""
        changes = sum(1 for a, b in zip(self.chosen, self.chosen[1:]) if a != b)
        return {"cores": self.cores, "cap": self.cap, "start": self.first,
                "min": min(self.chosen, default=None), "max": max(self.chosen, default=None),
                "changes": changes, "others_busy_max": round(max(self.others, default=0.0), 2)}


def governor_for(train: Mapping[str, Any], record: Path | None = None) -> ThreadGovernor | None:
    """The ThreadGovernor of a run with this `train` config section: None on a GPU (torch's
    own thread count only feeds the GPU) and when ECGCORE_ADAPT_THREADS=0. A run asking for
    deterministic training (the default: bit-equal resumes) keeps its first choice for the
    whole run, recorded in `record` for a resumed attempt; others choose again after every
    epoch. Make it when the run starts: its first choice is measured until `start()`."""
    from ecgcore.errors import EcgcoreError
    from ecgcore.train.device import select_device

    if os.environ.get(ADAPT_ENV, "").strip() == "0":
        return None
    try:
        on_cpu = select_device(str(train.get("device", "auto"))).type == "cpu"
    except EcgcoreError:
        return None  # the trainer says why the device is unusable
    if not on_cpu:
        return None
    return ThreadGovernor(every_epoch=not train.get("deterministic", True), record=record)
