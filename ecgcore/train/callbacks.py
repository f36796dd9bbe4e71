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
import time
from collections.abc import Sequence
from typing import Any, TextIO


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
    """A plain text bar on stderr for the CLI (tqdm is not a dependency):

        epoch 3/20 [##########----------] 12/24
        epoch 3/20 train_loss 0.2871 val_loss 0.3012 val_macro_auc 0.8123 (4.1 s)
    """

    def __init__(self, epochs: int, stream: TextIO | None = None, width: int = 30,
                 min_interval: float = 0.1) -> None:
        self.epochs = epochs
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self.min_interval = min_interval
        self._last = 0.0

    def on_step(self, epoch: int, step: int, n_steps: int) -> None:
        now = time.monotonic()
        if step < n_steps and now - self._last < self.min_interval:
            return
        self._last = now
        done = int(self.width * step / max(n_steps, 1))
        bar = "#" * done + "-" * (self.width - done)
        self.stream.write(f"\repoch {epoch + 1}/{self.epochs} [{bar}] {step}/{n_steps}")
        self.stream.flush()

    def on_epoch_end(self, row: dict[str, Any]) -> None:
        parts = [f"{key} {row[key]:.4f}" for key in ("train_loss", "val_loss", "val_macro_auc")
                 if isinstance(row.get(key), float)]
        self.stream.write(f"\repoch {row['epoch'] + 1}/{self.epochs} {' '.join(parts)} "
                          f"({row['seconds']:.1f} s)\n")
        self.stream.flush()
