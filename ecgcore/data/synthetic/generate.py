"""From a site and a seed to patients, records and their signals.

Every random draw comes from a generator seeded by (seed, site, what, index),
so each record depends only on those numbers: the output is the same whatever
the order or process in which records are made.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ecgcore.data.synthetic.conditions import CONDITIONS, Plan, apply_conditions
from ecgcore.data.synthetic.dipole import (
    Template, frontal_axis_deg, normal_beat, sokolow_lyon_mv, precordial_vectors, recorded_channels,
    render_dipole, rotation, twelve_leads,
)
from ecgcore.data.synthetic.noise import NoiseReport, add_noise, device_highpass
from ecgcore.data.synthetic.rhythm import beat_train, fibrillatory_waves
from ecgcore.data.synthetic.sites import CHRONIC, Site

# Stream tags for seeding: (seed, site_index, TAG, index).
_PATIENT, _RECORD, _CHRONIC_SHAPE, _RECORD_SHAPE, _LAYOUT = 1, 2, 3, 4, 5


def rng_for(seed: int, site_index: int, tag: int, *index: int) -> np.random.Generator:
    return np.random.default_rng([seed, site_index, tag, *index])


@dataclass(frozen=True)
class Patient:
    index: int
    age: float
    sex: str                 # "M" | "F"
    height_cm: float
    weight_kg: float
    frontal_deg: float       # rotation of the heart in the frontal plane
    horizontal_deg: float
    size: float              # overall QRS/T amplitude of this body
    hr: float
    pr: float
    qtc: float
    chronic: frozenset[str]
    af_prone: bool


@dataclass(frozen=True)
class SyntheticRecord:
    """One record's truth and signal (12 standard leads, mV, the site's rate)."""

    patient: Patient
    index: int
    findings: frozenset[str]   # conditions present, plus derived ones (LAD)
    signal: np.ndarray
    fs: float
    hr: float
    pr: float
    qtc: float
    axis_deg: float
    sokolow_mv: float
    n_pvc: int
    noise: NoiseReport | None

    @property
    def measurements(self) -> dict[str, float]:
        """What a reader measures on the tracing (exact here; readers add error)."""
        return {"hr": self.hr, "pr": self.pr, "qtc": self.qtc, "axis": self.axis_deg,
                "sokolow": self.sokolow_mv}


def _age_factor(age: float) -> float:
    """Most cardiac disease is commoner with age (odds roughly x3 from 40 to 80)."""
    return float(np.clip(np.exp((age - 60.0) / 35.0), 0.25, 3.0))


def sample_patient(site: Site, site_index: int, seed: int, index: int) -> Patient:
    rng = rng_for(seed, site_index, _PATIENT, index)
    age = float(np.clip(np.round(rng.normal(site.age_mean, site.age_sd)), 18, 95))
    sex = "M" if rng.random() < site.male_fraction else "F"
    height = float(np.round(rng.normal(176 if sex == "M" else 164, 7)))
    weight = float(np.round(rng.normal(82 if sex == "M" else 70, 13)))
    frontal = site.axis_mean_deg + rng.normal(8.0 - 0.35 * (age - 50.0), 22.0)
    if rng.random() < site.left_axis_fraction * _age_factor(age):
        frontal -= rng.uniform(40.0, 75.0)
    size = float(rng.lognormal(np.log(1.15 if sex == "M" else 1.0), 0.22)
                 * np.clip(1.25 - 0.006 * (age - 20.0), 0.7, 1.3))
    factor = _age_factor(age)
    prev = site.prevalence
    # sorted: iterating a set of strings follows the per-process hash seed, and
    # the draws must not depend on the process that makes them.
    chronic = {k for k in sorted(CHRONIC - {"LBBB", "RBBB"})
               if rng.random() < prev.get(k, 0.0) * factor}
    bundle = rng.random()
    if bundle < prev.get("LBBB", 0.0) * factor:
        chronic.add("LBBB")
    elif bundle < (prev.get("LBBB", 0.0) + prev.get("RBBB", 0.0)) * factor:
        chronic.add("RBBB")
    return Patient(
        index=index, age=age, sex=sex, height_cm=height, weight_kg=weight,
        frontal_deg=float(frontal), horizontal_deg=float(rng.normal(0.0, 10.0)), size=size,
        hr=float(rng.normal(site.hr_mean, site.hr_sd)),
        pr=float(np.clip(rng.normal(0.152 + 0.0006 * (age - 50.0), 0.016), 0.12, 0.21)),
        qtc=float(np.clip(rng.normal(0.400 if sex == "M" else 0.412, 0.015), 0.37, 0.455)),
        chronic=frozenset(chronic),
        af_prone=bool(rng.random() < prev.get("AF", 0.0) * factor * 1.2),
    )


def sample_findings(site: Site, patient: Patient, rng: np.random.Generator) -> frozenset[str]:
    """The record's conditions: the patient's chronic ones plus this day's rhythm and ectopy."""
    prev = site.prevalence
    found = set(patient.chronic)
    if patient.af_prone and rng.random() < 0.8:
        found.add("AF")
    else:
        u = rng.random()
        sb, st = prev.get("SB", 0.0), prev.get("STach", 0.0)
        found.add("SB" if u < sb else "STach" if u < sb + st else "NSR")
    for key in ("STTC", "PVC", "PAC", "IRBBB"):
        if rng.random() < prev.get(key, 0.0) * _age_factor(patient.age):
            found.add(key)
    if {"RBBB", "LBBB"} & found:
        found.discard("IRBBB")
    if patient.sex == "M" and patient.age < 45 and rng.random() < prev.get("ER", 0.0) * 5:
        found.add("ER")
    return frozenset(found)


