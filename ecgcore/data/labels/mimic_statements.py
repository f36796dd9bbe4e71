"""MIMIC-IV-ECG machine statements -> SNOMED CT codes: an exact table, nothing guessed.

MIMIC-IV-ECG 1.0 ships no diagnoses, only what the recording carts printed:
`machine_measurements.csv` columns report_0 … report_17, one free-text statement each
("Sinus rhythm", "Atrial fibrillation with rapid ventricular response", "Abnormal ECG",
"*** Consider acute ST elevation MI ***", …), in upper or mixed case, with or without a
final full stop. A statement is looked up whole after `statement_key` (lower case, single
spaces, no final full stop); there is no substring or keyword matching, because the carts
hedge ("Possible …", "Probable …", "Consider …", "… cannot rule out …") and a keyword
match would turn a hedge into a diagnosis. A statement not in the table is kept as text
(`unmapped`), never dropped.

The table holds only statements that name a concept of the label space outright:
- rhythms: sinus rhythm / bradycardia / tachycardia / arrhythmia, atrial fibrillation
  (with a rapid or slow ventricular response, still atrial fibrillation), atrial flutter;
- a sinus rhythm "with" a finding is both (e.g. "Sinus rhythm with 1st degree A-V block"
  -> sinus rhythm and first-degree AV block; "… with PVC(s)" -> premature ventricular
  contractions; "… with PAC(s)" -> premature atrial contraction). "with borderline 1st
  degree A-V block" gives the rhythm only: the cart says the PR interval is borderline,
  not that the block is there;
- conduction: left / right bundle branch block (the Challenge's LBBB 164909002 and
  RBBB 59118001, one class with CLBBB / CRBBB in every task), incomplete RBBB / LBBB,
  left anterior / posterior fascicular block, 1st degree A-V block, prolonged PR interval;
- axis: left / right axis deviation ("Leftward axis", a normal variant, is not LAD);
- hypertrophy: left / right ventricular hypertrophy, "LVH with secondary repolarization
  abnormality" (the hypertrophy is stated; the ST-T change is its consequence);
- prolonged QT interval, "Long QTc interval";
- ventricular / atrial pacing, as LUDB's pacing texts map (pacing rhythm + the pattern).
Left as text on purpose: "Normal ECG", "Abnormal ECG", "Borderline ECG" (a verdict, not
a concept), every hedged statement, infarcts "age undetermined" (no age, and MI "age
undetermined" is not the Challenge's old MI), ST-T wording ("nonspecific", "suggests
ischemia"), low voltage "in precordial leads" (the Challenge's LQRSV is limb-lead low
voltage) and cart warnings ("--- Warning: Data quality may affect interpretation ---").

The spellings follow what the carts print in MIMIC-IV-ECG as public analyses of its
report columns quote them (its most frequent first statements, from "Sinus rhythm" on
47.7 % of records through "Sinus rhythm with borderline 1st degree A-V block", "Sinus
rhythm with PAC(s)" and "Ventricular pacing" to the data-quality warning, and the
conduction and hypertrophy statements quoted beside them). The "<rhythm> with <finding>"
combinations are spelled out from those parts; a key no record prints costs nothing.
"""

from __future__ import annotations

_NSR = "426783006"   # sinus rhythm
_SB = "426177001"    # sinus bradycardia
_STACH = "427084000"  # sinus tachycardia
_SA = "427393009"    # sinus arrhythmia
_AF = "164889003"    # atrial fibrillation
_AFL = "164890007"   # atrial flutter
_IAVB = "270492004"  # 1st degree AV block
_LPR = "164947007"   # prolonged PR interval
_PAC = "284470004"   # premature atrial contraction
_PVC = "427172004"   # premature ventricular contractions
_LBBB = "164909002"  # left bundle branch block
_RBBB = "59118001"   # right bundle branch block
_IRBBB = "713426002"  # incomplete right bundle branch block
_ILBBB = "251120003"  # incomplete left bundle branch block
_LAFB = "445118002"  # left anterior fascicular block
_LPFB = "445211001"  # left posterior fascicular block
_LAD = "39732003"    # left axis deviation
_RAD = "47665007"    # right axis deviation
_LVH = "164873001"   # left ventricular hypertrophy
_RVH = "89792004"    # right ventricular hypertrophy
_LQT = "111975006"   # prolonged QT interval
_PACED = "10370003"  # pacing rhythm
_VPP = "251266004"   # ventricular pacing pattern
_AP = "251268003"    # atrial pacing pattern

# The sinus rhythms a cart names first, and what "<rhythm> with <finding>" adds to them.
_SINUS_RHYTHMS: dict[str, str] = {
    "sinus rhythm": _NSR,
    "sinus bradycardia": _SB,
    "sinus tachycardia": _STACH,
    "sinus arrhythmia": _SA,
}
_WITH_FINDING: dict[str, tuple[str, ...]] = {
    "": (),
    " with 1st degree a-v block": (_IAVB,),
    " with borderline 1st degree a-v block": (),
    " with pac(s)": (_PAC,),
    " with pvc(s)": (_PVC,),
}

MIMIC_STATEMENT_TO_SNOMED: dict[str, tuple[str, ...]] = {
    **{f"{rhythm}{finding}": (code, *added)
       for rhythm, code in _SINUS_RHYTHMS.items() for finding, added in _WITH_FINDING.items()},
    "normal sinus rhythm": (_NSR,),
    "atrial fibrillation": (_AF,),
    "atrial fibrillation with rapid ventricular response": (_AF,),
    "atrial fibrillation with slow ventricular response": (_AF,),
    "atrial fibrillation with pvc(s)": (_AF, _PVC),
    "atrial flutter": (_AFL,),
    "premature ventricular contractions": (_PVC,),
    "1st degree a-v block": (_IAVB,),
    "prolonged pr interval": (_LPR,),
    "left bundle branch block": (_LBBB,),
    "right bundle branch block": (_RBBB,),
    "incomplete right bundle branch block": (_IRBBB,),
    "incomplete lbbb": (_ILBBB,),
    "left anterior fascicular block": (_LAFB,),
    "left posterior fascicular block": (_LPFB,),
    "rbbb with left anterior fascicular block": (_RBBB, _LAFB),
    "left axis deviation": (_LAD,),
    "right axis deviation": (_RAD,),
    "left ventricular hypertrophy": (_LVH,),
    "lvh with secondary repolarization abnormality": (_LVH,),
    "right ventricular hypertrophy": (_RVH,),
    "prolonged qt interval": (_LQT,),
    "long qtc interval": (_LQT,),
    "ventricular pacing": (_PACED, _VPP),
    "atrial pacing": (_PACED, _AP),
}


def statement_key(text: str) -> str:
    """A statement as a table key: lower case, single spaces, no final full stop, so
    "SINUS RHYTHM", "Sinus  rhythm." and "Sinus rhythm" meet."""
    return " ".join(text.strip().rstrip(".").split()).lower()
