"""One registry of the conditions the generator knows, and how each one changes
the beat (the dipole template) or the rhythm (rate, PR, QT, ectopy).

A record starts from a `Plan` (a patient's healthy sinus beat at their own rate)
and each condition present rewrites it, in registry order. Conditions are the
physiological truth; what a site *writes down* about them (codes, missed or
extra labels) is decided per site in `sites.py`.

Numbers are textbook criteria (e.g. PR > 200 ms for first-degree AV block,
QRS >= 120 ms for complete bundle branch block, QTc > 460–480 ms for long QT,
f-waves of 4–9 Hz in atrial fibrillation), not fitted to any data set.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

import numpy as np

from ecgcore.data.synthetic.dipole import (
    DEPOLARISATION, REPOLARISATION, Template, Wave, scaled,
)


@dataclass(frozen=True)
class Plan:
    """Everything that decides one record's beats (before placement in time)."""

    template: Template        # the sinus (supraventricular) beat
    hr: float                 # mean rate, beats per minute
    pr: float                 # PR interval, s
    qtc: float                # corrected QT, s
    p_waves: bool = True      # False in atrial fibrillation
    irregular: bool = False   # RR intervals independent and irregular (AF)
    fwave_mv: float = 0.0     # fibrillatory-wave amplitude (AF)
    n_pvc: int = 0            # premature ventricular beats in the record
    n_pac: int = 0            # premature atrial beats (an unlabelled nuisance)
    pvc_template: Template | None = None
    # How this site's patients tend to show a condition (see Site.styles), e.g.
    # "mi_acute": share of infarcts seen in the acute phase.
    style: Mapping[str, float] = field(default_factory=dict)


Rng = np.random.Generator
Effect = Callable[[Plan, Rng], Plan]


@dataclass(frozen=True)
class Condition:
    """A condition: its group (conditions of one exclusive group never co-occur),
    a description and its effect on the plan."""

    key: str
    description: str
    group: str          # rhythm | conduction | bundle | infarct | morphology | ectopy | variant
    effect: Effect
    exclusive: bool = False


def _with_waves(plan: Plan, **waves: Wave) -> Plan:
    return replace(plan, template={**plan.template, **waves})


def _without(plan: Plan, *names: str) -> Plan:
    return replace(plan, template={k: w for k, w in plan.template.items() if k not in names})


def _unit(v: tuple[float, float, float] | np.ndarray) -> np.ndarray:
    arr = np.asarray(v, dtype=float)
    return arr / np.linalg.norm(arr)


def _qrs_direction(template: Template) -> np.ndarray:
    """Unit vector of the summed QRS area (what discordant ST-T points against)."""
    area = sum((np.asarray(w.amp) * w.sigma for w in template.values()
                if w.group == DEPOLARISATION), start=np.zeros(3))
    return _unit(area)


# ---------------------------------------------------------------- rhythm
def _sinus_normal(plan: Plan, rng: Rng) -> Plan:
    return replace(plan, hr=float(np.clip(plan.hr, 57.0, 103.0)))


def _sinus_brady(plan: Plan, rng: Rng) -> Plan:
    return replace(plan, hr=float(rng.uniform(40.0, 61.0)))


def _sinus_tachy(plan: Plan, rng: Rng) -> Plan:
    return replace(plan, hr=float(rng.uniform(99.0, 150.0)),
                   pr=plan.pr - 0.015, qtc=plan.qtc + 0.01)


def _atrial_fibrillation(plan: Plan, rng: Rng) -> Plan:
    hr = float(np.clip(rng.normal(95.0, 22.0), 55.0, 160.0))
    return replace(_without(plan, "P1", "P2"), hr=hr, p_waves=False, irregular=True,
                   fwave_mv=float(rng.uniform(0.015, 0.07)) * plan.style.get("fwave_scale", 1.0))


# ---------------------------------------------------------------- conduction
def _first_degree_block(plan: Plan, rng: Rng) -> Plan:
    return replace(plan, pr=float(rng.uniform(0.19, 0.32)))


def _left_bundle_block(plan: Plan, rng: Rng) -> Plan:
    """No septal q (the septum fires right-to-left), a broad notched R in I/aVL/
    V5–V6 and a broad QS in V1–V2 (QRS 130–170 ms); ST-T discordant to QRS."""
    w = float(rng.uniform(1.1, 1.35))
    size = float(rng.uniform(0.9, 1.3))
    plan = _without(plan, "Q", "R", "S")
    r1 = Wave(-0.024 * w, 0.0145 * w, (0.60 * size, 0.25 * size, -0.60 * size), DEPOLARISATION)
    r2 = Wave(0.026 * w, 0.0155 * w, (0.80 * size, 0.15 * size, -0.65 * size), DEPOLARISATION)
    plan = _with_waves(plan, R1=r1, R2=r2)
    away = -_qrs_direction(plan.template)
    st = Wave(0.10, 0.045, tuple(0.09 * size * away), REPOLARISATION)
    t = Wave(0.27, 0.055, tuple(0.22 * size * away), REPOLARISATION)
    return _with_waves(_without(plan, "T1", "T2", "ST"), ST=st, T1=t)


