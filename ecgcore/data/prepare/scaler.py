"""The dataset-level standard scaler (normalize="standard").

It needs the split, so `prepare` does not apply it: fit it on the training rows
only (no statistic of validation or test data may leak into training), then apply
it to every batch. As in the PTB-XL benchmark (Strodthoff et al. 2021), ONE sklearn
StandardScaler is fitted over all training samples: per lead over every training sample
and time step. Padding can be excluded by passing the cache's `lengths`.
"""

from __future__ import annotations

import numpy as np

CHUNK_RECORDS = 256


def fit_standard_scaler(X: np.ndarray, train_index: np.ndarray | list[int],
                        lengths: np.ndarray | None = None,
                        chunk: int = CHUNK_RECORDS) -> tuple[np.ndarray, np.ndarray]:
    """Per-lead mean and std (float64, shape (n_leads,)) over the rows `train_index` of
    X (n_records, n_leads, T): scikit-learn's StandardScaler, fed every (sample, lead)
    in chunks of rows (`partial_fit`) so a memmap is never loaded whole. With `lengths`,
    only each row's first lengths[i] samples count. A lead with zero variance gets
    std 1, so applying the scaler never divides by zero."""
    index = np.sort(np.asarray(train_index, dtype=np.int64))
    if index.size == 0:
        raise ValueError("fit_standard_scaler needs at least one training record")
    from sklearn.preprocessing import StandardScaler  # here: a job process needs it only to fit

    n_leads, t = X.shape[1], X.shape[2]
    scaler = StandardScaler()
    for a in range(0, index.size, chunk):
        rows = index[a:a + chunk]
        samples = np.asarray(X[rows]).transpose(0, 2, 1)  # (b, T, n_leads)
        if lengths is None:
            samples = samples.reshape(-1, n_leads)
        else:
            samples = samples[np.arange(t)[None, :] < np.asarray(lengths)[rows][:, None]]
        if len(samples):
            scaler.partial_fit(samples)
    if not hasattr(scaler, "mean_"):
        raise ValueError("fit_standard_scaler: the training rows hold no valid samples")
    return scaler.mean_.astype(np.float64), scaler.scale_.astype(np.float64)


# Kept by hand, not StandardScaler.transform: (batch, leads, T) in float32 on every batch, no transpose.
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
