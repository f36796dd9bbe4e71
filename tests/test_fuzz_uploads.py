"""Property-based fuzzing of uploads: CSV, SPH-style `.h5` and zip archives.

The promise (RELIABILITY.md): whatever names and bytes a browser sends, `read_uploads`
either returns records whose signals are float32 (leads x samples) at a usable rate, or
raises UploadError whose message names one of the uploaded files (or a zip member) and
gives a reason; nothing else escapes, and no byte is written outside the private staging
folder, which is gone afterwards (the filesystem is compared after every example).
"""

from __future__ import annotations

import io
import math
import re
import stat
import string
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from ecgcore.views.uploads import UploadError, read_uploads
from ecgcore.views.uploads.safety import MAX_UPLOAD_BYTES, safe_name, uploads_root
from test_fuzz_wfdb import LEADS, fuzz

ROOT_TOKEN = "{ROOT}"  # replaced by the test's tmp folder: absolute paths that must not be written
ZIP_ROOT = "/tmp/ecgcore-fuzz-zip-root"  # the absolute folder zip members name (must never appear)
CSV_SUFFIXES = (".csv", ".CSV", ".h5", ".hea", ".dat", ".mat", ".zip", ".txt", "")
FS = st.sampled_from([None, 500.0, 250.0, 0.0, -1.0, math.nan, math.inf, 1e9, 1e-3, 20_000.0])
NAME_TEXT = st.text(alphabet=string.printable + "é\u202e\x00", max_size=20)


@st.composite
def file_names(draw: st.DrawFn, suffixes: tuple[str, ...] = CSV_SUFFIXES) -> str:
    """A name a browser or zip tool might send: plain, in folders, with `..`, absolute
    (also into the test's own folder), Windows-style, hidden, empty, very long."""
    stem = draw(st.one_of(st.sampled_from(["rec", "1", "E00001", "a b", "..", ".", "", "x" * 200]),
                          NAME_TEXT))
    prefix = draw(st.sampled_from(["", "", "dir/", "a/b/", "../", "../../../", "/", "/etc/",
                                   f"{ROOT_TOKEN}/", "..\\", "C:\\x\\", "__MACOSX/", "._", "./"]))
    return prefix + stem + draw(st.sampled_from(suffixes))


def _cell(draw: st.DrawFn) -> str:
    return draw(st.one_of(
        st.floats(allow_nan=True, allow_infinity=True).map(repr),
        st.integers(-10**20, 10**20).map(str),
        st.sampled_from(["", " ", "nan", "NaN", "inf", "-inf", "1e400", "0x10", "1,5", '"1"', '"',
                         "abc", "1.2.3", "NULL", "\x00", "é"]),
        st.text(max_size=4)))


@st.composite
def csv_texts(draw: st.DrawFn) -> tuple[str, list[str], list[list[str]]]:
    """(text, header columns, rows): lead names (standard, aliases, lower case, unknown,
    duplicated), a delimiter, rows of numbers/NaN/text with right or wrong cell counts."""
    columns = draw(st.lists(st.one_of(st.sampled_from([*LEADS, "avr", "DII", "Lead V1", "v6", "time",
                                                       "", "I ", '"I"']), NAME_TEXT),
                            min_size=0, max_size=14))
    sep = draw(st.sampled_from([",", ",", ";", "\t", " ", "|"]))
    n = len(columns)
    numeric = draw(st.booleans())
    rows: list[list[str]] = []
    for _ in range(draw(st.integers(0, 12))):
        width = n + draw(st.sampled_from([0, 0, 0, 0, 1, -1, 2]))
        cells = [repr(draw(st.floats(-1e4, 1e4))) if numeric else _cell(draw)
                 for _ in range(max(width, 0))]
        rows.append(cells)
    end = draw(st.sampled_from(["\n", "\r\n", ""]))
    text = "\n".join([sep.join(columns), *(sep.join(r) for r in rows)]) + end
    return draw(st.sampled_from(["", "", "\ufeff"])) + text, columns, rows


def _names_in(files: list[tuple[str, bytes]]) -> set[str]:
    """Every name an error may give for these uploads: the names, zip members, their safe forms."""
    names = {"upload"}
    for name, data in files:
        names.add(name)
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                names.update(archive.namelist())
        except Exception:  # noqa: BLE001 -- not a zip: only its own name counts
            pass
    for name in list(names):
        names.add(repr(name))
        try:
            names.add(safe_name(name))
        except UploadError:
            pass
    return names


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def _read(files: list[tuple[str, bytes]], fs: float | None, root: Path) -> list | None:
    """read_uploads with the promise checked: the records, or None after an UploadError
    that names an uploaded file; the filesystem under `root` is as it was before."""
    files = [(name.replace(ROOT_TOKEN, str(root)), data) for name, data in files]
    before = _tree(root)
    try:
        records = read_uploads(files, fs=fs)
    except UploadError as exc:
        assert exc.reason and exc.record in _names_in(files), str(exc)
        assert str(exc) == f"{exc.record}: {exc.reason}"
        records = None
    assert _tree(root) == before, "an upload left files behind or wrote outside its staging folder"
    assert list(uploads_root().iterdir()) == [] and not Path(ZIP_ROOT).exists()
    for record in records or []:
        signal = record.signal
        assert signal.data.dtype == np.float32 and signal.data.ndim == 2
        assert signal.data.shape[0] == len(signal.leads) >= 1 and signal.data.shape[1] >= 1
        assert 0 < signal.fs <= 20_000 and math.isfinite(signal.fs)
        if record.format == "csv":  # NaN gaps are kept only where the format marks them missing
            assert np.isfinite(signal.data).all()
    return records


