"""A small folder in MIMIC-IV-ECG 1.0's layout, for the reader's tests.

What it writes is what the release has (see ecgcore/data/sources/mimic_iv_ecg.py):
`record_list.csv` (subject_id, study_id, file_name, ecg_time, path without extension),
`machine_measurements.csv` (subject_id, study_id, cart_id, ecg_time, report_0 … report_17,
bandwidth, filtering, rr_interval, p_onset, p_end, qrs_onset, qrs_end, t_end, p_axis,
qrs_axis, t_axis; empty report cells left empty) and one WFDB record per study under
`files/p<first 4 digits of subject>/p<subject>/s<study>/<study>.hea + .dat`, written by
wfdb: format 16, 200 ADC units per mV, baseline 0, leads I, II, III, aVR, aVF, aVL,
V1-V6, 500 Hz, 5000 samples, a base time and date in the header. The signals are seeded
noise plus a sinusoid per lead, quantised to the 1/200 mV step so a read gives them back
exactly.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

MIMIC_LEADS: tuple[str, ...] = ("I", "II", "III", "aVR", "aVF", "aVL", "V1", "V2", "V3", "V4", "V5", "V6")
FS = 500
N_SAMPLES = 5000
GAIN = 200.0  # ADC units per mV, as the release's headers write it
N_REPORTS = 18
MEASUREMENT_COLUMNS: tuple[str, ...] = (
    "subject_id", "study_id", "cart_id", "ecg_time", *(f"report_{i}" for i in range(N_REPORTS)),
    "bandwidth", "filtering", "rr_interval", "p_onset", "p_end", "qrs_onset", "qrs_end", "t_end",
    "p_axis", "qrs_axis", "t_axis",
)


@dataclass(frozen=True)
class Study:
    """One ECG of the tree. `statements`: its report_N cells in order ("" leaves a cell
    empty between statements); None writes no machine_measurements.csv row for it."""

    subject_id: int
    study_id: int
    statements: tuple[str, ...] | None = ()


def study_path(subject_id: int, study_id: int) -> str:
    """record_list.csv's `path`: files/p1000/p10000032/s40689238/40689238."""
    return f"files/p{str(subject_id)[:4]}/p{subject_id}/s{study_id}/{study_id}"


def _ecg_time(index: int) -> datetime.datetime:
    return datetime.datetime(2180, 7, 23, 8, 44) + datetime.timedelta(days=index, minutes=7 * index)


def _signal(study_id: int) -> np.ndarray:
    """(12, 5000) mV, seeded by the study, on the 1/GAIN mV grid."""
    rng = np.random.default_rng(study_id)
    t = np.arange(N_SAMPLES) / FS
    phases = rng.uniform(0, 2 * np.pi, size=(len(MIMIC_LEADS), 1))
    data = 0.8 * np.sin(2 * np.pi * 1.2 * t + phases) + rng.normal(0, 0.05, (len(MIMIC_LEADS), N_SAMPLES))
    return np.round(data * GAIN) / GAIN


def write_mimic_tree(root: Path, studies: list[Study]) -> dict[str, np.ndarray]:
    """Write `studies` under `root` in MIMIC-IV-ECG's layout; returns study id -> the
    (12, 5000) mV signal written (leads in the file's order, MIMIC_LEADS)."""
    import wfdb

    root.mkdir(parents=True, exist_ok=True)
    listing: list[dict[str, object]] = []
    measurements: list[dict[str, object]] = []
    written: dict[str, np.ndarray] = {}
    for index, study in enumerate(studies):
        when = _ecg_time(index)
        path = study_path(study.subject_id, study.study_id)
        listing.append({"subject_id": study.subject_id, "study_id": study.study_id,
                        "file_name": study.study_id, "ecg_time": when.strftime("%Y-%m-%d %H:%M:%S"),
                        "path": path})
        if study.statements is not None:
            reports = [*study.statements, *[""] * (N_REPORTS - len(study.statements))]
            measurements.append({
                "subject_id": study.subject_id, "study_id": study.study_id, "cart_id": 6848 + index % 3,
                "ecg_time": when.strftime("%Y-%m-%d %H:%M:%S"),
                **{f"report_{i}": text for i, text in enumerate(reports)},
                "bandwidth": "0.005-150 Hz", "filtering": "60 Hz notch  Baseline filter",
                "rr_interval": 659, "p_onset": 40, "p_end": 128, "qrs_onset": 170, "qrs_end": 258,
                "t_end": 518, "p_axis": 81, "qrs_axis": 77, "t_axis": 79,
            })
        signal = _signal(study.study_id)
        folder = root / Path(path).parent
        folder.mkdir(parents=True, exist_ok=True)
        digital = np.round(signal.T * GAIN).astype(np.int16)
        wfdb.wrsamp(str(study.study_id), fs=FS, units=["mV"] * len(MIMIC_LEADS), sig_name=list(MIMIC_LEADS),
                    d_signal=digital, fmt=["16"] * len(MIMIC_LEADS), adc_gain=[GAIN] * len(MIMIC_LEADS),
                    baseline=[0] * len(MIMIC_LEADS), base_time=when.time(), base_date=when.date(),
                    write_dir=str(folder))
        written[str(study.study_id)] = signal
    pd.DataFrame(listing, columns=["subject_id", "study_id", "file_name", "ecg_time", "path"]).to_csv(
        root / "record_list.csv", index=False)
    pd.DataFrame(measurements, columns=list(MEASUREMENT_COLUMNS)).to_csv(
        root / "machine_measurements.csv", index=False)
    return written
