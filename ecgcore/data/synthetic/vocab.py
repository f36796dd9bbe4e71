"""The two label vocabularies the synthetic sites write, as data.

`SCP_STATEMENTS` holds, verbatim, the rows of PTB-XL v1.0.3's
`scp_statements.csv` (Wagner et al. 2020, CC BY 4.0) for the SCP-ECG codes the
PTB-XL-layout site uses, so that the real reader's task tables (diagnostic,
superdiagnostic, form, rhythm ...) work on the synthetic site unchanged.
`SNOMED` names the SNOMED CT codes the Challenge-layout sites write (codes and
abbreviations as in the PhysioNet/CinC Challenge 2021 dx mapping tables).
"""

from __future__ import annotations

SCP_STATEMENT_COLUMNS: tuple[str, ...] = (
    "", "description", "diagnostic", "form", "rhythm", "diagnostic_class",
    "diagnostic_subclass", "Statement Category", "SCP-ECG Statement Description",
    "AHA code", "aECG REFID", "CDISC Code", "DICOM Code",
)

_RHY = "Statements related to impulse formation (abnormalities)"
_IVCD = "Intraventricular and intra-atrial Conduction disturbances"

SCP_STATEMENTS: dict[str, tuple[str, ...]] = {
    "NORM": ("normal ECG", "1.0", "", "", "NORM", "NORM", "Normal/abnormal", "normal ECG",
             "1", "", "", "F-000B7"),
    "SR": ("sinus rhythm", "", "", "1.0", "", "", _RHY, "sinus rhythm", "20",
           "MDC_ECG_RHY_SINUS_RHY", "", ""),
    "SBRAD": ("sinus bradycardia", "", "", "1.0", "", "", _RHY, "sinus bradycardia", "22",
              "MDC_ECG_RHY_SINUS_BRADY", "", ""),
    "STACH": ("sinus tachycardia", "", "", "1.0", "", "", _RHY, "sinus tachycardia", "21",
              "MDC_ECG_RHY_SINUS_TACHY", "", ""),
    "AFIB": ("atrial fibrillation", "", "", "1.0", "", "", _RHY, "atrial fibrillation", "50",
             "MDC_ECG_RHY_ATR_FIB", "", "D3-31520"),
    "1AVB": ("first degree AV block", "1.0", "", "", "CD", "_AVB",
             "Sinus node dysfunction, atrial and AV-conduction defects", "first degree AV block",
             "", "MDC_ECG_RHY_AV_HEART_BLK_DEG_1", "C111088", ""),
    "CLBBB": ("complete left bundle branch block", "1.0", "", "", "CD", "CLBBB", _IVCD,
              "(complete) left bundle branch block", "104", "MDC_ECG_BEAT_LBB_BLK_COMP",
              "C62269", "D3-33120 or 122752"),
    "CRBBB": ("complete right bundle branch block", "1.0", "", "", "CD", "CRBBB", _IVCD,
              "(complete) right bundle branch block", "106", "MDC_ECG_BEAT_RBB_BLK_COMP",
              "C62270", "D3-33110"),
    "ASMI": ("anteroseptal myocardial infarction", "1.0", "", "", "MI", "AMI",
             "Myocardial Infarction", "anteroseptal myocardial infarction", "165", "", "", ""),
    "AMI": ("anterior myocardial infarction", "1.0", "", "", "MI", "AMI",
            "Myocardial Infarction", "anterior myocardial infarction", "160", "", "", ""),
    "IMI": ("inferior myocardial infarction", "1.0", "", "", "MI", "IMI",
            "Myocardial Infarction", "inferior myocardial infarction", "161", "", "", ""),
    "ILMI": ("inferolateral myocardial infarction", "1.0", "", "", "MI", "IMI",
             "Myocardial Infarction", "inferolateral myocardial infarction", "", "", "", ""),
    "NDT": ("non-diagnostic T abnormalities", "1.0", "1.0", "", "STTC", "STTC",
            "other ST-T descriptive statements", "non-diagnostic T abnormalities", "", "", "", ""),
    "ISC_": ("non-specific ischemic", "1.0", "", "", "STTC", "ISC_",
             "Basic roots for coding ST-T changes and abnormalities", "ischemic ST-T changes",
             "226", "", "", ""),
    "ISCAL": ("ischemic in anterolateral leads", "1.0", "", "", "STTC", "ISCA",
              "ischemic ST-T changes", "in anterolateral leads", "", "", "", ""),
    "INVT": ("inverted T-waves", "", "1.0", "", "", "", "other ST-T descriptive statements",
             "inverted T-waves", "367", "", "", ""),
    "STD_": ("non-specific ST depression", "", "1.0", "", "", "",
             "Basic roots for coding ST-T changes and abnormalities",
             "non-specific ST depression", "502", "", "", "F-38278"),
    "LVH": ("left ventricular hypertrophy", "1.0", "", "", "HYP", "LVH",
            "Ventricular Hypertrophy", "left ventricular hypertrophy", "142", "", "C71076", ""),
    "VCLVH": ("voltage criteria (QRS) for left ventricular hypertrophy", "", "1.0", "", "", "",
              "Ventricular Hypertrophy",
              "voltage criteria (QRS) for left ventricular hypertrophy", "", "", "", ""),
    "PVC": ("ventricular premature complex", "", "1.0", "", "", "",
            "Statements related to ectopic rhythm abnormalities",
            "ventricular premature complex (beat)", "60", "MDC_ECG_BEAT_V_P_C", "", ""),
}

# Diagnostic statements carry a likelihood (0–100) in PTB-XL's scp_codes;
# form and rhythm statements are written with 0.0.
DIAGNOSTIC_SCP: frozenset[str] = frozenset(k for k, row in SCP_STATEMENTS.items() if row[1])

# SNOMED CT code -> Challenge abbreviation, for the codes the Challenge-layout sites write.
SNOMED: dict[str, str] = {
    "426783006": "NSR",
    "426177001": "SB",
    "427084000": "STach",
    "164889003": "AF",
    "270492004": "IAVB",
    "164909002": "LBBB",
    "59118001": "RBBB",
    "164865005": "MI",
    "54329005": "AnMI",
    "59931005": "TInv",
    "164934002": "TAb",
    "164873001": "LVH",
    "164884008": "VEB",
    "427172004": "PVC",
    "111975006": "LQT",
    "39732003": "LAD",
}
