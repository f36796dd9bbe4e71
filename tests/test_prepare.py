"""Preprocessing and the prepared-array cache (ecgcore.data.prepare).

Signals go through real WFDB files: `CountingWfdbSource` below writes records with
`wfdb.wrsamp` and reads them back with `wfdb.rdrecord` (the reference reader), and
appends one line per read to a file so reads in joblib workers are counted too.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from pathlib import Path

import numpy as np
import pytest
import wfdb

from ecgcore.data.prepare import (
    PrepConfig, Prepared, apply_standard_scaler, cache_key, fit_standard_scaler, prepare,
)
from ecgcore.data.prepare import signal_ops as ops
from ecgcore.data.recordset import STANDARD_LEADS, RecordRow, Recordset, Signal, Unreadable
from ecgcore.data.sources.base import DatasetSource, Scanned
from ecgcore.errors import EcgcoreError, RecordError

# ------------------------------------------------------------------ a real WFDB test source


class CountingWfdbSource(DatasetSource[RecordRow]):
    """Every `.hea` in a folder, read with wfdb; each signal read appends to `reads.log`."""

    layout = "test_wfdb"
    description = "WFDB records for the prepare tests"

    @classmethod
    def detect(cls, root: Path) -> bool:
        return False

    def scan(self) -> tuple[list[Scanned[RecordRow]], list[Unreadable]]:
        records = []
        for hea in sorted(self.root.glob("*.hea")):
            header = wfdb.rdheader(str(hea.with_suffix("")))
            records.append(Scanned({
                "record_id": hea.stem, "patient_id": "", "fs": float(header.fs),
                "n_samples": int(header.sig_len), "leads": tuple(header.sig_name),
                "raw_labels": (), "label_vocab": "none", "age": math.nan, "sex": "",
                "fold": 0, "source": "test", "path": str(hea),
            }, RecordRow(hea.stem, hea, (hea.with_suffix(".dat"),))))
        return records, []

    def read_signal(self, row: RecordRow) -> Signal:
        with open(self.root / "reads.log", "a") as log:
            log.write(f"{row.record_id} {os.getpid()}\n")
        try:
            rec = wfdb.rdrecord(str(row.path.with_suffix("")))
        except Exception as exc:
            raise RecordError(row.record_id, f"wfdb could not read it: {exc}") from exc
        return Signal(rec.p_signal.T.astype(np.float32), float(rec.fs), tuple(rec.sig_name))


def n_reads(root: Path) -> int:
    log = root / "reads.log"
    return len(log.read_text().splitlines()) if log.exists() else 0


def reading_processes(root: Path) -> set[str]:
    return {line.split()[1] for line in (root / "reads.log").read_text().splitlines()}


def write(root: Path, name: str, data: np.ndarray, fs: float,
          leads: tuple[str, ...] | list[str] = STANDARD_LEADS) -> None:
    """Write (n_leads, n) mV as a format-16 WFDB record (1 uV resolution; NaN -> invalid)."""
    root.mkdir(parents=True, exist_ok=True)
    n_leads = data.shape[0]
    wfdb.wrsamp(name, fs=fs, units=["mV"] * n_leads, sig_name=list(leads),
                p_signal=np.ascontiguousarray(data.T, dtype=np.float64), fmt=["16"] * n_leads,
                adc_gain=[1000.0] * n_leads, baseline=[0] * n_leads, write_dir=str(root))


def ecg_like(n: int, fs: float, seed: int, n_leads: int = 12) -> np.ndarray:
    """Distinct smooth signals per lead (mV)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / fs
    freqs = rng.uniform(0.8, 8.0, size=(n_leads, 1))
    return (rng.uniform(0.2, 1.5, (n_leads, 1)) * np.sin(2 * np.pi * freqs * t)
            + rng.uniform(-0.3, 0.3, (n_leads, 1))).astype(np.float32)


def open_folder(root: Path) -> Recordset:
    return CountingWfdbSource(root).load(name=root.name)


@pytest.fixture()
def small_set(tmp_path: Path) -> Path:
    """Six 500 Hz records of 10-12 s plus one 6 s record."""
    root = tmp_path / "ds"
    for i in range(6):
        write(root, f"r{i}", ecg_like(5000 + 200 * i, 500, seed=i), 500)
    write(root, "short", ecg_like(3000, 500, seed=99), 500)
    return root


# ------------------------------------------------------------------ config

