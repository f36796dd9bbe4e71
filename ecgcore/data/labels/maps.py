"""Maps from each dataset's own vocabulary to SNOMED CT codes, and `harmonise`.

Every reader stores its labels as written (`raw_labels`) plus the name of the
vocabulary (`label_vocab`); `harmonise` turns them into SNOMED CT codes so that
labels from different datasets can be compared and shared. A raw label with no
SNOMED code is never dropped: it is returned as text in `unmapped`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from ecgcore.data.labels.mimic_statements import (
    MIMIC_STATEMENT_TO_SNOMED,
    statement_key,
)
from ecgcore.data.labels.snomed import CONCEPTS

# PTB-XL SCP-ECG statement -> SNOMED CT codes. Where the PhysioNet/CinC Challenge
# 2020/2021 re-released PTB-XL with SNOMED codes, we follow its conversion (the
# per-source counts in its dx_mapping tables match these statements one to one),
# so PTB-XL read natively and PTB-XL read from the Challenge files agree:
#   NORM and SR -> 426783006 (the Challenge's "sinus rhythm", NSR);
#   PVC -> 164884008 (VEB); SVARR -> 63593006 (SVPB); BIGU/TRIGU -> ventricular
#   bigeminy/trigeminy; SEHYP -> 266249003 (VH); NDT, NT_, TAB_ -> 164934002 (TAb);
#   DIG, EL, ANEUR -> 428750005 (nonspecific ST-T abnormality).
# Our own choices: AMI (anterior MI) -> 54329005 AnMI as the Challenge *and* 164865005
# MI, like every other PTB-XL infarct statement; LOWT -> TAb; VCLVH -> 55827005 LVHV
# (voltage criteria, not an LVH diagnosis); INJ* (subendocardial injury, which PTB-XL
# files under MI) -> MI. CLBBB uses the exact concept 733534002 (the Challenge's
# files use 164909002; the two are one class after `canonical`). Statements without a fitting concept
# (HVOLT, PRC(S)) stay unmapped.
SCP_TO_SNOMED: dict[str, tuple[str, ...]] = {
    "NORM": ("426783006",),
    "SR": ("426783006",),
    # rhythm
    "AFIB": ("164889003",),
    "AFLT": ("164890007",),
    "STACH": ("427084000",),
    "SBRAD": ("426177001",),
    "SARRH": ("427393009",),
    "PACE": ("10370003",),
    "SVARR": ("63593006",),
    "SVTAC": ("426761007",),
    "PSVT": ("67198005",),
    "BIGU": ("11157007",),
    "TRIGU": ("251180001",),
    # conduction
    "1AVB": ("270492004",),
    "2AVB": ("195042002",),
    "3AVB": ("27885002",),
    "CRBBB": ("713427006",),
    "CLBBB": ("733534002",),
    "IRBBB": ("713426002",),
    "ILBBB": ("251120003",),
    "LAFB": ("445118002",),
    "LPFB": ("445211001",),
    "IVCD": ("698252002",),
    "WPW": ("74390002",),
    # hypertrophy
    "LVH": ("164873001",),
    "VCLVH": ("55827005",),
    "RVH": ("89792004",),
    "SEHYP": ("266249003",),
    "LAO/LAE": ("67741000119109",),
    "RAO/RAE": ("446358003",),
    # myocardial infarction and subendocardial injury
    "IMI": ("164865005",),
    "ASMI": ("164865005",),
    "ILMI": ("164865005",),
    "AMI": ("164865005", "54329005"),
    "ALMI": ("164865005",),
    "LMI": ("164865005",),
    "IPLMI": ("164865005",),
    "IPMI": ("164865005",),
    "PMI": ("164865005",),
    "INJAS": ("164865005",),
    "INJAL": ("164865005",),
    "INJIN": ("164865005",),
    "INJLA": ("164865005",),
    "INJIL": ("164865005",),
    # ischaemia and ST-T
    "ISC_": ("164861001",),
    "ISCAL": ("164861001",),
    "ISCAS": ("164861001",),
    "ISCIL": ("164861001",),
    "ISCAN": ("426434006",),
    "ISCIN": ("425419005",),
    "ISCLA": ("425623009",),
    "NST_": ("55930002",),
    "DIG": ("428750005",),
    "EL": ("428750005",),
    "ANEUR": ("428750005",),
    "LNGQT": ("111975006",),
    "STD_": ("429622005",),
    "STE_": ("164931005",),
    "NDT": ("164934002",),
    "NT_": ("164934002",),
    "TAB_": ("164934002",),
    "LOWT": ("164934002",),
    "INVT": ("59931005",),
    # form
    "ABQRS": ("164951009",),
    "PVC": ("164884008",),
    "PAC": ("284470004",),
    "LPR": ("164947007",),
    "LVOLT": ("251146004",),
    "QWAVE": ("164917005",),
}

# CODE-15% binary label columns (Ribeiro et al. 2020) -> SNOMED CT.
CODE15_TO_SNOMED: dict[str, tuple[str, ...]] = {
    "1dAVb": ("270492004",),
    "RBBB": ("59118001",),
    "LBBB": ("164909002",),
    "SB": ("426177001",),
    "AF": ("164889003",),
    "ST": ("427084000",),
    "normal_ecg": ("426783006",),
}

# PTB Diagnostic ECG Database "Reason for admission" -> SNOMED CT (lower-cased keys).
PTB_REASON_TO_SNOMED: dict[str, tuple[str, ...]] = {
    "healthy control": ("426783006",),
    "myocardial infarction": ("164865005",),
}


def _normalise_text(text: str) -> str:
    """Lower-case, single spaces, no trailing full stop: free text written many ways."""
    return " ".join(text.strip().rstrip(".").split()).lower()


# LUDB v1.0.1 free-text diagnoses -> SNOMED CT. Keys are normalised by
# `_ludb_key`, so the header form ("Rhythm: Sinus rhythm.", "III degree AV-block.")
# and the ludb.csv form ("Sinus rhythm", "Iii degree av-block") meet. Every text
# of the 200 headers and ludb.csv is either here or deliberately unmapped: a normal,
# vertical or horizontal electric axis, "Aberrant conduction" and "Pacemaker
# presence, undefined" have no concept in the label space and stay as text.
_LUDB_WALLS = ("anterior wall", "apical", "inferior wall", "lateral wall", "posterior wall", "septal")
_ISCHEMIA_BY_WALL = {
    "anterior wall": ("426434006",),  # AnMIs anterior ischemia
    "inferior wall": ("425419005",),  # IIs inferior ischaemia
    "lateral wall": ("425623009",),  # LIs lateral ischaemia
}
_PACED = "10370003"  # PR pacing rhythm
_PAC = "284470004"
_PVC = "427172004"

LUDB_TO_SNOMED: dict[str, tuple[str, ...]] = {
    # rhythm (the "Rhythm: " prefix is dropped by _ludb_key)
    "sinus rhythm": ("426783006",),
    "sinus bradycardia": ("426177001",),
    "sinus tachycardia": ("427084000",),
    "sinus arrhythmia": ("427393009",),
    "irregular sinus rhythm": ("427393009",),
    "atrial fibrillation": ("164889003",),
    "atrial flutter, typical": ("164890007",),
    "wandering atrial pacemaker": ("195101003",),
    # electric axis
    "electric axis of the heart: left axis deviation": ("39732003",),
    "electric axis of the heart: right axis deviation": ("47665007",),
    # hypertrophy and overload ("overload" -> the Challenge's atrial abnormality / LV strain)
    "left ventricular hypertrophy": ("164873001",),
    "right ventricular hypertrophy": ("89792004",),
    "left atrial hypertrophy": ("446813000",),
    "right atrial hypertrophy": ("446358003",),
    "left atrial overload": ("253352002",),
    "right atrial overload": ("253339007",),
    "left ventricular overload": ("370365005",),
    # conduction
    "i degree av block": ("270492004",),
    "iii degree av-block": ("27885002",),
    "incomplete right bundle branch block": ("713426002",),
    "complete right bundle branch block": ("713427006",),
    "incomplete left bundle branch block": ("251120003",),
    "complete left bundle branch block": ("733534002",),
    "left anterior hemiblock": ("445118002",),
    "non-specific intravintricular conduction delay": ("698252002",),
    "sinoatrial blockade, undefined": ("65778007",),
    # extrasystoles
    "atrial extrasystole, type: single pac": (_PAC,),
    "atrial extrasystole, type: bigemini": (_PAC, "251173003"),
    "atrial extrasystole, type: quadrigemini": (_PAC,),
    "atrial extrasystole, type: allorhythmic pattern": (_PAC,),
    "atrial extrasystole: left atrial": (_PAC,),
    "atrial extrasystole: low atrial": (_PAC,),
    "atrial extrasystole: undefined": (_PAC,),
    "atrial extrasystole: sa-nodal extrasystole": (_PAC,),
    "ventricular extrasystole, type: single pvc": (_PVC,),
    "ventricular extrasystole, type: intercalary pvc": (_PVC,),
    "ventricular extrasystole, type: couplet": (_PVC, "251182009"),
    "ventricular extrasystole, morphology: polymorphic": (_PVC,),
    "ventricular extrasystole, localisation: rvot, anterior wall": (_PVC,),
    "ventricular extrasystole, localisation: rvot, antero-septal part": (_PVC,),
    "ventricular extrasystole, localisation: lvot, lvs": (_PVC,),
    "ventricular extrasystole, localisation: lv, undefined": (_PVC,),
    "ventricular extrasystole, localisation: ivs, middle part": (_PVC,),
    # pacing
    "unipolar ventricular pacing": (_PACED, "251266004"),
    "bipolar ventricular pacing": (_PACED, "251266004"),
    "biventricular pacing": (_PACED, "251266004"),
    "p-synchrony": (_PACED, "251266004"),
    "unipolar atrial pacing": (_PACED, "251268003"),
    "early repolarization syndrome": ("428417006",),
    # ST-T: repolarization, ischaemia, scar and infarction, for each wall
    **{f"non-specific repolarization abnormalities: {wall}": ("428750005",) for wall in _LUDB_WALLS},
    **{f"ischemia: {wall}": _ISCHEMIA_BY_WALL.get(wall, ("164861001",)) for wall in _LUDB_WALLS},
    **{f"undefined ischemia/scar/supp.nstemi: {wall}": ("164861001",) for wall in _LUDB_WALLS},
    **{f"scar formation: {wall}": ("164865005", "164867002") for wall in _LUDB_WALLS},
    **{f"stemi: {wall}": ("164865005", "57054005") for wall in _LUDB_WALLS},
}


def _ludb_key(text: str) -> str:
    """LUDB text as a map key: normalised, without the header's "Rhythm: " prefix."""
    key = _normalise_text(text)
    return key.removeprefix("rhythm:").strip()


