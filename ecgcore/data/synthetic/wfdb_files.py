"""Byte-level writers for the two WFDB flavours the synthetic sites use.

Why not `wfdb.wrsamp` for every record: on this machine it spends ~40 ms per
12-lead record in its header-field bookkeeping (pandas look-ups), which caps a
writer at ~25 records/s; the issue asks for >= 200. The files themselves are
simple, so they are written here directly:

- `write_format16`: a `.hea` + `.dat` pair exactly as `wfdb.wrsamp(d_signal=…,
  fmt=['16']*n)` writes it (same bytes: the tests compare the two), which is
  also how PTB-XL's own files look ("1000.0(0)/mV", unsigned checksums).
- `write_challenge`: a `.hea` + MATLAB v4 `.mat` pair as in the PhysioNet/CinC
  Challenge 2020/2021 files: a 24-byte MATLAB v4 header (int16, 12 × n matrix
  named "val") followed by the samples column-major (= sample-interleaved), so
  the header declares format `16+24`; gains "1000/mV", signed checksums, a
  base date and time, and `#Age:`/`#Sex:`/`#Dx:` comments. `wfdb.rdrecord`
  reads both back to the exact digital values (tested).
"""

from __future__ import annotations

import struct
from datetime import datetime
from pathlib import Path

import numpy as np

INT16_MAX = 32767  # -32768 is WFDB's "no sample" marker in format 16
# Month abbreviations as WFDB writes them (not the locale's).
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def digitise(signal_mv: np.ndarray, gain: float) -> np.ndarray:
    """(n_leads, n) mV -> int16 ADC units at `gain` units/mV (baseline 0), clipped."""
    return np.clip(np.rint(signal_mv * gain), -INT16_MAX, INT16_MAX).astype(np.int16)


def _fs_text(fs: float) -> str:
    return str(int(fs)) if float(fs).is_integer() else repr(float(fs))


def _gain_text(gain: float) -> str:
    return str(int(gain)) if float(gain).is_integer() else repr(float(gain))


# Kept by hand, not wfdb.wrsamp: ~40 ms a record there caps the generator at ~25 records/s (measured).
def write_format16(directory: Path, record_name: str, digital: np.ndarray, fs: float,
                   gain: float, leads: tuple[str, ...], units: str = "mV") -> Path:
    """Write `record_name`.hea/.dat (format 16, interleaved) like `wfdb.wrsamp`."""
    directory.mkdir(parents=True, exist_ok=True)
    n_leads, n = digital.shape
    checksums = digital.astype(np.int64).sum(axis=1) % 65536
    dat_name = f"{record_name}.dat"
    lines = [f"{record_name} {n_leads} {_fs_text(fs)} {n}"]
    gain_field = f"{float(gain)!r}(0)/{units}"
    for i, lead in enumerate(leads):
        lines.append(f"{dat_name} 16 {gain_field} 16 0 {int(digital[i, 0])} "
                     f"{int(checksums[i])} 0 {lead}")
    (directory / f"{record_name}.hea").write_text("\n".join(lines) + "\n")
    np.ascontiguousarray(digital.T).astype("<i2").tofile(directory / dat_name)
    return directory / f"{record_name}.hea"


def mat_v4_bytes(digital: np.ndarray) -> bytes:
    """MATLAB v4 file holding `digital` (n_leads × n int16) as variable "val".

    Header: type 30 (little-endian, int16, full numeric matrix), rows, columns,
    no imaginary part, name length 4 including the NUL; then "val\\0"; then the
    data column by column — 24 bytes before the first sample.
    """
    n_leads, n = digital.shape
    header = struct.pack("<5i", 30, n_leads, n, 0, 4) + b"val\x00"
    return header + np.ascontiguousarray(digital.T).astype("<i2").tobytes()


def write_challenge(directory: Path, record_name: str, digital: np.ndarray, fs: float,
                    gain: float, leads: tuple[str, ...], when: datetime,
                    comments: list[tuple[str, str]], units: str = "mV") -> Path:
    """Write `record_name`.hea/.mat in the PhysioNet/CinC Challenge layout."""
    directory.mkdir(parents=True, exist_ok=True)
    n_leads, n = digital.shape
    sums = digital.astype(np.int64).sum(axis=1)
    checksums = (sums + 32768) % 65536 - 32768
    mat_name = f"{record_name}.mat"
    stamp = f"{when.day:02d}-{_MONTHS[when.month - 1]}-{when.year:04d} {when:%H:%M:%S}"
    lines = [f"{record_name} {n_leads} {_fs_text(fs)} {n} {stamp}"]
    for i, lead in enumerate(leads):
        lines.append(f"{mat_name} 16+24 {_gain_text(gain)}/{units} 16 0 {int(digital[i, 0])} "
                     f"{int(checksums[i])} 0 {lead}")
    lines += [f"#{key}: {value}" for key, value in comments]
    (directory / f"{record_name}.hea").write_text("\n".join(lines) + "\n")
    (directory / mat_name).write_bytes(mat_v4_bytes(digital))
    return directory / f"{record_name}.hea"
