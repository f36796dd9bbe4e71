"""Which recording a record is, whatever its dataset's name or file format.

The same ECG sits in several public datasets: the PhysioNet/CinC Challenge 2021 data
re-issue CPSC2018 (`A*`), CPSC-Extra (`Q*`), INCART (`I*`), PTB (`S*`), PTB-XL (`HR*`),
Georgia (`E*`) and Chapman-Shaoxing/Ningbo (`JS*`) under their own names and as MATLAB
files. A model pretrained on the Challenge data has therefore seen those recordings,
however the target dataset names or stores them. Two identities catch that:

By name, `public_id`: a record id -> "<public dataset>:<number>" when the record is
known to be one of a public dataset's recordings: a Challenge record by its prefix
(`SOURCES`; "A0001" in a Challenge-layout folder -> "CPSC2018:1"), a PTB-XL record by its
ecg_id (layout "ptbxl" or a dataset named PTB-XL; "HR00001" anywhere), and a prefixed id in
a folder whose name says which dataset it is ("A0001" in `cpsc2018/`, "I01" in `incart/`)
or that it is Challenge data (`cinc2021/`, for a checkpoint that recorded no layout).
PTB's native names (patient001/s0010_re) have no published map to the Challenge's S ids:
those are found by signal only.

By signal, `signal_fingerprint`: a set of band hashes of a canonical excerpt, equal for
two copies of one recording in any format, gain or rate. The excerpt: leads I and II
(by name, any spelling; the first lead when neither is there), resampled to 100 Hz
(scipy's polyphase filter, as `prepare` does), seconds 0.5-8.5 (the first half second
is left out: resampling filters differ most at the edges), each lead minus its median
(a baseline offset between formats changes nothing), in steps of 0.1 mV. Each 0.25 s
band of a lead is hashed with its lead and position (blake2b, 32 bits); bands spanning
fewer than 3 steps (flat: baseline, a dead lead) are left out, since flat bands of
different recordings are alike. Two records match when they share at least
`MIN_SHARED` bands and at least `MIN_SHARED_FRACTION` of the smaller record's bands.

Why bands and not one hash of the whole excerpt: a sample that lies near a step
boundary rounds differently after a gain change (the Challenge stores PTB's 2000/mV
records at 1000/mV) or another resampler, which would change a whole-excerpt hash;
it changes only the one band holding it. Measured on the 270 real records in
../shared/data (Challenge CPSC, PTB-XL, PTB, Georgia, Chapman, LUDB): no two different
records share even one band; rewriting every record at 200/mV (5 uV steps) keeps at
least half of its bands (median 85 %), a 1 uV rounding plus a 0.3 mV offset at least
74 %, and a 100 Hz copy made by another resampler (scipy's FIR decimate) at least 60 %.

Fingerprints cost one read of each record (about 3 ms); `dataset_fingerprints` keeps
them per dataset folder in `<cache>/fingerprints/`, each record keyed by its files'
paths, sizes and modification times (as the prepared-array cache keys its entries), so
a record is read once however many runs, subsets and tasks use it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ecgcore.data.prepare.cache import file_stamp
from ecgcore.data.prepare.signal_ops import canonical_lead, interpolate_nonfinite, lead_indices, resample
from ecgcore.data.recordset import Recordset, Signal
from ecgcore.data.sources.challenge import SOURCES

# ------------------------------------------------------------------ identity by name

_PREFIXED = re.compile(r"^(HR|JS|A|Q|E|S|I)0*(\d+)$", re.IGNORECASE)
_PTBXL_ID = re.compile(r"^0*(\d+)(?:_[hl]r)?$", re.IGNORECASE)
PTBXL = SOURCES["HR"]
# What a dataset's name says it is (letters and digits only, lower case): the public
# dataset's own name and the names its folders go by.
DATASET_NAMES: dict[str, tuple[str, ...]] = {
    "CPSC2018": ("cpsc", "icbeb"),
    "CPSC-Extra": ("cpsc",),
    "INCART": ("incart", "stpetersburg"),
    "PTB": ("ptb",),
    "PTB-XL": ("ptbxl",),
    "Georgia": ("georgia", "g12ec"),
    "Chapman-Shaoxing/Ningbo": ("chapman", "shaoxing", "ningbo", "ecgarrhythmia"),
}
CHALLENGE_NAMES: tuple[str, ...] = ("cinc", "challenge")


def _letters(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def names_dataset(name: str, public: str) -> bool:
    """True when a dataset name says it is the public dataset `public` ("cpsc2018" ->
    CPSC2018; "ptb" is PTB but "ptbxl" is not)."""
    text = _letters(name)
    if public == "PTB":
        return "ptb" in text.replace("ptbxl", "")
    return any(alias in text for alias in DATASET_NAMES.get(public, ()))


def names_challenge(name: str) -> bool:
    """True when a dataset name says it is Challenge data ("cinc2021", "challenge2020"):
    its prefixed record names are then the Challenge's."""
    text = _letters(name)
    return any(word in text for word in CHALLENGE_NAMES)


