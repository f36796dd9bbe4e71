"""The bad-input corpus: real WFDB records written with wfdb, then damaged copies.

Each damaged record must be listed in `unreadable` under its own id with a reason,
readable-but-odd records must load with the right metadata, and every good record
in the same folder must still load. NaN/inf samples are NOT caught by the scan (it
reads no signal, by design: scanning stays one header parse and one stat per
record); `Recordset.read` raises RecordError naming the record instead.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import wfdb

from ecgcore.data import wfdbio
from ecgcore.data.recordset import Recordset
from ecgcore.data.sources import open_dataset
from ecgcore.errors import NotADatasetError, RecordError

LEADS12 = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]
FRANK = ["vx", "vy", "vz"]
DX = ["Age: 60", "Sex: Male", "Dx: 426783006"]

# record id -> text the reason must contain (found by the scan, no signal read)
SCAN_REJECTS = {
    "missing_signal": "signal file missing_signal.dat is missing",
    "missing_mat": "signal file missing_mat.mat is missing",
    "truncated": "signal file truncated.dat is too short",
    "more_samples": "header claims 180024",  # 12 x 7500 x 2 bytes + 24-byte offset
    "more_channels": "(13 channels x 5000 samples; the file holds 4615 samples of 13 channels)",
    "unknown_format": "unsupported signal format '999'",
    "garbage_header": "bad record line",
    "too_few_signal_lines": "declares 12 signals but has 11 signal lines",
}
# record id -> text the RecordError raised by Recordset.read must contain
READ_REJECTS = {
    "nan_samples": "nan_samples: 25 NaN/inf samples in lead(s) V2 (25)",
    "nan_212": "nan_212: 3 NaN/inf samples in lead(s) III (3)",
    "mat_not_int16": "mat_not_int16: mat_not_int16.mat: MATLAB matrix type 0 is not real int16",
}
# record id -> (fs, n_samples, leads) of records that are odd but readable
ODD_BUT_READABLE = {
    "three_leads": (500.0, 5000, ("I", "II", "V1")),
    "frank15": (1000.0, 10000, (*LEADS12, *FRANK)),
    "fs100": (100.0, 1000, tuple(LEADS12)),
    "fs257": (257.0, 2570, tuple(LEADS12)),
    "fs1000": (1000.0, 10000, tuple(LEADS12)),
    "short_4s": (500.0, 2000, tuple(LEADS12)),
    "unknown_codes": (500.0, 5000, tuple(LEADS12)),
    "latin1_comment": (500.0, 5000, tuple(LEADS12)),
    "utf8_comment": (500.0, 5000, tuple(LEADS12)),
}
GOOD = ("good_dat", "good_mat")


def _ecg(n_leads: int, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n_leads, n)).cumsum(axis=1) * 0.02


def _write(root: Path, name: str, fs: float = 500, seconds: float = 10, leads: list[str] = LEADS12,
           comments: list[str] = DX, container: str = "dat", data: np.ndarray | None = None) -> Path:
    if data is None:
        data = _ecg(len(leads), int(fs * seconds), seed=len(name))
    return wfdbio.write_record(root, name, data, fs, leads, comments, container=container)


def _edit(header: Path, old: str, new: str, count: int = 1) -> None:
    text = header.read_text()
    assert old in text
    header.write_text(text.replace(old, new, count))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bad_corpus")
    for name in GOOD:
        _write(root, name, container=name[-3:])
    # -- damaged: caught by the scan
    _write(root, "missing_signal").with_suffix(".dat").unlink()
    _write(root / "sub", "missing_mat", container="mat").with_suffix(".mat").unlink()
    dat = _write(root, "truncated").with_suffix(".dat")
    dat.write_bytes(dat.read_bytes()[: dat.stat().st_size * 6 // 10])
    _edit(_write(root, "more_samples", container="mat"), "more_samples 12 500 5000", "more_samples 12 500 7500")
    header = _write(root, "more_channels")
    lines = header.read_text().splitlines()
    lines[0] = lines[0].replace(" 12 ", " 13 ")
    lines.insert(13, "more_channels.dat 16 1000.0(0)/mV 16 0 0 0 0 V7")
    header.write_text("\n".join(lines) + "\n")
    _edit(_write(root, "unknown_format"), ".dat 16 ", ".dat 999 ", count=12)
    (root / "garbage_header.hea").write_text("this is not a WFDB header\n# Dx: 426783006\n")
    header = _write(root, "too_few_signal_lines")
    lines = header.read_text().splitlines()
    header.write_text("\n".join(lines[:5] + lines[6:]) + "\n")
    # -- damaged: caught when the signal is read
    gappy = _ecg(12, 5000, seed=3)
    gappy[7, 1000:1025] = np.nan  # written as format 16's invalid value -32768
    _write(root, "nan_samples", data=gappy)
    gappy = _ecg(12, 5000, seed=5)
    gappy[2, 100:103] = np.nan  # format 212 (read through wfdb, not the fast path)
    (root / "wfdb_path").mkdir()
    wfdb.wrsamp("nan_212", fs=500, units=["mV"] * 12, sig_name=LEADS12, p_signal=gappy.T,
                fmt=["212"] * 12, comments=DX, write_dir=str(root / "wfdb_path"))
    mat = _write(root, "mat_not_int16", container="mat").with_suffix(".mat")
    raw = bytearray(mat.read_bytes())
    raw[0:4] = bytes(4)  # MATLAB v4 type 0: a float64 matrix, not what the .hea declares
    mat.write_bytes(bytes(raw))
    # -- odd but readable
    _write(root, "three_leads", leads=["I", "II", "V1"])
    _write(root / "frank", "frank15", fs=1000, leads=LEADS12 + FRANK, container="mat")
    for fs in (100, 257, 1000):
        _write(root / "rates", f"fs{fs}", fs=fs)
    _write(root, "short_4s", seconds=4)
    _write(root, "unknown_codes", comments=["Dx: 426783006,999999999, not-a-code"])
    for name, encoding in (("latin1_comment", "latin-1"), ("utf8_comment", "utf-8")):
        header = _write(root, name, comments=[])
        extra = "# Dx: 426783006\n# Comment: Pâtient très âgé\n# Sex: Female\n"
        header.write_bytes(header.read_bytes() + extra.encode(encoding))
    return root


@pytest.fixture(scope="module", params=["challenge", "wfdb_folder"])
def loaded(corpus: Path, request: pytest.FixtureRequest) -> Recordset:
    return open_dataset(corpus, layout=request.param)


def test_corpus_is_detected_as_challenge(corpus: Path) -> None:
    assert open_dataset(corpus).layout == "challenge"


def test_scan_lists_each_damaged_record_with_its_reason(loaded: Recordset) -> None:
    reasons = {u.record: u.reason for u in loaded.unreadable}
    assert set(reasons) == set(SCAN_REJECTS)
    for record, expected in SCAN_REJECTS.items():
        assert expected in reasons[record], (record, reasons[record])


def test_every_other_record_is_in_the_table(loaded: Recordset) -> None:
    assert set(loaded.record_ids) == {*GOOD, *READ_REJECTS, *ODD_BUT_READABLE}


def test_good_and_odd_records_load_with_their_metadata(loaded: Recordset) -> None:
    for record in (*GOOD, *ODD_BUT_READABLE):
        row = loaded.table.loc[record]
        fs, n_samples, leads = ODD_BUT_READABLE.get(record, (500.0, 5000, tuple(LEADS12)))
        assert (row["fs"], row["n_samples"], row["leads"]) == (fs, n_samples, leads), record
        signal = loaded.read(record)
        assert signal.data.shape == (len(leads), n_samples) and signal.fs == fs, record
        assert signal.data.dtype == np.float32 and np.isfinite(signal.data).all(), record
        assert row["labels"] == ("426783006",), record


def test_signal_damage_raises_record_error_naming_the_record(loaded: Recordset) -> None:
    for record, expected in READ_REJECTS.items():
        with pytest.raises(RecordError) as info:
            loaded.read(record)
        assert info.value.record == record
        assert expected in str(info.value)


def test_nonfinite_samples_are_kept_as_stored_on_request(loaded: Recordset) -> None:
    """Gaps are data: prepare asks for them and interpolates; nothing else is changed."""
    gappy = loaded.read("nan_samples", allow_nonfinite=True).data
    assert np.isnan(gappy[7, 1000:1025]).all()
    assert np.isfinite(np.delete(gappy, np.s_[1000:1025], axis=1)).all()
    assert np.isnan(loaded.read("nan_212", allow_nonfinite=True).data[2, 100:103]).all()


def test_unknown_codes_are_kept_as_unmapped(loaded: Recordset) -> None:
    row = loaded.table.loc["unknown_codes"]
    assert row["raw_labels"] == ("426783006", "999999999", "not-a-code")
    assert row["labels"] == ("426783006",)
    assert row["unmapped"] == ("999999999", "not-a-code")


def test_non_ascii_comments_keep_labels_and_demographics(loaded: Recordset) -> None:
    for record in ("latin1_comment", "utf8_comment"):
        assert loaded.table.loc[record, "sex"] == "F"
    header = wfdbio.read_header(Path(loaded.table.loc["latin1_comment", "path"]))
    assert "Comment: Pâtient très âgé" in header.comments


@pytest.mark.parametrize("make", ["missing", "file", "empty", "unrelated"])
def test_a_path_that_is_no_dataset(tmp_path: Path, make: str) -> None:
    target = tmp_path / "thing"
    if make == "file":
        target.write_text("hello")
    elif make in ("empty", "unrelated"):
        target.mkdir()
        if make == "unrelated":
            (target / "notes.txt").write_text("no records here")
            (target / "table.csv").write_text("a,b\n1,2\n")
    with pytest.raises(NotADatasetError) as info:
        open_dataset(target)
    message = str(info.value)
    assert "\n" not in message and str(target) in message