def _split_ludb(raw: Sequence[str]) -> list[str]:
    """LUDB header lines sometimes hold two diagnoses ("... posterior wall. #Rhythm: Sinus
    rhythm."); each becomes its own raw label."""
    return [part for item in raw for part in item.split("#") if part.strip()]


def _harmonise_snomed(raw: Sequence[str]) -> tuple[list[str], list[str]]:
    """SNOMED codes pass through when the label space knows them; others stay as text."""
    labels: list[str] = []
    unmapped: list[str] = []
    for item in raw:
        code = item.strip()
        (labels if code in CONCEPTS else unmapped).append(code)
    return labels, unmapped


def _lookup(table: Mapping[str, tuple[str, ...]], key: Callable[[str], str]) -> Callable[
    [Sequence[str]], tuple[list[str], list[str]]
]:
    """A harmoniser that looks each raw label up in `table` after `key` normalises it."""

    def harmonise_with_table(raw: Sequence[str]) -> tuple[list[str], list[str]]:
        labels: list[str] = []
        unmapped: list[str] = []
        for item in raw:
            codes = table.get(key(item))
            if codes:
                labels.extend(codes)
            else:
                unmapped.append(item.strip())
        return labels, unmapped

    return harmonise_with_table


_harmonise_ludb_lines = _lookup(LUDB_TO_SNOMED, _ludb_key)