def _right_bundle_block(plan: Plan, rng: Rng) -> Plan:
    """Normal start, then a slow late rightward-anterior force: rsR' in V1,
    a broad S in I and V6 (QRS 120–160 ms); T inverted in V1–V2."""
    late = float(rng.uniform(0.8, 1.2))
    r_prime = Wave(0.060, 0.017, (-0.45 * late, 0.02, 0.50 * late), DEPOLARISATION)
    plan = _with_waves(plan, Rp=r_prime)
    t1 = plan.template["T1"]
    flipped = Wave(t1.mu, t1.sigma, (t1.amp[0] + 0.04, t1.amp[1], t1.amp[2] - 0.14),
                   REPOLARISATION)
    return _with_waves(plan, T1=flipped)


# ---------------------------------------------------------------- infarction
def _infarct(plan: Plan, rng: Rng, away: tuple[float, float, float],
             injury: tuple[float, float, float], dampen: str) -> Plan:
    """An infarct removes the forces of dead muscle: the early QRS points away
    from the territory (pathological Q waves there); an acute one adds a current
    of injury towards it (ST elevation in the territory's leads, reciprocal
    depression opposite); an older one inverts T there instead."""
    depth = float(rng.uniform(0.3, 1.3))
    q = Wave(-0.020, 0.0125, tuple(depth * np.asarray(away)), DEPOLARISATION)
    r = plan.template["R"] if "R" in plan.template else None
    new: dict[str, Wave] = {"Qmi": q}
    if r is not None:
        axis = "xyz".index(dampen)
        amp = list(r.amp)
        amp[axis] -= 0.45 * depth * abs(np.asarray(away)[axis])
        new["R"] = replace(r, amp=tuple(amp))
    acute = rng.random() < plan.style.get("mi_acute", 0.65)
    elevation = float(rng.uniform(0.06, 0.30) if acute else rng.uniform(0.02, 0.08))
    new["STmi"] = Wave(0.095, 0.055, tuple(elevation * _unit(injury)), REPOLARISATION)
    if not acute:
        t1 = plan.template["T1"]
        toward = _unit(injury)
        inv = np.asarray(t1.amp) - 1.8 * float(np.dot(t1.amp, toward)) * toward - 0.08 * toward
        new["T1"] = replace(t1, amp=tuple(inv))
    if dampen == "z" and "Q" in plan.template:
        # Anteroseptal: the septal force shrinks with the infarct's size (gone in large ones).
        new["Q"] = scaled(plan.template["Q"], max(0.0, 1.0 - depth))
    return _with_waves(plan, **new)


def _anterior_mi(plan: Plan, rng: Rng) -> Plan:
    return _infarct(plan, rng, away=(0.05, 0.0, -0.36), injury=(0.15, 0.05, 1.0), dampen="z")


def _inferior_mi(plan: Plan, rng: Rng) -> Plan:
    return _infarct(plan, rng, away=(0.05, -0.34, 0.0), injury=(0.05, 1.0, -0.2), dampen="y")


# ---------------------------------------------------------------- morphology
def _lv_hypertrophy(plan: Plan, rng: Rng) -> Plan:
    """More left-ventricular mass: larger, slightly wider QRS (voltage criteria),
    a leftward tilt, and in about a third a lateral 'strain' ST-T pattern."""
    gain = float(rng.uniform(1.3, 2.2))
    widen = float(rng.uniform(1.05, 1.2))
    waves = {k: replace(scaled(w, gain), sigma=w.sigma * widen)
             for k, w in plan.template.items() if w.group == DEPOLARISATION}
    plan = _with_waves(plan, **waves)
    if rng.random() < plan.style.get("lvh_strain", 0.35):
        plan = _st_t_change(plan, rng, depth=float(rng.uniform(0.5, 1.0)), anterior=False)
    return plan


def _st_t_change(plan: Plan, rng: Rng, depth: float | None = None,
                 anterior: bool | None = None) -> Plan:
    """T-wave inversion with or without ST depression: the T dipole's component
    along the territory's direction is reflected — lateral (I, aVL, V5–V6) or
    anterior (V1–V4), in the proportion the site's `sttc_anterior` style says."""
    k = depth if depth is not None else float(rng.uniform(0.3, 1.4))
    if anterior is None:
        anterior = bool(rng.random() < plan.style.get("sttc_anterior", 0.15))
    u = _unit((0.25, 0.2, 0.95)) if anterior else _unit((0.85, 0.35, -0.4))
    new: dict[str, Wave] = {}
    for name in ("T1", "T2"):
        if name in plan.template:
            t = plan.template[name]
            a = np.asarray(t.amp)
            new[name] = replace(t, amp=tuple(a - (1.0 + k) * float(a @ u) * u))
    if rng.random() < 0.6:
        new["STd"] = Wave(0.09, 0.05, tuple(-float(rng.uniform(0.03, 0.12)) * u), REPOLARISATION)
    return _with_waves(plan, **new)


def _long_qt(plan: Plan, rng: Rng) -> Plan:
    return replace(plan, qtc=float(rng.uniform(0.45, 0.54)))