def test_config_round_trips_through_json_and_rejects_bad_values() -> None:
    config = PrepConfig(fs=500, seconds=5, crop="centre", bandpass=(0.5, 40), normalize="minmax",
                        min_seconds=5, notch_hz=50)
    again = PrepConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config and isinstance(again.bandpass, tuple)
    with pytest.raises(ValueError, match="crop"):
        PrepConfig(crop="middle")
    with pytest.raises(ValueError, match="resample"):
        PrepConfig(resample="cubic")
    with pytest.raises(ValueError, match="bandpass"):
        PrepConfig(bandpass=(40, 0.5))
    with pytest.raises(ValueError, match="unknown settings"):
        PrepConfig.from_dict({"fs": 100, "sconds": 10})


# ------------------------------------------------------------------ resampling

def test_polyphase_keeps_frequency_and_amplitude_of_a_5hz_sine() -> None:
    t = np.arange(5000) / 500
    x = np.sin(2 * np.pi * 5 * t)[None].astype(np.float32)
    y = ops.resample(x, 500, 100)
    assert y.shape == (1, 1000)
    inner = y[0, 50:-50]
    spectrum = np.abs(np.fft.rfft(y[0]))
    assert np.fft.rfftfreq(1000, 1 / 100)[np.argmax(spectrum)] == pytest.approx(5.0)
    assert np.max(np.abs(inner)) == pytest.approx(1.0, abs=0.01)
    expected = np.sin(2 * np.pi * 5 * np.arange(1000) / 100)[50:-50]
    assert np.max(np.abs(inner - expected)) < 0.01


@pytest.mark.parametrize("fs_in, n_in, n_out", [(257, 2570, 1000), (1000, 10000, 1000),
                                                (400, 4096, 1024), (500, 5000, 1000)])
def test_polyphase_lengths_for_odd_rates(fs_in: float, n_in: int, n_out: int) -> None:
    x = np.random.default_rng(0).normal(size=(2, n_in)).astype(np.float32)
    y = ops.resample(x, fs_in, 100)
    assert y.shape == (2, n_out) and y.dtype == np.float32
    assert ops.resampled_length(n_in, fs_in, 100, "polyphase") == n_out
    assert ops.rational_ratio(257, 100) == (100, 257)


def test_decimate_is_plain_slicing_and_refuses_non_integer_ratios() -> None:
    x = np.random.default_rng(1).normal(size=(3, 5000)).astype(np.float32)
    np.testing.assert_array_equal(ops.resample(x, 500, 100, "decimate"), x[:, ::5])
    np.testing.assert_array_equal(ops.resample(x, 1000, 100, "decimate"), x[:, ::10])
    with pytest.raises(ValueError, match="integer ratio.*polyphase"):
        ops.resample(x, 257, 100, "decimate")
    with pytest.raises(ValueError, match="integer ratio"):
        ops.resample(x, 100, 500, "decimate")


def test_polyphase_is_anti_aliased_where_decimate_aliases() -> None:
    """A 70 Hz tone at 500 Hz lies above the 50 Hz Nyquist limit of 100 Hz: decimation
    folds it to a full-amplitude 30 Hz tone, polyphase removes it. (A 45 Hz tone is
    below that limit, a legitimate 100 Hz signal, and polyphase keeps it.)"""
    t = np.arange(5000) / 500

    def rms_ratio(y: np.ndarray) -> float:
        return float(np.sqrt(np.mean(y[0, 50:-50] ** 2)) / np.sqrt(0.5))

    tone70 = np.sin(2 * np.pi * 70 * t)[None].astype(np.float32)
    aliased = ops.resample(tone70, 500, 100, "decimate")
    assert rms_ratio(aliased) > 0.95
    peak = np.fft.rfftfreq(1000, 1 / 100)[np.argmax(np.abs(np.fft.rfft(aliased[0])))]
    assert peak == pytest.approx(30.0)
    assert rms_ratio(ops.resample(tone70, 500, 100, "polyphase")) < 0.01
    tone45 = np.sin(2 * np.pi * 45 * t)[None].astype(np.float32)
    assert rms_ratio(ops.resample(tone45, 500, 100, "polyphase")) > 0.85


# ------------------------------------------------------------------ leads, crop, scaling, NaN

