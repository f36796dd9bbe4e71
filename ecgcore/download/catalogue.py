"""The catalogue of public datasets the workbench can download: one entry per dataset.

Each entry says where the files are (host, project slug or record id, version), how the
host lists them and what it publishes to check them:

- PhysioNet (`https://physionet.org/files/<slug>/<version>/`) publishes a
  `SHA256SUMS.txt` per version listing every file with its SHA-256; files are checked
  against it.
- Zenodo (CODE-15%, record 4916206) publishes no SHA-256: its record JSON
  (`https://zenodo.org/api/records/<id>`) lists each file with its size and an MD5
  (`"checksum": "md5:…"`). Files are checked against that MD5 and size — enough to catch
  a truncated or corrupted transfer, not a deliberate substitution.

Sizes are estimates (record counts × lengths × 2 bytes per sample, for the files as
stored on disk), not figures read from the hosts, so a user can judge the disk and time
before starting; the exact count of files comes from the listing.

Foundation-model checkpoints (`CHECKPOINT_CATALOGUE`, apart from the datasets so the
dataset pickers list datasets only; `get_entry` finds both) are downloaded the same way,
then registered as checkpoints (`ecgcore.foundation.checkpoints`) instead of datasets:
- Hugging Face (`https://huggingface.co/api/models/<repo>/tree/<revision>`) lists each
  file with its size and, for files stored with Git LFS (every weights file), the
  SHA-256 of its content (`lfs.oid`); files are checked against it.
- Google Drive (ECG-JEPA's links) publishes no checksum at all: the one file is checked
  only by being a loadable checkpoint whose every tensor fits the model when it is
  registered (weights_only, strict keys and shapes); a file that does not is deleted.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ecgcore.errors import EcgcoreError

PHYSIONET = "https://physionet.org/files"
ZENODO = "https://zenodo.org"
HUGGINGFACE = "https://huggingface.co"
GOOGLE_DRIVE = "https://drive.usercontent.google.com"


@dataclass(frozen=True)
class CatalogueEntry:
    """One downloadable dataset. `host` names the listing method (see `listing.LISTERS`)."""

    name: str            # what the CLI takes: `python -m ecgcore download NAME`
    title: str
    host: str            # "physionet" | "zenodo" | "huggingface" | "gdrive"
    project: str         # PhysioNet slug, Zenodo record id, Hugging Face repo or Drive file id
    version: str         # the version downloaded by default
    versions: tuple[str, ...]
    base_url: str
    approx_size: str
    records: str
    licence: str
    checksums: str       # what the source publishes to check its files, in words
    include: tuple[str, ...] = ()  # glob patterns over listed paths; empty = every file
    root: str = ""       # sub-folder holding the dataset (what the workspace registers)
    unpack_zip: bool = False  # unpack verified .zip files in place, then remove them
    layout: str = ""     # the ecgcore reader layout the downloaded folder is read with
    notes: tuple[str, ...] = field(default=())
    # A checkpoint download: the file (under the destination) to register, and the
    # foundation model it is registered as (`ecgcore.foundation.catalogue`). Empty for datasets.
    checkpoint_file: str = ""
    checkpoint_model: str = ""

    @property
    def is_checkpoint(self) -> bool:
        return bool(self.checkpoint_model)

    def describe(self) -> dict[str, object]:
        described: dict[str, object] = {
            "name": self.name, "title": self.title, "host": self.host, "project": self.project,
            "version": self.version, "versions": list(self.versions), "base_url": self.base_url,
            "approx_size": self.approx_size, "records": self.records, "licence": self.licence,
            "checksums": self.checksums, "include": list(self.include), "root": self.root,
            "layout": self.layout, "notes": list(self.notes)}
        if self.is_checkpoint:
            described.update(checkpoint_file=self.checkpoint_file, checkpoint_model=self.checkpoint_model)
        return described


_PHYSIONET_SUMS = "SHA-256 of every file (SHA256SUMS.txt, published per version)"

CATALOGUE: dict[str, CatalogueEntry] = {entry.name: entry for entry in (
    CatalogueEntry(
        name="ptb-xl", title="PTB-XL", host="physionet", project="ptb-xl", version="1.0.3",
        versions=("1.0.3", "1.0.2", "1.0.1"), base_url=PHYSIONET,
        approx_size="≈ 3 GB (records at 100 Hz and 500 Hz)",
        records="21,799 records from 18,869 patients, 10 s, 12 leads", licence="CC BY 4.0",
        checksums=_PHYSIONET_SUMS, layout="ptbxl",
        notes=("Only the 100 Hz records: --include 'records100/*' --include '*.csv'.",)),
    CatalogueEntry(
        name="challenge2020", title="PhysioNet/CinC Challenge 2020 (training set)", host="physionet",
        project="challenge-2020", version="1.0.2", versions=("1.0.2", "1.0.1"), base_url=PHYSIONET,
        approx_size="≈ 5–8 GB",
        records="43,101 records from six sources (CPSC, CPSC-Extra, INCART, PTB, PTB-XL, Georgia)",
        licence="CC BY 4.0", checksums=_PHYSIONET_SUMS, include=("training/*",),
        root="training", layout="challenge"),
    CatalogueEntry(
        name="challenge2021", title="PhysioNet/CinC Challenge 2021 (training set)", host="physionet",
        project="challenge-2021", version="1.0.3", versions=("1.0.3", "1.0.2"), base_url=PHYSIONET,
        approx_size="≈ 10–13 GB",
        records="88,253 records from eight sources (2020's plus Chapman-Shaoxing and Ningbo)",
        licence="CC BY 4.0", checksums=_PHYSIONET_SUMS, include=("training/*",),
        root="training", layout="challenge",
        notes=(("Contains PTB-XL (prefix HR), test fold included: do not pretrain on it for a "
                "PTB-XL target without excluding that part."),)),
    CatalogueEntry(
        name="ludb", title="Lobachevsky University ECG Database (LUDB)", host="physionet",
        project="ludb", version="1.0.1", versions=("1.0.1", "1.0.0"), base_url=PHYSIONET,
        approx_size="≈ 30 MB", records="200 records, 10 s, 500 Hz", licence="ODC-By 1.0",
        checksums=_PHYSIONET_SUMS, layout="ludb"),
    CatalogueEntry(
        name="ptbdb", title="PTB Diagnostic ECG Database", host="physionet", project="ptbdb",
        version="1.0.0", versions=("1.0.0",), base_url=PHYSIONET, approx_size="≈ 1.7 GB",
        records="549 records from 290 subjects, 1000 Hz, 15 channels", licence="ODC-By 1.0",
        checksums=_PHYSIONET_SUMS, layout="ptb"),
    CatalogueEntry(
        name="mimic-iv-ecg", title="MIMIC-IV-ECG: Diagnostic Electrocardiogram Matched Subset",
        host="physionet", project="mimic-iv-ecg", version="1.0", versions=("1.0",), base_url=PHYSIONET,
        approx_size="≈ 97 GB (800,035 records × 120 kB of format-16 samples)",
        records="≈ 800,000 ECGs from ≈ 160,000 patients, 10 s, 12 leads, 500 Hz",
        licence="ODbL 1.0 (open access)", checksums=_PHYSIONET_SUMS, layout="mimic_iv_ecg",
        notes=("Labels are the carts' machine statements, not diagnoses; no age or sex.",
               ("A part of it: --include 'files/p1000/*' --include '*.csv' (the other "
                "studies of record_list.csv are then listed as unreadable)."))),
    CatalogueEntry(
        name="code15", title="CODE-15% (Zenodo)", host="zenodo", project="4916206", version="4916206",
        versions=("4916206",), base_url=ZENODO,
        approx_size="≈ 70 GB unpacked (18 zip parts, each removed once unpacked)",
        records="345,779 exams from 233,770 patients, 400 Hz, 4096 samples",
        licence="CC BY 4.0",
        checksums="MD5 and size per file (Zenodo record JSON); Zenodo publishes no SHA-256",
        unpack_zip=True, layout="code15"),
)}


_ECG_JEPA_NOTES = (("Google Drive publishes no checksum: the file is checked by loading it "
                    "(weights_only) as an ECG-JEPA encoder whose every tensor must fit; the link is "
                    "from the README of sehunfromdaegu/ECG_JEPA at d937ad2."),)

CHECKPOINT_CATALOGUE: dict[str, CatalogueEntry] = {entry.name: entry for entry in (
    CatalogueEntry(
        name="ecgfounder", title="ECGFounder 12-lead checkpoint (Hugging Face)", host="huggingface",
        project="PKUDigitalHealth/ECGFounder", version="main", versions=("main",), base_url=HUGGINGFACE,
        approx_size="≈ 120 MB (30.8 M float32 parameters)",
        records="Net1D weights, 12 leads, 150 labels (12_lead_ECGFounder.pth)",
        licence="MIT (code); no licence stated for the weights; trained on HEEDB (data use agreement)",
        checksums="SHA-256 of the file (Hugging Face's Git LFS object id, from its tree listing)",
        include=("12_lead_ECGFounder.pth",),
        checkpoint_file="12_lead_ECGFounder.pth", checkpoint_model="ecgfounder"),
    CatalogueEntry(
        name="ecg-jepa-multiblock", title="ECG-JEPA checkpoint, multi-block masking (Google Drive)",
        host="gdrive", project="1gMOT4xjQQg0GZkY1iE6NuDzua4ALw00l", version="d937ad2",
        versions=("d937ad2",), base_url=GOOGLE_DRIVE,
        approx_size="≈ 350 MB (85.4 M encoder parameters)",
        records="ViT-B encoder, 8 leads x 2,500 samples (multiblock_epoch100.pth)",
        licence="MIT (code); no separate licence stated for the weights",
        checksums="none published (Google Drive); checked by loading it as an ECG-JEPA encoder",
        checkpoint_file="multiblock_epoch100.pth", checkpoint_model="ecg_jepa", notes=_ECG_JEPA_NOTES),
    CatalogueEntry(
        name="ecg-jepa-random", title="ECG-JEPA checkpoint, random masking (Google Drive)",
        host="gdrive", project="1mh-XL0XOvvhFbhvuZ9c2KnTHa9B4F3Wx", version="d937ad2",
        versions=("d937ad2",), base_url=GOOGLE_DRIVE,
        approx_size="≈ 350 MB (85.4 M encoder parameters)",
        records="ViT-B encoder, 8 leads x 2,500 samples (random_epoch100.pth)",
        licence="MIT (code); no separate licence stated for the weights",
        checksums="none published (Google Drive); checked by loading it as an ECG-JEPA encoder",
        checkpoint_file="random_epoch100.pth", checkpoint_model="ecg_jepa", notes=_ECG_JEPA_NOTES),
)}


def get_entry(name: str) -> CatalogueEntry:
    """The dataset or checkpoint entry called `name` (an unknown name is an error listing
    the known ones)."""
    entry = CATALOGUE.get(name) or CHECKPOINT_CATALOGUE.get(name)
    if entry is None:
        raise EcgcoreError(f"unknown dataset {name!r}; known: {', '.join(CATALOGUE)} "
                           f"(checkpoints: {', '.join(CHECKPOINT_CATALOGUE)})")
    return entry
