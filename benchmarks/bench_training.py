"""Training overhead: our trainer (with its data pipeline) against a bare PyTorch loop,
and training samples/s per architecture.

    python benchmarks/bench_training.py [--scale 0.5] [--epochs 3] [--repeat 3] [--json]
    python benchmarks/bench_training.py --archs all --archs-only     # the per-architecture table

(1) Overhead. The same model (`small_cnn`, same init), the same training rows, batch size,
    optimizer and crop length, in one process, interleaved `--repeat` times (median):
      ours   `ecgcore.train.fit` on a TaskDataset built from the synthetic demo source:
             reads each batch from the memmap with `ds.batch(idx)` (standard scaler),
             random crops, the schedule, the callbacks hook, checkpoint files every epoch
             (no validation set, so no evaluation is timed)
      bare   ten lines: in-memory tensors (already scaled and cropped once), randperm,
             forward, BCEWithLogitsLoss, backward, Adam step
    and prints samples/s of both and the ratio ours/bare (target >= 0.9).
(2) Architectures. For each model, training samples/s (forward + backward + Adam step on
    random in-memory tensors, batch `--batch-size`) at 100 Hz for 2.5 s and 10 s windows.

The 2-core machine is shared, so numbers move between runs; the ratio in (1) is measured
with both loops interleaved so both see the same load.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path
from statistics import median
from typing import Any

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ecgcore.data.pipeline import SplitConfig, TaskDataset, build_dataset
from ecgcore.data.prepare.config import PrepConfig
from ecgcore.data.splits import Split
from ecgcore.models import create_model, list_models
from ecgcore.train import TrainConfig, fit

OUT = Path(__file__).resolve().parent / "out"
FS = 100


def demo_dataset(out: Path, scale: float) -> TaskDataset:
    """The synthetic demo source (PTB-XL layout) at `scale`, every record for training."""
    from ecgcore.data.synthetic import write_demo_data

    root = out / f"demo_{scale:g}"
    if not (root / "source_ptbxl").is_dir():
        write_demo_data(root, seed=0, scale=scale)
    ds = build_dataset(root / "source_ptbxl", "ptbxl_superdiagnostic",
                       PrepConfig(fs=FS, seconds=10, normalize="standard"), SplitConfig(),
                       out / "cache", n_jobs=1)
    every = np.arange(len(ds), dtype=np.int64)
    empty = np.array([], dtype=np.int64)
    return dataclasses.replace(ds, split=Split(train=every, val=empty, test=empty, method="all"))


def ours(ds: TaskDataset, config: TrainConfig, crop: int) -> float:
    torch.manual_seed(0)
    model = create_model("small_cnn", n_classes=ds.y.shape[1], n_samples=crop)
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        result = fit(model, ds, config, checkpoint_dir=folder, resume=False)
        seconds = time.perf_counter() - start
    return result.epochs_run * ds.split.train.size / seconds


def bare(ds: TaskDataset, config: TrainConfig, crop: int) -> float:
    torch.manual_seed(0)
    model = create_model("small_cnn", n_classes=ds.y.shape[1], n_samples=crop)
    X = torch.from_numpy(ds.batch(ds.split.train)[:, :, :crop].copy())
    Y = torch.from_numpy(ds.y[ds.split.train].astype(np.float32))
    # --- the bare loop ---
    start = time.perf_counter()
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    loss_fn = nn.BCEWithLogitsLoss()
    model.train()
    for _ in range(config.epochs):
        order = torch.randperm(X.shape[0])
        for i in range(0, X.shape[0], config.batch_size):
            idx = order[i:i + config.batch_size]
            loss = loss_fn(model(X[idx]), Y[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return config.epochs * X.shape[0] / (time.perf_counter() - start)


def overhead(ds: TaskDataset, epochs: int, repeat: int, batch_size: int, crop_seconds: float) -> dict[str, Any]:
    config = TrainConfig(epochs=epochs, batch_size=batch_size, crop_seconds=crop_seconds,
                         early_stopping_patience=None)
    crop = round(crop_seconds * FS)
    ours_runs, bare_runs = [], []
    for _ in range(repeat):  # interleaved: both loops see the same machine load
        bare_runs.append(bare(ds, config, crop))
        ours_runs.append(ours(ds, config, crop))
    o, b = median(ours_runs), median(bare_runs)
    return {"records": int(ds.split.train.size), "epochs": epochs, "batch_size": batch_size,
            "crop_seconds": crop_seconds, "ours_samples_per_s": o, "bare_samples_per_s": b,
            "ratio": o / b, "ours_runs": ours_runs, "bare_runs": bare_runs}


def architecture_speed(name: str, seconds: float, batch_size: int, budget: float = 3.0) -> float:
    """Training samples/s of one architecture on random tensors (after one warm-up step)."""
    n = round(seconds * FS)
    torch.manual_seed(0)
    model = create_model(name, n_classes=5, n_samples=n).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.BCEWithLogitsLoss()
    x, y = torch.randn(batch_size, 12, n), torch.randint(0, 2, (batch_size, 5)).float()

    def step() -> None:
        loss = loss_fn(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    step()
    steps, start = 0, time.perf_counter()
    while steps < 2 or (time.perf_counter() - start < budget and steps < 20):
        step()
        steps += 1
    return steps * batch_size / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=0.5, help="demo data scale (default 0.5)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--crop-seconds", type=float, default=2.5)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--archs", default="", help="comma-separated models for the speed table, or 'all'")
    parser.add_argument("--archs-only", action="store_true", help="skip the overhead comparison")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    report: dict[str, Any] = {"torch_threads": torch.get_num_threads()}
    if not args.archs_only:
        ds = demo_dataset(args.out, args.scale)
        report["overhead"] = overhead(ds, args.epochs, args.repeat, args.batch_size, args.crop_seconds)
    names = list(list_models()) if args.archs == "all" else [a for a in args.archs.split(",") if a]
    report["architectures"] = {name: {f"{s:g}s": architecture_speed(name, s, args.batch_size)
                                      for s in (2.5, 10.0)} for name in names}

    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    if "overhead" in report:
        o = report["overhead"]
        print(f"small_cnn, {o['records']} records x {o['epochs']} epochs, batch {o['batch_size']}, "
              f"{o['crop_seconds']:g} s crops, {report['torch_threads']} threads, median of {args.repeat}")
        print(f"  ours (fit, memmap + crops + checkpoints)  {o['ours_samples_per_s']:9.0f} samples/s")
        print(f"  bare loop (in-memory tensors)             {o['bare_samples_per_s']:9.0f} samples/s")
        print(f"  ratio ours / bare                          {o['ratio']:9.3f}   (target >= 0.9)")
    if report["architectures"]:
        print(f"\ntraining samples/s at {FS} Hz, batch {args.batch_size}")
        print(f"{'architecture':<16}{'2.5 s':>10}{'10 s':>10}")
        for name, speeds in report["architectures"].items():
            print(f"{name:<16}{speeds['2.5s']:>10.1f}{speeds['10s']:>10.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
