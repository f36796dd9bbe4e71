"""The synthetic multi-site generator: real formats, determinism, physiology, site shift."""

from __future__ import annotations

import ast
import csv
import hashlib
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import wfdb
from scipy.signal import find_peaks, welch

from ecgcore.data.synthetic import SITES, write_demo_data, write_site
from ecgcore.data.synthetic import writers as writers_module
from ecgcore.data.synthetic.dipole import LEADS
from ecgcore.data.synthetic.folds import stratified_patient_folds
from ecgcore.data.synthetic.generate import patient_of_records, sample_patient, synthesise
from ecgcore.data.synthetic.vocab import SCP_STATEMENT_COLUMNS, SCP_STATEMENTS
from ecgcore.data.synthetic.wfdb_files import (
    digitise, mat_v4_bytes, write_challenge, write_format16,
)
from ecgcore.data.synthetic.writers import PTBXL_COLUMNS

SOURCE, TARGET = SITES["source_ptbxl"], SITES["target_challenge"]
SCALE = 0.02  # 40 source records, 20 target records
LEAD = {name: i for i, name in enumerate(LEADS)}


def _hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("demo")
    return out, write_demo_data(out, seed=3, scale=SCALE)


# ----------------------------------------------------------------------------- formats


def test_determinism_by_seed(demo, tmp_path: Path):
    out, _ = demo
    again = write_demo_data(tmp_path / "again", seed=3, scale=SCALE)
    assert _hashes(out) == _hashes(tmp_path / "again")
    assert [s["classes"] for s in again["sites"]] == [s["classes"] for s in demo[1]["sites"]]
    other = write_demo_data(tmp_path / "other", seed=4, scale=SCALE)
    assert _hashes(tmp_path / "other") != _hashes(out)
    assert other["seed"] == 4


def test_parallel_writing_gives_the_same_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    one = write_site(TARGET, tmp_path / "one", seed=1, scale=0.03, workers=1)
    monkeypatch.setattr(writers_module, "_PARALLEL_MIN", 0)
    two = write_site(TARGET, tmp_path / "two", seed=1, scale=0.03, workers=2)
    assert one["classes"] == two["classes"]
    assert _hashes(tmp_path / "one") == _hashes(tmp_path / "two")


def test_layouts_on_disk(demo):
    out, written = demo
    names = [s["name"] for s in written["sites"]]
    assert names == ["source_ptbxl", "target_challenge"]
    src = out / "source_ptbxl"
    assert (src / "records500/00000/00001_hr.hea").is_file()
    assert (src / "records100/00000/00001_lr.dat").is_file()
    db = pd.read_csv(src / "ptbxl_database.csv")
    assert tuple(db.columns) == PTBXL_COLUMNS
    assert len(db) == written["sites"][0]["n_records"] == 40
    assert db["ecg_id"].tolist() == list(range(1, 41))
    assert set(db["sex"]) <= {0, 1}
    for cell in db["scp_codes"]:
        codes = ast.literal_eval(cell)
        assert isinstance(codes, dict) and codes and all(isinstance(v, float) for v in codes.values())
    header = (out / "target_challenge/g1/T00001.hea").read_text().splitlines()
    assert header[0].startswith("T00001 12 250 2500 ")
    assert header[1].startswith("T00001.mat 16+24 1000/mV 16 0 ")
    assert [line.split(":")[0] for line in header[13:16]] == ["#Age", "#Sex", "#Dx"]
    assert (out / "target_challenge/g1/T00001.mat").stat().st_size == 24 + 2 * 12 * 2500


