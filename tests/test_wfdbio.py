"""ecgcore.data.wfdbio: our header parser and numpy fast path against wfdb, the reference.

The central test reads EVERY record with a signal under ../shared/data/ecg both ways
and requires the same header fields, the fast path taken, and the same samples.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import wfdb

from ecgcore.data import wfdb_scan, wfdbio
from ecgcore.errors import RecordError

LEADS12 = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")


def _ecg(n_leads: int, n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n_leads, n)).cumsum(axis=1) * 0.05


def _assert_header_matches_wfdb(header_path: Path) -> None:
    ours = wfdbio.read_header(header_path)
    ref = wfdb.rdheader(str(header_path.with_suffix("")))
    assert ours.record_name == ref.record_name
    assert ours.n_sig == ref.n_sig
    assert ours.fs == ref.fs
    assert ours.n_samples == ref.sig_len
    assert list(ours.leads) == [name or "" for name in ref.sig_name]
    assert [s.gain for s in ours.signals] == ref.adc_gain
    assert [s.baseline for s in ours.signals] == ref.baseline
    assert [s.units for s in ours.signals] == ref.units
    assert [s.fmt for s in ours.signals] == ref.fmt
    assert [s.file_name for s in ours.signals] == ref.file_name
    assert [s.byte_offset or None for s in ours.signals] == [b or None for b in ref.byte_offset]
    assert [s.adc_zero for s in ours.signals] == [z or 0 for z in ref.adc_zero]
    assert [s.init_value for s in ours.signals] == ref.init_value
    assert [s.checksum for s in ours.signals] == ref.checksum
    assert list(ours.comments) == ref.comments


# ------------------------------------------------------------------ every real record

def test_every_shared_record_fast_path_equals_wfdb(shared_data: Path) -> None:
    headers = sorted((shared_data / "ecg").rglob("*.hea"))
    with_signal = [h for h in headers if wfdbio.read_header(h).signal_files[0].exists()]
    by_folder = {h.parent.name for h in with_signal}
    assert len(with_signal) >= 270  # 70 Challenge (.mat, incl. 1000 Hz PTB) + 200 LUDB (.dat)
    assert {"CPSC_CPSC-Extra", "ChapmanShaoxing_Ningbo", "G12EC", "PTB_PTBXL", "data"} <= by_folder
    for header_path in with_signal:
        _assert_header_matches_wfdb(header_path)
        header = wfdbio.read_header(header_path)
        assert wfdbio.check_record(header_path, header) is None, header_path
        assert wfdbio.fast_path_reason(header) is None, header_path
        signal, route = wfdbio.read_signal_traced(header_path)
        assert route == "fast", header_path
        ref = wfdb.rdrecord(str(header_path.with_suffix("")), physical=True)
        assert signal.data.dtype == np.float32
        assert signal.data.shape == (ref.n_sig, ref.sig_len)
        assert signal.fs == ref.fs and list(signal.leads) == ref.sig_name
        np.testing.assert_allclose(signal.data, ref.p_signal.T, rtol=1e-6, atol=1e-6,
                                   err_msg=str(header_path))


def test_headers_without_signal_are_reported_missing(shared_data: Path) -> None:
    folder = shared_data / "ecg" / "cinc2021" / "INCART_headers_only"
    readable, unreadable = wfdb_scan.scan_headers(folder)
    assert readable == []
    assert len(unreadable) == 10
    for item in unreadable:
        assert item.reason == f"signal file {item.record}.mat is missing"
        _assert_header_matches_wfdb(folder / f"{item.record}.hea")  # 257 Hz, 462600 samples


# ------------------------------------------------------------------ header parsing

HEADER_VARIANTS = {
    "plain": "rec.dat 16 1000/mV 16 0 5 77 0 I",
    "lower_units": "rec.dat 16 1000/mv 16 0 5 77 0 I",
    "float_baseline": "rec.dat 16 1000.0(0)/mV 16 0 5 77 0 I",
    "baseline": "rec.dat 16 1716(6)/mV 0 0 -120 -32198 0 i",
    "negative_baseline": "rec.dat 16 1229(-5)/mV 0 0 145 -20936 0 iii",
    "no_units": "rec.dat 16 500(3) 16 0 5 77 0 II",
    "gain_only": "rec.dat 16 400",
    "no_gain": "rec.dat 16",
    "zero_gain": "rec.dat 16 0/mV 16 0 5 77 0 I",
    "adc_zero_as_baseline": "rec.dat 16 200/mV 16 12 5 77 0 V1",
    "offset": "rec.dat 16+24 200/mV 16 0 5 77 0 V2",
    "frames": "rec.dat 16x1+24 200/mV 16 0 5 77 0 V3",
    "exponent_gain": "rec.dat 16 1e3/uV 16 0 5 77 0 lead with spaces",
}


@pytest.mark.parametrize("signal_line", HEADER_VARIANTS.values(), ids=HEADER_VARIANTS.keys())
def test_signal_line_variants_parse_like_wfdb(tmp_path: Path, signal_line: str) -> None:
    path = tmp_path / "rec.hea"
    path.write_text(f"rec 1 500 1000\n{signal_line}\n#Age: 50\n", encoding="ascii")
    _assert_header_matches_wfdb(path)


def test_record_line_defaults_and_fractional_rate(tmp_path: Path) -> None:
    path = tmp_path / "rec.hea"
    path.write_text("rec 1\nrec.dat 16 200/mV\n", encoding="ascii")
    header = wfdbio.read_header(path)
    assert header.fs == 250.0 and header.n_samples == 0  # WFDB defaults
    path.write_text("rec 1 360.5/100(3) 20 12:00:00 01/01/2000\nrec.dat 16\n", encoding="ascii")
    _assert_header_matches_wfdb(path)
    assert wfdbio.read_header(path).fs == 360.5
    assert wfdbio.fast_path_reason(wfdbio.read_header(path)) is None


@pytest.mark.parametrize("encoding", ["utf-8", "latin-1"])
def test_non_ascii_comments_decode(tmp_path: Path, encoding: str) -> None:
    path = tmp_path / "rec.hea"
    text = "rec 1 500 10\nrec.dat 16 200/mV 16 0 0 0 0 I\n# Dx: 426783006\n# Comment: Pâtient très âgé\n"
    path.write_bytes(text.encode(encoding))
    header = wfdbio.read_header(path)
    assert header.comments == ("Dx: 426783006", "Comment: Pâtient très âgé")
    assert wfdbio.challenge_fields(header.comments).dx == ("426783006",)


def test_challenge_comment_fields() -> None:
    fields = wfdbio.challenge_fields(["Age: 74", "Sex: Male", "Dx: 59118001,164890007", "Rx: Unknown"])
    assert (fields.age, fields.sex, fields.dx, fields.has_dx) == (74.0, "M", ("59118001", "164890007"), True)
    nospace = wfdbio.challenge_fields(["Age:NaN", "Sex:Female", "Dx:164889003"])
    assert math.isnan(nospace.age) and nospace.sex == "F" and nospace.dx == ("164889003",)
    unknown = wfdbio.challenge_fields(["Age: Unknown", "Sex: Unknown"])
    assert math.isnan(unknown.age) and unknown.sex == "" and unknown.dx == () and not unknown.has_dx
    assert wfdbio.comment_fields(["<age>: 51", "<sex>: F", "<diagnoses>:"]) == {
        "age": "51", "sex": "F", "diagnoses": ""}


MALFORMED = {
    "empty": ("", "no record line"),
    "comments_only": ("# Dx: 1\n", "no record line"),
    "bad_count": ("rec twelve 500 10\n", "bad record line"),
    "zero_rate": ("rec 1 0 10\nrec.dat 16\n", "non-positive sampling rate"),
    "missing_lines": ("rec 3 500 10\nrec.dat 16\n", "declares 3 signals but has 1 signal lines"),
    "bad_format": ("rec 1 500 10\nrec.dat sixteen\n", "cannot parse signal format 'sixteen'"),
    "bad_gain": ("rec 1 500 10\nrec.dat 16 lots/mV\n", "cannot parse gain 'lots/mV'"),
    "bad_int": ("rec 1 500 10\nrec.dat 16 200/mV 16 zero\n", "non-integer field"),
}


@pytest.mark.parametrize("text,reason", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_headers_raise_record_error(tmp_path: Path, text: str, reason: str) -> None:
    path = tmp_path / "broken.hea"
    path.write_text(text, encoding="ascii")
    with pytest.raises(RecordError, match=reason) as info:
        wfdbio.read_header(path)
    assert info.value.record == "broken" and str(info.value).startswith("broken: ")


# ------------------------------------------------------------------ checks and paths

def test_check_record_reasons(tmp_path: Path) -> None:
    header_path = wfdbio.write_record(tmp_path, "r", _ecg(12, 1000), 500, LEADS12)
    header = wfdbio.read_header(header_path)
    assert wfdbio.check_record(header_path, header) is None
    longer = wfdbio.parse_header(header_path.read_text().replace(" 500 1000", " 500 2000", 1), header_path)
    assert "too short" in wfdbio.check_record(header_path, longer)
    assert "holds 1000 samples of 12 channels" in wfdbio.check_record(header_path, longer)
    odd = wfdbio.parse_header(header_path.read_text().replace("r.dat 16 ", "r.dat 999 "), header_path)
    assert wfdbio.check_record(header_path, odd).startswith("unsupported signal format '999'")
    (tmp_path / "r.dat").unlink()
    assert wfdbio.check_record(header_path, header) == "signal file r.dat is missing"


@pytest.mark.parametrize("fmt,units", [("212", "uV"), ("24", "mV"), ("32", "V"), ("80", "mV")])
def test_other_formats_fall_back_to_wfdb(tmp_path: Path, fmt: str, units: str) -> None:
    data = _ecg(3, 2000, seed=1)
    scale = {"mV": 1.0, "uV": 1000.0, "V": 1e-3}[units]
    wfdb.wrsamp("r", fs=250, units=[units] * 3, sig_name=["I", "II", "V1"],
                p_signal=(data * scale).T, fmt=[fmt] * 3, write_dir=str(tmp_path))
    header = wfdbio.read_header(tmp_path / "r.hea")
    assert wfdbio.check_record(header.path, header) is None
    assert wfdbio.fast_path_reason(header) == f"format {fmt}"
    signal, route = wfdbio.read_signal_traced(tmp_path / "r.hea")
    assert route == "wfdb"
    ref = wfdb.rdrecord(str(tmp_path / "r")).p_signal.T / scale  # in mV
    np.testing.assert_allclose(signal.data, ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(signal.data, data, rtol=1e-6,
                               atol=2 / min(s.gain for s in header.signals) / scale)


def test_fast_path_honours_byte_offset_and_units(tmp_path: Path) -> None:
    digital = (np.arange(30, dtype=np.int16).reshape(10, 3) - 15) * 7
    (tmp_path / "r.dat").write_bytes(b"\x00" * 512 + digital.astype("<i2").tobytes())
    (tmp_path / "r.hea").write_text(
        "r 3 100 10\n"
        "r.dat 16+512 2(1)/uV 16 0\n"
        "r.dat 16+512 50(-3)/mV 16 0\n"
        "r.dat 16+512 0/mV 16 0 0 0 0 V1\n", encoding="ascii")
    signal, route = wfdbio.read_signal_traced(tmp_path / "r.hea")
    assert route == "fast"
    ref = wfdb.rdrecord(str(tmp_path / "r")).p_signal.T
    np.testing.assert_allclose(signal.data[0], ref[0] / 1000, rtol=1e-6)  # uV -> mV
    np.testing.assert_allclose(signal.data[1:], ref[1:], rtol=1e-6)
    assert signal.leads == ("signal0", "signal1", "V1")


def test_nan_samples_raise_unless_allowed(tmp_path: Path) -> None:
    data = _ecg(12, 1000)
    data[4, 100:110] = np.nan
    header_path = wfdbio.write_record(tmp_path, "gappy", data, 500, LEADS12, container="mat")
    with pytest.raises(RecordError, match=r"gappy: 10 NaN/inf samples in lead\(s\) aVL \(10\)"):
        wfdbio.read_signal(header_path)
    with pytest.raises(RecordError, match="^my-id: "):
        wfdbio.read_signal(header_path, record="my-id")
    signal = wfdbio.read_signal(header_path, allow_nan=True)
    ref = wfdb.rdrecord(str(header_path.with_suffix(""))).p_signal.T
    np.testing.assert_array_equal(np.isnan(signal.data), np.isnan(ref))
    assert np.isnan(signal.data).sum() == 10


def test_a_scan_time_plan_reads_without_the_header(tmp_path: Path) -> None:
    """The plan a reader keeps from its scan gives the same samples with no header parse."""
    header_path = wfdbio.write_record(tmp_path, "p", _ecg(12, 1000), 500, LEADS12, container="mat")
    plan = wfdbio.fast_read_of(wfdbio.read_header(header_path))
    assert plan is not None and plan.file.endswith("p.mat") and plan.offset == 24
    expected = wfdbio.read_signal(header_path)
    header_path.unlink()  # proves the header is not read again
    planned = wfdbio.read_signal(header_path, plan=plan)
    np.testing.assert_array_equal(planned.data, expected.data)
    assert planned.leads == expected.leads and planned.fs == expected.fs == 500.0


def test_mat_header_disagreeing_with_hea_is_refused(tmp_path: Path) -> None:
    header_path = wfdbio.write_record(tmp_path, "m", _ecg(12, 500), 500, LEADS12, container="mat")
    raw = bytearray((tmp_path / "m.mat").read_bytes())
    raw[0:4] = np.array([0], dtype="<i4").tobytes()  # MATLAB type 0 = float64 matrix
    (tmp_path / "m.mat").write_bytes(bytes(raw))
    with pytest.raises(RecordError, match="m: m.mat: MATLAB matrix type 0 is not real int16"):
        wfdbio.read_signal(header_path)


def test_wfdb_errors_become_record_errors(tmp_path: Path) -> None:
    data = _ecg(2, 300)
    wfdb.wrsamp("r", fs=100, units=["mV"] * 2, sig_name=["I", "II"], p_signal=data.T,
                fmt=["212"] * 2, write_dir=str(tmp_path))
    (tmp_path / "r.dat").write_bytes(b"")  # header says 300 samples; wfdb cannot read them
    header = wfdbio.read_header(tmp_path / "r.hea")
    assert "too short" in wfdbio.check_record(header.path, header)
    with pytest.raises(RecordError, match="^r: signal file r.dat is too short"):
        wfdbio.read_signal(tmp_path / "r.hea")


# ------------------------------------------------------------------ folders

def test_scan_headers_ids_and_multisegment(tmp_path: Path) -> None:
    a, b = _ecg(2, 500, seed=2), _ecg(2, 300, seed=3)
    wfdbio.write_record(tmp_path / "x", "rec", a, 100, ["I", "II"])
    wfdbio.write_record(tmp_path / "y", "rec", b, 100, ["I", "II"])
    wfdbio.write_record(tmp_path / "y", "seg_1", a, 100, ["I", "II"])
    wfdbio.write_record(tmp_path / "y", "seg_2", b, 100, ["I", "II"])
    (tmp_path / "y" / "long.hea").write_text("long/2 2 100 800\nseg_1 500\nseg_2 300\n")
    readable, unreadable = wfdb_scan.scan_headers(tmp_path)
    assert unreadable == []
    assert [rid for rid, _ in readable] == ["x/rec", "long", "y/rec"]
    signal, route = wfdbio.read_signal_traced(tmp_path / "y" / "long.hea")
    assert route == "wfdb" and signal.data.shape == (2, 800) and signal.leads == ("I", "II")
    assert wfdb_scan.record_leads(wfdbio.read_header(tmp_path / "y" / "long.hea")) == ("I", "II")
    np.testing.assert_allclose(signal.data, np.concatenate([a, b], axis=1), atol=1e-3)


# ------------------------------------------------------------------ writing

@pytest.mark.parametrize("container", ["dat", "mat"])
@pytest.mark.parametrize("fs", [100, 257, 500, 1000, 360.5])
def test_written_records_read_back_on_both_paths(tmp_path: Path, container: str, fs: float) -> None:
    data = _ecg(12, int(fs * 2), seed=4)
    data[3, 7] = np.nan
    data[5, 9] = 40.0  # beyond the int16 range at 1000/mV: clipped
    comments = ["Age: 50", "Sex: Female", "Dx: 426783006", "Comment: Pâtient très âgé"]
    path = wfdbio.write_record(tmp_path, "rec", data, fs, LEADS12, comments, container=container)
    assert wfdbio.read_header(path).comments == tuple(comments)
    signal, route = wfdbio.read_signal_traced(path, allow_nan=True)
    assert route == "fast" and signal.fs == fs and signal.leads == LEADS12
    assert np.isnan(signal.data[3, 7]) and np.isfinite(np.delete(signal.data[3], 7)).all()
    ref = wfdb.rdrecord(str(path.with_suffix(""))).p_signal.T
    np.testing.assert_allclose(signal.data, ref, rtol=1e-6, atol=1e-6)
    finite = np.isfinite(data) & (np.abs(data) < 32)
    np.testing.assert_allclose(signal.data[finite], data[finite], atol=5e-4 + 1e-6)
    assert signal.data[5, 9] == pytest.approx(32.767)


def test_writer_rejects_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="container"):
        wfdbio.write_record(tmp_path, "r", _ecg(1, 10), 100, ["I"], container="edf")
    with pytest.raises(ValueError, match="n_leads=2"):
        wfdbio.write_record(tmp_path, "r", _ecg(1, 10), 100, ["I", "II"])
