"""The heart as one moving 3-D current dipole, seen through the 12 leads.

The model follows the idea of McSharry et al. (2003) and Sameni et al. (2007):
within one beat the cardiac dipole d(t) is a sum of Gaussian bumps, one per
wave (P, septal q, R, S, ST, T ...), each with its own time, width and 3-D
direction. Written from the papers' description, not from their code.

Coordinates (patient frame): x to the patient's left, y towards the feet
(inferior), z towards the front (anterior). Units: millivolts as seen by a
unit-length lead.

The 12 leads are projections of d(t) onto lead vectors. Only I, II and V1–V6
are "recorded"; III, aVR, aVL and aVF are computed from I and II exactly as an
electrocardiograph does (III = II − I, aVR = −(I+II)/2, aVL = I − II/2,
aVF = II − I/2), so the limb-lead identities hold to the last bit on the clean
signal, and within quantisation once noise is added to the recorded channels.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

LEADS: tuple[str, ...] = (
    "I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6",
)

# Wave groups: the group decides how a wave's time moves from beat to beat.
ATRIAL = 0        # moves with the PR interval (P waves)
DEPOLARISATION = 1  # fixed to the R peak (QRS)
REPOLARISATION = 2  # stretches with the QT interval (ST segment, T waves)

# Precordial electrodes: angle in the transverse plane from +x towards +z (degrees),
# a small inferior tilt, and a proximity gain (the chest electrodes sit close to
# the heart, V2–V4 closest). Angles after the usual textbook hexaxial/precordial
# drawings; tuned so that the R/S transition falls at V3–V4 on a normal beat.
PRECORDIAL_ANGLE_DEG = np.array([118.0, 98.0, 78.0, 58.0, 32.0, 8.0])
PRECORDIAL_TILT = np.array([0.10, 0.10, 0.12, 0.15, 0.15, 0.15])
PRECORDIAL_GAIN = np.array([1.3, 1.9, 2.0, 1.85, 1.55, 1.3])


def precordial_vectors(shift_deg: float = 0.0, tilt: float = 0.0) -> np.ndarray:
    """(6, 3) lead vectors of V1–V6. `shift_deg` rotates all six electrodes around
    the chest and `tilt` moves them up (negative) or down (positive): how one
    hospital's electrode placement differs from another's."""
    ang = np.deg2rad(PRECORDIAL_ANGLE_DEG + shift_deg)
    vec = np.stack([np.cos(ang), PRECORDIAL_TILT + tilt, np.sin(ang)], axis=1)
    return vec * PRECORDIAL_GAIN[:, None]


# Einthoven: lead I along +x, lead II at +60 degrees in the frontal plane.
LEAD_I = np.array([1.0, 0.0, 0.0])
LEAD_II = np.array([np.cos(np.pi / 3), np.sin(np.pi / 3), 0.0])


@dataclass(frozen=True)
class Wave:
    """One Gaussian bump of the dipole: centre (s, relative to the R peak at a
    1 s RR interval), width (s), direction and size (mV, 3-vector), group."""

    mu: float
    sigma: float
    amp: tuple[float, float, float]
    group: int


Template = dict[str, Wave]


def normal_beat() -> Template:
    """A healthy adult's sinus beat (PR 160 ms, QRS ~90 ms, QT 400 ms at 60 bpm).

    The P wave is two bumps (right then left atrium), the QRS a small septal
    force (left-to-right, anterior: the q in I/V6 and the r in V1), the main
    left-ventricular force (left, inferior, posterior) and a late terminal force;
    the T wave is two bumps (slow rise, faster fall) roughly concordant with QRS.
    """
    return {
        "P1": Wave(-0.165, 0.020, (0.03, 0.08, 0.05), ATRIAL),
        "P2": Wave(-0.135, 0.020, (0.07, 0.05, -0.04), ATRIAL),
        "Q": Wave(-0.024, 0.0075, (-0.12, 0.02, 0.20), DEPOLARISATION),
        "R": Wave(0.0, 0.0105, (0.95, 0.70, -0.45), DEPOLARISATION),
        "S": Wave(0.026, 0.0095, (-0.22, -0.12, -0.30), DEPOLARISATION),
        "ST": Wave(0.10, 0.045, (0.01, 0.01, 0.02), REPOLARISATION),
        "T1": Wave(0.245, 0.050, (0.13, 0.10, 0.07), REPOLARISATION),
        "T2": Wave(0.300, 0.034, (0.10, 0.08, 0.05), REPOLARISATION),
    }


def scaled(wave: Wave, factor: float) -> Wave:
    """The same wave with its dipole multiplied by `factor`."""
    return replace(wave, amp=tuple(float(a) * factor for a in wave.amp))


def rotation(frontal_deg: float, horizontal_deg: float) -> np.ndarray:
    """Rotation of the heart: about the anterior axis (changes the frontal QRS
    axis; positive = rightward/clockwise as seen from the front, since y points
    down) then about the vertical axis (horizontal-plane rotation)."""
    a, b = np.deg2rad(frontal_deg), np.deg2rad(horizontal_deg)
    rz = np.array([[np.cos(a), -np.sin(a), 0.0], [np.sin(a), np.cos(a), 0.0], [0.0, 0.0, 1.0]])
    ry = np.array([[np.cos(b), 0.0, -np.sin(b)], [0.0, 1.0, 0.0], [np.sin(b), 0.0, np.cos(b)]])
    return ry @ rz


@dataclass(frozen=True)
class BeatTrain:
    """Where the beats fall and how each one differs (all arrays of length n_beats).

    r_time: R-peak time (s); rr: the RR interval before the beat (s, sets QT);
    pr: PR interval (s); has_p: 1.0 to draw the P wave, 0.0 without (AF, PVC);
    kind: index into the list of templates (0 sinus, 1 ventricular ectopic);
    gain: beat amplitude factor (respiration, beat-to-beat variability);
    tilt: small frontal-plane rotation of the beat (radians, respiration).
    """

    r_time: np.ndarray
    rr: np.ndarray
    pr: np.ndarray
    has_p: np.ndarray
    kind: np.ndarray
    gain: np.ndarray
    tilt: np.ndarray


def _template_arrays(template: Template) -> tuple[np.ndarray, ...]:
    waves = list(template.values())
    mu = np.array([w.mu for w in waves])
    sigma = np.array([w.sigma for w in waves])
    amp = np.array([w.amp for w in waves], dtype=float)
    group = np.array([w.group for w in waves])
    return mu, sigma, amp, group


def render_dipole(beats: BeatTrain, templates: list[Template], qtc: float, fs: float,
                  n_samples: int, reference_pr: float = 0.16) -> np.ndarray:
    """(3, n_samples) dipole for a train of beats.

    Each Gaussian is evaluated only within ±4.5 sigma of its centre and summed
    with `np.bincount`, so a 10-s record costs tens of thousands of `exp` calls
    rather than (samples × waves × beats).

    P waves move with the beat's PR interval relative to `reference_pr` (the
    template's), ST-T waves stretch with the beat's QT, from `qtc` by
    Fridericia (QT = QTc · RR^(1/3)); the template is drawn at QTc 0.40 s.
    """
    centres, widths, amps = [], [], []
    for kind, template in enumerate(templates):
        sel = beats.kind == kind
        if not np.any(sel) or not template:
            continue
        mu, sigma, amp, group = _template_arrays(template)
        r = beats.r_time[sel][:, None]
        qt_scale = (qtc / 0.40) * np.cbrt(beats.rr[sel])[:, None]
        pr_shift = (beats.pr[sel] - reference_pr)[:, None]
        centre = np.where(group == REPOLARISATION, mu * qt_scale,
                          np.where(group == ATRIAL, mu - pr_shift, mu)) + r
        width = np.where(group == REPOLARISATION, sigma * np.sqrt(qt_scale), sigma + 0.0 * r)
        present = np.where(group == ATRIAL, beats.has_p[sel][:, None], 1.0)
        # Respiration: a small rotation in the frontal plane and a gain per beat.
        c, s = np.cos(beats.tilt[sel]), np.sin(beats.tilt[sel])
        ax = c[:, None] * amp[None, :, 0] - s[:, None] * amp[None, :, 1]
        ay = s[:, None] * amp[None, :, 0] + c[:, None] * amp[None, :, 1]
        az = np.broadcast_to(amp[None, :, 2], ax.shape)
        scale = (beats.gain[sel][:, None] * present)[..., None]
        centres.append(centre.ravel())
        widths.append(width.ravel())
        amps.append((np.stack([ax, ay, az], axis=-1) * scale).reshape(-1, 3))
    if not centres:
        return np.zeros((3, n_samples))
    return gaussian_sum(np.concatenate(centres), np.concatenate(widths),
                        np.concatenate(amps), fs, n_samples)


def gaussian_sum(centre: np.ndarray, width: np.ndarray, amp: np.ndarray, fs: float,
                 n_samples: int) -> np.ndarray:
    """(3, n) sum of Gaussians amp_k · exp(−(t − centre_k)² / 2 width_k²), windowed.

    Narrow (QRS) and wide (P, ST, T) bumps get their own window length, which
    halves the work compared with one window as long as the widest bump.
    """
    out = np.zeros((3, n_samples))
    narrow = width < 0.03
    for sel in (narrow, ~narrow):
        if np.any(sel):
            _add_windowed(out, centre[sel], width[sel], amp[sel], fs)
    return out


def _add_windowed(out: np.ndarray, centre: np.ndarray, width: np.ndarray, amp: np.ndarray,
                  fs: float) -> None:
    n_samples = out.shape[1]
    half = int(np.ceil(4.5 * float(width.max()) * fs))
    offsets = np.arange(-half, half + 1)
    idx = np.rint(centre * fs).astype(np.int64)[:, None] + offsets[None, :]
    inside = (idx >= 0) & (idx < n_samples)
    g = np.exp(-0.5 * ((idx / fs - centre[:, None]) / width[:, None]) ** 2)
    flat_idx = idx[inside]
    for axis in range(3):
        weights = (g * amp[:, axis:axis + 1])[inside]
        out[axis] += np.bincount(flat_idx, weights=weights, minlength=n_samples)


def recorded_channels(dipole: np.ndarray, precordial: np.ndarray) -> np.ndarray:
    """(8, n): the channels an electrocardiograph measures: I, II, V1–V6."""
    matrix = np.vstack([LEAD_I, LEAD_II, precordial])
    return matrix @ dipole


# Rows of the 12-lead array that are recorded channels (I, II, V1–V6).
RECORDED_ROWS: tuple[int, ...] = (0, 1, 6, 7, 8, 9, 10, 11)


def twelve_leads(recorded: np.ndarray) -> np.ndarray:
    """(12, n) standard leads from the 8 recorded channels, limb leads derived
    from I and II as the device computes them (so the identities are exact)."""
    lead_i, lead_ii = recorded[0], recorded[1]
    out = np.empty((12, recorded.shape[1]), dtype=recorded.dtype)
    out[0] = lead_i
    out[1] = lead_ii
    out[2] = lead_ii - lead_i
    out[3] = -(lead_i + lead_ii) / 2
    out[4] = lead_i - lead_ii / 2
    out[5] = lead_ii - lead_i / 2
    out[6:] = recorded[2:]
    return out


def frontal_axis_deg(template: Template) -> float:
    """Mean frontal QRS axis (degrees) of a beat: the angle of the summed QRS
    area as leads I and aVF see it (the clinician's two-lead method, exact here)."""
    area = np.zeros(3)
    for wave in template.values():
        if wave.group == DEPOLARISATION:
            area += np.asarray(wave.amp) * wave.sigma
    lead_i = area @ LEAD_I
    lead_avf = area @ (LEAD_II - LEAD_I / 2)
    return float(np.degrees(np.arctan2(lead_avf / (np.sqrt(3) / 2), lead_i)))


def sokolow_lyon_mv(template: Template, precordial: np.ndarray) -> float:
    """Sokolow–Lyon index of a beat: depth of S in V1 plus the taller R of V5/V6
    (mV), from the QRS waves alone on a fine time grid (a voltage criterion for
    LVH: >= 3.5 mV)."""
    t = np.linspace(-0.1, 0.14, 121)
    dipole = np.zeros((3, t.size))
    for wave in template.values():
        if wave.group == DEPOLARISATION:
            dipole += np.outer(wave.amp, np.exp(-0.5 * ((t - wave.mu) / wave.sigma) ** 2))
    v = precordial @ dipole
    return float(max(0.0, -v[0].min()) + max(v[4].max(), v[5].max(), 0.0))