def test_ptbxl_columns_and_statements_match_the_real_files(demo, shared_data: Path):
    out, _ = demo
    real = pd.read_csv(shared_data / "labels/ptbxl/ptbxl_database_subset_for_HR_records.csv")
    assert set(real.columns) <= set(PTBXL_COLUMNS)
    with open(shared_data / "labels/ptbxl/scp_statements.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert tuple(rows[0]) == SCP_STATEMENT_COLUMNS
    official = {row[0]: tuple(row[1:]) for row in rows[1:]}
    for code, values in SCP_STATEMENTS.items():
        assert official[code] == values, code
    written = pd.read_csv(out / "source_ptbxl/scp_statements.csv", index_col=0,
                          keep_default_na=False, dtype=str)
    used = {c for cell in pd.read_csv(out / "source_ptbxl/ptbxl_database.csv")["scp_codes"]
            for c in ast.literal_eval(cell)}
    assert set(written.index) == used
    for code in written.index:
        assert tuple(written.loc[code]) == official[code]


def test_format16_writer_is_byte_identical_to_wfdb(tmp_path: Path):
    rng = np.random.default_rng(0)
    digital = digitise(rng.normal(0, 2, size=(12, 700)), 1000.0)
    write_format16(tmp_path / "mine", "rec", digital, 500, 1000.0, LEADS)
    (tmp_path / "ref").mkdir()
    wfdb.wrsamp("rec", fs=500, units=["mV"] * 12, sig_name=list(LEADS),
                d_signal=digital.T.astype(np.int64), fmt=["16"] * 12, adc_gain=[1000.0] * 12,
                baseline=[0] * 12, write_dir=str(tmp_path / "ref"))
    for name in ("rec.hea", "rec.dat"):
        assert (tmp_path / "mine" / name).read_bytes() == (tmp_path / "ref" / name).read_bytes()


def test_challenge_mat_is_read_back_exactly_by_wfdb(tmp_path: Path, shared_data: Path):
    rng = np.random.default_rng(1)
    digital = digitise(rng.normal(0, 3, size=(12, 900)), 1000.0)
    write_challenge(tmp_path, "T00009", digital, 250, 1000.0, LEADS, datetime(2018, 3, 4, 5, 6, 7),
                    [("Age", "70"), ("Sex", "Female"), ("Dx", "426783006,111975006")])
    rec = wfdb.rdrecord(str(tmp_path / "T00009"), physical=False)
    np.testing.assert_array_equal(rec.d_signal.T, digital)
    assert rec.fs == 250 and rec.sig_name == list(LEADS) and rec.byte_offset == [24] * 12
    assert "Dx: 426783006,111975006" in rec.comments
    # The MATLAB v4 header has the real Challenge files' 24 bytes and layout.
    real = (shared_data / "ecg/cinc2021/G12EC/E00001.mat").read_bytes()
    ours = mat_v4_bytes(digital)
    assert ours[:4] == real[:4] and ours[16:24] == real[16:24] and len(ours) == 24 + digital.size * 2
    real_rec = wfdb.rdrecord(str(shared_data / "ecg/cinc2021/G12EC/E00001"), physical=False)
    real_header = (shared_data / "ecg/cinc2021/G12EC/E00001.hea").read_text().splitlines()
    ours_header = (tmp_path / "T00009.hea").read_text().splitlines()
    assert real_header[1].split()[1:5] == ours_header[1].split()[1:5] == ["16+24", "1000/mV", "16", "0"]
    assert real_rec.d_signal.shape[1] == 12


def _regenerate(site, seed: int, site_index: int, n_records: int, index: int, noise: bool = True):
    owners = patient_of_records(site, site_index, seed, n_records)
    patient = sample_patient(site, site_index, seed, owners[index])
    return synthesise(site, site_index, seed, patient, index, noise=noise)


def test_written_signals_round_trip_through_wfdb(demo):
    out, _ = demo
    for index in (0, 17, 39):
        record = _regenerate(SOURCE, 3, 0, 40, index)
        name = f"{index + 1:05d}"
        hr = wfdb.rdrecord(str(out / f"source_ptbxl/records500/00000/{name}_hr"), physical=False)
        np.testing.assert_array_equal(hr.d_signal.T, digitise(record.signal, 1000.0))
        lr = wfdb.rdrecord(str(out / f"source_ptbxl/records100/00000/{name}_lr"))
        assert lr.fs == 100 and lr.sig_len == 1000 and lr.sig_name == list(LEADS)
    for index in (0, 19):
        record = _regenerate(TARGET, 3, 1, 20, index)
        rec = wfdb.rdrecord(str(out / f"target_challenge/g1/T{index + 1:05d}"), physical=False)
        np.testing.assert_array_equal(rec.d_signal.T, digitise(record.signal, 1000.0))


# ----------------------------------------------------------------------------- readers


def test_project_readers_read_both_sites(demo):
    from ecgcore.data.sources import open_dataset

    out, written = demo
    src_info, tgt_info = written["sites"]
    src = open_dataset(out / "source_ptbxl")
    assert src.layout == "ptbxl" and len(src) == 40 and not src.unreadable
    assert set(src.table["fold"]) <= set(range(1, 11))
    by_patient = src.table.groupby("patient_id")["fold"].nunique()
    assert (by_patient == 1).all()
    sig = src.read(src.record_ids[0])
    assert sig.data.shape[0] == 12 and sig.fs in (100.0, 500.0)
    db = pd.read_csv(out / "source_ptbxl/ptbxl_database.csv")
    raw = {str(r.ecg_id): set(ast.literal_eval(r.scp_codes)) for r in db.itertuples()}
    for rid, row in src.table.iterrows():
        assert set(row["raw_labels"]) == raw[rid]

    tgt = open_dataset(out / "target_challenge")
    assert tgt.layout == "challenge" and len(tgt) == 20 and not tgt.unreadable
    assert set(tgt.table["fs"]) == {250.0} and set(tgt.table["n_samples"]) == {2500}
    counts: dict[str, int] = {}
    for labels in tgt.table["raw_labels"]:
        for code in labels:
            counts[code] = counts.get(code, 0) + 1
    assert counts == tgt_info["classes"]
    sig = tgt.read("T00001")
    assert sig.data.shape == (12, 2500)


# ----------------------------------------------------------------------------- limb leads


def _limb_residuals(x: np.ndarray) -> np.ndarray:
    i, ii, iii, avr, avl, avf = x[:6]
    return np.stack([iii - (ii - i), avr + (i + ii) / 2, avl - (i - ii / 2), avf - (ii - i / 2)])


def test_limb_lead_identities_exact_on_clean_signal():
    for index in range(5):
        record = _regenerate(SOURCE, 0, 0, 10, index, noise=False)
        assert np.abs(record.signal).max() > 0.2
        assert np.abs(_limb_residuals(record.signal)).max() <= 1e-12


def test_limb_lead_identities_within_quantisation_on_written_files(demo):
    out, _ = demo
    for path in ("source_ptbxl/records500/00000/00005_hr", "source_ptbxl/records100/00000/00005_lr",
                 "target_challenge/g1/T00005"):
        rec = wfdb.rdrecord(str(out / path))
        residual = np.abs(_limb_residuals(rec.p_signal.T)).max()
        assert residual <= 1.5 / 1000 + 1e-9, path


# ----------------------------------------------------------------------------- physiology

FIXED_PATIENTS = [sample_patient(SOURCE, 0, 11, i) for i in range(6)]


def _neutral(patient):
    return replace(patient, frontal_deg=0.0, horizontal_deg=0.0, size=1.0, hr=72.0,
                   pr=0.16, qtc=0.40, chronic=frozenset())


def _clean(findings: set[str], patient_no: int, record: int = 0):
    patient = _neutral(FIXED_PATIENTS[patient_no])
    return synthesise(SOURCE, 0, 11, patient, 1000 * patient_no + record, noise=False,
                      findings=frozenset(findings))


def _r_peaks(signal: np.ndarray, fs: float) -> np.ndarray:
    velocity = np.sqrt((np.diff(signal, axis=1) ** 2).sum(axis=0))
    peaks, _ = find_peaks(velocity, height=0.35 * velocity.max(), distance=int(0.25 * fs))
    return peaks


def _rr(signal: np.ndarray, fs: float) -> np.ndarray:
    return np.diff(_r_peaks(signal, fs)) / fs


def _beats(record, before: float, after: float):
    """Windows around each R peak (sinus beats: the QRS centre is the spatial energy peak)."""
    fs = record.fs
    energy = (record.signal ** 2).sum(axis=0)
    out = []
    for p in _r_peaks(record.signal, fs):
        lo, hi = p - int(0.06 * fs), p + int(0.06 * fs)
        if lo < 0 or hi >= energy.size:
            continue
        r = lo + int(np.argmax(energy[lo:hi]))
        a, b = r - int(before * fs), r + int(after * fs)
        if a >= 0 and b < energy.size:
            out.append(record.signal[:, a:b])
    return out


def _qrs_width(record) -> float:
    """Median QRS duration (s): first to last sample within R ± 100 ms where the
    spatial velocity exceeds 10 % of its QRS maximum (P and T are far slower)."""
    fs = record.fs
    widths = []
    for beat in _beats(record, 0.15, 0.15):
        v = np.sqrt((np.diff(beat, axis=1) ** 2).sum(axis=0))
        centre, span = int(0.15 * fs), int(0.1 * fs)
        above = np.flatnonzero(v[centre - span:centre + span]
                               > 0.1 * v[centre - int(0.07 * fs):centre + int(0.07 * fs)].max())
        widths.append((above.max() - above.min()) / fs)
    return float(np.median(widths))


def _st_level(record, lead: str) -> float:
    """Mean value 80 ms after the R peak (clean signal: the baseline is 0)."""
    fs = record.fs
    return float(np.mean([b[LEAD[lead], int(0.08 * fs)] for b in _beats(record, 0.0, 0.1)]))


def _pr_peak(record) -> float:
    """Median time from the P peak (lead II, 80–400 ms before R) to the R peak."""
    fs = record.fs
    out = [0.4 - np.argmax(b[LEAD["II"], : int(0.32 * fs)]) / fs for b in _beats(record, 0.4, 0.0)]
    return float(np.median(out))


def test_rates_of_the_sinus_rhythms():
    for n in range(4):
        hr = {k: 60.0 / np.mean(_rr(_clean({k}, n).signal, 500.0)) for k in ("SB", "NSR", "STach")}
        # Physiology spans the thresholds a little (readers decide the label).
        assert hr["SB"] < 62 and hr["STach"] > 98 and hr["SB"] < hr["NSR"] < hr["STach"], hr


def test_atrial_fibrillation_is_irregular_without_p_waves():
    for n in range(4):
        af, nsr = _clean({"AF"}, n), _clean({"NSR"}, n)
        cv = {k: np.std(_rr(r.signal, 500.0)) / np.mean(_rr(r.signal, 500.0))
              for k, r in (("AF", af), ("NSR", nsr))}
        assert cv["AF"] > 0.08 > cv["NSR"], cv
    # No P wave before the QRS in lead II (f-waves instead): the 200–80 ms window
    # before R holds a clear positive bump in sinus rhythm only.
    for n in range(4):
        p_wave = {k: np.mean([b[LEAD["II"], : int(0.12 * 500)].max() - b[LEAD["II"], 0]
                              for b in _beats(_clean({k}, n), 0.2, 0.0)]) for k in ("AF", "NSR")}
        assert p_wave["NSR"] > 0.05 > p_wave["AF"] - 0.02, p_wave
    # f-waves: 4–9 Hz power in V1 above sinus rhythm's, averaged over patients
    band_power = {}
    for k in ("AF", "NSR"):
        powers = []
        for n in range(4):
            f, p = welch(_clean({k}, n).signal[LEAD["V1"]], fs=500.0, nperseg=2048)
            powers.append(p[(f > 4) & (f < 9)].sum())
        band_power[k] = np.mean(powers)
    assert band_power["AF"] > 1.5 * band_power["NSR"], band_power


def test_first_degree_block_lengthens_pr():
    for n in range(4):
        assert _pr_peak(_clean({"NSR", "IAVB"}, n)) > 0.20 > _pr_peak(_clean({"NSR"}, n))


def test_bundle_branch_blocks_widen_qrs_with_their_own_v1_shape():
    for n in range(4):
        nsr, lbbb, rbbb = (_clean({"NSR", *extra}, n) for extra in ((), ("LBBB",), ("RBBB",)))
        w = {k: _qrs_width(r) for k, r in (("NSR", nsr), ("LBBB", lbbb), ("RBBB", rbbb))}
        assert w["NSR"] < 0.11 and w["LBBB"] >= 0.12 and w["RBBB"] >= 0.12, w
        # LBBB: V1 dominated by a deep negative QS, V6 by a broad positive R;
        # RBBB: a late positive R' in V1 and a late negative S in V6 / I.
        v1_l, v6_l = (np.mean([b[LEAD[k]].sum() for b in _beats(lbbb, 0.08, 0.08)]) for k in ("V1", "V6"))
        assert v1_l < 0 < v6_l
        late_v1 = np.mean([b[LEAD["V1"], int(0.04 * 500):].max() for b in _beats(rbbb, 0.0, 0.1)])
        late_v1_nsr = np.mean([b[LEAD["V1"], int(0.04 * 500):].max() for b in _beats(nsr, 0.0, 0.1)])
        assert late_v1 > late_v1_nsr + 0.2


def test_infarcts_raise_st_in_their_own_territory():
    diffs = {"AMI": [], "IMI": []}
    for n in range(6):
        nsr = _clean({"NSR"}, n)
        ami, imi = _clean({"NSR", "AMI"}, n), _clean({"NSR", "IMI"}, n)
        leads = ("V2", "V3", "III", "aVF")
        diffs["AMI"].append([_st_level(ami, lead) - _st_level(nsr, lead) for lead in leads])
        diffs["IMI"].append([_st_level(imi, lead) - _st_level(nsr, lead) for lead in leads])
    ami, imi = np.mean(diffs["AMI"], axis=0), np.mean(diffs["IMI"], axis=0)
    assert min(ami[:2]) > 0.06 and max(ami[2:]) < 0.03, ami
    assert min(imi[2:]) > 0.06 and max(imi[:2]) < 0.03, imi


def test_lvh_voltage_st_t_inversion_long_qt_and_pvcs():
    for n in range(4):
        nsr = _clean({"NSR"}, n)
        def sokolow(r):
            beats = _beats(r, 0.06, 0.06)
            return np.mean([-b[LEAD["V1"]].min() + max(b[LEAD["V5"]].max(), b[LEAD["V6"]].max())
                            for b in beats])
        assert sokolow(_clean({"NSR", "LVH"}, n)) > 1.4 * sokolow(nsr)
        def t_v6(r):
            return np.mean([b[LEAD["V6"], int(0.15 * 500):].mean() for b in _beats(r, 0.0, 0.4)])
        assert t_v6(nsr) > 0.02 and t_v6(_clean({"NSR", "STTC"}, n)) < t_v6(nsr) - 0.05
        def t_peak(r):
            return np.median([np.argmax(np.abs(b[LEAD["V4"], int(0.12 * 500):])) / 500 + 0.12
                              for b in _beats(r, 0.0, 0.6)])
        assert t_peak(_clean({"NSR", "LQT"}, n)) > t_peak(nsr) + 0.04
        pvc = _clean({"NSR", "PVC"}, n)
        assert np.max(np.abs(pvc.signal)) > np.max(np.abs(nsr.signal))
        rr = _rr(pvc.signal, 500.0)
        assert rr.min() < 0.75 * np.median(rr)  # a premature beat


# ----------------------------------------------------------------------------- sites


def test_sites_differ_in_rate_calibration_noise_and_mains(demo):
    out, written = demo
    src, tgt = written["sites"]
    assert (src["fs"], tgt["fs"]) == (500.0, 250.0)
    # True calibration: the same heart reads 20 % lower at the target.
    patient = _neutral(FIXED_PATIENTS[0])
    a = synthesise(SOURCE, 0, 5, patient, 1, noise=False, findings=frozenset({"NSR"}))
    b = synthesise(TARGET, 0, 5, patient, 1, noise=False, findings=frozenset({"NSR"}))
    ratio = np.abs(b.signal[LEAD["I"]]).max() / np.abs(a.signal[LEAD["I"]]).max()
    assert 0.75 < ratio < 0.85
    # Noise: the target's recordings are noisier (same records, with and without noise).
    def residual(site, site_index, n):
        return np.median([np.std(_regenerate(site, 0, site_index, n, i).signal
                                 - _regenerate(site, 0, site_index, n, i, noise=False).signal)
                          for i in range(8)])
    assert residual(TARGET, 1, 20) > 1.5 * residual(SOURCE, 0, 40)
    # Mains: 50 Hz at the source, 60 Hz at the target, in the written files.
    def mains(path: Path, fs: float) -> tuple[float, float]:
        x = wfdb.rdrecord(str(path)).p_signal.T
        f, p = welch(x - x.mean(axis=1, keepdims=True), fs=fs, nperseg=int(fs * 2), axis=1)
        p = p.mean(axis=0)
        near = lambda hz: p[np.argmin(np.abs(f - hz))]  # noqa: E731
        return near(50.0), near(60.0)
    s50, s60 = np.median([mains(out / f"source_ptbxl/records500/00000/{i:05d}_hr", 500.0)
                          for i in range(1, 11)], axis=0)
    t50, t60 = np.median([mains(out / f"target_challenge/g1/T{i:05d}", 250.0)
                          for i in range(1, 11)], axis=0)
    assert s50 > 5 * s60 and t60 > 5 * t50


def test_target_population_and_vocabulary_differ(tmp_path: Path):
    from ecgcore.data.sources import open_dataset

    written = write_demo_data(tmp_path, seed=0, scale=0.1)
    src = open_dataset(tmp_path / "source_ptbxl")
    tgt = open_dataset(tmp_path / "target_challenge")
    assert tgt.table["age"].mean() > src.table["age"].mean() + 3
    source_codes = {c for labels in src.table["labels"] for c in labels}
    target_codes = {c for labels in tgt.table["labels"] for c in labels}
    only_target = target_codes - source_codes
    assert {"111975006", "39732003"} <= only_target  # long QT, left axis deviation
    assert len(target_codes & source_codes) >= 8     # and most classes are shared
    assert src.table["label_vocab"].eq("scp").all() and tgt.table["label_vocab"].eq("snomed").all()
    counts = [s["classes"] for s in written["sites"]]
    assert counts[1]["164889003"] / 200 > counts[0]["AFIB"] / 400  # AF commoner at the target


def test_folds_are_patient_disjoint_and_stratified():
    rng = np.random.default_rng(0)
    patients = rng.integers(0, 300, size=600).tolist()
    labels = [("A",) if rng.random() < 0.1 else ("B",) for _ in patients]
    folds = np.array(stratified_patient_folds(patients, labels, n_folds=10, seed=0))
    assert set(folds) == set(range(1, 11))
    for pid in set(patients):
        assert len({folds[i] for i, p in enumerate(patients) if p == pid}) == 1
    per_fold = [sum(1 for i, f in enumerate(folds) if f == k and labels[i] == ("A",))
                for k in range(1, 11)]
    assert max(per_fold) - min(per_fold) <= 4
