"""`prepare`: key -> cache hit, or build the entry (in parallel) and publish it atomically.

The build allocates X for every record, lets `runner.run_chunks` fill it (chunks of
records, joblib/loky), then compacts away the rows of dropped records and writes the
status tables and, last, meta.json (see `cache` for the entry layout).
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ecgcore.data.prepare.cache import (
    STATUS_COLUMNS, Prepared, cache_key, new_temp_dir, open_entry, publish, remove_stale_temps, write_meta,
)
from ecgcore.data.prepare.config import PrepConfig
from ecgcore.data.prepare.per_record import window_length
from ecgcore.data.prepare.parallel import Progress, RowTarget, run_chunks
from ecgcore.data.recordset import Recordset
from ecgcore.errors import EcgcoreError



def prepare(recordset: Recordset, config: PrepConfig, cache_dir: Path | str, n_jobs: int = -1,
            progress: Progress | None = None, key_mode: str = "metadata") -> Prepared:
    """Preprocess every record of `recordset` into `cache_dir/<key>/` (see `cache`), or
    return the cached entry when the same files and settings were prepared before (no
    signal is read then). Records that cannot be used are dropped and reported in
    `Prepared.dropped` with their reason; if none is usable, EcgcoreError says why.

    n_jobs: 1 works in this process; k >= 2 uses k loky workers; -1 (default, and -2 …
    as in joblib) times the first chunk here and starts workers only when the rest of
    the work outweighs their start-up. `progress(done, total)` is called after each chunk.
    The output is the same whichever way the work was split."""
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    key = cache_key(recordset, config, key_mode)
    cached = open_entry(cache_dir / key)
    total = len(recordset)
    if cached is not None:
        if progress is not None:
            progress(total, total)
        return cached
    if total == 0:
        raise EcgcoreError(f"{recordset.name}: no readable records to prepare")
    remove_stale_temps(cache_dir)
    started = time.perf_counter()
    temp = new_temp_dir(cache_dir, key)
    try:
        table = recordset.table
        length = window_length(list(zip(table["fs"].tolist(), table["n_samples"].tolist())), config)
        shape = (total, len(config.leads), length)
        blank = np.lib.format.open_memmap(temp / "X.npy", mode="w+", dtype=np.float32, shape=shape)
        target = RowTarget(temp / "X.npy", blank.offset, shape[1:])
        del blank  # a sparse file of zeros, filled chunk by chunk
        infos = run_chunks(recordset, config, target, n_jobs, progress)
        kept = [i for i, info in enumerate(infos) if info["status"] == "ok"]
        if not kept:
            raise EcgcoreError(f"{recordset.name}: no record could be prepared; "
                               f"{_reason_summary(infos)}")
        if len(kept) < total:
            _compact(temp / "X.npy", kept)
        _write_tables(temp, recordset.record_ids, infos, kept)
        write_meta(temp, {
            "key": key, "key_mode": key_mode, "config": config.to_dict(),
            "shape": [len(kept), len(config.leads), length],
            "n_records": total, "n_kept": len(kept), "n_dropped": total - len(kept),
            **_flag_counts([infos[i] for i in kept]),
            "dataset": {"name": recordset.name, "layout": recordset.layout, "root": str(recordset.root)},
            "build_seconds": round(time.perf_counter() - started, 3),
        })
        final = publish(temp, cache_dir / key)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    entry = open_entry(final)
    if entry is None:
        raise EcgcoreError(f"prepared cache at {final} could not be opened after writing it")
    return entry


def _compact(x_path: Path, kept: list[int]) -> None:
    """Rewrite X with only the kept rows (only needed when something was dropped)."""
    full = np.load(x_path, mmap_mode="r")
    small_path = x_path.with_name("X.compact.npy")
    small = np.lib.format.open_memmap(small_path, mode="w+", dtype=np.float32,
                                      shape=(len(kept),) + full.shape[1:])
    step = 256
    for a in range(0, len(kept), step):
        small[a:a + step] = full[kept[a:a + step]]
    del small, full
    small_path.replace(x_path)


def _write_tables(folder: Path, record_ids: list[str], infos: list[dict[str, Any]],
                  kept: list[int]) -> None:
    row_of = {i: r for r, i in enumerate(kept)}
    rows = []
    for i, (rid, info) in enumerate(zip(record_ids, infos)):
        rows.append({
            "record_id": rid, "status": info["status"], "reason": info.get("reason", ""),
            "row": row_of.get(i, -1), "fs_in": info.get("fs_in", float("nan")),
            "n_samples_in": info.get("n_samples_in", -1), "n_valid": info.get("n_valid", 0),
            "padded": bool(info.get("padded", False)), "truncated": bool(info.get("truncated", False)),
            "nan_interpolated": info.get("nan_interpolated", 0),
            "nan_leads": "|".join(info.get("nan_leads", ())),
            "missing_leads": "|".join(info.get("missing_leads", ())),
        })
    pd.DataFrame(rows, columns=list(STATUS_COLUMNS)).to_csv(folder / "status.csv", index=False)
    (folder / "record_ids.json").write_text(json.dumps([record_ids[i] for i in kept]))
    np.save(folder / "lead_mask.npy", np.array([infos[i]["lead_mask"] for i in kept], dtype=bool))
    np.save(folder / "lengths.npy", np.array([infos[i]["n_valid"] for i in kept], dtype=np.int64))


def _flag_counts(kept: list[dict[str, Any]]) -> dict[str, int]:
    """How many kept records were padded, cut, NaN-repaired or missing leads (for meta.json)."""
    return {
        "n_padded": sum(bool(info["padded"]) for info in kept),
        "n_truncated": sum(bool(info["truncated"]) for info in kept),
        "n_nan_interpolated": sum(info["nan_interpolated"] > 0 or bool(info["nan_leads"]) for info in kept),
        "n_missing_leads": sum(bool(info["missing_leads"]) for info in kept),
    }


def _reason_summary(infos: list[dict[str, Any]], limit: int = 3) -> str:
    counts: dict[str, int] = {}
    for info in infos:
        counts[info.get("reason", "")] = counts.get(info.get("reason", ""), 0) + 1
    top = sorted(counts.items(), key=lambda kv: -kv[1])[:limit]
    return "; ".join(f"{n} x {reason}" for reason, n in top)