@pytest.fixture()
def upload_home(workspace: Path, tmp_path: Path) -> Path:
    """An ECGCORE_HOME whose uploads folder exists; the tmp folder above it is compared."""
    uploads_root()
    return tmp_path


PLAIN_NUMBER = re.compile(r"^-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")


def _expected_csv(columns: list[str], rows: list[list[str]]) -> np.ndarray | None | str:
    """The (leads, samples) matrix a CSV of plain numbers means when every row has one number
    per column; None when such a CSV is malformed; "other" when its cells are not all plain
    numbers (quotes, text, NaN: the reader's verdict is not predicted here)."""
    rows = [r for r in rows if r]  # an empty line is skipped
    if not all(PLAIN_NUMBER.match(c) for r in rows for c in r):
        return "other"
    if not rows or any(len(r) != len(columns) for r in rows):
        return None
    return np.array([[float(c) for c in r] for r in rows], dtype=np.float64).T


@fuzz(1000)
@given(csv_texts(), file_names((".csv", ".CSV")), FS, st.sampled_from(["utf-8", "latin-1", "utf-16"]))
# Found by this test: rows with one value more than the header has leads were read with
# pandas' implicit index, every value shifted one lead to the left (I = 2, II = 3 here).
@example(("I,II\n1,2,3\n4,5,6\n", ["I", "II"], [["1", "2", "3"], ["4", "5", "6"]]), "x.csv", 500.0,
         "utf-8")
def test_csv_uploads_read_or_raise_upload_error(upload_home: Path, csv: tuple, name: str,
                                                fs: float | None, encoding: str) -> None:
    text, columns, rows = csv
    records = _read([(name, text.encode(encoding, errors="replace"))], fs, upload_home)
    if records:
        (record,) = records
        assert record.signal.data.shape[0] == len(columns)
        expected = _expected_csv(columns, rows)
        # A row with more values than the header has leads must not shift the columns.
        assert expected is not None, f"read {record.signal.data.shape} from a malformed CSV"
        if not isinstance(expected, str):
            np.testing.assert_allclose(record.signal.data, expected.astype(np.float32), rtol=1e-6)


@fuzz(40)
@given(st.sampled_from([b"", b"I\n", b"\n\n\n", b"\x00" * 100, b"I,II\n" + b"1,2\n" * 3]),
       st.sampled_from([0, 1, 10**5, MAX_UPLOAD_BYTES + 1]), file_names((".csv",)))
