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
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ecgcore.errors import EcgcoreError

PHYSIONET = "https://physionet.org/files"
ZENODO = "https://zenodo.org"


@dataclass(frozen=True)
class CatalogueEntry:
    """One downloadable dataset. `host` names the listing method (see `listing.LISTERS`)."""

    name: str            # what the CLI takes: `python -m ecgcore download NAME`
    title: str
    host: str            # "physionet" | "zenodo"
    project: str         # PhysioNet slug or Zenodo record id
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

    def describe(self) -> dict[str, object]:
        return {"name": self.name, "title": self.title, "host": self.host, "project": self.project,
                "version": self.version, "versions": list(self.versions), "base_url": self.base_url,
                "approx_size": self.approx_size, "records": self.records, "licence": self.licence,
                "checksums": self.checksums, "include": list(self.include), "root": self.root,
                "layout": self.layout, "notes": list(self.notes)}


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
        name="code15", title="CODE-15% (Zenodo)", host="zenodo", project="4916206", version="4916206",
        versions=("4916206",), base_url=ZENODO,
        approx_size="≈ 70 GB unpacked (18 zip parts, each removed once unpacked)",
        records="345,779 exams from 233,770 patients, 400 Hz, 4096 samples",
        licence="CC BY 4.0",
        checksums="MD5 and size per file (Zenodo record JSON); Zenodo publishes no SHA-256",
        unpack_zip=True, layout="code15"),
)}


def get_entry(name: str) -> CatalogueEntry:
    """The catalogue entry called `name` (an unknown name is an error listing the known ones)."""
    try:
        return CATALOGUE[name]
    except KeyError:
        raise EcgcoreError(f"unknown dataset {name!r}; known: {', '.join(CATALOGUE)}") from None
