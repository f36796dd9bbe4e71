"""How long a grid will take, from throughput measured on this machine.

One epoch costs about `seconds_per_sample * (n_train + EVAL_WEIGHT * n_val)`: every
training record is one forward + backward step on a crop, every validation record a
forward pass over its sliding windows. `seconds_per_sample` comes, in order of trust,
from
1. the finished runs of the same architecture on the same device in the run store
   (their `train_seconds / (epochs_run * (n_train + EVAL_WEIGHT * n_val))`, scaled to
   the input length when theirs differed), or
2. a short measured forward/backward + Adam step of the model on random inputs in this
   process (a few batches of 8), when the store has no such run.
The estimate says which (`Throughput.basis`). Each job also pays a fixed cost (a new
process importing torch, data preparation from the cache, test evaluation, saving):
the median over finished jobs in the queue, or `JOB_OVERHEAD_SECONDS` without any.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ecgcore.errors import EcgcoreError
from ecgcore.runs import RunStore

# Validation record cost in training-sample units (sliding windows, forward only, larger
# batches); fitted on experiments/quickstart.toml's scratch runs on this 2-core CPU
# (epoch seconds against n_train at four fractions with the same 150 validation records).
EVAL_WEIGHT = 0.6
# A job's cost besides its epochs when no finished job says otherwise: process start and
# imports (~3 s), cached data, test evaluation, saving (measured with the smoke grid here).
JOB_OVERHEAD_SECONDS = 6.0
STORE_RUNS_USED = 20


@dataclass(frozen=True)
class Throughput:
    """Seconds per training sample (one crop forward + backward + step) for one
    architecture and input length, and where the number comes from."""

    arch: str
    seconds_per_sample: float
    basis: str
    n_runs: int = 0


def input_samples_of(config: Mapping[str, Any]) -> int:
    """Samples in one training input of a run config (the crop, else the whole window)."""
    prep, train = config.get("prep") or {}, config.get("train") or {}
    seconds = train.get("crop_seconds") or prep.get("seconds", 10.0)
    return round(float(seconds) * float(prep.get("fs", 100.0)))


def sample_epochs(n_train: float, n_val: float) -> float:
    return float(n_train) + EVAL_WEIGHT * float(n_val)


def store_throughput(store: RunStore, arch: str, device_type: str, input_samples: int,
                     limit: int = STORE_RUNS_USED) -> Throughput | None:
    """Median seconds per sample over the newest finished runs of `arch` that trained on
    `device_type` ("cpu", "cuda", "mps"); None when there is none."""
    runs = store.list(arch=arch, status="done")
    rates: list[float] = []
    for run_id in runs["run_id"]:
        if len(rates) >= limit:
            break
        try:
            folder = store.get(run_id)
            results, config = folder.results() or {}, folder.config
        except EcgcoreError:
            continue
        seconds, epochs = results.get("train_seconds") or 0.0, results.get("epochs_run") or 0
        work = sample_epochs(results.get("n_train") or 0, results.get("n_val") or 0) * epochs
        if seconds <= 0 or work <= 0 or str(results.get("device", "")).split(":")[0] != device_type:
            continue
        rates.append(seconds / work * input_samples / max(1, input_samples_of(config)))
    if not rates:
        return None
    return Throughput(arch, statistics.median(rates),
                      f"median of {len(rates)} finished {arch} run(s) on {device_type}", len(rates))


def measure_throughput(arch: str, input_samples: int, n_classes: int = 10, device_type: str = "cpu",
                       batch: int = 32, steps: int = 2) -> Throughput:
    """Time `steps` Adam steps of a fresh model on random (batch, 12, input_samples) inputs,
    after one warm-up step. One torch thread: several threads spin against each other on a
    busy machine (20x slower in a probe this short), and one thread never disturbs the app."""
    import torch

    device = torch.device(device_type)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        per_sample = _time_steps(arch, input_samples, n_classes, device, batch, steps)
    finally:
        torch.set_num_threads(threads)
    return Throughput(arch, per_sample, f"measured now: {steps} forward/backward steps of {arch} "
                      f"(batch {batch}, one thread) on {device_type}; no finished run to learn from")


def _time_steps(arch: str, input_samples: int, n_classes: int, device: Any, batch: int, steps: int) -> float:
    import torch

    from ecgcore.models import create_model

    model = create_model(arch, n_leads=12, n_classes=max(1, n_classes), n_samples=input_samples).to(device)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.randn(batch, 12, input_samples, device=device)
    y = (torch.rand(batch, max(1, n_classes), device=device) > 0.5).float()
    loss_fn = torch.nn.BCEWithLogitsLoss()

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        optimizer.step()

    step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - started) / (steps * batch)


def job_overhead(jobs: Iterable[Mapping[str, Any]], train_seconds: Mapping[str, float]) -> tuple[float, str]:
    """Median (wall time - training time) over finished jobs that trained, or the default.
    `train_seconds`: run id -> its train_seconds (from the run store's index)."""
    costs = [float(job["finished"]) - float(job["started"]) - train_seconds[job["run_id"]]
             for job in jobs
             if job.get("state") == "done" and job.get("started") and job.get("finished")
             and job.get("run_id") in train_seconds]
    costs = [c for c in costs if c >= 0]
    if not costs:
        return JOB_OVERHEAD_SECONDS, f"{JOB_OVERHEAD_SECONDS:g} s per job (default, no finished job yet)"
    value = statistics.median(costs)
    return value, f"{value:.0f} s per job (median of {len(costs)} finished job(s))"


def run_seconds(throughput: Throughput, n_train: float, n_val: float, epochs: int, overhead: float,
                trains: bool = True) -> float:
    """One run's wall time with every epoch run (early stopping can end it sooner)."""
    if not trains:
        return overhead
    return overhead + throughput.seconds_per_sample * sample_epochs(n_train, n_val) * epochs


def format_seconds(seconds: float) -> str:
    """'45 s', '3 min 20 s', '2 h 05 min'."""
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"
