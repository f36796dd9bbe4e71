"""When the beats fall: sinus rhythm with heart-rate variability, atrial
fibrillation's irregular RR, premature beats with their pauses, and respiration.

Sinus RR intervals carry respiratory sinus arrhythmia (0.15–0.4 Hz) plus a slow
(0.04–0.15 Hz) component and a little white jitter, as in McSharry et al.'s
RR model. AF intervals are drawn independently from a log-normal with a
coefficient of variation of 8–30 % (irregularly irregular).
"""

from __future__ import annotations

import numpy as np

from ecgcore.data.synthetic.conditions import Plan
from ecgcore.data.synthetic.dipole import BeatTrain

SINUS, VENTRICULAR = 0, 1


def _sinus_intervals(n: int, rr: float, rng: np.random.Generator) -> np.ndarray:
    k = np.arange(n) * rr
    resp_hz = rng.uniform(0.15, 0.4)
    lf_hz = rng.uniform(0.04, 0.15)
    rsa = rng.uniform(0.01, 0.05)
    lf = rng.uniform(0.005, 0.03)
    jitter = rng.uniform(0.004, 0.015)
    mod = (rsa * np.sin(2 * np.pi * resp_hz * k + rng.uniform(0, 2 * np.pi))
           + lf * np.sin(2 * np.pi * lf_hz * k + rng.uniform(0, 2 * np.pi))
           + jitter * rng.standard_normal(n))
    return rr * (1.0 + mod)


def _af_intervals(n: int, rr: float, rng: np.random.Generator) -> np.ndarray:
    cv = rng.uniform(0.08, 0.30)
    sigma = np.sqrt(np.log1p(cv ** 2))
    intervals = rr * np.exp(rng.normal(-sigma ** 2 / 2, sigma, size=n))
    return np.maximum(intervals, 0.28)


def beat_train(plan: Plan, duration: float, rng: np.random.Generator) -> BeatTrain:
    """Beats covering [−1.5 s, duration + 1 s] so that records start and end mid-beat."""
    rr = 60.0 / plan.hr
    n = int(np.ceil((duration + 2.5) / (0.7 * rr))) + 4
    intervals = (_af_intervals if plan.irregular else _sinus_intervals)(n, rr, rng)
    times = -1.5 + rng.uniform(0.0, rr) + np.concatenate([[0.0], np.cumsum(intervals[1:])])
    keep = times < duration + 1.0
    times, intervals = times[keep], intervals[keep]
    kind = np.full(times.size, SINUS)
    has_p = np.full(times.size, 1.0 if plan.p_waves else 0.0)
    pr = np.full(times.size, plan.pr)
    times, intervals = _insert_premature(times, intervals, kind, has_p, pr, plan, rng, duration)
    resp_hz = rng.uniform(0.15, 0.35)
    phase = 2 * np.pi * resp_hz * times + rng.uniform(0, 2 * np.pi)
    gain = (1.0 + rng.uniform(0.01, 0.05) * np.sin(phase)
            + rng.uniform(0.005, 0.02) * rng.standard_normal(times.size))
    tilt = np.deg2rad(rng.uniform(1.0, 4.0)) * np.sin(phase)
    return BeatTrain(r_time=times, rr=np.clip(intervals, 0.25, 2.5), pr=pr, has_p=has_p,
                     kind=kind, gain=gain, tilt=tilt)


def _insert_premature(times: np.ndarray, intervals: np.ndarray, kind: np.ndarray,
                      has_p: np.ndarray, pr: np.ndarray, plan: Plan,
                      rng: np.random.Generator, duration: float
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Turn some beats inside the record into premature ones (in place for the
    flags; returns the moved times and intervals). A ventricular beat comes at
    45–70 % of the RR and, in sinus rhythm, is followed by a full compensatory
    pause (the next sinus beat keeps its time); an atrial one comes at 60–80 %
    with a different P and resets the sinus node (the following beats shift)."""
    # Only beats whose predecessor is inside the record, so the prematurity shows.
    inside = np.flatnonzero((times > 0.3) & (times < duration - 0.3))
    inside = inside[(inside > 0)]
    inside = inside[times[inside - 1] > 0.1]
    wanted = plan.n_pvc + plan.n_pac
    if wanted == 0 or inside.size == 0:
        return times, intervals
    # Premature beats never fall on neighbouring beats.
    candidates = inside[::2] if inside.size >= 2 * wanted else inside
    chosen = rng.choice(candidates, size=min(wanted, candidates.size), replace=False)
    times = times.copy()
    intervals = intervals.copy()
    for i, beat in enumerate(sorted(chosen)):
        prev_rr = times[beat] - times[beat - 1]
        ventricular = i < plan.n_pvc
        coupling = rng.uniform(0.45, 0.70) if ventricular else rng.uniform(0.60, 0.80)
        new_time = times[beat - 1] + coupling * prev_rr
        if ventricular:
            kind[beat] = VENTRICULAR
            has_p[beat] = 0.0
            if beat + 1 < times.size:
                intervals[beat + 1] = times[beat + 1] - new_time
        else:
            shift = new_time - times[beat]
            times[beat + 1:] += shift
            pr[beat] = max(0.10, pr[beat] - 0.02)
        times[beat] = new_time
        intervals[beat] = coupling * prev_rr
    return times, intervals


def fibrillatory_waves(plan: Plan, fs: float, n_samples: int,
                       rng: np.random.Generator) -> np.ndarray:
    """(3, n) atrial fibrillatory activity: 4–9 Hz waves whose frequency and
    amplitude wander, pointing at the atria (seen best in V1 and II)."""
    if plan.fwave_mv <= 0.0:
        return np.zeros((3, n_samples))
    t = np.arange(n_samples) / fs
    base = rng.uniform(4.5, 8.5)
    wander = rng.uniform(0.1, 0.6) * np.sin(2 * np.pi * rng.uniform(0.05, 0.2) * t
                                             + rng.uniform(0, 2 * np.pi))
    phase = 2 * np.pi * np.cumsum(base + wander) / fs + rng.uniform(0, 2 * np.pi)
    envelope = 1.0 + 0.4 * np.sin(2 * np.pi * rng.uniform(0.1, 0.4) * t + rng.uniform(0, 2 * np.pi))
    wave = plan.fwave_mv * envelope * (np.sin(phase) + 0.3 * np.sin(2 * phase + 1.0))
    direction = np.array([-0.45, 0.45, 0.75]) + 0.15 * rng.standard_normal(3)
    direction /= np.linalg.norm(direction)
    return direction[:, None] * wave[None, :]