def _keep_as_text(raw: Sequence[str]) -> tuple[list[str], list[str]]:
    """Vocabulary "none": nothing maps, anything present is kept as text."""
    return [], [item.strip() for item in raw]


HARMONISERS: dict[str, Callable[[Sequence[str]], tuple[list[str], list[str]]]] = {
    "snomed": _harmonise_snomed,
    "scp": _lookup(SCP_TO_SNOMED, str.strip),
    "code15": _lookup({k.lower(): v for k, v in CODE15_TO_SNOMED.items()}, lambda s: s.strip().lower()),
    "ludb_text": lambda raw: _harmonise_ludb_lines(_split_ludb(raw)),
    "ptb_reason": _lookup(PTB_REASON_TO_SNOMED, _normalise_text),
    "mimic_statement": _lookup(MIMIC_STATEMENT_TO_SNOMED, statement_key),
    "none": _keep_as_text,
}


def harmonise(vocab: str, raw: Sequence[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(SNOMED CT codes, raw labels without a code) for one record's `raw_labels`.

    Codes keep first-seen order without repeats; empty entries are ignored;
    nothing else is dropped. Equivalent codes (e.g. RBBB/CRBBB) are kept as
    written — `canonical` merges them where classes are built.
    """
    harmoniser = HARMONISERS.get(vocab)
    if harmoniser is None:
        raise ValueError(f"unknown label vocabulary {vocab!r}; known: {', '.join(HARMONISERS)}")
    if isinstance(raw, str):
        raw = (raw,)
    items = [str(item) for item in raw if str(item).strip()]
    labels, unmapped = harmoniser(items)
    return tuple(dict.fromkeys(labels)), tuple(dict.fromkeys(unmapped))