def public_id(record_id: str, dataset: str, layout: str = "") -> str | None:
    """The public recording a record is, as "<dataset>:<number>" ("PTB-XL:1",
    "CPSC2018:1"), or None when its name does not say (see the module docstring)."""
    name = str(record_id).strip().replace("\\", "/").rsplit("/", 1)[-1]
    match = _PREFIXED.match(name)
    if match:
        public = SOURCES[match.group(1).upper()]
        named = names_challenge(dataset) or names_dataset(dataset, public)
        if public == PTBXL or layout == "challenge" or named:
            return f"{public}:{int(match.group(2))}"
        return None
    is_ptbxl = layout == "ptbxl" if layout else names_dataset(dataset, PTBXL)
    if is_ptbxl:
        digits = _PTBXL_ID.match(name)
        if digits:
            return f"{PTBXL}:{int(digits.group(1))}"
    return None


# ------------------------------------------------------------------ identity by signal

FINGERPRINT_VERSION = 1  # bump whenever a constant below or the excerpt changes
FS = 100.0
SKIP_SECONDS = 0.5
SECONDS = 8.0
STEP_MV = 0.1
BAND = 25  # samples at FS: 0.25 s
MIN_LEVELS = 3  # a band spanning fewer steps is flat
LEADS: tuple[str, ...] = ("I", "II")
MIN_SHARED = 2
MIN_SHARED_FRACTION = 0.25
_MARGIN_SECONDS = 1.0  # read past the excerpt so the resampler's end effects stay outside it


