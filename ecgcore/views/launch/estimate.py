"""How long a grid will take: a range measured from finished runs on this machine.

One epoch costs about `seconds_per_sample * (n_train + EVAL_WEIGHT * n_val)`: every
training record is one forward + backward step on a crop, every validation record a
forward pass over its sliding windows. `seconds_per_sample` comes, in order of trust,
from
1. the finished runs of the same architecture, input size (samples per training input),
   lead count and device in the run store: each run's `train_seconds / (epochs_run *
   (n_train + EVAL_WEIGHT * n_val))`. Their spread is the range: min–max of the rates,
   p10–p90 once there are `QUANTILES_FROM` runs or more. Runs of another input size are
   not scaled to fit (a per-epoch fixed cost and the validation windows do not scale with
   the crop), and a run trained while the machine was swamped widens the range instead of
   moving a single number;
2. without such a run, a rough prior: a short forward/backward + Adam step of the model on
   random inputs in this process, times `PRIOR_FACTORS` (how real runs compared with this
   probe, see the constant), labelled as such.
A planned run then takes between
    low  = overhead + low rate  * work per epoch * planned epochs * epoch share
    high = overhead + high rate * work per epoch * planned epochs
where `epoch share` is the median fraction of their planned epochs the finished runs ran
(early stopping; `PRIOR_EPOCH_SHARE` for the prior): the high end assumes every epoch
runs, so early stopping only makes it shorter. `Throughput.basis` says all of this for the
numbers at hand. Each job also pays a fixed cost (a new process importing torch, data
preparation from the cache, test evaluation, saving): the median over finished jobs in the
queue, or `JOB_OVERHEAD_SECONDS` without any.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ecgcore.data.prepare.config import PrepConfig
from ecgcore.errors import EcgcoreError
from ecgcore.runs import RunStore
from ecgcore.train.config import TrainConfig

# Validation record cost in training-sample units (sliding windows, forward only, larger
# batches); fitted on experiments/quickstart.toml's scratch runs on this 2-core CPU
# (epoch seconds against n_train at four fractions with the same 150 validation records).
EVAL_WEIGHT = 0.6
# A job's cost besides its epochs when no finished job says otherwise: process start and
# imports (~3 s), cached data, test evaluation, saving (measured with the smoke grid here).
JOB_OVERHEAD_SECONDS = 6.0
# The newest finished runs of a kind that the estimate learns from.
STORE_RUNS_USED = 30
# With this many matching runs or more the range is p10–p90 of their rates, else min–max.
QUANTILES_FROM = 10
# The rough prior: the probe's seconds per sample times these (fast end, typical, slow end).
# `python -m ecgcore run experiments/quickstart.toml` on the 2-core development machine,
# other programs keeping about one core busy: its 17 runs trained at 0.8x-3.4x the probe's
# rate (median 2.1x). The probe leaves out data loading, the validation windows and each
# epoch's fixed cost, which weigh most in small runs (benchmarks/README.md, "Contention").
PRIOR_FACTORS = (1.0, 2.0, 4.0)
# The prior's share of planned epochs at the fast end (early stopping; the quickstart's runs
# ran a median of 67-80 % of theirs).
PRIOR_EPOCH_SHARE = 0.5
# Leads of a run whose config names none (ecgcore.data.prepare's standard 12).
DEFAULT_LEADS = len(PrepConfig().leads)


@dataclass(frozen=True)
class Throughput:
    """Seconds per training sample (one crop forward + backward + step) for one
    architecture, input size, lead count and device: typical, fast end (`low`), slow end
    (`high`), the share of planned epochs runs ran (`epoch_share`, early stopping), and in
    words what the numbers rest on (`basis`). `rough`: a prior, not measured runs."""

    arch: str
    seconds_per_sample: float
    basis: str
    n_runs: int = 0
    low: float | None = None
    high: float | None = None
    epoch_share: float = 1.0
    rough: bool = False

    def __post_init__(self) -> None:
        for name in ("low", "high"):
            if getattr(self, name) is None:
                object.__setattr__(self, name, self.seconds_per_sample)


def samples_per_input(prep: PrepConfig, train: TrainConfig) -> int:
    """Samples in one training input (the crop, else the whole window)."""
    return round(float(train.crop_seconds or prep.seconds) * prep.fs)


def input_samples_of(config: Mapping[str, Any]) -> int:
    """`samples_per_input` of an experiment file's (or a run config's) prep and train sections."""
    return samples_per_input(PrepConfig.from_dict(dict(config.get("prep") or {})),
                         TrainConfig.from_dict(config.get("train") or {}))


def sample_epochs(n_train: float, n_val: float) -> float:
    return float(n_train) + EVAL_WEIGHT * float(n_val)


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.2g} ms"


def _what(arch: str, input_samples: int, n_leads: int, device_type: str) -> str:
    return f"{arch} run{{s}} at {input_samples} samples × {n_leads} leads on {device_type}"


def store_throughput(store: RunStore, arch: str, device_type: str, input_samples: int,
                     n_leads: int = DEFAULT_LEADS, limit: int = STORE_RUNS_USED) -> Throughput | None:
    """The measured rates of the newest finished runs of `arch` with the same input size
    and lead count that trained on `device_type` ("cpu", "cuda", "mps"); None when none."""
    rates: list[float] = []
    shares: list[float] = []
    planned: set[int] = set()
    for run_id in store.list(arch=arch, status="done")["run_id"]:
        if len(rates) >= limit:
            break
        try:
            folder = store.get(run_id)
            results, config = folder.results() or {}, folder.run_config
        except EcgcoreError:
            continue
        seconds, epochs = results.get("train_seconds") or 0.0, results.get("epochs_run") or 0
        work = sample_epochs(results.get("n_train") or 0, results.get("n_val") or 0) * epochs
        if (seconds <= 0 or work <= 0 or str(results.get("device", "")).split(":")[0] != device_type
                or samples_per_input(config.prep, config.train) != input_samples
                or len(config.prep.leads) != n_leads):
            continue
        rates.append(seconds / work)
        epochs_planned = config.train.epochs
        planned.add(epochs_planned)
        shares.append(min(1.0, epochs / max(1, epochs_planned)))
    if not rates:
        return None
    if len(rates) >= QUANTILES_FROM:
        low, high = (float(v) for v in np.percentile(rates, [10, 90]))
        spread = "p10–p90"
    else:
        low, high, spread = min(rates), max(rates), "min–max"
    typical, share = statistics.median(rates), statistics.median(shares)
    n = len(rates)
    if len(planned) == 1:
        total = planned.pop()
        stopped = f"the median run ran {round(share * total)} of {total} epochs"
    else:
        stopped = f"the median run ran {share:.0%} of its planned epochs"
    basis = (f"from {n} finished {_what(arch, input_samples, n_leads, device_type).format(s='s' if n > 1 else '')}: "
             f"{_ms(low)}–{_ms(high)} per training sample ({spread}), median {_ms(typical)}; "
             f"{stopped} (early stopping)")
    return Throughput(arch, typical, basis, n, low=low, high=high, epoch_share=share)


def measure_throughput(arch: str, input_samples: int, n_classes: int = 10, device_type: str = "cpu",
                       batch: int = 32, steps: int = 2, n_leads: int = DEFAULT_LEADS) -> Throughput:
    """The rough prior: time `steps` Adam steps of a fresh model on random (batch, n_leads,
    input_samples) inputs, after one warm-up step, and widen it by `PRIOR_FACTORS`. One
    torch thread: several threads spin against each other on a busy machine (20x slower in
    a probe this short), and one thread never disturbs the app."""
    import torch

    device = torch.device(device_type)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        per_sample = _time_steps(arch, input_samples, n_classes, device, batch, steps, n_leads)
    finally:
        torch.set_num_threads(threads)
    low, typical, high = (per_sample * factor for factor in PRIOR_FACTORS)
    what = _what(arch, input_samples, n_leads, device_type).format(s="")
    basis = (f"rough prior: no finished {what} yet, so a {steps}-step probe of the model here "
             f"({_ms(per_sample)} per sample, batch {batch}, one thread) times {PRIOR_FACTORS[0]:g}–{PRIOR_FACTORS[2]:g} "
             f"(real runs trained at 0.8–3.4x the probe's rate on a 2-core machine) and early "
             f"stopping after {PRIOR_EPOCH_SHARE:.0%} of the epochs at the fast end; finished runs "
             "will replace it")
    return Throughput(arch, typical, basis, 0, low=low, high=high,
                      epoch_share=PRIOR_EPOCH_SHARE, rough=True)


def _time_steps(arch: str, input_samples: int, n_classes: int, device: Any, batch: int, steps: int,
                n_leads: int = DEFAULT_LEADS) -> float:
    """Seconds per training sample of a fresh `arch` over `steps` timed steps."""
    from ecgcore.models import create_model

    model = create_model(arch, n_leads=n_leads, n_classes=max(1, n_classes), n_samples=input_samples).to(device)
    model.train()
    return 1.0 / samples_per_second(train_step(model, batch, n_leads, input_samples, device), batch, device, steps)


def train_step(model: Any, batch: int, n_leads: int, n_samples: int, device: Any) -> Callable[[], None]:
    """One forward + backward + Adam step of `model` on a fixed random batch (targets as wide
    as its head): what every training-speed probe times."""
    import torch

    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.randn(batch, n_leads, n_samples, device=device)
    y = (torch.rand(batch, model.n_classes, device=device) > 0.5).float()
    loss_fn = torch.nn.BCEWithLogitsLoss()

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        optimizer.step()

    return step


def samples_per_second(step: Callable[[], None], batch: int, device: Any, min_steps: int,
                       budget_s: float = 0.0) -> float:
    """`step` (one batch of `batch` samples) timed after one untimed warm-up step (allocations,
    kernel choice), for at least `min_steps` steps and until `budget_s` seconds have passed,
    waiting for the GPU after each step."""
    import torch

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    step()
    sync()
    started = time.perf_counter()
    steps = 0
    while steps < min_steps or time.perf_counter() - started < budget_s:
        step()
        sync()
        steps += 1
    return steps * batch / (time.perf_counter() - started)


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
    """One run's wall time at the typical rate with every epoch run (early stopping can end
    it sooner)."""
    if not trains:
        return overhead
    return overhead + throughput.seconds_per_sample * sample_epochs(n_train, n_val) * epochs


def run_range(throughput: Throughput, n_train: float, n_val: float, epochs: int, overhead: float,
              trains: bool = True) -> tuple[float, float]:
    """(fast end, slow end) of one run's wall time: the low rate with the runs' usual early
    stopping, the high rate with every epoch run."""
    if not trains:
        return overhead, overhead
    work = sample_epochs(n_train, n_val) * epochs
    assert throughput.low is not None and throughput.high is not None
    return (overhead + throughput.low * work * throughput.epoch_share,
            overhead + throughput.high * work)


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
