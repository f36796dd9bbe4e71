"""What a job does, as a typed value: the payload stored in the queue's `spec` column.

Each job type is a frozen dataclass registered under a name (`JOB_TYPES`); `to_payload()`
gives the JSON-ready dict the queue stores and `ecgcore.jobs.job_types.payload_of(dict)` gives the typed value
back, for the job process, the Jobs page (retry) and the launchers alike — nothing builds
or parses the dict by hand. A job type runs itself with `perform(context)`, reporting
through the `JobContext` the job process gives it (heartbeat and progress, cancellation,
the run it works on).

Payloads written before job types existed hold no "job_type" key; they are run jobs.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar

from ecgcore.errors import EcgcoreError

if TYPE_CHECKING:
    from ecgcore.experiments.run_plan import RunSpec
    from ecgcore.runs import RunFolder, RunStore

TYPE_KEY = "job_type"


class JobContext(Protocol):
    """What a running job may tell its job process, and ask it."""

    def on_run(self, run_id: str) -> None:
        """The run this job works on is known (created, reused or resumed)."""

    def report(self, progress: dict[str, Any], force: bool = False) -> None:
        """Progress to show on the Jobs page, merged into the job's progress; written at
        most once a second unless `force` (an epoch's end: shown at once)."""

    def check_cancelled(self) -> None:
        """Raise the job process's cancellation exception when the job was cancelled."""

    @property
    def attempt(self) -> int:
        """1 for the first attempt, 2 and up when a lost job is run again."""

    @property
    def resume_run_id(self) -> str | None:
        """The run a lost earlier attempt was working on, if any."""

    @property
    def indexed(self) -> bool:
        """Whether this process may write the workspace index (store.sqlite). False in a
        job process on a cluster node: it writes run folders only, and the dispatcher on
        the head node indexes them (see docs/distributed.md)."""


class JobPayload(ABC):
    """Base of every job type: a name, a label for people, to_payload/from_payload, perform."""

    job_type: ClassVar[str] = ""

    @property
    @abstractmethod
    def label(self) -> str:
        """What the Jobs page and the job log call the job."""

    @property
    def config_hash(self) -> str | None:
        """The key that makes two submissions the same job (None: never deduplicated)."""
        return None

    @property
    def kind(self) -> str:
        """The queue's `kind` column ("pretrain", "target", "download", …)."""
        return self.job_type

    @property
    def depends_on(self) -> str | None:
        """The config hash of the job this one waits for, if any."""
        return None

    @property
    def device(self) -> str:
        """The device the job computes on ("cpu", "cuda", "mps" or "auto"): a launcher
        gives it a GPU only when it asks for one."""
        return "cpu"

    def finished_run(self, store: RunStore) -> str | None:
        """The finished run that already holds this job's result, or None; a job submitted
        for it is recorded as done at once, pointing at that run."""
        return None

    def record_in_index(self) -> None:
        """On the head node, after this job ended done in a process that could not write the
        index (a cluster node): record what the job produced that only the index holds. Runs
        need nothing here (the dispatcher indexes their folders); a download adds its dataset."""
        return None

    @abstractmethod
    def to_payload(self) -> dict[str, Any]:
        """The JSON-ready dict the queue stores (with the type's name under TYPE_KEY)."""

    @classmethod
    @abstractmethod
    def from_payload(cls, data: dict[str, Any]) -> JobPayload:
        """The payload back from what `to_payload` gave."""

    @abstractmethod
    def perform(self, context: JobContext) -> str | None:
        """Do the job in this process; returns the run id it produced (or None)."""


JOB_TYPES: dict[str, type[JobPayload]] = {}
P = TypeVar("P", bound=type[JobPayload])


def job_type(name: str) -> Callable[[P], P]:
    """Class decorator: register a job type under `name` (the payload's "job_type")."""

    def register(cls: P) -> P:
        known = JOB_TYPES.get(name)
        if known is not None and (known.__module__, known.__qualname__) != (cls.__module__, cls.__qualname__):
            raise ValueError(f"job type {name!r} is registered twice ({known.__module__}, {cls.__module__})")
        cls.job_type = name
        JOB_TYPES[name] = cls
        return cls

    return register


def run_payload(data: dict[str, Any]) -> "RunJob | None":
    """The run job a queue row's `spec` holds, or None for a job of another type (the queue
    itself needs no other type: `ecgcore.jobs.job_types.payload_of` knows them all)."""
    return RunJob.from_payload(data) if data.get(TYPE_KEY, "run") == "run" else None


@job_type("run")
@dataclass(frozen=True)
class RunJob(JobPayload):
    """One run of an experiment (pretraining or target), as planned by
    `ecgcore.experiments.run_plan.expand`."""

    run_kind: str  # "pretrain" | "target"
    config: dict[str, Any]
    hash: str
    run_depends_on: str | None = None
    run_label: str = ""

    @classmethod
    def of(cls, spec: RunSpec) -> RunJob:
        return cls(run_kind=spec.kind, config=spec.config, hash=spec.hash,
                   run_depends_on=spec.depends_on, run_label=spec.label)

    def spec(self) -> RunSpec:
        from ecgcore.experiments.run_plan import RunSpec

        return RunSpec.from_config(self.config, self.hash, self.run_depends_on)

    @property
    def label(self) -> str:
        return self.run_label

    @property
    def config_hash(self) -> str | None:
        return self.hash

    @property
    def kind(self) -> str:
        return self.run_kind

    @property
    def depends_on(self) -> str | None:
        return self.run_depends_on

    @property
    def device(self) -> str:
        return str((self.config.get("train") or {}).get("device") or "auto")

    def finished_run(self, store: RunStore) -> str | None:
        return store.find_done(self.hash, kind=self.run_kind)

    def to_payload(self) -> dict[str, Any]:
        # The keys of the payloads stored before job types existed, plus the type.
        return {TYPE_KEY: self.job_type, "kind": self.run_kind, "config": self.config,
                "hash": self.hash, "depends_on": self.run_depends_on, "label": self.run_label}

    @classmethod
    def from_payload(cls, data: dict[str, Any]) -> RunJob:
        return cls(run_kind=data["kind"], config=data["config"], hash=data["hash"],
                   run_depends_on=data.get("depends_on"), run_label=data.get("label") or "")

    def perform(self, context: JobContext) -> str | None:
        """Do the run (or reuse its finished twin) with the job's progress, cancellation
        and run id going to `context`; a new attempt of a lost job continues the earlier
        attempt's run folder from its last checkpoint."""
        from ecgcore.experiments.execute import execute
        from ecgcore.runs import RunStore
        from ecgcore.runs.store import UnindexedRunStore

        store = RunStore() if context.indexed else UnindexedRunStore()
        folder = resumable_folder(store, context.resume_run_id)
        return execute(self.spec(), store, [TrainerProgress(context)], folder=folder,
                       on_run=context.on_run)


def resumable_folder(store: RunStore, run_id: str | None) -> RunFolder | None:
    """The folder of run `run_id` (a lost earlier attempt's) when it has a
    `checkpoints/last.pt` to resume from; a finished run is never touched."""
    if not run_id:
        return None
    try:
        if store.status(run_id) == "done":
            return None
        folder = store.get(run_id)
    except EcgcoreError:
        return None
    return folder if (folder.path / "checkpoints" / "last.pt").is_file() else None


class TrainerProgress:
    """Trainer callback: the trainer's steps and epochs as the job's progress
    ({"epoch", "step", "n_steps", "metrics"}, metrics being the last epoch's history row),
    and a cancelled job stopped at its next step."""

    def __init__(self, context: JobContext) -> None:
        self.context = context
        context.report({"epoch": None, "step": None, "n_steps": None, "metrics": None})

    def on_step(self, epoch: int, step: int, n_steps: int) -> None:
        self.context.report({"epoch": epoch, "step": step, "n_steps": n_steps})  # step counts from 1

    def on_epoch_end(self, row: dict[str, Any]) -> None:
        self.context.report({"metrics": row}, force=True)

    def should_stop(self) -> bool:
        self.context.check_cancelled()
        return False
