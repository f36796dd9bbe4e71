"""Writing WFDB format-16 records: `.dat` (plain WFDB) or the Challenge's MATLAB v4 `.mat`.

`wfdb` writes the `.dat` records and every header. It cannot write the Challenge's `.mat`
signal file, so those few bytes (a 24-byte MATLAB v4 header, then the int16 samples
column-major = frame-interleaved) are written here. The synthetic sites have their own
faster writer (`ecgcore.data.synthetic.wfdb_files`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

FORMAT_16_INVALID = -32768  # WFDB's "invalid sample" value for format 16
MAT_INT16_LE = 30  # MATLAB v4 type: little-endian, real int16 full matrix
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
                 gain: float = 1000.0, container: str = "dat") -> Path:
    """Write one (n_leads, n_samples) mV record as WFDB format 16; returns the `.hea` path.

    container "dat": samples in `<name>.dat`. container "mat": the PhysioNet/CinC
    Challenge layout, a MATLAB v4 `<name>.mat` holding the int16 matrix `val`
    (n_leads x n_samples) behind a 24-byte header, which the `.hea` declares as format
    `16+24`. Comments are written one per line as `# text`.
    """
    import wfdb

    if container not in CONTAINERS:
        raise ValueError(f"container must be one of {CONTAINERS}, not {container!r}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    digital = digitise(data_mv, gain)  # (n_leads, n_samples)
    if digital.ndim != 2 or digital.shape[0] != len(leads):
        raise ValueError(f"data must be (n_leads={len(leads)}, n_samples), got {digital.shape}")
    frames = np.ascontiguousarray(digital.T)  # (n_samples, n_leads): file order
    n, n_sig = frames.shape
    if container == "dat":
        wfdb.wrsamp(record_name, fs=fs, units=["mV"] * n_sig, sig_name=list(leads), d_signal=frames,
                    fmt=["16"] * n_sig, adc_gain=[float(gain)] * n_sig, baseline=[0] * n_sig,
                    comments=list(comments), write_dir=str(directory))
        return directory / f"{record_name}.hea"
    # Kept by hand: wfdb.wfdb_to_mat only converts a record already on disk, to <name>m.mat + <name>m.hea.
    head = np.array([MAT_INT16_LE, n_sig, n, 0, 4], dtype="<i4").tobytes() + b"val\x00"
    (directory / f"{record_name}.mat").write_bytes(head + frames.astype("<i2", copy=False).tobytes())
    record = wfdb.Record(
        record_name=record_name, n_sig=n_sig, fs=fs, sig_len=n, file_name=[f"{record_name}.mat"] * n_sig,
        fmt=["16"] * n_sig, byte_offset=[len(head)] * n_sig, adc_gain=[float(gain)] * n_sig,
        baseline=[0] * n_sig, units=["mV"] * n_sig, adc_res=[16] * n_sig, adc_zero=[0] * n_sig,
        init_value=[int(v) for v in frames[0]] if n else [0] * n_sig,
        checksum=[int(c) for c in frames.astype(np.int64).sum(axis=0) % 65536],
        block_size=[0] * n_sig, sig_name=list(leads), comments=list(comments),
    )
    record.wrheader(write_dir=str(directory))
    return directory / f"{record_name}.hea"
