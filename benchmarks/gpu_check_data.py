"""The device check's data: a PTB-XL-scale prepared cache written directly, no WFDB files.

`synthetic_dataset(folder, n_records, fs)` writes `X.npy` as the prepared cache holds it
(float32 (n, 12, T), opened back as a read-only memmap, ecgcore.data.prepare.cache) and
wraps it in a `TaskDataset` the trainer takes as it takes a prepared PTB-XL: a table with
patient ids and folds 1-10, five superdiagnostic-like classes, folds 1-8 for training, and
a standard scaler fitted on the training rows (the PTB-XL benchmark's preprocessing).

The signals are learnable, so the trainer does real work on them: every record is a
rhythm (a fundamental between 0.8 and 1.8 Hz and two harmonics, lead gains fixed) plus,
for each class it has, that class's own sinusoid (a frequency of its own, a lead pattern
of its own) anywhere in a random 2.5 s crop, plus Gaussian noise. Labels are drawn at
PTB-XL-like prevalences (NORM about 44 %; otherwise MI, STTC, HYP, CD independently, at
least one). Everything is vectorised numpy in chunks of rows, so 21,799 records (1.05 GB)
take seconds, and deterministic by seed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ecgcore.data.labels import Task
from ecgcore.data.pipeline import SplitConfig, TaskDataset
from ecgcore.data.prepare.config import PrepConfig
from ecgcore.data.splits import Split

PTBXL_RECORDS = 21_799  # PTB-XL 1.0.3
N_LEADS = 12
CLASSES: tuple[str, ...] = ("NORM", "MI", "STTC", "HYP", "CD")
# Given "not NORM", each abnormal class independently (PTB-XL's superdiagnostic mix, roughly).
NORM_SHARE = 0.44
ABNORMAL_SHARES = np.array([0.45, 0.43, 0.21, 0.40])
CLASS_HZ = np.array([5.0, 7.5, 11.0, 14.0, 17.5])  # below 50 Hz: every rate >= 100 Hz keeps them
NOISE_SD = 0.3
TRAIN_FOLDS = tuple(range(1, 9))
CHUNK_ROWS = 1024


def synthetic_labels(n: int, rng: np.random.Generator) -> np.ndarray:
    """(n, 5) uint8: NORM alone, or at least one of the four abnormal classes."""
    y = np.zeros((n, len(CLASSES)), dtype=np.uint8)
    norm = rng.random(n) < NORM_SHARE
    y[norm, 0] = 1
    abnormal = rng.random((n, len(ABNORMAL_SHARES))) < ABNORMAL_SHARES
    none = ~abnormal.any(axis=1)
    abnormal[none, rng.integers(0, len(ABNORMAL_SHARES), none.sum())] = True
    y[~norm, 1:] = abnormal[~norm]
    return y


def synthetic_signals(y: np.ndarray, fs: float, n_samples: int, rng: np.random.Generator,
                      lead_gains: np.ndarray, class_leads: np.ndarray) -> np.ndarray:
    """(len(y), 12, n_samples) float32 signals of these labels (see the module's docstring)."""
    n = y.shape[0]
    t = (np.arange(n_samples, dtype=np.float32) / np.float32(fs))[None, None, :]
    f0 = rng.uniform(0.8, 1.8, (n, 1, 1)).astype(np.float32)
    phase = rng.uniform(0, 2 * np.pi, (n, 1, 1)).astype(np.float32)
    rhythm = sum(np.sin(2 * np.pi * k * f0 * t + k * phase) / k for k in (1, 2, 3))  # (n, 1, T)
    x = rhythm * lead_gains[None, :, None]
    class_phase = rng.uniform(0, 2 * np.pi, (n, len(CLASSES), 1)).astype(np.float32)
    waves = np.sin(2 * np.pi * CLASS_HZ[None, :, None].astype(np.float32) * t + class_phase)
    waves *= y[:, :, None]  # (n, classes, T): only the classes a record has
    x += np.einsum("nkt,kl->nlt", waves, class_leads, optimize=True)
    x += rng.standard_normal(x.shape, dtype=np.float32) * np.float32(NOISE_SD)
    return x.astype(np.float32, copy=False)


def synthetic_dataset(folder: Path, n_records: int, fs: float = 100.0, seconds: float = 10.0,
                      seed: int = 0) -> TaskDataset:
    """Write `folder/X.npy` (n_records x 12 x round(seconds * fs) float32) and return the
    TaskDataset around its read-only memmap (no validation rows: the check times training)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    n_samples = round(seconds * fs)
    lead_gains = rng.uniform(0.5, 1.5, N_LEADS).astype(np.float32)
    class_leads = rng.uniform(0.0, 0.8, (len(CLASSES), N_LEADS)).astype(np.float32)
    y = synthetic_labels(n_records, rng)
    folds = 1 + np.arange(n_records) % 10
    train = np.flatnonzero(np.isin(folds, TRAIN_FOLDS))

    blank = np.lib.format.open_memmap(folder / "X.npy", mode="w+", dtype=np.float32,
                                      shape=(n_records, N_LEADS, n_samples))
    sums = np.zeros((2, N_LEADS))  # per lead: sum and sum of squares over the training rows
    for start in range(0, n_records, CHUNK_ROWS):
        rows = slice(start, min(start + CHUNK_ROWS, n_records))
        x = synthetic_signals(y[rows], fs, n_samples, rng, lead_gains, class_leads)
        blank[rows] = x
        in_train = np.isin(folds[rows], TRAIN_FOLDS)
        sums[0] += x[in_train].sum(axis=(0, 2), dtype=np.float64)
        sums[1] += np.square(x[in_train], dtype=np.float64).sum(axis=(0, 2))
    blank.flush()
    del blank
    count = train.size * n_samples
    mean = sums[0] / count
    std = np.sqrt(np.maximum(sums[1] / count - mean ** 2, 0.0))
    std[std == 0] = 1.0

    record_ids = [f"{i + 1:05d}" for i in range(n_records)]
    table = pd.DataFrame({"patient_id": [f"p{i // 2:05d}" for i in range(n_records)],  # two records a patient
                          "fold": folds, "fs": fs, "n_samples": n_samples},
                         index=pd.Index(record_ids, name="record_id"))
    task = Task(name="synthetic_superdiagnostic", classes=CLASSES, space="scp",
                mapping={c: (c,) for c in CLASSES},
                description="five superdiagnostic-like classes of the device check's synthetic cache")
    empty = np.zeros(0, dtype=np.int64)
    split = Split(train=train, val=empty, test=np.flatnonzero(~np.isin(folds, TRAIN_FOLDS)),
                  method="official", notes="synthetic folds 1-8 train, 9-10 test; no validation rows")
    return TaskDataset(
        X=np.load(folder / "X.npy", mmap_mode="r"), y=y, classes=CLASSES, class_names=CLASSES,
        record_ids=record_ids, split=split, dropped={}, table=table, task=task,
        prep=PrepConfig(fs=fs, seconds=seconds, normalize="standard"),
        split_config=SplitConfig(method="official"), name=f"synthetic_{n_records}_{fs:g}hz",
        layout="synthetic", root=str(folder), scaler=(mean, std), cache_path=str(folder))
