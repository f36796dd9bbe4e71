"""`TrainConfig`: every knob of one training run, frozen and JSON-serialisable.

It is stored in every run's `config.json` and in `last.pt` (a resumed run must be the
same run), so it holds plain values only and refuses unknown keys on the way back in.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ecgcore.train.schedules import SCHEDULES as SCHEDULE_REGISTRY

OPTIMIZERS: tuple[str, ...] = ("adam", "adamw")
SCHEDULES: tuple[str, ...] = tuple(SCHEDULE_REGISTRY)
PRECISIONS: tuple[str, ...] = ("float32", "fp16", "bf16")
AGGREGATES: tuple[str, ...] = ("max", "mean")
DEVICES: tuple[str, ...] = ("auto", "cuda", "mps", "cpu")
DATA_PLACEMENTS: tuple[str, ...] = ("auto", "always", "never")

#: Settings that change how fast a run goes, not what it computes (beyond the order of
#: floating-point sums): left out of the config hash (`ecgcore.runs.hashing.NON_RESULT_KEYS`)
#: and recorded in results.json's "speed" instead.
SPEED_SETTINGS: frozenset[str] = frozenset({"data_on_device", "cudnn_benchmark", "compile"})

# Settings that change how fast a run goes but not what it computes: a resumed run may
# differ from the interrupted one in these (e.g. resume a GPU run on a CPU).
RESUME_MAY_DIFFER: frozenset[str] = frozenset({"device", "eval_batch_size"}) | SPEED_SETTINGS


@dataclass(frozen=True)
class TrainConfig:
    """How to train.

    epochs                  passes over the training rows (epochs are numbered from 0)
    batch_size              training batch (per process under torchrun)
    lr                      base learning rate; a transfer strategy's plan scales it per group
    optimizer               "adam" or "adamw"; weight_decay applies to both (Adam: L2 in the
                            gradient, AdamW: decoupled)
    schedule                one of `ecgcore.train.schedules.SCHEDULES`: "constant", "onecycle"
                            (this workbench's older one-cycle variant), "fastai_onecycle"
                            (fastai 1.0.61's fit_one_cycle exactly, the PTB-XL benchmark's),
                            "stlr" (ULMFiT's slanted triangular); a strategy phase may
                            prescribe its own
    pos_weight              BCE positive-class weights n_neg / n_pos from training prevalence
    crop_seconds            train on random crops of this length; None = the whole window
    eval_aggregate          evaluate on sliding windows of the crop length (stride half a window)
                            and aggregate the window scores by "max" or "mean" (PTB-XL protocol)
    early_stopping_patience stop after this many epochs without a better validation macro AUC;
                            None = never
    seed                    seeds torch, numpy, random, and the generator for shuffles and crops
    device                  "auto" (cuda, then mps, then cpu) or one of them
    precision               "float32" (the default, and what paper-exact presets use), or autocast
                            "fp16" (with gradient scaling) / "bf16"; autocast only takes effect
                            on CUDA (elsewhere the run is float32, and results.json says so).
                            Old configs' `amp = true` (fp16 autocast on CUDA) is read as "fp16"
    grad_clip               clip the gradient norm to this value; None = no clipping
    eval_batch_size         records per evaluation batch (each yields several windows)
    deterministic           torch deterministic algorithms during fit (bit-equal resumes on CPU)
    data_on_device          where the training rows live (`ecgcore.train.device_data`): "auto"
                            (on the GPU when they fit in its free memory, else host batches),
                            "always" (the device-resident path on any device, CPU included),
                            "never" (host batches: pinned, non-blocking copies on CUDA)
    cudnn_benchmark         let cuDNN time its algorithms and keep the fastest (CUDA; needs
                            deterministic = false)
    compile                 train through `torch.compile(model)` (first steps pay compilation)
    The last three are speed settings (SPEED_SETTINGS): not part of the run's hash, and
    recorded in results.json's "speed" with what the run actually did.
    """

    epochs: int = 20
    batch_size: int = 64
    lr: float = 1e-3
    optimizer: str = "adam"
    weight_decay: float = 0.0
    schedule: str = "constant"
    pos_weight: bool = False
    crop_seconds: float | None = None
    eval_aggregate: str = "max"
    early_stopping_patience: int | None = 5
    seed: int = 0
    device: str = "auto"
    precision: str = "float32"
    grad_clip: float | None = None
    eval_batch_size: int = 256
    deterministic: bool = True
    data_on_device: str = "auto"
    cudnn_benchmark: bool = False
    compile: bool = False

    def __post_init__(self) -> None:
        def need(ok: bool, message: str) -> None:
            if not ok:
                raise ValueError(f"TrainConfig: {message}")

        need(isinstance(self.epochs, int) and self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}")
        need(self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}")
        need(self.eval_batch_size >= 1, f"eval_batch_size must be >= 1, got {self.eval_batch_size}")
        need(self.lr > 0, f"lr must be positive, got {self.lr}")
        need(self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}")
        need(self.optimizer in OPTIMIZERS, f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        need(self.schedule in SCHEDULES, f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        need(self.eval_aggregate in AGGREGATES,
             f"eval_aggregate must be one of {AGGREGATES}, got {self.eval_aggregate!r}")
        need(self.device in DEVICES, f"device must be one of {DEVICES}, got {self.device!r}")
        need(self.precision in PRECISIONS, f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        need(self.crop_seconds is None or self.crop_seconds > 0,
             f"crop_seconds must be positive or None, got {self.crop_seconds}")
        need(self.early_stopping_patience is None or self.early_stopping_patience >= 1,
             f"early_stopping_patience must be >= 1 or None, got {self.early_stopping_patience}")
        need(self.data_on_device in DATA_PLACEMENTS,
             f"data_on_device must be one of {DATA_PLACEMENTS}, got {self.data_on_device!r}")
        need(not (self.cudnn_benchmark and self.deterministic),
             "cudnn_benchmark picks kernels by timing them, so it needs deterministic = false")
        need(self.grad_clip is None or self.grad_clip > 0,
             f"grad_clip must be positive or None, got {self.grad_clip}")

    def to_dict(self) -> dict[str, Any]:
        """Every setting, except speed settings left at their default: configs written
        before they existed read back byte for byte."""
        defaults = TrainConfig.__dataclass_fields__
        return {key: value for key, value in dataclasses.asdict(self).items()
                if key not in SPEED_SETTINGS or value != defaults[key].default}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        data = dict(data)
        if "amp" in data and "precision" not in data:  # configs written before `precision`
            amp = data.pop("amp")
            data["precision"] = "fp16" if amp is True else "float32" if amp is False else amp
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"TrainConfig: unknown settings {unknown}; known: {sorted(known)}")
        return cls(**data)

    def resume_differences(self, other: TrainConfig) -> list[str]:
        """Settings (other than RESUME_MAY_DIFFER) in which `other` is a different run."""
        mine, theirs = self.to_dict(), other.to_dict()
        return sorted(k for k in mine if k not in RESUME_MAY_DIFFER and mine[k] != theirs[k])