def test_lead_names_match_case_insensitively_with_aliases() -> None:
    names = ("v6", "V5", "v4", "V3", "v2", "V1", "AVF", "avl", "AVR", "DIII", "dii", "DI")
    data = np.arange(12, dtype=np.float32)[::-1, None] * np.ones((12, 4), np.float32)
    out, present = ops.select_leads(data, names, STANDARD_LEADS)
    assert present.all()
    # row k of `data` holds value 11-k, and names[k] is standard lead 11-k
    np.testing.assert_array_equal(out[:, 0], np.arange(12, dtype=np.float32))
    assert ops.canonical_lead("Lead II") == "II" and ops.canonical_lead(" avr ") == "aVR"
    assert ops.canonical_lead("vx") == "vx"


def test_missing_leads_are_zero_filled_and_masked_or_dropped(tmp_path: Path) -> None:
    root = tmp_path / "leads"
    six = ("i", "II", "iii", "AVR", "avl", "aVF")
    write(root, "limb_only", ecg_like(1000, 100, seed=3, n_leads=6), 100, leads=six)
    write(root, "full", ecg_like(1000, 100, seed=4), 100)
    rs = open_folder(root)
    prepared = prepare(rs, PrepConfig(fs=100), tmp_path / "cache", n_jobs=1)
    row = prepared.rows(["limb_only"])[0]
    assert prepared.lead_mask[row].tolist() == [True] * 6 + [False] * 6
    assert not prepared.X[row, 6:].any() and prepared.X[row, :6].any()
    status = prepared.status.set_index("record_id")
    assert status.loc["limb_only", "missing_leads"] == "V1|V2|V3|V4|V5|V6"
    strict = prepare(rs, PrepConfig(fs=100, missing_leads="drop"), tmp_path / "cache", n_jobs=1)
    assert strict.record_ids == ["full"]
    assert "missing leads V1, V2, V3, V4, V5, V6" in strict.dropped["limb_only"]


def test_crop_modes_and_padding() -> None:
    ramp = np.arange(30, dtype=np.float32)[None].repeat(2, axis=0)
    first, valid = ops.crop_or_pad(ramp, 10, "first")
    assert valid == 10 and first[0].tolist() == list(range(10))
    centre, _ = ops.crop_or_pad(ramp, 10, "centre")
    assert centre[0].tolist() == list(range(10, 20))
    padded, valid = ops.crop_or_pad(ramp, 40, "pad")
    assert valid == 30 and padded[0, :30].tolist() == list(range(30)) and not padded[:, 30:].any()


def test_crop_modes_end_to_end(small_set: Path, tmp_path: Path) -> None:
    rs = open_folder(small_set)
    first = prepare(rs, PrepConfig(fs=100, seconds=10), tmp_path / "c", n_jobs=1)
    assert first.X.shape == (7, 12, 1000)
    short = first.rows(["short"])[0]
    assert first.lengths[short] == 600 and not first.X[short, :, 600:].any()
    assert bool(first.status.set_index("record_id").loc["short", "padded"])
    whole = prepare(rs, PrepConfig(fs=100, seconds=10, crop="pad"), tmp_path / "c", n_jobs=1)
    assert whole.X.shape == (7, 12, 1200)  # longest: 5000 + 200*5 samples at 500 Hz = 12 s
    centre = prepare(rs, PrepConfig(fs=100, seconds=5, crop="centre"), tmp_path / "c", n_jobs=1)
    r5 = centre.rows(["r5"])[0]
    np.testing.assert_allclose(centre.X[r5], whole.X[whole.rows(["r5"])[0], :, 350:850], atol=1e-5)
    strict = prepare(rs, PrepConfig(fs=100, seconds=10, min_seconds=10), tmp_path / "c", n_jobs=1)
    assert "short" not in strict.record_ids and len(strict) == 6
    assert strict.dropped == {"short": "shorter than min_seconds: 6.00 s < 10 s"}


def test_zscore_and_minmax_per_record_per_lead(small_set: Path, tmp_path: Path) -> None:
    rs = open_folder(small_set)
    z = prepare(rs, PrepConfig(fs=100, normalize="zscore"), tmp_path / "c", n_jobs=1)
    for row, length in enumerate(z.lengths):
        part = np.asarray(z.X[row, :, :length], dtype=np.float64)
        np.testing.assert_allclose(part.mean(axis=1), 0, atol=1e-5)
        np.testing.assert_allclose(part.std(axis=1), 1, atol=1e-4)
        assert not z.X[row, :, length:].any()  # padding stays zero
    m = prepare(rs, PrepConfig(fs=100, normalize="minmax"), tmp_path / "c", n_jobs=1)
    for row, length in enumerate(m.lengths):
        part = m.X[row, :, :length]
        np.testing.assert_allclose(part.min(axis=1), -1, atol=1e-6)
        np.testing.assert_allclose(part.max(axis=1), 1, atol=1e-6)
    flat = np.zeros((2, 50), np.float32)
    flat[1] = 3.0
    assert not ops.minmax(flat.copy(), 50).any() and not ops.zscore(flat.copy(), 50).any()


