"""The synthetic hospitals: how they differ, as data.

Two sites share one physiology (`dipole.py`, `conditions.py`) and differ as real
hospitals do: recorder (sampling rate, ADC gain, a true amplitude calibration
error, electrode placement, mains frequency and noise), population (age, sex,
heart rate, axis, how common each condition is) and how their cardiologists
write findings down (vocabulary, which findings they report at all, how often
they miss one or add a spurious one).

- `source_ptbxl`: a large European university hospital in PTB-XL layout
  (SCP-ECG codes, 500 Hz with 100 Hz copies, 50 Hz mains, quiet recordings).
- `target_challenge`: a smaller, older, sicker American community hospital in
  PhysioNet/CinC Challenge layout (SNOMED CT codes, 250 Hz, 60 Hz mains, noisier,
  amplitudes 20 % low, chest electrodes placed a little higher), which also
  reports long QT and left axis deviation — findings the source never labels.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ecgcore.data.synthetic.noise import NoiseLevels


@dataclass(frozen=True)
class Report:
    """How a site writes one finding: one of `choices` (weighted by `weights`),
    written with probability `sensitivity`, plus `extra` codes each with its own
    probability. A missed rhythm finding falls back to `fallback`'s report."""

    choices: tuple[str, ...]
    weights: tuple[float, ...] = ()
    sensitivity: float = 0.95
    extra: tuple[tuple[str, float], ...] = ()
    fallback: str = ""


@dataclass(frozen=True)
class Site:
    """One synthetic hospital. Counts are at scale 1.0 (`write_demo_data(scale=...)`)."""

    name: str
    layout: str                    # "ptbxl" | "challenge" (a key of writers.WRITERS)
    description: str
    fs: float                      # native sampling rate of the recorder
    duration_s: float
    n_records: int
    records_per_patient: float     # mean; 1.0 = one record per patient
    adc_gain: float                # digital units per mV written in the header
    amplitude_scale: float         # true calibration error of the recorder
    noise: NoiseLevels
    precordial_shift_deg: float    # electrode placement: rotation around the chest
    precordial_tilt: float         # electrode placement: negative = higher
    age_mean: float
    age_sd: float
    male_fraction: float
    hr_mean: float
    hr_sd: float
    axis_mean_deg: float           # population mean frontal rotation of the heart
    left_axis_fraction: float      # share of patients with a leftward-rotated axis
    prevalence: dict[str, float]   # finding -> probability (per patient or per record)
    reports: dict[str, Report]     # finding -> how it is written; absent = never written
    false_positive: float          # per record: chance of one spurious abnormal code
    styles: dict[str, float] = field(default_factory=dict)  # see conditions.Plan.style
    highpass_hz: float = 0.0       # recorder high-pass (0: diagnostic-grade, none modelled)
    record_prefix: str = ""
    first_year: int = 1990
    last_year: int = 1999
    ids_per_folder: int = 1000


# Per-patient (chronic) findings; the rest are drawn per record.
CHRONIC: frozenset[str] = frozenset({"LBBB", "RBBB", "AMI", "IMI", "LVH", "LQT", "IAVB"})

