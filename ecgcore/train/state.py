"""What the training loop carries from one epoch to the next (`LoopState`), and the
trainer's own files in the checkpoint folder that save it: `last.pt` (everything needed
to continue) and `best.pt` (the weights of the best validation epoch).

Both files are written atomically (a temp file in the same folder, then `os.replace`), so
a crash mid-write leaves the previous file intact, and both load with
`torch.load(weights_only=True)`: tensors and plain containers only. The model file a run
publishes (`model.pt`, with classes and preprocessing) is `ecgcore.checkpoint`'s job.

`last.pt` holds (format VERSION 1): format, version, config, next_epoch, step, bad_epochs,
stopped_early, model, optimizer, signature (the plan the optimizer was built for),
grad_scaler, rng (`rng_states`), history (the rows so far) and best ({auc, epoch, state}
plus phase, the strategy phase of the best epoch, once an epoch has been kept).
`best.pt` holds epoch, val_macro_auc and state_dict.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ecgcore.checkpoint import write_torch_atomic
from ecgcore.errors import EcgcoreError
from ecgcore.train.config import TrainConfig
from ecgcore.train.optimizers import Optimisation
from ecgcore.transfer.base import EpochPlan

FORMAT = "ecgcore-train-state"
VERSION = 1
LAST, BEST = "last.pt", "best.pt"

StateDict = dict[str, torch.Tensor]


@dataclass
class LoopState:
    """Where a fit stands after `next_epoch` epochs: what `last.pt` saves and a resume
    restores, plus the notes and the cancel flag of this call and its live optimizer.

    The best weights and the patience count belong to the strategy's last phase: earlier
    phases keep their latest weights as the best, and `start_phase` forgets them when the
    last phase begins. `best_phase` is None until an epoch has been kept.
    """

    history: list[dict[str, Any]] = field(default_factory=list)
    next_epoch: int = 0
    step: int = 0  # optimizer steps so far
    best_auc: float = -math.inf
    best_epoch: int | None = None
    best_state: StateDict | None = None  # on the CPU
    best_phase: int | None = None
    bad_epochs: int = 0  # last-phase epochs since the validation AUC last improved
    stopped_early: bool = False
    cancelled: bool = False
    notes: list[str] = field(default_factory=list)
    optimisation: Optimisation = field(default_factory=Optimisation)

    @classmethod
    def from_checkpoint(cls, saved: dict[str, Any], notes: list[str]) -> LoopState:
        """The state `last.pt` saved (`load_state`'s payload), but for the optimizer, which
        needs the plans to rebuild (`Optimisation.resume`)."""
        best = saved["best"]
        return cls(history=list(saved["history"]), next_epoch=saved["next_epoch"], step=saved["step"],
                   best_auc=best["auc"], best_epoch=best["epoch"], best_state=best["state"],
                   best_phase=best.get("phase"), bad_epochs=saved["bad_epochs"],
                   stopped_early=saved["stopped_early"], notes=notes)

    def start_phase(self, plan: EpochPlan) -> None:
        """When the strategy's last phase starts, the best weights and the patience become its own."""
        if plan.final_phase and self.best_phase is not None and self.best_phase != plan.phase_index:
            self.best_auc, self.best_epoch, self.best_state, self.best_phase = -math.inf, None, None, None
            self.bad_epochs = 0

    def judge(self, epoch: int, plan: EpochPlan, val_auc: float, has_val: bool, patience: int | None,
              model: nn.Module) -> bool:
        """Keep the best weights and count the patience after `epoch` (both within the
        strategy's last phase only); True when the model's weights became the best."""
        improved = plan.final_phase and has_val and not math.isnan(val_auc) and val_auc > self.best_auc
        kept = improved or self.best_epoch is None or not has_val or not plan.final_phase
        if kept:
            # the best so far; the latest when there is nothing to compare (no validation
            # set, no validation class with both labels yet, or an earlier phase)
            self.best_auc = val_auc if improved else self.best_auc
            self.best_epoch, self.best_phase = epoch, plan.phase_index
            self.best_state = cpu_copy(model.state_dict())
        if improved:
            self.bad_epochs = 0
        elif not math.isnan(val_auc) and plan.final_phase:
            self.bad_epochs += 1
        self.stopped_early = patience is not None and self.bad_epochs >= patience
        return kept

    def record(self, row: dict[str, Any]) -> None:
        """The epoch's history row: the epoch is done."""
        self.history.append(row)
        self.next_epoch = row["epoch"] + 1

    def cancel(self, note: str) -> None:
        self.cancelled = True
        self.notes.append(note)

    def best(self) -> dict[str, Any]:
        """The `best` entry of last.pt."""
        best: dict[str, Any] = {"auc": self.best_auc, "epoch": self.best_epoch, "state": self.best_state}
        if self.best_phase is not None:
            best["phase"] = self.best_phase
        return best

    def checkpoint(self, config: TrainConfig, model: nn.Module, grad_scaler: torch.amp.GradScaler,
                   generator: torch.Generator) -> dict[str, Any]:
        """The `last.pt` payload: everything a resume needs to continue bit for bit."""
        optimizer = self.optimisation.optimizer
        assert optimizer is not None, "a checkpoint is written after an epoch has trained"
        return {
            "format": FORMAT, "version": VERSION, "config": config.to_dict(),
            "next_epoch": self.next_epoch, "step": self.step, "bad_epochs": self.bad_epochs,
            "stopped_early": self.stopped_early, "model": model.state_dict(),
            "optimizer": optimizer.state_dict(), "signature": self.optimisation.signature,
            "grad_scaler": grad_scaler.state_dict(), "rng": rng_states(generator),
            "history": self.history, "best": self.best(),
        }


def cpu_copy(state: StateDict) -> StateDict:
    return {key: value.detach().to("cpu", copy=True) for key, value in state.items()}


def write_best(folder: Path, epoch: int, val_auc: float, state: StateDict) -> Path:
    """`best.pt`: the weights of the best epoch so far."""
    return atomic_save({"epoch": epoch, "val_macro_auc": val_auc, "state_dict": state}, folder / BEST)


def atomic_save(payload: dict[str, Any], path: Path) -> Path:
    """Temp file, fsync, rename (`ecgcore.checkpoint.write_torch_atomic`): a failed write
    (a full disk) raises an EcgcoreError naming the file and leaves the previous one intact."""
    return write_torch_atomic(payload, path)


def rng_states(generator: torch.Generator) -> dict[str, Any]:
    """Every random state the loop depends on: torch (dropout), the data generator
    (shuffles, crops), and numpy / python for code outside the loop that uses them."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "generator": generator.get_state(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "python": random.getstate(),
    }


def restore_rng_states(states: dict[str, Any], generator: torch.Generator) -> None:
    torch.set_rng_state(states["torch"])
    generator.set_state(states["generator"])
    saved = states["numpy"]
    np.random.set_state((saved["kind"], saved["keys"].numpy().astype(np.uint32), saved["pos"],
                         saved["has_gauss"], saved["cached"]))
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))


def load_state(path: Path, config: TrainConfig) -> dict[str, Any]:
    """Read `last.pt`; refuse a file from a different run (other settings than `config`)."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise EcgcoreError(f"{path}: cannot resume from it ({type(exc).__name__}: {exc})") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT or payload.get("version") != VERSION:
        raise EcgcoreError(f"{path}: not a training state written by ecgcore.train")
    differences = config.resume_differences(TrainConfig.from_dict(payload["config"]))
    if differences:
        raise EcgcoreError(f"{path}: written by a run with other settings ({', '.join(differences)}); "
                           f"resume=False starts over, or use another checkpoint folder")
    return payload
