"""Property-based fuzzing of WFDB reading: headers, signal files and Challenge comments.

The promise (RELIABILITY.md): whatever bytes a `.hea`/`.dat`/`.mat` holds, reading it
either succeeds with a finite float32 signal of the header's shape or raises the
project's RecordError whose message names the record and gives a reason. Nothing
else escapes (no IndexError, struct.error, MemoryError from a lying header, ...).
"""

from __future__ import annotations

import math
import string
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ecgcore.data.wfdbio import challenge_fields, parse_header, read_signal
from ecgcore.errors import RecordError



def fuzz(examples: int) -> settings:
    """Deterministic (derandomized) runs of `examples` inputs: CI sees the same inputs."""
    return settings(max_examples=examples, deadline=None, derandomize=True, database=None,
                    suppress_health_check=list(HealthCheck))

LEADS = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
FORMATS = ("16", "212", "80", "8", "24", "32", "61", "160", "310", "311", "16x2", "16+24", "0", "x")
NUMBERS = st.one_of(st.integers(-5, 70_000).map(str),
                    st.sampled_from(["", "-1", "0", "1e9", "nan", "inf", "1/0", "500/2", "abc",
                                     "99999999999999999999", "1.5", "-0"]))
TOKEN = st.text(alphabet=string.printable.replace("\n", "").replace("\r", ""), max_size=12)


@st.composite
def header_texts(draw: st.DrawFn) -> str:
    """A header built from plausible fields, each of which may be broken."""
    n_sig = draw(st.one_of(st.integers(0, 14).map(str), NUMBERS))
    record_line = " ".join(draw(st.lists(st.one_of(NUMBERS, TOKEN), max_size=3)))
    lines = [f"rec {n_sig} {draw(NUMBERS)} {draw(NUMBERS)} {record_line}".strip()]
    for i in range(draw(st.integers(0, 14))):
        fmt = draw(st.one_of(st.sampled_from(FORMATS), TOKEN))
        gain = draw(st.one_of(NUMBERS, st.sampled_from(["1000/mV", "200(0)/mV", "(5)/uV", "x/"])))
        fields = [draw(st.sampled_from(["rec.dat", "rec.mat", "~", "../x.dat", ""])), fmt, gain,
                  draw(NUMBERS), draw(NUMBERS), draw(NUMBERS), draw(NUMBERS), draw(NUMBERS),
                  LEADS[i % 12]]
        lines.append(" ".join(fields[: draw(st.integers(0, len(fields)))]))
    lines += [f"#{draw(TOKEN)}: {draw(TOKEN)}" for _ in range(draw(st.integers(0, 3)))]
    return "\n".join(draw(st.permutations(lines)) if draw(st.booleans()) else lines)


def _check_header(text: str) -> None:
    try:
        header = parse_header(text, Path("/fuzz/rec.hea"))
    except RecordError as exc:
        assert exc.record == "rec" and exc.reason and str(exc).startswith("rec: ")
        return
    assert header.n_sig >= 0 and header.fs > 0 and math.isfinite(header.fs)
    assert len(header.signals) == (header.n_sig if header.n_segments is None else 0)


@fuzz(1500)
@given(header_texts())
def test_structured_headers_parse_or_raise_record_error(text: str) -> None:
    _check_header(text)


@fuzz(3000)
@given(st.text(max_size=300))
def test_arbitrary_header_text_parses_or_raises_record_error(text: str) -> None:
    _check_header(text)


BYTES_PER_SAMPLE = {"16": 2, "16+24": 2, "16x2": 2, "61": 2, "160": 2, "212": 1.5, "80": 1, "8": 1,
                    "24": 3, "32": 4, "310": 4 / 3, "311": 4 / 3}


def _mat_v4_header(rows: int, cols: int, mtype: int) -> bytes:
    """The 24-byte MATLAB v4 matrix header the Challenge's .mat files start with."""
    return np.array([mtype, rows, cols, 0, 4], dtype="<i4").tobytes() + b"val\0"


@st.composite
def records(draw: st.DrawFn) -> dict:
    """A header that is mostly right and a signal file that is often the right size."""
    n_sig = draw(st.integers(1, 13))
    fmt = draw(st.sampled_from(sorted(BYTES_PER_SAMPLE)))
    n = draw(st.integers(0, 300))
    size = int(n * n_sig * BYTES_PER_SAMPLE[fmt]) + draw(st.sampled_from([0, 0, 0, -1, 1, -7, 33]))
    payload = draw(st.binary(min_size=max(size, 0), max_size=max(size, 0)))
    signal_file = draw(st.sampled_from(["rec.dat", "rec.mat"]))
    if fmt == "16+24":
        rows, cols = draw(st.sampled_from([(n_sig, n), (n, n_sig), (n_sig, n + 1)]))
        payload = _mat_v4_header(rows, cols, draw(st.sampled_from([30, 0, 20, 31]))) + payload
    return dict(n_sig=n_sig, fmt=fmt, signal_file=signal_file, payload=payload,
                n_samples=draw(st.sampled_from([str(n), str(n), "", "10000000000"])),
                fs=draw(st.sampled_from(["500", "250", "0.5", "1e-9", "1000"])),
                gain=draw(st.sampled_from(["1000/mV", "200(0)/mV", "1000(5)/uV", "0/mV", "1e-30/mV", ""])))


def _write_record(folder: Path, n_sig: int, fmt: str, n_samples: str, fs: str, gain: str,
                  signal_file: str, payload: bytes) -> Path:
    lines = [f"rec {n_sig} {fs} {n_samples}"]
    lines += [f"{signal_file} {fmt} {gain} 16 0 0 0 0 {LEADS[i % 12]}" for i in range(n_sig)]
    header = folder / "rec.hea"
    header.write_text("\n".join(lines) + "\n")
    (folder / signal_file).write_bytes(payload)
    return header


@fuzz(1500)
@given(records())
def test_signal_files_read_or_raise_record_error(record: dict) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        header = _write_record(Path(tmp), **record)
        try:
            signal = read_signal(header)
        except RecordError as exc:
            assert exc.record == "rec" and exc.reason
            return
    assert signal.data.dtype == np.float32 and signal.data.ndim == 2
    assert signal.data.shape[0] == record["n_sig"] and np.isfinite(signal.data).all()
    assert len(signal.leads) == record["n_sig"] and signal.fs > 0


@fuzz(1500)
@given(st.lists(st.text(max_size=60), max_size=8))
def test_challenge_comments_always_give_fields(comments: list[str]) -> None:
    fields = challenge_fields(comments)
    assert math.isnan(fields.age) or fields.age >= 0
    assert fields.sex in {"M", "F", ""}
    assert all(code and code == code.strip() for code in fields.dx)
