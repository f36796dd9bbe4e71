"""How much GPU memory a queued job will take: `job_memory_need(job) -> bytes`.

A worker that runs several jobs per GPU (`worker --runs-per-gpu N`) starts a job only
where this need fits in the GPU's free memory (`gpu_admission`). The need of a run job
whose run trains on a GPU (train.device "auto" or "cuda") is, in order of trust:

1. measured: the largest `speed.peak_gpu_memory_bytes` that results.json records for the
   newest finished runs (RUNS_SCANNED) of the same architecture, batch size, training
   input shape (leads × samples after preparation and crop) and precision;
2. else an estimate of the tensors of one supervised training step:
     weights + gradients + Adam's two moments   BYTES_PER_PARAMETER × parameters
     activations kept for the backward pass     ACTIVATION_FACTOR × batch × leads × samples × 4
     the resident rows                          (n_train + n_val) × leads × window × 4
   the last only when `data_on_device` may put the training and validation rows on the
   GPU ("auto", "always") and the training set's size is known (`train_n`, or the n_train
   a finished run on the same data, task and training fraction recorded; n_val is what a
   finished run on the same data and task recorded, 0 when none has); self-supervised
   pretraining keeps host batches, so it has none. Evaluation batches are not counted: a
   finished run's measured peak replaces the estimate once there is one.
Either is multiplied by ALLOCATOR_MARGIN (the peak counts tensors, the allocator holds
more) and CUDA_CONTEXT_BYTES is added (each process's CUDA context, which nvidia-smi's
free memory includes). Jobs that compute on the CPU (downloads, train.device "cpu"/"mps")
need nothing.

With data_on_device "auto" the job itself keeps its training set on the host when it
does not fit (`ecgcore.train.device_data.decide_placement`), so `MemoryNeed.minimum`
leaves the set out: a job whose set could never fit on the GPU asks only for the rest.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ecgcore.errors import EcgcoreError
from ecgcore.jobs.job_types import payload_of
from ecgcore.jobs.payload import RunJob
from ecgcore.runs.run_config import RunConfig, RunConfigError

if TYPE_CHECKING:
    from ecgcore.runs import RunStore

log = logging.getLogger(__name__)

GIB = 1024**3
FLOAT32_BYTES = 4
#: float32 weights, their gradients and Adam's first and second moments: 4 × 4 bytes
#: (autocast keeps float32 master weights, so precision does not change it).
BYTES_PER_PARAMETER = 16
#: Bytes of tensors autograd keeps for the backward pass per byte of float32 input, per
#: sample. Measured on CPU with `torch.autograd.graph.saved_tensors_hooks` at 12 leads:
#: small_cnn 15–23, fcn_wang 93–113, resnet1d_wang 115–145, xresnet1d101 254–377,
#: inception1d 413–445, lstm 746–806 (1000 and 250 samples). The largest, rounded up,
#: so an unmeasured architecture is overestimated rather than run out of memory.
ACTIVATION_FACTOR = 800
#: The allocator holds more than the tensors it hands out (block rounding, freed blocks
#: it keeps, cuDNN workspaces); applied to the measured peak and to the estimate.
ALLOCATOR_MARGIN = 1.2
#: Each job process's CUDA context with torch's kernels, cuBLAS and cuDNN loaded.
CUDA_CONTEXT_BYTES = 768 * 1024**2
#: Finished runs read for a measured peak or a training-set size (the newest first).
RUNS_SCANNED = 200
#: Output classes of the model built to count parameters (the head is a small share).
HEAD_CLASSES = 10
#: Devices of a job that trains on a GPU when the machine has one.
GPU_DEVICES: frozenset[str] = frozenset({"auto", "cuda"})


@dataclass(frozen=True)
class MemoryNeed:
    """What a job will allocate on its GPU, in bytes, and on what that rests (a sentence).

    bytes    everything, the training set on the GPU included when the job may put it there
    minimum  what the job needs to start at all: `bytes` without a training set that
             data_on_device "auto" keeps on the host when it does not fit"""

    bytes: int
    minimum: int
    basis: str

    def on(self, total: int) -> int:
        """The need on a GPU with `total` bytes: all of it when that could ever fit, else the
        minimum (the job will keep its training set on the host)."""
        return self.bytes if self.bytes <= total else self.minimum


NO_NEED = MemoryNeed(0, 0, "computes on the CPU")


@dataclass(frozen=True)
class FinishedRun:
    """What one finished run says about memory: its shape and its recorded peak."""

    run_id: str
    arch: str
    batch_size: int
    input_shape: tuple[int, int]
    precision: str
    peak_bytes: int | None
    data: tuple[str, str, str, float]  # kind, dataset, task, training fraction
    n_train: int | None
    n_val: int | None = None


def input_shape(config: RunConfig) -> tuple[int, int]:
    """(leads, samples) of one training input: the crop, else the whole window ("pad" mode:
    its longest possible window)."""
    prep = config.prep
    if config.train.crop_seconds:
        samples = round(config.train.crop_seconds * prep.fs)
    else:
        samples = prep.max_window if prep.crop == "pad" else prep.window
    return len(prep.leads), samples


def resident_row_bytes(config: RunConfig) -> int:
    """Bytes of one training row kept on the GPU: its whole window, as float32 (the crop is
    cut there, per batch)."""
    prep = config.prep
    return len(prep.leads) * (prep.max_window if prep.crop == "pad" else prep.window) * FLOAT32_BYTES


def _data_key(config: RunConfig) -> tuple[str, str, str, float]:
    return config.kind, config.data.dataset, config.data.task, float(config.train_fraction)


def finished_runs(store: RunStore | None = None, limit: int = RUNS_SCANNED) -> list[FinishedRun]:
    """The newest `limit` finished runs of the store, as FinishedRun (unreadable ones skipped)."""
    from ecgcore.runs import RunStore

    store = store or RunStore()
    found: list[FinishedRun] = []
    for run_id in list(store.list(status="done")["run_id"])[:limit]:
        try:
            folder = store.get(run_id)
            results, config = folder.results() or {}, folder.run_config
        except (EcgcoreError, OSError, ValueError):
            continue
        speed = results.get("speed") if isinstance(results.get("speed"), dict) else {}
        peak = speed.get("peak_gpu_memory_bytes")
        n_train, n_val = results.get("n_train"), results.get("n_val")
        found.append(FinishedRun(
            run_id=str(run_id), arch=config.model.arch, batch_size=config.train.batch_size,
            input_shape=input_shape(config), precision=config.train.precision,
            peak_bytes=int(peak) if isinstance(peak, (int, float)) and peak > 0 else None,
            data=_data_key(config), n_train=int(n_train) if isinstance(n_train, (int, float)) else None,
            n_val=int(n_val) if isinstance(n_val, (int, float)) else None))
    return found


@functools.lru_cache(maxsize=64)
def parameter_count(arch: str, leads: int, samples: int) -> int:
    """Parameters of `arch` for this input, built on torch's "meta" device (no memory, no
    weights computed; a model that cannot be built there is built on the CPU)."""
    import torch

    from ecgcore.models import create_model

    try:
        with torch.device("meta"):
            model = create_model(arch, n_leads=leads, n_classes=HEAD_CLASSES, n_samples=samples)
    except (RuntimeError, NotImplementedError, TypeError):
        model = create_model(arch, n_leads=leads, n_classes=HEAD_CLASSES, n_samples=samples)
    return int(sum(p.numel() for p in model.parameters()))


def format_bytes(n: int) -> str:
    return f"{n / GIB:.2f} GiB"


def _total(tensor_bytes: float) -> int:
    return int(CUDA_CONTEXT_BYTES + ALLOCATOR_MARGIN * tensor_bytes)


def memory_need(job: dict[str, Any], runs: Sequence[FinishedRun]) -> MemoryNeed:
    """The job's need (see the module docstring), from `runs` (`finished_runs()`)."""
    payload = payload_of(job["spec"])
    if not isinstance(payload, RunJob) or payload.device not in GPU_DEVICES:
        return NO_NEED
    try:
        config = RunConfig.from_dict(payload.config)
    except RunConfigError as exc:
        log.warning(f"{job['job_id']}: its run config does not read ({exc}); started without a memory check")
        return MemoryNeed(0, 0, "its run config does not read: no memory check")
    arch, batch, shape, precision = (config.model.arch, config.train.batch_size, input_shape(config),
                                     config.train.precision)
    same = [r for r in runs if (r.arch, r.batch_size, r.input_shape, r.precision) == (arch, batch, shape, precision)
            and r.peak_bytes is not None]
    what = f"{arch}, batch {batch}, {shape[0]} × {shape[1]}, {precision}"
    if same:
        peak = max(same, key=lambda r: r.peak_bytes or 0)
        need = _total(peak.peak_bytes or 0)
        return MemoryNeed(need, need, f"measured: peak {format_bytes(peak.peak_bytes or 0)} of run "
                                      f"{peak.run_id} ({what}) + allowance = {format_bytes(need)}")
    leads, samples = shape
    params = parameter_count(arch, leads, samples)
    tensors = BYTES_PER_PARAMETER * params + ACTIVATION_FACTOR * batch * leads * samples * FLOAT32_BYTES
    resident, n_rows = 0, _resident_rows(config, runs)
    placement = config.train.data_on_device
    if placement != "never" and config.pretrain_method is None and n_rows is not None:
        resident = n_rows * resident_row_bytes(config)
    need = _total(tensors + resident)
    minimum = _total(tensors) if placement == "auto" else need
    set_part = (f", training and validation rows {format_bytes(resident)} ({n_rows} records)" if resident
                else "" if placement == "never" or config.pretrain_method is not None
                else ", training set size not known yet")
    return MemoryNeed(need, minimum, f"estimate ({what}): {params / 1e6:.2f} M parameters, activations"
                                     f"{set_part} + allowance = {format_bytes(need)}")


def _resident_rows(config: RunConfig, runs: Sequence[FinishedRun]) -> int | None:
    """Records the run holds on the GPU, its training and validation rows: its `train_n`,
    else the most a finished run on the same data, task and training fraction trained on
    (None when neither is known), plus the validation records a finished run on the same
    data and task had (the training fraction does not change them; 0 when none is known)."""
    key = _data_key(config)
    train = int(config.train_n) if config.train_n else max(
        (r.n_train for r in runs if r.data == key and r.n_train), default=None)
    if train is None:
        return None
    return train + max((r.n_val for r in runs if r.data[:3] == key[:3] and r.n_val), default=0)


def job_memory_need(job: dict[str, Any], store: RunStore | None = None) -> int:
    """Bytes of GPU memory the job will take (0 for a job on the CPU); see the module docstring."""
    return memory_need(job, finished_runs(store)).bytes
