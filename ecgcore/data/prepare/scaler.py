"""The dataset-level standard scaler (normalize="standard").

It needs the split, so `prepare` does not apply it: fit it on the training rows
only (no statistic of validation or test data may leak into training), then apply
it to every batch. As in the PTB-XL benchmark (Strodthoff et al. 2021), which fits
ONE sklearn StandardScaler over all training samples, the statistics here are per
lead over every training sample and time step. Padding can be excluded by passing
the cache's `lengths`.
"""

from __future__ import annotations

import numpy as np

CHUNK_RECORDS = 256


def fit_standard_scaler(X: np.ndarray, train_index: np.ndarray | list[int],
                        lengths: np.ndarray | None = None,
                        chunk: int = CHUNK_RECORDS) -> tuple[np.ndarray, np.ndarray]:
    """Per-lead mean and std (float64, shape (n_leads,)) over the rows `train_index` of
    X (n_records, n_leads, T), streamed in chunks so a memmap is never loaded whole.
    With `lengths`, only each row's first lengths[i] samples count. Chunks are merged
    with Chan et al.'s pairwise update (stable where sum-of-squares is not). A lead with
    zero variance gets std 1, so applying the scaler never divides by zero."""
    index = np.sort(np.asarray(train_index, dtype=np.int64))
    if index.size == 0:
        raise ValueError("fit_standard_scaler needs at least one training record")
    n_leads, t = X.shape[1], X.shape[2]
    count = np.zeros(n_leads)
    mean = np.zeros(n_leads)
    m2 = np.zeros(n_leads)
    for a in range(0, index.size, chunk):
        rows = index[a:a + chunk]
        block = np.asarray(X[rows], dtype=np.float64)  # (b, n_leads, T)
        if lengths is None:
            n_b = np.full(n_leads, float(block.shape[0] * t))
            mean_b = block.mean(axis=(0, 2))
            m2_b = ((block - mean_b[None, :, None]) ** 2).sum(axis=(0, 2))
        else:
            valid = np.arange(t)[None, :] < np.asarray(lengths)[rows][:, None]  # (b, T)
            weight = np.broadcast_to(valid[:, None, :], block.shape)
            n_b = np.full(n_leads, float(valid.sum()))
            if n_b[0] == 0:
                continue
            mean_b = (block * weight).sum(axis=(0, 2)) / n_b
            m2_b = (((block - mean_b[None, :, None]) ** 2) * weight).sum(axis=(0, 2))
        total = count + n_b
        delta = mean_b - mean
        mean = mean + delta * n_b / total
        m2 = m2 + m2_b + delta ** 2 * count * n_b / total
        count = total
    if count[0] == 0:
        raise ValueError("fit_standard_scaler: the training rows hold no valid samples")
    std = np.sqrt(m2 / count)
    std[std < 1e-12] = 1.0
    return mean, std


def apply_standard_scaler(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """(x - mean) / std per lead, for one record (n_leads, T) or a batch (b, n_leads, T);
    returns a new float32 array. float32 arithmetic (the statistics are fitted in float64):
    this runs on every training batch, where float64 cost three times as much."""
    mean = np.asarray(mean, dtype=np.float32)[:, None]
    scale = (1.0 / np.asarray(std, dtype=np.float64)).astype(np.float32)[:, None]
    out = np.array(x, dtype=np.float32)  # a copy: the caller's array is never changed
    out -= mean
    out *= scale
    return out