# ---------------------------------------------------------------- ectopy
def ectopic_beat(rng: Rng, size: float) -> Template:
    """A premature ventricular beat: no P, a wide QRS (140–180 ms) from a random
    focus (two slow bumps) and a T wave discordant to it."""
    focus = _unit(rng.normal(size=3) + np.array([0.3, 0.5, 0.0]))
    second = _unit(focus + 0.6 * rng.normal(size=3))
    amp = float(rng.uniform(1.2, 2.2)) * size
    qrs_dir = _unit(focus + 0.5 * second)
    return {
        "V1": Wave(-0.018, 0.026, tuple(amp * focus), DEPOLARISATION),
        "V2": Wave(0.035, 0.028, tuple(0.5 * amp * second), DEPOLARISATION),
        "T1": Wave(0.27, 0.07, tuple(-0.3 * amp * qrs_dir), REPOLARISATION),
    }


def _premature_ventricular(plan: Plan, rng: Rng) -> Plan:
    size = float(np.linalg.norm(plan.template["R"].amp)) if "R" in plan.template else 1.3
    return replace(plan, n_pvc=int(rng.choice([1, 1, 2, 2, 3, 4])),
                   pvc_template=ectopic_beat(rng, size / 1.3))


# ---------------------------------------------------------------- unlabelled variants
def _early_repolarisation(plan: Plan, rng: Rng) -> Plan:
    """A benign variant (young men, athletes): small ST elevation in V2–V4 — it
    overlaps with the anterior injury pattern on purpose."""
    return _with_waves(plan, STer=Wave(0.085, 0.05, (0.02, 0.03, float(rng.uniform(0.04, 0.12))),
                                       REPOLARISATION))


def _incomplete_right_block(plan: Plan, rng: Rng) -> Plan:
    """Incomplete RBBB (never labelled here): a small late R' in V1 without a wide
    QRS — a look-alike of the complete block."""
    late = float(rng.uniform(0.3, 0.6))
    return _with_waves(plan, Rp=Wave(0.040, 0.012, (-0.30 * late, 0.02, 0.40 * late),
                                     DEPOLARISATION))


def _premature_atrial(plan: Plan, rng: Rng) -> Plan:
    return replace(plan, n_pac=int(rng.choice([1, 1, 2, 3, 4])))


CONDITIONS: dict[str, Condition] = {}


def _register(key: str, description: str, group: str, effect: Effect,
              exclusive: bool = False) -> None:
    CONDITIONS[key] = Condition(key, description, group, effect, exclusive)


# Registry order is application order: rhythm, conduction, bundle, infarct, morphology, ectopy.
_register("NSR", "normal sinus rhythm (60–100 bpm)", "rhythm", _sinus_normal, exclusive=True)
_register("SB", "sinus bradycardia (< 60 bpm)", "rhythm", _sinus_brady, exclusive=True)
_register("STach", "sinus tachycardia (> 100 bpm)", "rhythm", _sinus_tachy, exclusive=True)
_register("AF", "atrial fibrillation: irregular RR, no P, f-waves", "rhythm",
          _atrial_fibrillation, exclusive=True)
_register("IAVB", "first-degree AV block (PR > 200 ms)", "conduction", _first_degree_block)
_register("LBBB", "complete left bundle branch block", "bundle", _left_bundle_block, exclusive=True)
_register("RBBB", "complete right bundle branch block", "bundle", _right_bundle_block,
          exclusive=True)
_register("AMI", "anterior (anteroseptal) myocardial infarction", "infarct", _anterior_mi)
_register("IMI", "inferior myocardial infarction", "infarct", _inferior_mi)
_register("LVH", "left ventricular hypertrophy (voltage, +/- strain)", "morphology",
          _lv_hypertrophy)
_register("STTC", "ST-T change: lateral T inversion +/- ST depression", "morphology",
          _st_t_change)
_register("LQT", "long QT (QTc 450–540 ms)", "morphology", _long_qt)
_register("PVC", "premature ventricular beats", "ectopy", _premature_ventricular)
_register("ER", "early repolarisation (benign, never labelled)", "variant", _early_repolarisation)
_register("PAC", "premature atrial beats (never labelled)", "variant", _premature_atrial)
_register("IRBBB", "incomplete right bundle branch block (never labelled)", "variant",
          _incomplete_right_block)

RHYTHMS: tuple[str, ...] = tuple(k for k, c in CONDITIONS.items() if c.group == "rhythm")


def apply_conditions(plan: Plan, present: frozenset[str],
                     rng_for_key: Callable[[str], Rng]) -> Plan:
    """Apply every present condition in registry order, each drawing from its own
    generator (`rng_for_key(key)`), so a patient's chronic condition can look the
    same on all their records. IAVB is ignored under AF (no P wave, no PR)."""
    unknown = present - CONDITIONS.keys()
    if unknown:
        raise ValueError(f"unknown synthetic conditions: {sorted(unknown)}")
    for key, condition in CONDITIONS.items():
        if key not in present or (key == "IAVB" and "AF" in present):
            continue
        plan = condition.effect(plan, rng_for_key(key))
    return plan