def test_standard_scaler_uses_training_rows_only() -> None:
    rng = np.random.default_rng(5)
    X = rng.normal(loc=[[2.0], [-1.0], [0.5]], scale=[[3.0], [0.5], [1.0]],
                   size=(40, 3, 200)).astype(np.float32)
    train = np.arange(0, 30)
    mean, std = fit_standard_scaler(X, train, chunk=7)
    reference = X[train].astype(np.float64)
    np.testing.assert_allclose(mean, reference.mean(axis=(0, 2)), rtol=1e-10)
    np.testing.assert_allclose(std, reference.std(axis=(0, 2)), rtol=1e-10)
    changed = X.copy()
    changed[30:] = 1000.0
    mean2, std2 = fit_standard_scaler(changed, train)
    np.testing.assert_allclose(mean2, mean, rtol=1e-12)
    np.testing.assert_allclose(std2, std, rtol=1e-12)
    scaled = apply_standard_scaler(X[train], mean, std)
    assert scaled.dtype == np.float32
    np.testing.assert_allclose(scaled.mean(axis=(0, 2)), 0, atol=1e-5)
    np.testing.assert_allclose(scaled.std(axis=(0, 2)), 1, atol=1e-5)
    lengths = np.full(40, 100)
    X_pad = X.copy()
    X_pad[:, :, 100:] = 0.0
    mean3, _ = fit_standard_scaler(X_pad, train, lengths=lengths)
    np.testing.assert_allclose(mean3, X[train, :, :100].astype(np.float64).mean(axis=(0, 2)), rtol=1e-10)
    missing_lead = X.copy()
    missing_lead[:, 1] = 0.0  # a zero-filled missing lead: std 1, so scaling never divides by 0
    assert fit_standard_scaler(missing_lead, train)[1][1] == 1.0


def test_nan_runs_are_interpolated_linearly() -> None:
    x = np.array([[0.0, 1.0, np.nan, np.nan, 4.0, np.inf], [np.nan] * 6, [1, 2, 3, 4, 5, 6]],
                 dtype=np.float32)
    out, n_fixed, dead = ops.interpolate_nonfinite(x)
    np.testing.assert_allclose(out[0], [0, 1, 2, 3, 4, 4])
    assert n_fixed == 3 and dead.tolist() == [False, True, False]
    assert not out[1].any() and out[2].tolist() == [1, 2, 3, 4, 5, 6]


def test_nan_records_end_to_end(tmp_path: Path) -> None:
    root = tmp_path / "nan"
    gaps = ecg_like(1000, 100, seed=7)
    gaps[3, 100:120] = np.nan
    gaps[5] = np.nan
    write(root, "gaps", gaps, 100)
    write(root, "all_nan", np.full((12, 1000), np.nan, np.float32), 100)
    write(root, "fine", ecg_like(1000, 100, seed=8), 100)
    prepared = prepare(open_folder(root), PrepConfig(fs=100), tmp_path / "c", n_jobs=1)
    assert prepared.record_ids == ["fine", "gaps"]
    assert "every lead is NaN" in prepared.dropped["all_nan"]
    row = prepared.rows(["gaps"])[0]
    assert np.isfinite(prepared.X).all()
    expected = np.linspace(gaps[3, 99], gaps[3, 120], 22)
    np.testing.assert_allclose(prepared.X[row, 3, 99:121], expected, atol=2e-3)
    status = prepared.status.set_index("record_id").loc["gaps"]
    assert status["nan_interpolated"] == 20 and status["nan_leads"] == "aVF"
    assert not prepared.lead_mask[row, 5] and not prepared.X[row, 5].any()


