"""What a site's cardiologists write down about a record's findings.

Labels are not the truth: each finding is reported with the site's sensitivity
(or not at all, when the site's vocabulary or habits lack it), some records get
a spurious abnormal code, and a missed rhythm falls back to plain sinus rhythm.
That label noise is deliberate: real labels have it, and a model that learns
the truth perfectly still scores below 1.0 against them.
"""

from __future__ import annotations

import numpy as np

from ecgcore.data.synthetic.sites import Report, Site
from ecgcore.data.synthetic.vocab import DIAGNOSTIC_SCP

# PTB-XL's likelihood scale for diagnostic statements and how often each occurs.
_LIKELIHOODS = np.array([100.0, 80.0, 50.0, 35.0, 15.0])
_LIKELIHOOD_P = np.array([0.70, 0.14, 0.09, 0.05, 0.02])
_RHYTHM_FINDINGS = ("NSR", "SB", "STach", "AF")
# Codes a site may add by mistake (reported on a record without that finding).
_SPURIOUS = ("STTC", "LVH", "IAVB", "PVC")


def _write(report: Report, rng: np.random.Generator) -> list[str]:
    weights = np.asarray(report.weights or [1.0] * len(report.choices), dtype=float)
    codes = [str(rng.choice(report.choices, p=weights / weights.sum()))]
    codes += [code for code, p in report.extra if rng.random() < p]
    return codes


def write_down(site: Site, findings: frozenset[str], rng: np.random.Generator) -> list[str]:
    """Codes the site writes for a record, in the site's vocabulary, rhythm last."""
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
