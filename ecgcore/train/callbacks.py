"""Hooks the trainer calls, so the CLI, the run store and the job queue can watch and
cancel a run without the loop knowing about any of them.

A callback subclasses `Callback` and overrides what it needs:
- `on_step(epoch, step, n_steps)` after every optimizer step,
- `on_epoch_end(row)` with the epoch's history row (after `last.pt` is written),
- `should_stop()` polled after every step and epoch: True cancels the run (the current
  epoch is abandoned; `last.pt` still holds the previous one, so `resume` continues).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any, TextIO

from tqdm import tqdm


class Callback:
    """No-op base: override any of the three hooks."""

    def on_step(self, epoch: int, step: int, n_steps: int) -> None:
        return None

    def on_epoch_end(self, row: dict[str, Any]) -> None:
        return None

    def should_stop(self) -> bool:
        return False


class Callbacks(Callback):
    """Several callbacks as one; stop when any asks to."""

    def __init__(self, callbacks: Sequence[Callback] = ()) -> None:
        self.callbacks = list(callbacks)

    def on_step(self, epoch: int, step: int, n_steps: int) -> None:
        for callback in self.callbacks:
            callback.on_step(epoch, step, n_steps)

    def on_epoch_end(self, row: dict[str, Any]) -> None:
        for callback in self.callbacks:
            callback.on_epoch_end(row)

    def should_stop(self) -> bool:
        return any(callback.should_stop() for callback in self.callbacks)


class ProgressBar(Callback):
    """A tqdm bar over each epoch's steps for the CLI (on stderr), and one line per epoch
    with its losses and validation AUC:

        epoch 3/20: 100%|██████████| 24/24 [00:04<00:00, 5.9 step/s]
        epoch 3/20 train_loss 0.2871 val_loss 0.3012 val_macro_auc 0.8123 (4.1 s)
    """

    def __init__(self, epochs: int | None = None, stream: TextIO | None = None,
                 min_interval: float = 0.1) -> None:
        self.epochs = epochs
        self.stream = stream
        self.min_interval = min_interval
        self._bar: tqdm | None = None

    def on_step(self, epoch: int, step: int, n_steps: int) -> None:
        if self._bar is None or self._bar.total != n_steps or step < self._bar.n:
            self._close()
            self._bar = tqdm(total=n_steps, desc=self._epoch(epoch), unit="step",
                             file=self.stream if self.stream is not None else sys.stderr,
                             mininterval=self.min_interval, leave=False, dynamic_ncols=True)
        self._bar.update(step - self._bar.n)

    def on_epoch_end(self, row: dict[str, Any]) -> None:
        self._close()
        parts = [f"{key} {row[key]:.4f}" for key in ("train_loss", "val_loss", "val_macro_auc")
                 if isinstance(row.get(key), float)]
        tqdm.write(f"{self._epoch(row['epoch'])} {' '.join(parts)} ({row['seconds']:.1f} s)",
                   file=self.stream if self.stream is not None else sys.stderr)

    def _epoch(self, epoch: int) -> str:
        return f"epoch {epoch + 1}" + (f"/{self.epochs}" if self.epochs else "")

    def _close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
