"""Preprocessing and the prepared-array cache (`ecgcore.data.prepare`).

    from ecgcore.data.prepare import PrepConfig, prepare
    prepared = prepare(recordset, PrepConfig(fs=100, seconds=10), cache_dir)
    prepared.X            # read-only float32 memmap (n_records, 12, T), leads first
    prepared.record_ids   # the record of each row
    prepared.dropped      # {record: reason} for records that could not be used

Modules: `config` (PrepConfig), `signal_ops` (pure per-array steps), `per_record` (one
record through the pipeline), `parallel` (chunks, joblib scheduling), `cache` (key,
entries, atomic publish), `build` (`prepare`), `scaler` (train-only standard scaler).
"""

from ecgcore.data.prepare.build import prepare
from ecgcore.data.prepare.cache import Prepared, cache_key, open_entry
from ecgcore.data.prepare.config import PrepConfig
from ecgcore.data.prepare.scaler import apply_standard_scaler, fit_standard_scaler

__all__ = [
    "PrepConfig", "Prepared", "prepare", "cache_key", "open_entry",
    "fit_standard_scaler", "apply_standard_scaler",
]
