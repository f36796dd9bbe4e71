"""The device check's speed measurements: the engine's trainer against a bare PyTorch loop.

ours   `ecgcore.train.fit` on the synthetic TaskDataset, `data_on_device="auto"` (on a GPU
       the training rows live there when they fit), random crops, the standard scaler,
       the callbacks hook and best.pt every epoch; no validation rows, so nothing is
       evaluated. Samples/s = rows x timed epochs / the history's epoch seconds, the first
       epoch left out as warm-up (cuDNN's first calls, the allocator's first blocks).
bare   the ten lines everybody writes: crops cut once (one random crop per record, scaled
       with the same scaler) and put on the device with the targets, then per epoch
       randperm, forward, BCEWithLogits, backward, Adam step; the same model and init, the
       same rows, batch, precision (autocast, a gradient scaler for fp16) and epochs, and
       the same kernel settings (`ecgcore.train.loop.backend_settings`: deterministic
       kernels, the trainer's default and every preset's), so the ratio is the trainer's
       own overhead. One warm-up epoch, then the timed epochs, the device synchronised at
       each epoch's end.
`trainer_speed` times the trainer alone for the presets' other architectures (`StepClock`).

How many rows an epoch has is sized from a short probe of the model
(`ecgcore.views.launch.estimate.samples_per_second`): about `epoch_seconds` of training,
at most the training split, at least `min_batches` batches; and enough timed epochs for
about `timed_seconds` in all. So xresnet1d101 and small_cnn each take a few seconds on any
card. Peak GPU memory (`torch.cuda.max_memory_allocated`, reset before each loop) is None
on CPU.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import tempfile
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ecgcore.data.pipeline import TaskDataset
from ecgcore.errors import EcgcoreError
from ecgcore.models import create_model
from ecgcore.train import TrainConfig, fit
from ecgcore.train.callbacks import Callback
from ecgcore.train.device import select_device
from ecgcore.train.loop import backend_settings
from ecgcore.train.speed import peak_memory_bytes, reset_peak_memory
from ecgcore.views.launch.estimate import (
    samples_per_input,
    samples_per_second,
    train_step,
)

TARGET_RATIO = 0.9
MAX_TIMED_EPOCHS = 10
WARMUP_STEPS = 2  # `trainer_speed`: steps of its one epoch left out of the timing


@dataclass(frozen=True)
class Sizing:
    """How long each measurement should take (seconds of training per epoch and in all
    timed epochs, at least `min_batches` batches an epoch), and the probe's own budget."""

    epoch_seconds: float
    timed_seconds: float
    probe_seconds: float
    probe_steps: int
    min_batches: int = 2


def amp_precision(device: torch.device) -> str:
    """The autocast precision this device trains fastest in: bf16 where the GPU supports
    it, else fp16."""
    assert device.type == "cuda", "autocast is CUDA-only in the trainer"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak(device: torch.device) -> None:
    """Cached blocks of the last measurement released, the peak counted afresh (CUDA only)."""
    if device.type == "cuda":
        torch.cuda.empty_cache()
    reset_peak_memory(device)


def fresh_model(arch: str, data: TaskDataset, n_samples: int, seed: int = 0) -> nn.Module:
    """The same initial weights every time (ours and bare start from the same model)."""
    torch.manual_seed(seed)
    return create_model(arch, n_leads=data.X.shape[1], n_classes=data.y.shape[1], n_samples=n_samples)


