"""Uploads: every supported format, built from real records, scores exactly like `predict`
on the same record; every kind of bad upload is refused with a message naming the file."""

from __future__ import annotations

import io
import stat
import tomllib
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest

from ecgcore.data.sources import open_dataset
from ecgcore.views.scoring import load_run, predict_files, read_record_file
from ecgcore.views.uploads import UploadError, read_uploads, score_upload
from ecgcore.views.uploads.safety import MAX_UPLOAD_BYTES, MB, safe_name

ROOT = Path(__file__).resolve().parents[1]


def _files(*paths: Path) -> list[tuple[str, bytes]]:
    return [(p.name, p.read_bytes()) for p in paths]


def _zip(members: dict[str, bytes], symlinks: tuple[str, ...] = ()) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
        for name in symlinks:
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, "/etc/passwd")
    return buffer.getvalue()


def _csv(signal, leads=None) -> bytes:
    header = ",".join(leads or signal.leads)
    rows = "\n".join(",".join(f"{v:.9g}" for v in frame) for frame in signal.data.T)
    return f"{header}\n{rows}\n".encode()


def _h5(data: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as f:
        f.create_dataset("ecg", data=data)
    return buffer.getvalue()


def _probabilities(run, files, fs=None) -> dict[str, dict[str, float]]:
    return {r.record: score_upload(run, r) for r in read_uploads(files, fs=fs)}


def _expected(run_id: str, *headers: Path) -> dict[str, dict[str, float]]:
    return {row["record"]: row["probabilities"] for row in predict_files(run_id, list(headers))}


def _assert_same(got: dict[str, dict[str, float]], want: dict[str, dict[str, float]], atol: float) -> None:
    assert set(got) == set(want)
    for record, probabilities in want.items():
        assert list(got[record]) == list(probabilities)
        np.testing.assert_allclose(list(got[record].values()), list(probabilities.values()), atol=atol)


def test_every_format_scores_like_predict(run_workspace, shared_data: Path) -> None:
    g12ec = shared_data / "ecg" / "cinc2021" / "G12EC"
    ludb = shared_data / "ecg" / "ludb" / "data"
    run = load_run(run_workspace.run_id)
    challenge = _files(g12ec / "E00001.hea", g12ec / "E00001.mat")
    wfdb = _files(ludb / "1.hea", ludb / "1.dat")
    want = _expected(run.run_id, g12ec / "E00001.hea", ludb / "1.hea")
    assert len(set(next(iter(want.values())).values())) > 1  # 12 classes, not one constant

    records = read_uploads(challenge + wfdb)
    assert [(r.record, r.format, r.files) for r in records] == [
        ("1", "wfdb", ("1.hea", "1.dat")), ("E00001", "challenge", ("E00001.hea", "E00001.mat"))]
    _assert_same({r.record: score_upload(run, r) for r in records}, want, atol=0)

    # A zip of both records, in folders as an archive tool writes them.
    archive = _zip({f"export/{name}": data for name, data in challenge + wfdb})
    _assert_same(_probabilities(run, [("ecgs.zip", archive)]), want, atol=0)

    # A CSV written from a real record (mV, lead names in the header) at the rate given.
    source = read_record_file(g12ec / "E00002.hea")
    got = _probabilities(run, [("E00002.csv", _csv(source))], fs=source.fs)
    _assert_same(got, _expected(run.run_id, g12ec / "E00002.hea"), atol=1e-5)

    # An SPH-style .h5 made from a real LUDB record (12 x N mV, leads I … V6).
    ludb2 = read_record_file(ludb / "2.hea")
    got = _probabilities(run, [("2.h5", _h5(ludb2.data))], fs=ludb2.fs)
    _assert_same(got, _expected(run.run_id, ludb / "2.hea"), atol=1e-6)

    # A real SPH file reads exactly as the SPH dataset reader reads it (500 Hz by default).
    sph = shared_data / "ecg" / "cinc2021" / "SPH"
    (record,) = read_uploads(_files(sph / "SPH00001.h5"))
    np.testing.assert_array_equal(record.signal.data, open_dataset(sph).read("SPH00001").data)
    assert record.signal.fs == 500.0 and "500 Hz" in record.note
    # Nothing stays behind: the staging folder is removed after reading.
    assert list((run_workspace.home / "uploads").iterdir()) == []


def _ludb(shared_data: Path, name: str) -> bytes:
    return (shared_data / "ecg" / "ludb" / "data" / name).read_bytes()


def _bad_cases(shared_data: Path, tmp_path: Path) -> dict[str, tuple[list[tuple[str, bytes]], str]]:
    hea, dat = _ludb(shared_data, "1.hea"), _ludb(shared_data, "1.dat")
    source = read_record_file(shared_data / "ecg" / "ludb" / "data" / "1.hea")
    nan_csv = _csv(source).split(b"\n")
    nan_csv[5] = b"," + nan_csv[5].split(b",", 1)[1]
    outside = tmp_path / "outside.bin"
    outside.write_bytes(np.zeros((12, 100), "<f4").tobytes())
    eleven = "\n".join(hea.decode().splitlines()[:12])  # record line + 11 of 12 signal lines
    return {
        "corrupt .dat": ([("1.hea", hea), ("1.dat", dat[: len(dat) // 3])], "1.hea: signal file 1.dat is too short"),
        "header lacks a lead": ([("1.hea", eleven.encode()), ("1.dat", dat)], "declares 12 signals but has 11"),
        "h5 with 8 leads": ([("x.h5", _h5(np.zeros((8, 5000), "f4")))], "x.h5: `ecg` has shape (8, 5000)"),
        "NaN in a CSV": ([("n.csv", b"\n".join(nan_csv))], "n.csv: 1 empty or non-finite values, the first at line 6"),
        "unknown extension": ([("trace.edf", b"0" * 100)], "trace.edf: unsupported file type .edf"),
        "oversized": ([("big.csv", b"0" * (MAX_UPLOAD_BYTES + 1))], "big.csv: upload is 50.0 MB, more than the 50 MB"),
        "zip with ..": ([("a.zip", _zip({"../1.hea": hea}))], "a.zip: member '../1.hea' points outside"),
        "zip with absolute path": ([("a.zip", _zip({"/tmp/1.hea": hea}))], "a.zip: member '/tmp/1.hea' has an absolute"),
        "zip with symlink": ([("a.zip", _zip({"1.hea": hea}, symlinks=("1.dat",)))], "member '1.dat' is a symbolic link"),
        "zip bomb": ([("bomb.zip", _zip({"1.dat": bytes(101 * MB)}))], "bomb.zip: zip would unpack to 101.0 MB"),
        "too many members": ([("m.zip", _zip({f"{i}.csv": b"I\n1\n2\n" for i in range(201)}))], "201 entries"),
        "nested zip": ([("n.zip", _zip({"inner.zip": _zip({"1.hea": hea})}))], "nested archives"),
        "not a zip": ([("x.zip", b"PK\x03\x04 garbage")], "x.zip: not a readable zip"),
        "header alone": ([("1.hea", hea)], "1.hea: its signal file 1.dat was not uploaded"),
        "signal file alone": ([("1.dat", dat)], "1.dat: a signal file without its header"),
        "header points elsewhere": ([("1.hea", hea.replace(b"1.dat", b"../1.dat"))], "is not a plain file name"),
        "CSV without rate": ([("r.csv", _csv(source))], "r.csv: give the sampling rate"),
        "CSV with a time column": ([("t.csv", b"time,I,II\n0,1,2\n0.002,1,2\n")], "column 'time' is not a lead"),
        "no standard lead": ([("1.hea", _renamed_leads(hea)), ("1.dat", dat)], "1.hea: none of the 12 standard"),
        "one record twice": ([("1.csv", _csv(source)), ("1.h5", _h5(source.data))], "1.h5: names the same record as 1.csv"),
        "not HDF5": ([("x.h5", b"\x89HDF nonsense")], "x.h5: not a readable HDF5 file"),
        "h5 reading another file": ([("e.h5", _external_h5(outside))], "maps data from other files"),
    }


def _renamed_leads(header: bytes) -> bytes:
    """The header with every lead renamed x0 … x11 (no standard lead left)."""
    lines = header.decode().splitlines()
    lines[1:13] = [f"{line.rsplit(' ', 1)[0]} x{i}" for i, line in enumerate(lines[1:13])]
    return "\n".join(lines).encode()


def _external_h5(target: Path) -> bytes:
    """An .h5 whose `ecg` samples live in another file (HDF5 external storage)."""
    path = target.with_suffix(".h5")
    with h5py.File(path, "w") as f:
        f.create_dataset("ecg", shape=(12, 100), dtype="<f4", external=[(str(target), 0, 4800)])
    return path.read_bytes()


def test_bad_uploads_are_refused_with_a_message(run_workspace, shared_data: Path, tmp_path: Path) -> None:
    for case, (files, message) in _bad_cases(shared_data, tmp_path).items():
        fs = None if case == "CSV without rate" else 500.0
        with pytest.raises(UploadError) as caught:
            read_uploads(files, fs=fs)
        assert message in str(caught.value), f"{case}: {caught.value}"
        assert str(caught.value).split(":")[0].strip("'") in {name for name, _ in files} | {
            name.rsplit("/", 1)[-1] for name, _ in files}, f"{case}: message does not name the file"
    assert list((run_workspace.home / "uploads").iterdir()) == []


def test_names_are_sanitised_and_nothing_is_written_outside(run_workspace, tmp_path: Path) -> None:
    assert safe_name("../../etc/passwd") == "passwd"
    assert safe_name("C:\\Users\\x\\E 0001.hea") == "E_0001.hea"
    assert safe_name(".hidden.csv") == "hidden.csv"
    for bad in ("", "..", "/", "a\x00b"):
        with pytest.raises(UploadError):
            safe_name(bad)
    csv = b"I,II,V1\n0.1,0.2,0.3\n0.2,0.3,0.4\n0.1,0.1,0.1\n"
    (record,) = read_uploads([("../../../escape.csv", csv)], fs=250)
    assert record.record == "escape" and record.signal.leads == ("I", "II", "V1")
    assert record.signal.data.shape == (3, 3)
    home = run_workspace.home
    assert not any(p.name == "escape.csv" for p in home.parent.rglob("escape.csv"))


def test_size_limit_matches_the_streamlit_upload_limit() -> None:
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["maxUploadSize"] * MB == MAX_UPLOAD_BYTES


def test_a_wfdb_upload_carries_its_header_facts(shared_data: Path, tmp_path: Path) -> None:
    from ecgcore.views.record_facts import RecordFacts

    g12ec = shared_data / "ecg" / "cinc2021" / "G12EC"
    (record,) = read_uploads(_files(g12ec / "E00005.hea", g12ec / "E00005.mat"))
    assert record.facts == RecordFacts(83.0, "M", ("59118001", "164889003"), "the record's header")
    signal = read_record_file(g12ec / "E00005.hea")
    (csv,) = read_uploads([("mine.csv", _csv(signal))], fs=signal.fs)
    assert csv.facts is None  # a CSV has no header comments