def test_empty_and_huge_csv_uploads(upload_home: Path, head: bytes, size: int, name: str) -> None:
    data = (head + b"0\n" * (size // 2))[: max(size, len(head))] if size > 1 else head
    _read([(name, data)], 500.0, upload_home)


H5_DTYPES = ["<f2", "<f4", ">f8", "<i1", "<i4", "<u8", "?", "<c8", "S4", "str", "compound"]


def _h5_bytes(shape: tuple[int, ...], dtype: str, name: str, attrs: dict, values: float,
              layout: str) -> bytes:
    """A valid HDF5 file made by h5py: one dataset (or group, or link) with the given form."""
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as f:
        for key, value in attrs.items():
            f.attrs[key] = value
        if layout == "group":
            f.create_group(name)
        elif layout == "soft":
            f.create_dataset("real", data=np.zeros((12, 4), "f4"))
            f[name] = h5py.SoftLink("/real")
        elif layout == "external":
            f[name] = h5py.ExternalLink("/etc/passwd", "/ecg")
        elif dtype == "str":
            f.create_dataset(name, shape=shape, dtype=h5py.string_dtype())
        elif dtype == "compound":
            f.create_dataset(name, shape=shape, dtype=np.dtype([("a", "<f4"), ("b", "<i2")]))
        else:
            chunks = layout == "chunked" and all(shape) and len(shape) > 0
            data = np.full(shape, values).astype(dtype) if np.prod(shape) <= 10**5 else None
            f.create_dataset(name, shape=shape, dtype=dtype, data=data, chunks=True if chunks else None,
                             compression="gzip" if chunks else None)
    return buffer.getvalue()


@st.composite
def h5_files(draw: st.DrawFn) -> bytes:
    shape = tuple(draw(st.lists(st.sampled_from([0, 1, 2, 12, 12, 12, 13, 50, 500]), max_size=3)))
    if draw(st.integers(0, 9)) == 0:
        shape = draw(st.sampled_from([(12, 10**7), (12, 2**40), (2**31, 12)]))
    attrs = draw(st.dictionaries(st.text(string.ascii_letters, min_size=1, max_size=5),
                                 st.one_of(st.integers(-5, 5), st.floats(), st.text(string.printable, max_size=5)),
                                 max_size=3))
    return _h5_bytes(shape, draw(st.sampled_from(H5_DTYPES)),
                     draw(st.sampled_from(["ecg", "ecg", "ECG", "data"])), attrs,
                     draw(st.sampled_from([0.0, 1.5, -3.0, math.nan, math.inf, 1e300])),
                     draw(st.sampled_from(["plain", "plain", "chunked", "group", "soft", "external"])))


@fuzz(250)
@given(h5_files(), FS, st.sampled_from(["x.h5", "r.hdf5", "../up.h5", f"{ROOT_TOKEN}/abs.h5"]))
def test_valid_h5_files_of_any_shape_read_or_raise(upload_home: Path, data: bytes,
                                                    fs: float | None, name: str) -> None:
    _read([(name, data)], fs, upload_home)


HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
SMALL_H5 = _h5_bytes((12, 4), "<f4", "ecg", {}, 0.0, "plain")


# Found by this test (h5py raised them through read_h5): RuntimeError "Unable to
# synchronously check link existence (addr overflow ...)", KeyError "invalid dataset size",
# OverflowError "Python int too large to convert to C ssize_t".
@fuzz(300)
@given(h5_files(), st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=6),
       st.integers(0, 10**6), st.binary(max_size=200), st.booleans())
@example(SMALL_H5, [(16, 255)], 10**6, b"", False)
@example(SMALL_H5, [(40, 0)], 10**6, b"", False)
@example(SMALL_H5, [(48, 0)], 10**6, b"", False)
def test_corrupted_h5_bytes_read_or_raise(upload_home: Path, valid: bytes, flips: list,
                                          cut: int, junk: bytes, raw: bool) -> None:
    """Random bytes, and valid files with bytes overwritten and cut short."""
    data = bytearray(HDF5_SIGNATURE + junk if raw else valid)
    for at, value in flips:
        data[at % len(data)] = value
    _read([("x.h5", bytes(data[: max(cut, 8)]))], 500.0, upload_home)


TINY_HEADER = b"rec 2 500 4\nrec.dat 16 1000 16 0 0 0 0 I\nrec.dat 16 1000 16 0 0 0 0 II\n"
MEMBER_DATA = st.sampled_from([TINY_HEADER, bytes(16), b"I,II\n1,2\n3,4\n", b"", b"\xff" * 40,
                               TINY_HEADER.replace(b"rec.dat", b"../rec.dat"),
                               TINY_HEADER.replace(b"rec.dat", b"/etc/passwd")])


@st.composite
def zip_uploads(draw: st.DrawFn) -> bytes:
    """A zip of members with random names (folders, `..`, absolute, duplicates, noise),
    random or record-like bytes, some symlinks or nested zips, sometimes damaged."""
    buffer = io.BytesIO()
    names = draw(st.lists(st.one_of(file_names(), st.sampled_from(["rec.hea", "rec.dat", "d/rec.hea",
                                                                   "d/rec.dat", "dir/"])),
                          max_size=6))
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in names:
            info = zipfile.ZipInfo(name.replace(ROOT_TOKEN, ZIP_ROOT))
            info.compress_type = draw(st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED]))
            if draw(st.integers(0, 9)) == 0:
                info.external_attr = (stat.S_IFLNK | 0o777) << 16
            data = draw(st.one_of(MEMBER_DATA, st.binary(max_size=64)))
            if name.endswith(".zip"):
                data = b"PK\x05\x06" + bytes(18)
            archive.writestr(info, data)
    data = bytearray(buffer.getvalue())
    for at, value in draw(st.lists(st.tuples(st.integers(0, 10**4), st.integers(0, 255)), max_size=2)):
        data[at % len(data)] = value
    return bytes(data[: draw(st.sampled_from([len(data), len(data), len(data) // 2, 30]))])


def _zip_needing_version(version: int) -> bytes:
    """A one-member zip whose central directory says it needs zip version `version` / 10."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("rec.csv", b"I,II\n1,2\n3,4\n")
    data = bytearray(buffer.getvalue())
    at = data.index(b"PK\x01\x02") + 6
    data[at: at + 2] = version.to_bytes(2, "little")
    return bytes(data)


# Found by this test: NotImplementedError("zip file version 6.4") escaped from expand_zip.
@fuzz(500)
@example([("rec.zip", _zip_needing_version(64))], None)
@given(st.lists(st.tuples(st.one_of(file_names((".zip",)), file_names()),
                          st.one_of(zip_uploads(), MEMBER_DATA)), max_size=3),
       FS)
def test_zip_and_mixed_uploads_read_or_raise(upload_home: Path, files: list, fs: float | None) -> None:
    _read(files, fs, upload_home)
