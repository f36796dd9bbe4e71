"""A registered checkpoint as the Launch form shows it beside the source datasets.

Before starting from someone else's weights a person needs to know: what input the model
expects (its input contract: every run of its architecture is prepared by it, so the
target's records are resampled, filtered and normalised to it), what may be done with it
(the licence, and whether commercial use is established: a clear mark when it is not),
where it comes from (provenance), which file exactly (the SHA-256 the runs record), and
whether it was trained on the target (leakage: then the comparison is not fair).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ecgcore.foundation import RegisteredCheckpoint

#: How much of the SHA-256 the form shows (the runs record all of it).
SHA_PREFIX = 12
NON_COMMERCIAL = "⚠ not for commercial use"


def contract_lines(contract: Mapping[str, Any]) -> list[str]:
    """The input contract in words: rate and window, leads in order, filtering, normalisation."""
    fs, n_samples = int(contract["fs"]), int(contract["n_samples"])
    leads = list(contract.get("leads") or [])
    lines = [f"{fs} Hz × {n_samples} samples ({n_samples / fs:g} s)",
             f"{len(leads)} leads: {', '.join(leads)}",
             f"filtering: {contract.get('filtering') or 'none'}",
             f"normalisation: {contract.get('normalisation') or 'none'}"]
    if contract.get("source"):
        lines.append(f"from the authors' data code: {contract['source']}")
    return lines


def licence_text(record: RegisteredCheckpoint) -> str:
    """The licence, with the non-commercial mark when commercial use is not established."""
    if record.commercial_use:
        return f"{record.licence} (commercial use allowed)"
    return f"{NON_COMMERCIAL}: {record.licence}; commercial use is not established"


def leakage_note(record: RegisteredCheckpoint, target: str | None) -> str | None:
    """A warning when the checkpoint was pretrained on the target dataset (by name)."""
    if target and target in record.pretrained_on:
        return (f"{record.name} was pretrained on {target}, the target: its test records may be among "
                "the checkpoint's training data, so its scores would be optimistic.")
    return None


@dataclass(frozen=True)
class CheckpointCard:
    """What the form shows for one checkpoint (`card`)."""

    name: str
    model: str
    arch: str
    licence: str
    commercial_use: bool
    provenance: str
    sha256_prefix: str
    contract: tuple[str, ...]
    pretrained_on: tuple[str, ...]
    leakage: str | None

    def summary(self) -> str:
        """One line for a picker: name, architecture, licence mark."""
        mark = "" if self.commercial_use else f" · {NON_COMMERCIAL}"
        return f"{self.name} ({self.arch}, SHA-256 {self.sha256_prefix}…){mark}"

    def markdown_lines(self) -> list[str]:
        """The card as plain text lines (the page escapes and lays them out)."""
        return [f"model {self.model}, architecture {self.arch}, SHA-256 {self.sha256_prefix}…",
                f"licence: {self.licence}",
                *(f"input: {line}" for line in self.contract),
                f"pretrained on: {', '.join(self.pretrained_on) or 'not stated'}",
                f"provenance: {self.provenance}"]


def card(record: RegisteredCheckpoint, target: str | None = None) -> CheckpointCard:
    return CheckpointCard(name=record.name, model=record.model, arch=record.arch, licence=licence_text(record),
                          commercial_use=record.commercial_use, provenance=record.provenance,
                          sha256_prefix=record.sha256[:SHA_PREFIX], contract=tuple(contract_lines(record.contract)),
                          pretrained_on=record.pretrained_on, leakage=leakage_note(record, target))
