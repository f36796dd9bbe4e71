"""Writing WFDB format-16 records: `.dat` (plain WFDB) or the Challenge's MATLAB v4 `.mat`.

Two engines produce the same bytes. "wfdb" calls `wfdb.wrsamp` / `wfdb.Record.wrheader`,
the reference writer. It costs tens of milliseconds per record on this machine (its
field tables go through pandas `.loc` thousands of times), too slow for a generator
that must write hundreds of records a second, so "numpy" writes the identical header
text and sample bytes directly; tests compare the two byte for byte.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

FORMAT_16_INVALID = -32768  # WFDB's "invalid sample" value for format 16
MAT_INT16_LE = 30  # MATLAB v4 type: little-endian, real int16 full matrix
ENGINES = ("numpy", "wfdb")
CONTAINERS = ("dat", "mat")


def digitise(data_mv: np.ndarray, gain: float) -> np.ndarray:
    """mV -> format-16 ADC units (baseline 0), clipped to the int16 range; NaN/inf
    become WFDB's invalid-sample value."""
    scaled = np.asarray(data_mv, dtype=np.float64) * gain
    finite = np.isfinite(scaled)
    digital = np.clip(np.round(np.where(finite, scaled, 0.0)), -32767, 32767).astype(np.int16)
    digital[~finite] = FORMAT_16_INVALID
    return digital


def write_record(directory: Path | str, record_name: str, data_mv: np.ndarray, fs: float,
                 leads: tuple[str, ...] | list[str], comments: tuple[str, ...] | list[str] = (),
                 gain: float = 1000.0, container: str = "dat", engine: str = "numpy") -> Path:
    """Write one (n_leads, n_samples) mV record as WFDB format 16; returns the `.hea` path.

    container "dat": samples in `<name>.dat`. container "mat": the PhysioNet/CinC
    Challenge layout, a MATLAB v4 `<name>.mat` holding the int16 matrix `val`
    (n_leads x n_samples, stored column-major = frame-interleaved) behind a 24-byte
    header, which the `.hea` declares as format `16+24`. Comments are written one
    per line as `# text`.
    """
    if container not in CONTAINERS:
        raise ValueError(f"container must be one of {CONTAINERS}, not {container!r}")
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, not {engine!r}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    digital = digitise(data_mv, gain)  # (n_leads, n_samples)
    if digital.ndim != 2 or digital.shape[0] != len(leads):
        raise ValueError(f"data must be (n_leads={len(leads)}, n_samples), got {digital.shape}")
    frames = np.ascontiguousarray(digital.T)  # (n_samples, n_leads): file order
    offset = 0
    sig_file = directory / f"{record_name}.{container}"
    with open(sig_file, "wb") as fh:
        if container == "mat":
            head = _mat_header(digital.shape)
            offset = len(head)
            fh.write(head)
        if container == "mat" or engine == "numpy":
            fh.write(frames.astype("<i2", copy=False).tobytes())
    if container == "dat" and engine == "wfdb":
        return _wfdb_wrsamp(directory, record_name, frames, fs, leads, comments, gain)
    if engine == "wfdb":
        return _wfdb_header(directory, record_name, frames, fs, leads, comments, gain,
                            sig_file.name, offset)
    header = directory / f"{record_name}.hea"
    header.write_text(header_text(record_name, frames, fs, leads, comments, gain, sig_file.name,
                                  offset), encoding="utf-8")
    return header


def _mat_header(shape: tuple[int, ...]) -> bytes:
    n_sig, n = shape
    return np.array([MAT_INT16_LE, n_sig, n, 0, 4], dtype="<i4").tobytes() + b"val\x00"


def checksums(frames: np.ndarray) -> list[int]:
    """WFDB's per-signal checksum as wfdb writes it: sum of samples modulo 65536."""
    return [int(c) for c in frames.astype(np.int64).sum(axis=0) % 65536]


def _fmt_number(value: float) -> str:
    """Numbers as wfdb prints them: integral sampling rates without a decimal point."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def header_text(record_name: str, frames: np.ndarray, fs: float, leads: tuple[str, ...] | list[str],
                comments: tuple[str, ...] | list[str], gain: float, file_name: str,
                byte_offset: int) -> str:
    """The `.hea` text wfdb writes for these fields (format 16, baseline 0, 16-bit ADC)."""
    n, n_sig = frames.shape
    fmt = "16" if byte_offset == 0 else f"16+{byte_offset}"
    init = frames[0] if n else np.zeros(n_sig, dtype=np.int16)
    sums = checksums(frames)
    lines = [f"{record_name} {n_sig} {_fmt_number(fs)} {n}"]
    for i, lead in enumerate(leads):
        lines.append(f"{file_name} {fmt} {float(gain)!r}(0)/mV 16 0 {int(init[i])} {sums[i]} 0 {lead}")
    lines.extend(f"# {c}" for c in comments)
    return "\n".join(lines) + "\n"


def _wfdb_wrsamp(directory: Path, record_name: str, frames: np.ndarray, fs: float,
                 leads: tuple[str, ...] | list[str], comments: tuple[str, ...] | list[str],
                 gain: float) -> Path:
    import wfdb

    n_sig = frames.shape[1]
    wfdb.wrsamp(record_name, fs=fs, units=["mV"] * n_sig, sig_name=list(leads), d_signal=frames,
                fmt=["16"] * n_sig, adc_gain=[float(gain)] * n_sig, baseline=[0] * n_sig,
                comments=list(comments), write_dir=str(directory))
    return directory / f"{record_name}.hea"


def _wfdb_header(directory: Path, record_name: str, frames: np.ndarray, fs: float,
                 leads: tuple[str, ...] | list[str], comments: tuple[str, ...] | list[str],
                 gain: float, file_name: str, byte_offset: int) -> Path:
    """wfdb's header writer for a signal file it cannot write itself (the Challenge `.mat`)."""
    import wfdb

    n, n_sig = frames.shape
    rec = wfdb.Record(
        record_name=record_name, n_sig=n_sig, fs=fs, sig_len=n, file_name=[file_name] * n_sig,
        fmt=["16"] * n_sig, byte_offset=[byte_offset] * n_sig, adc_gain=[float(gain)] * n_sig,
        baseline=[0] * n_sig, units=["mV"] * n_sig, adc_res=[16] * n_sig, adc_zero=[0] * n_sig,
        init_value=[int(v) for v in frames[0]] if n else [0] * n_sig,
        checksum=checksums(frames), block_size=[0] * n_sig, sig_name=list(leads),
        comments=list(comments),
    )
    rec.wrheader(write_dir=str(directory))
    return directory / f"{record_name}.hea"
