"""The device check's projection: how long each paper preset would train on this device.

Every run of the four presets is planned with the experiments code (`run --dry-run`'s plan:
`bench_ptbxl_scale.plan_all`, in an empty workspace, so no data is needed) and costs

    epochs x training records / samples/s

where samples/s is the trainer's, measured here for the run's architecture at its input
shape (samples per training input) and batch size, in float32 as every preset trains.
Assumptions (so: the hours of the training steps alone, with every epoch run):
- every run trains all its epochs (no early stopping: the `ours` protocols and the
  benchmark's patience usually stop sooner); a strategy that trains nothing (source_only)
  costs 0;
- training records from the published dataset sizes (`bench_ptbxl_scale.DATASET_RECORDS`:
  PTB-XL 1.0.3 21,799; CPSC2018 6,871, Georgia 10,292, PTB 522, CODE-test 827 as
  /work/shared/REFERENCES.md counts them after the paper's drops; Challenge 2021 without
  PTB-XL 88,253 - 21,837 = 66,416, REPRODUCING.md) through each run's split (`bench_ptbxl_scale.split_sizes`:
  official folds, the paper's 0.33 test share, or the val/test fractions; then the
  training fraction or size);
- validation, test scoring, data preparation and each job's start are not counted;
- runs go one after another on one GPU (several runs per GPU would overlap them).
"""

from __future__ import annotations

import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_ptbxl_scale import DATASET_RECORDS, plan_all, split_sizes

from ecgcore.train import TrainConfig
from ecgcore.transfer import STRATEGIES
from ecgcore.views.launch.estimate import samples_per_input

SpeedKey = tuple[str, int, int]  # architecture, samples per training input, batch size


@dataclass(frozen=True)
class PresetRun:
    """One planned run, reduced to what its training time depends on."""

    preset: str  # "nguyen2025_grid [paper_exact]"
    arch: str
    input_samples: int
    fs: float
    seconds: float
    train: TrainConfig
    epochs: int  # epochs that train (0 for a strategy that trains nothing)
    n_train: int

    @property
    def key(self) -> SpeedKey:
        return (self.arch, self.input_samples, self.train.batch_size)


def preset_runs() -> list[PresetRun]:
    """Every run of the four paper presets (pretraining included), in plan order."""
    runs = []
    for preset, spec in plan_all():
        config, typed = spec.config, spec.run_config
        protocol = config.get("protocol")
        label = preset if protocol in (None, preset) else f"{preset} [{protocol}]"
        n_train, _, _ = split_sizes(config, DATASET_RECORDS[Path(config["data"]["dataset"]).name])
        trains = spec.kind == "pretrain" or STRATEGIES[config["strategy"]].trains
        runs.append(PresetRun(preset=label, arch=typed.model.arch,
                              input_samples=samples_per_input(typed.prep, typed.train),
                              fs=float(typed.prep.fs), seconds=float(typed.prep.seconds), train=typed.train,
                              epochs=typed.train.epochs if trains else 0, n_train=n_train))
    return runs


def speeds_needed(runs: list[PresetRun]) -> dict[SpeedKey, PresetRun]:
    """One run per (architecture, input samples, batch size): the one to measure it with."""
    needed: dict[SpeedKey, PresetRun] = {}
    for run in runs:
        needed.setdefault(run.key, run)
    return needed


def project(runs: list[PresetRun], speeds: dict[SpeedKey, float]) -> dict[str, dict[str, Any]]:
    """Per preset: runs, training sample-epochs, and hours at the measured samples/s."""
    out: dict[str, dict[str, Any]] = defaultdict(lambda: {"runs": 0, "sample_epochs": 0, "seconds": 0.0})
    for run in runs:
        entry = out[run.preset]
        work = run.epochs * run.n_train
        entry["runs"] += 1
        entry["sample_epochs"] += work
        entry["seconds"] += work / speeds[run.key]
    for entry in out.values():
        entry["hours"] = entry["seconds"] / 3600
    return dict(out)
