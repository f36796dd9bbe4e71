"""What a launch will do before it is submitted: the runs of the grid, which are already
done (reused by config hash) or already in the queue, the time the rest will take, and
the submission itself through the job queue.

A run is priced by how it uses its encoder: a strategy that trains it pays forward +
backward per training sample and epoch (`estimate`: finished runs of the same architecture
and input size, else a measured prior); a frozen probe on a checkpoint (an
`EmbeddingStrategy`) pays one forward pass per record, measured for the architecture at its
input contract's shape (`model_speed`). A plan says plainly when its runs are slow
(`LaunchPlan.warnings`).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ecgcore.errors import EcgcoreError
from ecgcore.experiments.run_plan import RunSpec, expand
from ecgcore.experiments.spec import ExperimentError
from ecgcore.foundation import RegisteredCheckpoint
from ecgcore.models import MODELS
from ecgcore.runs import RunStore
from ecgcore.transfer import STRATEGIES
from ecgcore.transfer.strategy import EmbeddingStrategy
from ecgcore.views.launch.choices import (
    SPLIT,
    LaunchChoices,
    LaunchError,
    choice_problems,
    experiment_config,
)
from ecgcore.views.launch.estimate import (
    DEFAULT_LEADS,
    Throughput,
    format_seconds,
    job_overhead,
    measure_throughput,
    run_range,
    run_seconds,
    samples_per_input,
    store_throughput,
)
from ecgcore.views.launch.measured_speed import (
    ModelSpeed,
    model_speed,
    speed_throughput,
)
from ecgcore.views.launch.shared_classes import ClassPlan

# Train and validation shares of a source's "auto" split (PTB-XL's official folds 1-8 / 9 / 10;
# a patient split would be 0.7 / 0.1): only used to size pretraining runs in the estimate.
SOURCE_SHARES: tuple[float, float] = (0.8, 0.1)

# (arch, device type, input samples, n_classes) -> Throughput, for 12-lead inputs (the Launch
# form's preprocessing; plan_launch's own default also matches other lead counts).
ThroughputFn = Callable[[str, str, int, int], Throughput]
# (arch, device type, input samples, leads) -> the measured speed of that model at that shape.
SpeedFn = Callable[[str, str, int, int], ModelSpeed]
# A new run this long or longer (its slow end) makes the plan say its architecture is slow.
SLOW_RUN_SECONDS = 20 * 60


@dataclass(frozen=True)
class PlannedRun:
    """One run of the grid: new (trains), reused (a finished run with its config hash) or
    in queue (an active job already has its config hash)."""

    label: str
    kind: str
    hash: str
    status: str
    run_id: str | None = None
    job_id: str | None = None
    seconds: float = 0.0  # typical rate, every epoch run
    low: float = 0.0  # fast end: fastest measured rate, early stopping as the runs had it
    high: float = 0.0  # slow end: slowest measured rate, every epoch run


@dataclass(frozen=True)
class LaunchPlan:
    config: dict[str, Any]
    specs: tuple[RunSpec, ...]
    runs: tuple[PlannedRun, ...]
    seconds: float
    basis: tuple[str, ...]
    low: float = 0.0
    high: float = 0.0
    warnings: tuple[str, ...] = ()

    def time_text(self) -> str:
        """'4 min 10 s – 9 min 30 s' (one value when both ends agree)."""
        low, high = format_seconds(self.low), format_seconds(self.high)
        return high if low == high else f"{low} – {high}"

    def assumptions(self) -> str:
        """What the range assumes, in words (for under the estimate)."""
        return ("The new runs one after another (one worker slot). Fast end: the fast end of the "
                "speed, each run stopping as early as the finished ones did (early stopping); slow "
                "end: the slow end of the speed with every epoch run. Other programs on the machine "
                "slow training down. Speed " + "; speed ".join(self.basis[:-1]) + "; " + self.basis[-1] + ".")

    def count(self, status: str | None = None) -> int:
        return sum(1 for run in self.runs if status is None or run.status == status)

    def rows(self) -> list[dict[str, Any]]:
        """The runs as table rows for the page."""
        return [{"run": r.label, "kind": r.kind, "status": r.status,
                 "estimate": format_seconds(r.low) + ("" if round(r.low) == round(r.high)
                                                      else " – " + format_seconds(r.high)),
                 "existing": r.run_id or r.job_id or ""} for r in self.runs]


def best_throughput(arch: str, device_type: str, input_samples: int, n_classes: int,
                    store: RunStore | None = None, n_leads: int = DEFAULT_LEADS) -> Throughput:
    """From the store's finished runs of the same architecture, input size, leads and
    device when there are some, else the rough prior: for an architecture with an input
    contract (a foundation model, often large) its measured, cached training speed
    (`model_speed`), for any other a probe measured now."""
    found = store_throughput(store or RunStore(), arch, device_type, input_samples, n_leads)
    if found is not None:
        return found
    if arch in MODELS and MODELS[arch].contract is not None:
        return speed_throughput(model_speed(arch, n_leads, input_samples, device_type), "train")
    return measure_throughput(arch, input_samples, n_classes, device_type, n_leads=n_leads)


def speed_mode(strategy: str) -> str:
    """"embed" for a frozen probe on cached embeddings (its encoder runs once per record),
    "train" for every other strategy."""
    return "embed" if isinstance(STRATEGIES[strategy], EmbeddingStrategy) else "train"


def device_type(preference: str) -> str:
    """The device a job would train on ("auto" resolved on this machine)."""
    from ecgcore.train.device import select_device

    try:
        return select_device(preference).type
    except EcgcoreError:
        return "cpu"


def _sizes(spec: RunSpec, classes: ClassPlan) -> tuple[float, float, float]:
    """Approximate (n_train, n_val, n_test) of a run from the records its task keeps."""
    config = spec.run_config
    fraction = float(config.train_fraction or 1.0)
    if spec.kind == "pretrain":
        kept = classes.source.n_records if classes.source else 0
        return kept * SOURCE_SHARES[0] * fraction, kept * SOURCE_SHARES[1], kept * (1.0 - sum(SOURCE_SHARES))
    kept = classes.target.n_records if classes.target else 0
    val, test = float(config.split.val or SPLIT["val"]), float(config.split.test or SPLIT["test"])
    return kept * (1.0 - val - test) * fraction, kept * val, kept * test


def plan_launch(choices: LaunchChoices, classes: ClassPlan, store: RunStore | None = None,
                jobs: Sequence[dict[str, Any]] | None = None,
                throughput: ThroughputFn | None = None, speed: SpeedFn | None = None) -> LaunchPlan:
    """Expand the choices into runs (as `submit` would) and price the new ones.
    `jobs` defaults to the queue's jobs, `throughput(arch, device_type, input_samples,
    n_classes)` to `best_throughput` (the page passes a cached one), `speed(arch,
    device_type, input_samples, n_leads)` (for frozen probes) to `model_speed`."""
    from ecgcore import jobs as job_queue

    store = store or RunStore()
    jobs = job_queue.list_jobs() if jobs is None else jobs
    config = experiment_config(choices)
    try:
        specs = tuple(expand(config))
    except ExperimentError as exc:
        raise LaunchError(str(exc)) from exc
    active = {job["config_hash"]: job["job_id"] for job in jobs if job["state"] in job_queue.ACTIVE}
    train_seconds = _train_seconds(store, jobs)
    overhead, overhead_basis = job_overhead(jobs, train_seconds)
    dev = device_type(choices.device)
    speed = speed or (lambda arch, device, samples, leads: model_speed(arch, leads, samples, device))
    rates: dict[tuple[str, int, int, str], Throughput] = {}
    measured: dict[str, ModelSpeed] = {}  # arch -> its speed, where a frozen probe was priced by it
    runs: list[PlannedRun] = []
    slowest: dict[str, tuple[PlannedRun, int, int]] = {}  # arch -> its slowest new run, samples, leads
    for spec in specs:
        done = store.find_done(spec.hash, kind=spec.kind)
        if done is not None:
            runs.append(PlannedRun(spec.label, spec.kind, spec.hash, "reused", run_id=done))
            continue
        if spec.hash in active:
            runs.append(PlannedRun(spec.label, spec.kind, spec.hash, "in queue", job_id=active[spec.hash]))
            continue
        run_config = spec.run_config
        leads, arch = len(run_config.prep.leads), run_config.model.arch
        mode = speed_mode(run_config.strategy_name) if spec.kind == "target" else "train"
        # a probe embeds each record's whole window; training sees its crop
        samples = run_config.prep.window if mode == "embed" else samples_per_input(run_config.prep, run_config.train)
        n_classes = len(classes.target.classes) if classes.target else 10
        key = (arch, samples, leads, mode)
        if key not in rates:
            if mode == "embed":
                measured[arch] = speed(arch, dev, samples, leads)
                rates[key] = speed_throughput(measured[arch], "embed")
            else:
                rates[key] = (throughput(arch, dev, samples, n_classes) if throughput is not None
                              else best_throughput(arch, dev, samples, n_classes, store, n_leads=leads))
        n_train, n_val, n_test = _sizes(spec, classes)
        trains = STRATEGIES[run_config.strategy_name].trains
        # one forward pass over every record (no epochs, no validation windows)
        work = (n_train + n_val + n_test, 0.0, 1) if mode == "embed" else (n_train, n_val, run_config.train.epochs)
        seconds = run_seconds(rates[key], *work, overhead, trains)
        low, high = run_range(rates[key], *work, overhead, trains)
        run = PlannedRun(spec.label, spec.kind, spec.hash, "new", seconds=seconds, low=low, high=high)
        runs.append(run)
        if arch not in slowest or run.high > slowest[arch][0].high:
            slowest[arch] = (run, samples, leads)
    basis = (*(t.basis for t in rates.values()), f"fixed cost {overhead_basis}")
    # a foundation model's measured speed (cached) says why; other models' finished runs do
    warnings = tuple(slow_warning(run, measured.get(arch) or (speed(arch, dev, samples, leads)
                                                              if MODELS[arch].contract is not None else None))
                     for arch, (run, samples, leads) in slowest.items() if run.high >= SLOW_RUN_SECONDS)
    return LaunchPlan(config, specs, tuple(runs), sum(r.seconds for r in runs), basis,
                      low=sum(r.low for r in runs), high=sum(r.high for r in runs), warnings=warnings)


def slow_warning(run: PlannedRun, speed: ModelSpeed | None) -> str:
    """The plan's plain word on a slow architecture: its slowest run, the measured speed
    when there is one, and what makes it faster."""
    measured = f" Measured: {speed.describe()}." if speed is not None else ""
    return (f"Slow: the run {run.label} alone may take up to {format_seconds(run.high)} on this machine."
            f"{measured} A frozen probe (embedding_probe, attention_probe) runs the encoder once per "
            "record instead of every epoch; fewer records, fewer epochs or a GPU also help.")


def _train_seconds(store: RunStore, jobs: Sequence[dict[str, Any]]) -> dict[str, float]:
    """run id -> train_seconds for the runs of finished jobs (from the store's index)."""
    run_ids = sorted({job["run_id"] for job in jobs if job.get("state") == "done" and job.get("run_id")})
    if not run_ids:
        return {}
    frame = store.list(run_id=run_ids)
    return {row.run_id: float(row.train_seconds) for row in frame.itertuples()
            if row.train_seconds == row.train_seconds}


def launch_problems(choices: LaunchChoices, datasets: Collection[str], classes: ClassPlan | None,
                    checkpoints: Mapping[str, RegisteredCheckpoint] | None = None) -> list[str]:
    """Every reason not to launch: the choices themselves, then what the labels say.
    `checkpoints`: the registered ones (default: the workspace's registry)."""
    problems = choice_problems(choices, datasets, checkpoints)
    if classes is not None:
        problems.extend(classes.problems(choices.strategies, bool(choices.source)))
    return problems


def submit_launch(choices: LaunchChoices, datasets: Collection[str], classes: ClassPlan | None,
                  plan: LaunchPlan, max_attempts: int = 2) -> list[str]:
    """Put the plan's runs in the queue (pretraining first; finished runs become done jobs
    that point at them); refuses, with the reasons, when the choices are not launchable."""
    from ecgcore.jobs import submit_specs

    problems = launch_problems(choices, datasets, classes)
    if problems:
        raise LaunchError("not submitted: " + " ".join(problems))
    return submit_specs(list(plan.specs), max_attempts=max_attempts)
