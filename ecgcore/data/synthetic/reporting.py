"""What a site's cardiologists write down about a record's findings.

Labels are not the truth: each finding is reported with the site's sensitivity
(or not at all, when the site's vocabulary or habits lack it), some records get
a spurious abnormal code, and a missed rhythm falls back to plain sinus rhythm.
That label noise is deliberate: real labels have it, and a model that learns
the truth perfectly still scores below 1.0 against them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ecgcore.data.synthetic.sites import Report, Site
from ecgcore.data.synthetic.vocab import DIAGNOSTIC_SCP

# PTB-XL's likelihood scale for diagnostic statements and how often each occurs.
_LIKELIHOODS = np.array([100.0, 80.0, 50.0, 35.0, 15.0])
_LIKELIHOOD_P = np.array([0.70, 0.14, 0.09, 0.05, 0.02])
_RHYTHM_FINDINGS = ("NSR", "SB", "STach", "AF")
# Codes a site may add by mistake (reported on a record without that finding).
_SPURIOUS = ("STTC", "LVH", "IAVB", "PVC")


@dataclass(frozen=True)
class Criterion:
    """A finding defined by a measurement and a threshold. The reader measures
    with their own error (`reader_sd`), so records near the threshold are labelled
    inconsistently — as they are in real data sets."""

    finding: str
    measure: str        # key of SyntheticRecord.measurements
    threshold: float
    above: bool         # the finding holds when the measure is above the threshold
    reader_sd: float


CRITERIA: tuple[Criterion, ...] = (
    Criterion("SB", "hr", 60.0, False, 2.0),
    Criterion("STach", "hr", 100.0, True, 2.5),
    Criterion("IAVB", "pr", 0.200, True, 0.010),
    Criterion("LQT", "qtc", 0.460, True, 0.012),
    Criterion("LAD", "axis", -30.0, False, 5.0),
    Criterion("HVOLT", "sokolow", 3.5, True, 0.25),
)
_MEASURED = frozenset(c.finding for c in CRITERIA) | {"NSR"}


def read_tracing(findings: frozenset[str], measurements: Mapping[str, float],
                 rng: np.random.Generator) -> frozenset[str]:
    """What a reader concludes: the morphological findings as they are, the
    threshold findings re-decided from noisy measurements; no rate labels and no
    PR under atrial fibrillation; sinus rhythm when no other rhythm is called."""
    read = set(findings - _MEASURED)
    for c in CRITERIA:
        value = measurements[c.measure] + rng.normal(0.0, c.reader_sd)
        if (value > c.threshold) == c.above:
            read.add(c.finding)
    if "AF" in read:
        read -= {"SB", "STach", "IAVB"}
    elif not read & {"SB", "STach"}:
        read.add("NSR")
    return frozenset(read)


def _write(report: Report, rng: np.random.Generator) -> list[str]:
    weights = np.asarray(report.weights or [1.0] * len(report.choices), dtype=float)
    codes = [str(rng.choice(report.choices, p=weights / weights.sum()))]
    codes += [code for code, p in report.extra if rng.random() < p]
    return codes


def write_down(site: Site, findings: frozenset[str], measurements: Mapping[str, float],
               rng: np.random.Generator) -> list[str]:
    """Codes the site writes for a record, in the site's vocabulary, rhythm last."""
    findings = read_tracing(findings, measurements, rng)
    codes: list[str] = []
    rhythm: list[str] = []
    for finding in sorted(findings):
        report = site.reports.get(finding)
        if report is None:
            continue
        target = rhythm if finding in _RHYTHM_FINDINGS else codes
        if rng.random() < report.sensitivity:
            target.extend(c for c in _write(report, rng) if c not in target)
        elif report.fallback and report.fallback in site.reports:
            target.extend(_write(site.reports[report.fallback], rng))
    if rng.random() < site.false_positive:
        candidates = [f for f in _SPURIOUS if f not in findings and f in site.reports]
        if candidates:
            extra = _write(site.reports[str(rng.choice(candidates))], rng)
            codes.extend(c for c in extra if c not in codes)
    return codes + [c for c in rhythm if c not in codes]


def scp_codes(codes: list[str], rng: np.random.Generator) -> dict[str, float]:
    """PTB-XL's `scp_codes` dict: diagnostic statements with a likelihood, form and
    rhythm statements with 0.0; NORM (100 or 80) when nothing diagnostic or
    formal was written; diagnostic first, rhythm last, as in the real file."""
    written: dict[str, float] = {}
    if not any(c in DIAGNOSTIC_SCP or c not in _SCP_RHYTHM for c in codes):
        written["NORM"] = float(rng.choice([100.0, 80.0], p=[0.85, 0.15]))
    for code in codes:
        if code in DIAGNOSTIC_SCP:
            written[code] = float(rng.choice(_LIKELIHOODS, p=_LIKELIHOOD_P))
    for code in codes:
        if code not in DIAGNOSTIC_SCP and code not in _SCP_RHYTHM:
            written[code] = 0.0
    for code in codes:
        if code in _SCP_RHYTHM:
            written[code] = 0.0
    return written


_SCP_RHYTHM = frozenset({"SR", "SBRAD", "STACH", "AFIB"})