def test_bandpass_and_notch() -> None:
    t = np.arange(5000) / 500
    wanted = np.sin(2 * np.pi * 10 * t)
    wander = np.sin(2 * np.pi * 0.1 * t)  # 1 mV baseline wander
    x = (wanted + wander + 0.5 * np.sin(2 * np.pi * 150 * t))[None].astype(np.float32)
    y = ops.bandpass(x, 500, 0.5, 40)
    assert np.max(np.abs(y[0, 1000:-1000] - wanted[1000:-1000])) < 0.02
    hum = (wanted + np.sin(2 * np.pi * 50 * t))[None].astype(np.float32)
    clean = ops.notch(hum, 500, 50)
    assert np.max(np.abs(clean[0, 500:-500] - wanted[500:-500])) < 0.05
    assert ops.notch(hum, 100, 50) is hum  # at Nyquist: nothing to do


# ------------------------------------------------------------------ cache

def test_second_call_reads_nothing_and_is_fast(small_set: Path, tmp_path: Path) -> None:
    rs = open_folder(small_set)
    config = PrepConfig(fs=100)
    first = prepare(rs, config, tmp_path / "cache", n_jobs=1)
    assert n_reads(small_set) == 7
    assert isinstance(first.X, np.memmap) and not first.X.flags.writeable
    started = time.perf_counter()
    second = prepare(rs, config, tmp_path / "cache", n_jobs=1)
    elapsed = time.perf_counter() - started
    assert n_reads(small_set) == 7 and elapsed < 0.5
    assert second.key == first.key and second.path == first.path
    np.testing.assert_array_equal(second.X, first.X)
    meta = json.loads((first.path / "meta.json").read_text())
    assert meta["shape"] == [7, 12, 1000] and meta["config"] == config.to_dict()
    assert PrepConfig.from_dict(meta["config"]) == config