def _orient(template: Template, patient: Patient, amplitude: float) -> Template:
    """Rotate the anatomical template to this patient's heart position and scale it."""
    rot = rotation(patient.frontal_deg, patient.horizontal_deg)
    return {k: replace(w, amp=tuple(float(a) for a in (rot @ np.asarray(w.amp)) * amplitude))
            for k, w in template.items()}


def _shape_rng(seed: int, site_index: int, patient: Patient, record_index: int):
    """Chronic conditions draw their shape from the patient's stream (the same
    infarct on every record of a patient), the others from the record's."""
    keys = list(CONDITIONS)

    def factory(key: str) -> np.random.Generator:
        if key in patient.chronic:
            return rng_for(seed, site_index, _CHRONIC_SHAPE, patient.index, keys.index(key))
        return rng_for(seed, site_index, _RECORD_SHAPE, record_index, keys.index(key))

    return factory


def synthesise(site: Site, site_index: int, seed: int, patient: Patient, record_index: int,
               noise: bool = True, findings: frozenset[str] | None = None) -> SyntheticRecord:
    """Make one record: findings, beat plan, dipole, 12 leads, noise, calibration.

    `findings` forces the conditions (e.g. {"NSR", "LBBB"}: one rhythm plus any
    others) instead of drawing them: for examples, teaching and tests."""
    rng = rng_for(seed, site_index, _RECORD, record_index)
    drawn = sample_findings(site, patient, rng)
    findings = drawn if findings is None else frozenset(findings)
    hr = patient.hr + rng.normal(0.0, 4.0)
    plan = Plan(template=normal_beat(), hr=hr, pr=patient.pr, qtc=patient.qtc,
                style=site.styles)
    plan = apply_conditions(plan, findings, _shape_rng(seed, site_index, patient, record_index))
    amplitude = patient.size * float(rng.lognormal(0.0, 0.05))
    template = _orient(plan.template, patient, amplitude)
    pvc = _orient(plan.pvc_template, patient, amplitude) if plan.pvc_template else {}
    axis = frontal_axis_deg(template)
    precordial = precordial_vectors(site.precordial_shift_deg, site.precordial_tilt)
    sokolow = sokolow_lyon_mv(template, precordial) * site.amplitude_scale
    # Derived findings: what a reader of the tracing would call left axis deviation
    # and high QRS voltage (with or without true hypertrophy).
    findings = findings | ({"LAD"} if axis < -30.0 else set()) | (
        {"HVOLT"} if sokolow >= 3.5 else set())

    n = int(round(site.duration_s * site.fs))
    beats = beat_train(plan, site.duration_s, rng)
    dipole = render_dipole(beats, [template, pvc], plan.qtc, site.fs, n)
    if plan.fwave_mv > 0:
        dipole += fibrillatory_waves(plan, site.fs, n, rng) * patient.size
    recorded = recorded_channels(dipole, precordial)
    report = None
    if noise:
        recorded, report = add_noise(recorded, site.fs, site.noise, rng)
        recorded = device_highpass(recorded, site.fs, site.highpass_hz)
    signal = twelve_leads(recorded) * site.amplitude_scale
    return SyntheticRecord(patient=patient, index=record_index, findings=findings,
                           signal=signal, fs=site.fs, hr=float(plan.hr), pr=float(plan.pr),
                           qtc=float(plan.qtc), axis_deg=axis, sokolow_mv=float(sokolow),
                           n_pvc=plan.n_pvc,
                           noise=report)


def patient_of_records(site: Site, site_index: int, seed: int, n_records: int) -> list[int]:
    """Patient index of each record: patients with 1, 2, 3 ... records (geometric,
    mean `records_per_patient`), records of one patient not adjacent in id order."""
    rng = rng_for(seed, site_index, _LAYOUT, 0)
    owners: list[int] = []
    patient = 0
    p = 1.0 / max(site.records_per_patient, 1.0)
    while len(owners) < n_records:
        owners.extend([patient] * int(rng.geometric(p)))
        patient += 1
    owners = owners[:n_records]
    return [owners[i] for i in rng.permutation(n_records)]