def rows_and_epochs(samples_per_s: float, n_train: int, batch: int, sizing: Sizing) -> tuple[int, int]:
    """(rows an epoch, timed epochs) for a model that trains `samples_per_s`: about
    `sizing.epoch_seconds` an epoch in whole batches, at least `min_batches`, at most the
    training split (cut to whole batches when it holds one or more); timed epochs for about
    `sizing.timed_seconds` in all, 1 to MAX_TIMED_EPOCHS."""
    whole = n_train // batch * batch or n_train
    rows = int(min(whole, max(sizing.min_batches * batch, samples_per_s * sizing.epoch_seconds // batch * batch)))
    epochs = int(min(MAX_TIMED_EPOCHS, max(1, math.ceil(samples_per_s * sizing.timed_seconds / rows))))
    return rows, epochs


def plan_rows(data: TaskDataset, arch: str, config: TrainConfig, device: torch.device,
              sizing: Sizing) -> tuple[np.ndarray, int, float]:
    """(training rows, timed epochs, the probe's samples/s): `rows_and_epochs` of a short
    probe of a fresh model (forward + backward + Adam on random inputs)."""
    n_samples = samples_per_input(data.prep, config)
    model = fresh_model(arch, data, n_samples).to(device).train()
    probe = samples_per_second(train_step(model, config.batch_size, data.X.shape[1], n_samples, device),
                               config.batch_size, device, sizing.probe_steps, sizing.probe_seconds)
    del model
    rows, epochs = rows_and_epochs(probe, int(data.split.train.size), config.batch_size, sizing)
    return data.split.train[:rows], epochs, probe


def ours(arch: str, data: TaskDataset, config: TrainConfig, rows: np.ndarray, timed_epochs: int,
         ) -> dict[str, Any]:
    """The trainer: 1 + timed_epochs epochs on `rows`; samples/s of the timed epochs."""
    model = fresh_model(arch, data, samples_per_input(data.prep, config))
    config = dataclasses.replace(config, epochs=1 + timed_epochs, early_stopping_patience=None)
    device = select_device(config.device)
    reset_peak(device)
    with tempfile.TemporaryDirectory() as folder:
        result = fit(model, data, config, checkpoint_dir=folder, resume=False, train_index=rows)
    seconds = sum(row["seconds"] for row in result.history[1:])
    losses = [row["train_loss"] for row in result.history]
    return {"samples_per_s": rows.size * timed_epochs / seconds, "seconds": seconds,
            "peak_gpu_memory_bytes": peak_memory_bytes(device), "device": result.device,
            "precision": result.precision, "speed": result.speed,
            "train_loss_first": losses[0], "train_loss_last": losses[-1]}


def precut(data: TaskDataset, rows: np.ndarray, length: int, device: torch.device,
           seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """One scaled random crop per row and the float targets, on `device`: the bare loop's
    data, cut once before it starts."""
    x = data.raw_rows(rows)
    starts = np.random.default_rng(seed).integers(0, x.shape[2] - length + 1, rows.size)
    crops = np.stack([record[:, s:s + length] for record, s in zip(x, starts, strict=True)])
    inputs = torch.from_numpy(data.scale(crops)).to(device)
    targets = torch.from_numpy(data.y[rows].astype(np.float32)).to(device)
    return inputs, targets


def bare(arch: str, data: TaskDataset, config: TrainConfig, rows: np.ndarray, timed_epochs: int,
         ) -> dict[str, Any]:
    """The bare loop on device-resident tensors: 1 warm-up + timed_epochs epochs."""
    device = select_device(config.device)
    length = samples_per_input(data.prep, config)
    model = fresh_model(arch, data, length).to(device).train()
    reset_peak(device)
    x, y = precut(data, rows, length, device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    loss_fn = nn.BCEWithLogitsLoss()
    scaler = torch.amp.GradScaler(device.type, enabled=config.precision == "fp16" and device.type == "cuda")
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(config.precision)
    cast = dtype is not None and device.type == "cuda"  # the trainer's rule: autocast on CUDA only

    def autocast() -> contextlib.AbstractContextManager:
        return torch.autocast(device.type, dtype=dtype) if cast else contextlib.nullcontext()

    seconds: list[float] = []
    with backend_settings(config):
        for _ in range(1 + timed_epochs):
            started = time.perf_counter()
            order = torch.randperm(x.shape[0], device=device)
            for i in range(0, x.shape[0], config.batch_size):
                idx = order[i:i + config.batch_size]
                with autocast():
                    out = model(x[idx])
                loss = loss_fn(out.float(), y[idx])
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
            sync(device)
            seconds.append(time.perf_counter() - started)
    timed = sum(seconds[1:])
    return {"samples_per_s": rows.size * timed_epochs / timed, "seconds": timed,
            "peak_gpu_memory_bytes": peak_memory_bytes(device)}


def compare(arch: str, data: TaskDataset, config: TrainConfig, sizing: Sizing) -> dict[str, Any]:
    """Ours, then bare, on the same rows: samples/s of each, the ratio, peak memory."""
    device = select_device(config.device)
    rows, timed_epochs, probe = plan_rows(data, arch, config, device, sizing)
    mine = ours(arch, data, config, rows, timed_epochs)
    theirs = bare(arch, data, config, rows, timed_epochs)
    ratio = mine["samples_per_s"] / theirs["samples_per_s"]
    return {"arch": arch, "precision": config.precision, "batch_size": config.batch_size,
            "input_samples": samples_per_input(data.prep, config), "rows": int(rows.size),
            "timed_epochs": timed_epochs, "probe_samples_per_s": probe, "ours": mine, "bare": theirs,
            "ratio": ratio, "below_target": ratio < TARGET_RATIO}


class StepClock(Callback):
    """Times an epoch's training steps after the first `skip` (warm-up: cuDNN's first calls,
    the allocator's first blocks): the device is synchronised at the end of step `skip` and
    of the epoch's last step only, so the steps between run as in any fit."""

    def __init__(self, device: torch.device, skip: int) -> None:
        self.device, self.skip = device, skip
        self.started = self.seconds = math.nan
        self.steps = 0

    def on_step(self, epoch: int, step: int, n_steps: int) -> None:
        if step == self.skip:
            sync(self.device)
            self.started = time.perf_counter()
        elif step == n_steps and step > self.skip:
            sync(self.device)
            self.seconds, self.steps = time.perf_counter() - self.started, n_steps - self.skip


def trainer_speed(arch: str, data: TaskDataset, config: TrainConfig, sizing: Sizing) -> dict[str, Any]:
    """The trainer alone, for a preset's architecture at its own input shape and settings:
    one epoch of `fit` (whole batches, at least WARMUP_STEPS + 1), the steps after the first
    WARMUP_STEPS timed (`StepClock`). Steps only: a short epoch would otherwise be mostly
    best.pt, which for ResNet-101 is 117 MB, and a real epoch writes it once per 17,000 rows."""
    device = select_device(config.device)
    sizing = dataclasses.replace(sizing, min_batches=max(sizing.min_batches, WARMUP_STEPS + 1))
    rows, _, probe = plan_rows(data, arch, config, device, sizing)
    model = fresh_model(arch, data, samples_per_input(data.prep, config))
    clock = StepClock(device, WARMUP_STEPS)
    reset_peak(device)
    with tempfile.TemporaryDirectory() as folder:
        result = fit(model, data, dataclasses.replace(config, epochs=1, early_stopping_patience=None),
                     checkpoint_dir=folder, resume=False, train_index=rows, callbacks=[clock])
    if clock.steps == 0:
        raise EcgcoreError(f"{arch}: {rows.size} training rows make no step beyond the {WARMUP_STEPS} "
                           f"warm-up steps at batch {config.batch_size}")
    return {"arch": arch, "precision": result.precision, "batch_size": config.batch_size,
            "input_samples": samples_per_input(data.prep, config), "rows": int(rows.size), "timed_steps": clock.steps,
            "probe_samples_per_s": probe, "samples_per_s": clock.steps * config.batch_size / clock.seconds,
            "peak_gpu_memory_bytes": peak_memory_bytes(device), "speed": result.speed}
