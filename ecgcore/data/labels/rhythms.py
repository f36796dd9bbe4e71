"""Rhythms one ECG has only one of: the recording's dominant rhythm, as data.

A 10 s recording is in sinus rhythm, or sinus bradycardia, or sinus tachycardia, or
atrial fibrillation, … — one of these at a time. A model that calls two of them for the
same record contradicts itself; `ecgcore.views.calls.rhythm_conflict` uses this table to say
so. Deliberately not listed: sinus arrhythmia (it qualifies a sinus rhythm and is
recorded beside one), bradycardia (a rate, not a rhythm), pacing (a paced rhythm is
recorded with its underlying rhythm), ectopic beats, conduction, axis and morphology
findings. Codes are SNOMED CT concepts of the label space (`snomed.CONCEPTS`).
"""

from __future__ import annotations

from ecgcore.data.labels.snomed import KEY_SEPARATOR

EXCLUSIVE_RHYTHMS: dict[str, str] = {
    "426783006": "sinus rhythm",
    "426177001": "sinus bradycardia",
    "427084000": "sinus tachycardia",
    "164889003": "atrial fibrillation",
    "164890007": "atrial flutter",
    "713422000": "atrial tachycardia",
    "426761007": "supraventricular tachycardia",
    "29320008": "atrioventricular junctional rhythm",
    "426648003": "junctional tachycardia",
    "49260003": "idioventricular rhythm",
    "61277005": "accelerated idioventricular rhythm",
    "164895002": "ventricular tachycardia",
    "164896001": "ventricular fibrillation",
}


def is_exclusive_rhythm(class_code: str) -> bool:
    """Whether a class (a code or a combined key such as "713427006|59118001") is one of
    the rhythms a recording has only one of."""
    return any(part.strip() in EXCLUSIVE_RHYTHMS for part in class_code.split(KEY_SEPARATOR))