SOURCE = Site(
    name="source_ptbxl",
    layout="ptbxl",
    description="large university hospital, PTB-XL layout, SCP-ECG codes, 500/100 Hz, 50 Hz mains",
    fs=500.0,
    duration_s=10.0,
    n_records=2000,
    records_per_patient=1.35,
    adc_gain=1000.0,
    amplitude_scale=1.0,
    noise=NoiseLevels(wander_mv=0.05, powerline_mv=0.012, powerline_hz=50.0, emg_mv=0.008,
                      burst_prob=0.03),
    precordial_shift_deg=0.0,
    precordial_tilt=0.0,
    age_mean=59.0,
    age_sd=17.0,
    male_fraction=0.52,
    hr_mean=70.0,
    hr_sd=11.0,
    axis_mean_deg=0.0,
    left_axis_fraction=0.05,
    prevalence={
        "AF": 0.08, "SB": 0.09, "STach": 0.07, "IAVB": 0.05, "LBBB": 0.035, "RBBB": 0.045,
        "AMI": 0.07, "IMI": 0.08, "LVH": 0.09, "STTC": 0.11, "LQT": 0.04, "PVC": 0.06,
        "PAC": 0.05, "ER": 0.04, "IRBBB": 0.04,
    },
    reports={
        "NSR": Report(("SR",), sensitivity=1.0),
        "SB": Report(("SBRAD",), sensitivity=0.9, fallback="NSR"),
        "STach": Report(("STACH",), sensitivity=0.9, fallback="NSR"),
        "AF": Report(("AFIB",), sensitivity=0.95),
        "IAVB": Report(("1AVB",), sensitivity=0.85),
        "LBBB": Report(("CLBBB",), sensitivity=0.95),
        "RBBB": Report(("CRBBB",), sensitivity=0.93),
        "AMI": Report(("ASMI", "AMI"), (0.8, 0.2), sensitivity=0.85),
        "IMI": Report(("IMI", "ILMI"), (0.85, 0.15), sensitivity=0.85),
        "STTC": Report(("NDT", "ISC_", "ISCAL"), (0.45, 0.35, 0.2), sensitivity=0.8,
                       extra=(("INVT", 0.55), ("STD_", 0.2))),
        "LVH": Report(("LVH",), sensitivity=0.8),
        "HVOLT": Report(("VCLVH",), sensitivity=0.5),
        "PVC": Report(("PVC",), sensitivity=0.9),
    },
    false_positive=0.02,
    styles={"mi_acute": 0.65, "sttc_anterior": 0.15, "lvh_strain": 0.3, "fwave_scale": 1.0},
    first_year=1989,
    last_year=1996,
)

TARGET = Site(
    name="target_challenge",
    layout="challenge",
    description="community hospital, Challenge layout, SNOMED CT codes, 250 Hz, 60 Hz mains",
    fs=250.0,
    duration_s=10.0,
    n_records=1000,
    records_per_patient=1.0,
    adc_gain=1000.0,
    amplitude_scale=0.8,
    noise=NoiseLevels(wander_mv=0.25, powerline_mv=0.04, powerline_hz=60.0, emg_mv=0.03,
                      burst_prob=0.12),
    precordial_shift_deg=15.0,
    precordial_tilt=-0.2,
    age_mean=66.0,
    age_sd=13.0,
    male_fraction=0.58,
    hr_mean=78.0,
    hr_sd=13.0,
    axis_mean_deg=-12.0,
    left_axis_fraction=0.14,
    prevalence={
        "AF": 0.14, "SB": 0.10, "STach": 0.12, "IAVB": 0.07, "LBBB": 0.05, "RBBB": 0.06,
        "AMI": 0.04, "IMI": 0.05, "LVH": 0.12, "STTC": 0.10, "LQT": 0.09, "PVC": 0.09,
        "PAC": 0.07, "ER": 0.02, "IRBBB": 0.05,
    },
    reports={
        "NSR": Report(("426783006",), sensitivity=1.0),
        "SB": Report(("426177001",), sensitivity=0.92, fallback="NSR"),
        "STach": Report(("427084000",), sensitivity=0.92, fallback="NSR"),
        "AF": Report(("164889003",), sensitivity=0.93),
        "IAVB": Report(("270492004",), sensitivity=0.7),
        "LBBB": Report(("164909002",), sensitivity=0.95),
        "RBBB": Report(("59118001",), sensitivity=0.92),
        "AMI": Report(("164865005",), sensitivity=0.8),
        "IMI": Report(("164865005",), sensitivity=0.8),
        "STTC": Report(("59931005",), sensitivity=0.75),
        # This site calls LVH mostly on voltage: true LVH without high voltage is
        # often missed, high voltage without LVH (big young hearts) often called.
        "LVH": Report(("164873001",), sensitivity=0.55),
        "HVOLT": Report(("164873001",), sensitivity=0.85),
        "PVC": Report(("164884008",), sensitivity=0.9),
        "LQT": Report(("111975006",), sensitivity=0.85),
        "LAD": Report(("39732003",), sensitivity=0.9),
    },
    false_positive=0.05,
    styles={"mi_acute": 0.3, "sttc_anterior": 0.55, "lvh_strain": 0.55, "fwave_scale": 0.7},
    highpass_hz=0.5,
    record_prefix="T",
    first_year=2015,
    last_year=2019,
)

SITES: dict[str, Site] = {site.name: site for site in (SOURCE, TARGET)}