def test_touching_a_file_or_changing_a_setting_invalidates(small_set: Path, tmp_path: Path) -> None:
    rs = open_folder(small_set)
    base = prepare(rs, PrepConfig(fs=100), tmp_path / "cache", n_jobs=1)
    assert cache_key(rs, PrepConfig(fs=100)) == base.key
    other = prepare(rs, PrepConfig(fs=100, normalize="zscore"), tmp_path / "cache", n_jobs=1)
    assert other.key != base.key and n_reads(small_set) == 14
    dat = small_set / "r2.dat"
    stat = dat.stat()
    os.utime(dat, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    touched = prepare(rs, PrepConfig(fs=100), tmp_path / "cache", n_jobs=1)
    assert touched.key != base.key and n_reads(small_set) == 21
    fewer = dataclasses.replace(rs, table=rs.table.iloc[:3])
    assert list(fewer.rows) == ["r0", "r1", "r2"]  # a subset keeps its records' reader rows only
    assert cache_key(fewer, PrepConfig(fs=100)) != touched.key


def test_content_key_mode_survives_a_copy(small_set: Path, tmp_path: Path) -> None:
    import shutil
    copy = tmp_path / "copy"
    shutil.copytree(small_set, copy)
    os.utime(copy / "r1.dat", ns=(0, 10**18))
    a, b = open_folder(small_set), open_folder(copy)
    config = PrepConfig(fs=100)
    assert cache_key(a, config) != cache_key(b, config)
    assert cache_key(a, config, "content") == cache_key(b, config, "content")


def test_half_written_cache_is_not_used(small_set: Path, tmp_path: Path) -> None:
    rs = open_folder(small_set)
    config = PrepConfig(fs=100)
    cache = tmp_path / "cache"
    key = cache_key(rs, config)
    # a crashed non-atomic writer: the key folder exists with a partial X and no meta.json
    (cache / key).mkdir(parents=True)
    np.save(cache / key / "X.npy", np.ones((2, 12, 1000), np.float32))
    # and a crashed atomic build: a temp folder (complete-looking, but never published)
    (cache / f".tmp-{key}-1-dead").mkdir()
    prepared = prepare(rs, config, cache, n_jobs=1)
    assert n_reads(small_set) == 7 and prepared.X.shape == (7, 12, 1000)
    assert (cache / key / "meta.json").exists()
    # a build that dies half-way leaves no entry behind
    (small_set / "r3.dat").write_bytes(b"")  # reading r3 now fails -> dropped, not fatal

    class Boom(CountingWfdbSource):
        def read_signal(self, row: RecordRow) -> Signal:
            if row.record_id == "r4":
                raise KeyboardInterrupt
            return super().read_signal(row)

    dying = Boom(small_set).load()
    with pytest.raises(KeyboardInterrupt):
        prepare(dying, PrepConfig(fs=50), cache, n_jobs=1)
    assert sorted(p.name for p in cache.iterdir() if not p.name.startswith(".tmp-")) == [key]
    assert not list(cache.glob(f".tmp-{cache_key(dying, PrepConfig(fs=50))}*"))


def test_dropped_records_are_reported_and_rows_stay_aligned(small_set: Path, tmp_path: Path) -> None:
    (small_set / "r1.dat").write_bytes((small_set / "r1.dat").read_bytes()[:1000])  # truncated
    rs = open_folder(small_set)
    prepared = prepare(rs, PrepConfig(fs=100), tmp_path / "cache", n_jobs=1)
    assert set(prepared.dropped) == {"r1"} and "wfdb could not read it" in prepared.dropped["r1"]
    assert prepared.record_ids == ["r0", "r2", "r3", "r4", "r5", "short"]
    assert prepared.X.shape[0] == 6 == len(prepared.lengths) == len(prepared.lead_mask)
    reference = wfdb.rdrecord(str(small_set / "r3")).p_signal.T
    row = prepared.rows(["r3"])[0]
    np.testing.assert_allclose(prepared.X[row, :, 100:900],
                               ops.resample(reference.astype(np.float32), 500, 100)[:, 100:900],
                               atol=1e-5)
    status = prepared.status.set_index("record_id")
    assert status.loc["r1", "status"] == "dropped" and status.loc["r1", "row"] == -1
    assert status.loc["r3", "row"] == row
    with pytest.raises(KeyError, match="r1"):
        prepared.rows(["r1"])


def test_nothing_usable_is_a_clear_error(tmp_path: Path) -> None:
    root = tmp_path / "odd"
    write(root, "a", ecg_like(2570, 257, seed=1), 257)
    with pytest.raises(EcgcoreError, match="no record could be prepared.*integer ratio"):
        prepare(open_folder(root), PrepConfig(fs=100, resample="decimate"), tmp_path / "c", n_jobs=1)


def test_parallel_build_equals_sequential_and_reports_progress(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "many"
    for i in range(40):
        write(root, f"p{i:02d}", ecg_like(2570 if i % 5 == 0 else 5000, 257 if i % 5 == 0 else 500,
                                          seed=i), 257 if i % 5 == 0 else 500)
    rs = open_folder(root)
    calls: list[tuple[int, int]] = []
    parallel = prepare(rs, PrepConfig(fs=100), tmp_path / "par", n_jobs=2,
                       progress=lambda d, t: calls.append((d, t)))
    assert n_reads(root) == 40
    sequential = prepare(rs, PrepConfig(fs=100), tmp_path / "seq", n_jobs=1)
    np.testing.assert_array_equal(np.asarray(parallel.X), np.asarray(sequential.X))
    assert parallel.record_ids == sequential.record_ids == rs.record_ids
    assert calls[0] == (0, 40) and calls[-1] == (40, 40) and len(calls) >= 3
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)
    # auto mode, forced to start a worker while this process keeps working
    from ecgcore.data.prepare import parallel as runner
    monkeypatch.setattr(runner, "WORKER_START_SECONDS", 0.0)
    monkeypatch.setattr(runner.joblib, "cpu_count", lambda *a, **k: 2)
    monkeypatch.setattr(runner, "idle_cores", lambda: 1)
    (root / "reads.log").unlink()
    hybrid = prepare(rs, PrepConfig(fs=100), tmp_path / "auto", n_jobs=-1)
    np.testing.assert_array_equal(np.asarray(hybrid.X), np.asarray(sequential.X))
    assert n_reads(root) == 40
    assert str(os.getpid()) in reading_processes(root) and len(reading_processes(root)) == 2


class FailingSource(CountingWfdbSource):
    """Notes the row each read is handed; r2 fails with a plain (non-Record) error."""

    handed: list[object] = []

    def read_signal(self, row: RecordRow) -> Signal:
        self.handed.append(row)
        if row.record_id == "r2":
            raise ValueError("unexpected value in r2")
        return super().read_signal(row)


def test_reads_get_the_reader_row_and_an_error_drops_the_record_once(small_set: Path, tmp_path: Path) -> None:
    rs = FailingSource(small_set).load()
    prepared = prepare(rs, PrepConfig(fs=100), tmp_path / "c", n_jobs=1)
    assert prepared.dropped == {"r2": "ValueError: unexpected value in r2"} and len(prepared) == 6
    assert [type(row) for row in FailingSource.handed] == [RecordRow] * 7  # one read each, no retry
    assert FailingSource.handed == [rs.rows[rid] for rid in rs.record_ids]
    reference = prepare(open_folder(small_set), PrepConfig(fs=100), tmp_path / "c2", n_jobs=1)
    np.testing.assert_array_equal(np.asarray(prepared.X), np.asarray(reference.X)[[0, 1, 3, 4, 5, 6]])


# ------------------------------------------------------------------ real records

def test_real_challenge_records(shared_data: Path, tmp_path: Path) -> None:
    """Every Challenge record we have (500 Hz, and PTB's 1000 Hz) -> 12 x 1000 at 100 Hz."""
    from ecgcore.data.sources import open_dataset

    rs = open_dataset(shared_data / "ecg" / "cinc2021" / "PTB_PTBXL")
    assert len(rs) >= 20
    prepared = prepare(rs, PrepConfig(fs=100, seconds=10), tmp_path / "cache", n_jobs=1)
    assert prepared.dropped == {}
    assert prepared.X.shape == (len(rs), 12, 1000) and np.isfinite(prepared.X).all()
    assert prepared.lead_mask.all()
    ptb = [rid for rid in prepared.record_ids if rid.startswith("S")]
    assert ptb and set(prepared.status.set_index("record_id").loc[ptb, "fs_in"]) == {1000.0}
    rid = ptb[0]
    record = wfdb.rdrecord(str(rs.files(rid)[0].with_suffix("")))
    reference = ops.resample(record.p_signal.T.astype(np.float32), record.fs, 100)[:, :1000]
    order = ops.lead_indices(tuple(record.sig_name), STANDARD_LEADS)
    np.testing.assert_allclose(prepared.X[prepared.rows([rid])[0]], reference[list(order)], atol=1e-4)
    again = prepare(rs, PrepConfig(fs=100, seconds=10), tmp_path / "cache", n_jobs=1)
    assert again.key == prepared.key
    assert isinstance(again, Prepared)


def test_status_table_types_survive_drops(small_set: Path, tmp_path: Path) -> None:
    (small_set / "r0.dat").unlink()
    prepared = prepare(open_folder(small_set), PrepConfig(fs=100), tmp_path / "c", n_jobs=1)
    status = prepared.status.set_index("record_id")
    assert status["fs_in"].dtype == np.float64 and status["row"].dtype == np.int64
    assert math.isnan(status.loc["r0", "fs_in"]) and status.loc["r2", "fs_in"] == 500.0
    assert status.loc["short", "padded"] and not status.loc["r2", "padded"]
    assert status.loc["r2", "n_samples_in"] == 5400 and status.loc["r2", "n_valid"] == 1000
    assert prepared.dropped["r0"].startswith("wfdb could not read it")
    meta = prepared.meta
    assert (meta["n_records"], meta["n_kept"], meta["n_dropped"], meta["n_padded"]) == (7, 6, 1, 1)


@pytest.mark.parametrize("folder, n_min", [("ecg/cinc2021", 70), ("ecg/cinc2021/SPH", 9), ("ecg/ludb", 200)])
def test_every_real_record_prepares(shared_data: Path, tmp_path: Path, folder: str, n_min: int) -> None:
    """All Challenge sources (500 Hz and PTB's 1000 Hz, mixed in one recursive folder),
    SPH's HDF5 files and all of LUDB: every readable record becomes a finite 12 x 1000
    row at 100 Hz, per-lead min-max scaled, with nothing dropped."""
    from ecgcore.data.sources import open_dataset

    rs = open_dataset(shared_data / folder)
    assert len(rs) >= n_min
    prepared = prepare(rs, PrepConfig(fs=100, seconds=10, normalize="minmax"), tmp_path / "c", n_jobs=1)
    assert prepared.dropped == {} and prepared.record_ids == rs.record_ids
    assert prepared.X.shape == (len(rs), 12, 1000) and np.isfinite(prepared.X).all()
    assert prepared.lead_mask.all() and prepared.X.min() >= -1 and prepared.X.max() <= 1
    flat = np.ptp(prepared.X, axis=2) == 0  # e.g. Ningbo records with all-zero leads
    assert flat.mean() < 0.05 and not prepared.X[flat].any()
    assert (prepared.X.max(axis=2)[~flat] == 1).all() and (prepared.X.min(axis=2)[~flat] == -1).all()
