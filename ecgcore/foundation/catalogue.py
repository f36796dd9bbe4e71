"""The foundation models whose checkpoint files the workbench can register: one entry each.

An entry says which architecture of `ecgcore.models` rebuilds the model (and with which
settings, so a file of another size is refused), the published file's layout
(`file_format`), where the file comes from and what may be done with it (licence,
commercial use, what it was trained on: `pretrained_on` feeds the leakage warnings).

File formats, as the authors publish them:
- "ecgfounder": `{"state_dict": ...}` with the reference Net1D's key names
  (`first_conv.conv.*`, `stage_list.<i>.block_list.<j>.*`, `dense.*`);
  `ecgcore.models.ecgfounder.ecgfounder_state_dict` converts it.
- "ecg_jepa": `{"encoder": ..., "epoch": ...}` with the encoder's own key names (ours
  minus the `encoder.` prefix) and no head; `ecg_jepa_state_dict` converts it.

The demo entries ("demo_net1d", "demo_vit") are small models of the same two shapes made
on the embedded default; their files are written in the same published formats
(`FoundationModel.export`), so they go through the very converters the real files do.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from ecgcore.errors import EcgcoreError
from ecgcore.models import MODELS, create_model
from ecgcore.models.base import ECGClassifier
from ecgcore.models.ecg_jepa import ecg_jepa_state_dict
from ecgcore.models.ecgfounder import (
    PUBLISHED_CONFIG,
    ecgfounder_state_dict,
    reference_key,
)
from ecgcore.models.input_contract import InputContract

log = logging.getLogger(__name__)

FILE_FORMATS: tuple[str, ...] = ("ecgfounder", "ecg_jepa")


@dataclass(frozen=True)
class FoundationModel:
    """One foundation model (see the module docstring).

    `config`: the architecture's settings beyond leads, classes and samples (`create_model`'s
    keyword arguments); empty means the architecture's defaults. `url`, `file_name`, `sha256`: where the
    published file is, its name, and its SHA-256 when the authors publish one (None when
    not; the demo entries have none). `synthetic`: trained on synthetic data (the demo
    checkpoints), so results built on it say so."""

    name: str
    title: str
    arch: str
    file_format: str
    licence: str
    commercial_use: bool
    provenance: str
    pretrained_on: tuple[str, ...]
    config: Mapping[str, Any] = field(default_factory=dict)
    url: str | None = None
    file_name: str | None = None
    sha256: str | None = None
    synthetic: bool = False

    def __post_init__(self) -> None:
        if self.file_format not in FILE_FORMATS:
            raise ValueError(f"{self.name}: file_format must be one of {FILE_FORMATS}, got {self.file_format!r}")

    @property
    def contract(self) -> InputContract:
        """The architecture's input contract: what every input of this model is prepared to."""
        if self.arch not in MODELS:
            raise EcgcoreError(f"foundation model {self.name!r}: architecture {self.arch!r} is not "
                               f"registered; known: {', '.join(sorted(MODELS))}")
        contract = MODELS[self.arch].contract
        if contract is None:
            raise EcgcoreError(f"foundation model {self.name!r}: architecture {self.arch!r} "
                               f"declares no input contract")
        return contract

    def build(self, n_classes: int = 1) -> ECGClassifier:
        """The architecture at this entry's settings, shaped by its contract (leads, samples),
        on the meta device: shapes only, no memory, for checking a file against."""
        contract = self.contract
        with torch.device("meta"):
            return create_model(self.arch, n_leads=len(contract.leads), n_classes=n_classes,
                                n_samples=contract.n_samples, **self.config)

    def convert(self, payload: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        """The published file's payload -> our state-dict keys, float32. Raises an
        EcgcoreError naming the first missing, unexpected or mis-shaped tensors when the
        payload is not this model's format (checked again against the built architecture
        by `ecgcore.foundation.checkpoints`)."""
        if not isinstance(payload, Mapping):
            raise EcgcoreError(f"not a {self.title} checkpoint: the file holds a "
                               f"{type(payload).__name__}, not a dict of tensors")
        if self.file_format == "ecgfounder":
            return ecgfounder_state_dict(payload, self._net1d_config(payload))
        return ecg_jepa_state_dict(payload)

    def _net1d_config(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """Net1D's arguments for this entry, as its architecture builds it (the built
        model's config), with the class count of the file's own head (a fine-tuned head of
        any width loads)."""
        inner = payload.get("state_dict")
        state = inner if isinstance(inner, Mapping) else payload
        head = state.get("dense.weight")
        n_classes = int(head.shape[0]) if isinstance(head, torch.Tensor) and head.ndim == 2 else 1
        config = dict(self.build(n_classes).config)
        config.pop("n_samples", None)
        return config

    def export(self, model: ECGClassifier) -> dict[str, Any]:
        """`model`'s weights as the published file holds them (the inverse of `convert`):
        what a demo checkpoint file is written from, and how tests make files of the real
        formats without downloading them. ECG-JEPA's files hold the encoder only."""
        if getattr(model, "name", "") != self.arch:
            raise EcgcoreError(f"{self.name} exports a {self.arch!r} model, not a "
                               f"{getattr(model, 'name', '') or type(model).__name__!r}")
        state = {key: value.detach().cpu().clone() for key, value in model.state_dict().items()}
        if self.file_format == "ecgfounder":
            return {"state_dict": {reference_key(key): value for key, value in state.items()}}
        prefix = "encoder."
        return {"encoder": {key[len(prefix):]: value for key, value in state.items() if key.startswith(prefix)}}

    def describe(self) -> dict[str, Any]:
        """JSON-ready, for listings."""
        return {"name": self.name, "title": self.title, "arch": self.arch, "file_format": self.file_format,
                "licence": self.licence, "commercial_use": self.commercial_use,
                "provenance": self.provenance, "pretrained_on": list(self.pretrained_on),
                "config": dict(self.config), "url": self.url, "file_name": self.file_name,
                "sha256": self.sha256, "synthetic": self.synthetic}


_ECGFOUNDER_HF = "https://huggingface.co/PKUDigitalHealth/ECGFounder"
_ECG_JEPA_REPO = "https://github.com/sehunfromdaegu/ECG_JEPA"

FOUNDATION_MODELS: dict[str, FoundationModel] = {entry.name: entry for entry in (
    FoundationModel(
        name="ecgfounder", title="ECGFounder (12-lead)", arch="ecgfounder", file_format="ecgfounder",
        licence="MIT (code); weights: no licence stated on the Hugging Face model card",
        commercial_use=False,
        provenance=("Li et al., 'An Electrocardiogram Foundation Model Built on over 10 Million "
                    "Recordings', NEJM AI 2025 (arXiv 2410.04133); code github.com/PKUDigitalHealth/"
                    "ECGFounder (MIT); weights 12_lead_ECGFounder.pth on Hugging Face "
                    "PKUDigitalHealth/ECGFounder. Supervised on about 10 million 12-lead ECGs of the "
                    "Harvard-Emory ECG Database (HEEDB), 150 labels. The MIT licence covers the code; "
                    "the weights carry no licence of their own and HEEDB is under a data use "
                    "agreement, so commercial use is not established (marked False)."),
        pretrained_on=("HEEDB",), config=dict(PUBLISHED_CONFIG),
        url=f"{_ECGFOUNDER_HF}/resolve/main/12_lead_ECGFounder.pth", file_name="12_lead_ECGFounder.pth"),
    FoundationModel(
        name="ecg_jepa", title="ECG-JEPA (ViT-B, 8 leads)", arch="ecg_jepa", file_format="ecg_jepa",
        licence="MIT (code); weights: shared by link from the MIT repository, no separate licence",
        commercial_use=False,
        provenance=("Kim, 'Learning General Representation of 12-Lead Electrocardiogram with a "
                    "Joint-Embedding Predictive Architecture', arXiv 2410.08559; code "
                    "github.com/sehunfromdaegu/ECG_JEPA (MIT). Self-supervised (JEPA) on "
                    "Chapman-Shaoxing-Ningbo (PhysioNet ecg-arrhythmia) and CODE-15%. Two checkpoints, "
                    "by Google Drive links in the README: multi-block masking "
                    "(multiblock_epoch100.pth, the repository's default) and random masking "
                    "(random_epoch100.pth). No licence is stated for the weights themselves, so "
                    "commercial use is not established (marked False)."),
        pretrained_on=("ecg-arrhythmia", "code15"),
        url="https://drive.google.com/file/d/1gMOT4xjQQg0GZkY1iE6NuDzua4ALw00l/view",
        file_name="multiblock_epoch100.pth"),
    FoundationModel(
        name="demo_net1d", title="Demo Net1D (demo-sized, synthetic)", arch="net1d_small",
        file_format="ecgfounder", licence="made locally by this workbench", commercial_use=True,
        provenance=("A demo-sized Net1D (ECGFounder's shape, a few small stages) pretrained here on "
                    "the embedded synthetic source, written in ECGFounder's file format; for "
                    "exercising the checkpoint path, not a real foundation model."),
        pretrained_on=("source_ptbxl",), synthetic=True),
    FoundationModel(
        name="demo_vit", title="Demo ECG-JEPA ViT (demo-sized, synthetic)", arch="ecg_jepa_small",
        file_format="ecg_jepa", licence="made locally by this workbench", commercial_use=True,
        provenance=("A demo-sized ECG-JEPA encoder (ViT, small width and depth) pretrained here on "
                    "the embedded synthetic source, written in ECG-JEPA's file format; for "
                    "exercising the checkpoint path, not a real foundation model."),
        pretrained_on=("source_ptbxl",), synthetic=True),
)}


def get_foundation_model(name: str) -> FoundationModel:
    """The catalogue entry called `name` (an unknown name is an error listing the known ones)."""
    try:
        return FOUNDATION_MODELS[name]
    except KeyError:
        raise EcgcoreError(f"unknown foundation model {name!r}; known: {', '.join(FOUNDATION_MODELS)}") from None