def signal_fingerprint(signal: Signal) -> np.ndarray:
    """The record's band hashes (sorted int32, possibly empty: a flat or very short
    record has none and matches nothing by signal)."""
    data = np.asarray(signal.data)
    if data.ndim != 2 or data.shape[0] == 0 or signal.fs <= 0:
        return np.zeros(0, np.int32)
    leads = tuple(signal.leads)
    chosen = [(name, i) for name, i in zip(LEADS, lead_indices(leads, LEADS)) if i >= 0]
    if not chosen:
        chosen = [(canonical_lead(leads[0]) if leads else "0", 0)]
    stop = int(np.ceil((SKIP_SECONDS + SECONDS + _MARGIN_SECONDS) * signal.fs))
    rows = np.asarray(data[[i for _, i in chosen], :stop], dtype=np.float32)
    rows, _, _ = interpolate_nonfinite(rows)
    rows = resample(rows, float(signal.fs), FS).astype(np.float64)
    start = int(round(SKIP_SECONDS * FS))
    rows = rows[:, start:start + int(round(SECONDS * FS))]
    if rows.shape[1] < BAND:
        return np.zeros(0, np.int32)
    rows = rows - np.median(rows, axis=1, keepdims=True)
    steps = np.clip(np.round(rows / STEP_MV), -32767, 32767).astype("<i2")
    hashes: list[int] = []
    for (name, _), lead in zip(chosen, steps):
        for band in range(lead.size // BAND):
            window = lead[band * BAND:(band + 1) * BAND]
            if int(window.max()) - int(window.min()) < MIN_LEVELS:
                continue
            digest = hashlib.blake2b(window.tobytes(), digest_size=4,
                                     person=f"{name}:{band}".encode()[:16]).digest()
            hashes.append(int.from_bytes(digest, "little", signed=True))
    return np.unique(np.asarray(hashes, dtype=np.int32))


@dataclass(frozen=True)
class Fingerprints:
    """Band hashes of many records: record `ids[k]` has `hashes[offsets[k]:offsets[k+1]]`."""

    ids: tuple[str, ...]
    offsets: np.ndarray  # int64 (n + 1,)
    hashes: np.ndarray  # int32
    version: int = FINGERPRINT_VERSION

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def from_dict(cls, by_id: Mapping[str, np.ndarray], version: int = FINGERPRINT_VERSION) -> "Fingerprints":
        ids = tuple(str(r) for r in by_id)
        arrays = [np.asarray(by_id[r], dtype=np.int32) for r in by_id]
        offsets = np.zeros(len(ids) + 1, np.int64)
        offsets[1:] = np.cumsum([a.size for a in arrays])
        hashes = np.concatenate(arrays) if arrays else np.zeros(0, np.int32)
        return cls(ids, offsets, hashes.astype(np.int32), version)

    def to_dict(self) -> dict[str, np.ndarray]:
        return {rid: self.hashes[self.offsets[k]:self.offsets[k + 1]] for k, rid in enumerate(self.ids)}

    def subset(self, ids: Iterable[str]) -> "Fingerprints":
        """These records only (ids without a fingerprint are left out)."""
        mine = self.to_dict()
        return Fingerprints.from_dict({str(r): mine[str(r)] for r in ids if str(r) in mine}, self.version)

    def merged(self, other: "Fingerprints") -> "Fingerprints":
        """Both sets (a record in both keeps `other`'s hashes)."""
        return Fingerprints.from_dict({**self.to_dict(), **other.to_dict()}, self.version)

    def to_payload(self) -> dict[str, Any]:
        """Plain data for a model file loaded with weights_only=True: version, ids, and the
        per-record counts and hashes as little-endian int32 bytes."""
        counts = np.diff(self.offsets).astype("<i4")
        return {"version": int(self.version), "ids": list(self.ids), "counts": counts.tobytes(),
                "hashes": self.hashes.astype("<i4").tobytes()}

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> "Fingerprints":
        counts = np.frombuffer(payload["counts"], dtype="<i4").astype(np.int64)
        offsets = np.zeros(counts.size + 1, np.int64)
        offsets[1:] = np.cumsum(counts)
        hashes = np.frombuffer(payload["hashes"], dtype="<i4").astype(np.int32)
        ids = tuple(str(r) for r in payload["ids"])
        if len(ids) != counts.size or offsets[-1] != hashes.size:
            raise ValueError("fingerprint payload: ids, counts and hashes disagree")
        return cls(ids, offsets, hashes, int(payload.get("version", 0)))


def matching_records(source: Fingerprints, target: Fingerprints) -> list[tuple[str, str, int]]:
    """(source id, target id, shared bands) for every pair that is one recording by
    signal; empty when the two were made by different fingerprint versions."""
    if source.version != target.version or not source.hashes.size or not target.hashes.size:
        return []
    import pandas as pd

    s_count, t_count = np.diff(source.offsets), np.diff(target.offsets)
    left = pd.DataFrame({"h": source.hashes, "s": np.repeat(np.arange(len(source)), s_count)})
    right = pd.DataFrame({"h": target.hashes, "t": np.repeat(np.arange(len(target)), t_count)})
    pairs = left.merge(right, on="h").groupby(["s", "t"]).size()
    if pairs.empty:
        return []
    s_idx = pairs.index.get_level_values("s").to_numpy()
    t_idx = pairs.index.get_level_values("t").to_numpy()
    shared = pairs.to_numpy()
    smaller = np.minimum(s_count[s_idx], t_count[t_idx])
    keep = (shared >= MIN_SHARED) & (shared >= MIN_SHARED_FRACTION * smaller)
    return [(source.ids[s], target.ids[t], int(n)) for s, t, n in zip(s_idx[keep], t_idx[keep], shared[keep])]


# ------------------------------------------------------------------ the per-dataset cache

_PARALLEL_ABOVE = 1500  # records to fingerprint before joblib workers pay off


def _stamps(recordset: Recordset) -> list[str]:
    """Per record: its files' path, size and mtime (what the prepared-array cache keys on)."""
    return ["\0".join(file_stamp(path) for path in recordset.files(rid)) for rid in recordset.record_ids]


def _cache_file(recordset: Recordset, cache_dir: Path) -> Path:
    head = {"version": FINGERPRINT_VERSION, "root": str(Path(recordset.root).resolve()),
            "layout": recordset.layout, "options": recordset.open_options}
    key = hashlib.sha256(json.dumps(head, sort_keys=True, default=str).encode()).hexdigest()[:24]
    return cache_dir / "fingerprints" / f"{key}.npz"


def _read_cache(path: Path) -> dict[str, tuple[str, np.ndarray]]:
    """record id -> (stamp, hashes) from a cache file; {} when absent or unreadable."""
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            if meta.get("version") != FINGERPRINT_VERSION:
                return {}
            table = Fingerprints(tuple(meta["ids"]), data["offsets"], data["hashes"])
            return {rid: (stamp, hashes) for (rid, hashes), stamp in
                    zip(table.to_dict().items(), meta["stamps"])}
    except (OSError, ValueError, KeyError, json.JSONDecodeError):
        return {}


def _write_cache(path: Path, entries: Mapping[str, tuple[str, np.ndarray]]) -> None:
    """Atomically (temp file, then rename): a concurrent reader sees the old or the new file."""
    table = Fingerprints.from_dict({rid: hashes for rid, (_, hashes) in entries.items()})
    meta = {"version": FINGERPRINT_VERSION, "ids": list(table.ids), "stamps": [s for s, _ in entries.values()]}
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".npz", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            np.savez(out, meta=np.array(json.dumps(meta)), offsets=table.offsets, hashes=table.hashes)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def _fingerprint_records(recordset: Recordset, ids: Sequence[str]) -> list[np.ndarray]:
    """One fingerprint per id; a record that cannot be read gets none (it matches nothing
    by signal; its name still counts)."""
    out = []
    for rid in ids:
        try:
            out.append(signal_fingerprint(recordset.read(rid, allow_nonfinite=True)))
        except Exception:  # noqa: BLE001 -- one bad record never sinks the dataset
            out.append(np.zeros(0, np.int32))
    return out


def dataset_fingerprints(recordset: Recordset, cache_dir: Path | str | None = None,
                         ids: Sequence[str] | None = None, n_jobs: int = -1) -> Fingerprints:
    """Fingerprints of the records `ids` (default: all) of a dataset, from the cache where
    their files are unchanged, else read now (in joblib workers when there are many) and
    added to the cache. `cache_dir` defaults to the workspace cache."""
    if cache_dir is None:
        from ecgcore import workspace

        cache_dir = workspace.cache_dir()
    wanted = [str(r) for r in (recordset.record_ids if ids is None else ids)]
    present = set(recordset.record_ids)
    wanted = [r for r in wanted if r in present]
    subset = dataclasses.replace(recordset, table=recordset.table.loc[wanted])
    stamps = dict(zip(wanted, _stamps(subset)))
    path = _cache_file(recordset, Path(cache_dir))
    cached = _read_cache(path)
    missing = [r for r in wanted if cached.get(r, ("",))[0] != stamps[r]]
    if missing:
        computed = _compute(recordset, missing, n_jobs)
        cached = {**_read_cache(path), **{r: (stamps[r], h) for r, h in zip(missing, computed)}}
        _write_cache(path, cached)
    return Fingerprints.from_dict({r: cached[r][1] for r in wanted})


def uncached_fingerprints(recordset: Recordset, cache_dir: Path | str | None = None) -> int:
    """How many records `dataset_fingerprints` would read now (0: all are cached)."""
    if cache_dir is None:
        from ecgcore import workspace

        cache_dir = workspace.cache_dir()
    cached = _read_cache(_cache_file(recordset, Path(cache_dir)))
    return sum(cached.get(r, ("",))[0] != s for r, s in zip(recordset.record_ids, _stamps(recordset)))


def _compute(recordset: Recordset, ids: list[str], n_jobs: int) -> list[np.ndarray]:
    if n_jobs == 1 or len(ids) < _PARALLEL_ABOVE:
        return _fingerprint_records(recordset, ids)
    import joblib

    workers = joblib.cpu_count() if n_jobs < 0 else n_jobs
    size = max(200, -(-len(ids) // (4 * max(1, workers))))
    chunks = [ids[a:a + size] for a in range(0, len(ids), size)]
    parts = joblib.Parallel(n_jobs=n_jobs)(
        joblib.delayed(_fingerprint_records)(dataclasses.replace(recordset, table=recordset.table.loc[c]), c)
        for c in chunks)
    return [fp for part in parts for fp in part]
