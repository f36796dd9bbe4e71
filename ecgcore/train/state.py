"""The trainer's own files in the checkpoint folder: `last.pt` (everything needed to
continue) and `best.pt` (the weights of the best validation epoch).

Both are written atomically (a temp file in the same folder, then `os.replace`), so a
crash mid-write leaves the previous file intact, and both load with
`torch.load(weights_only=True)`: tensors and plain containers only. The model file a run
publishes (`model.pt`, with classes and preprocessing) is `ecgcore.checkpoint`'s job.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ecgcore.checkpoint import write_torch_atomic
from ecgcore.errors import EcgcoreError
from ecgcore.train.config import TrainConfig

FORMAT = "ecgcore-train-state"
VERSION = 1


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
