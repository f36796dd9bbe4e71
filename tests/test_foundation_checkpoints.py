"""The checkpoint registry (ecgcore.foundation): files in the published formats are registered
by SHA-256, checked tensor by tensor against their catalogue entry's architecture, and load
as a `Checkpoint` that `load_source` puts into a freshly built model exactly.

Files are made without downloading anything: the conformance fixtures' reduced models
(../shared/fixtures/foundation/*/small.pt, outputs of the authors' own code) wrapped as the
published files wrap them, and our own models exported with `FoundationModel.export`. The
catalogue entries are pointed at the fixtures' reduced configuration for those tests (the
entry fixes the architecture a file must fit); the full-size entries are checked against
the published key lists (`full_keys.json`) on the meta device.

Other test modules import the helpers here (`use_small_entry`, `small_payload`).
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import foundation_fixture

from ecgcore.data.prepare import PrepConfig
from ecgcore.errors import EcgcoreError
from ecgcore.foundation import (
    FOUNDATION_MODELS,
    CheckpointFileError,
    FoundationModel,
    add_checkpoint,
    get_checkpoint,
    list_checkpoints,
    remove_checkpoint,
)
from ecgcore.foundation.catalogue import get_foundation_model
from ecgcore.foundation.checkpoints import sha256_of
from ecgcore.models import MODELS, create_model
from ecgcore.models.ecgfounder import reference_key
from ecgcore.transfer.loading import load_source

FIXTURE_OF = {"ecgfounder": "ecgfounder", "ecg_jepa": "ecg_jepa"}


def small_config(model: str) -> dict[str, Any]:
    """`create_model` settings of the fixture's reduced model."""
    reference = foundation_fixture(FIXTURE_OF[model], "small.pt")["config"]
    if model == "ecgfounder":
        return {key: reference[key] for key in ("base_filters", "ratio", "filter_list", "m_blocks_list",
                                                "kernel_size", "stride", "groups_width")}
    return {"embed_dim": reference["encoder_embed_dim"], "depth": reference["encoder_depth"],
            "num_heads": reference["encoder_num_heads"]}


def use_small_entry(monkeypatch: pytest.MonkeyPatch, model: str) -> FoundationModel:
    """Point catalogue entry `model` at the fixture's reduced configuration for this test."""
    entry = replace(FOUNDATION_MODELS[model], config=small_config(model))
    monkeypatch.setitem(FOUNDATION_MODELS, model, entry)
    return entry


def small_payload(model: str) -> dict[str, Any]:
    """The fixture's reference state dict wrapped as the published file wraps it."""
    state = foundation_fixture(FIXTURE_OF[model], "small.pt")["state_dict"]
    return {"state_dict": dict(state)} if model == "ecgfounder" else {"encoder": dict(state), "epoch": 99}


def write_payload(payload: dict[str, Any], path: Path) -> Path:
    torch.save(payload, path)
    return path


def _target_model(entry: FoundationModel, n_classes: int) -> torch.nn.Module:
    """What a run builds: the architecture at the contract's shape, its own class count."""
    contract = entry.contract
    return create_model(entry.arch, n_leads=len(contract.leads), n_classes=n_classes,
                        n_samples=contract.n_samples, **entry.config)


# ---------------------------------------------------------------- registered files load exactly
@pytest.mark.parametrize("model", ["ecgfounder", "ecg_jepa"])
def test_a_published_format_file_registers_and_loads_into_a_fresh_model_exactly(
        model: str, workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    entry = use_small_entry(monkeypatch, model)
    path = write_payload(small_payload(model), tmp_path / "weights.pth")
    record = add_checkpoint(path, model)
    assert record.name == model and record.arch == entry.arch and record.path == str(path.resolve())
    assert record.sha256 == sha256_of(path) and record.size_bytes == path.stat().st_size
    assert record.contract == entry.contract.to_dict() and record.commercial_use is False
    assert (workspace / "checkpoints" / f"{model}.json").is_file()

    checkpoint = record.load()
    assert checkpoint.model_name == entry.arch and checkpoint.stage == "checkpoint"
    assert checkpoint.classes == [] and checkpoint.seen == {}
    assert checkpoint.prep == entry.contract.prep_config(PrepConfig()).to_dict()
    assert checkpoint.extra["checkpoint"] == model and checkpoint.extra["sha256"] == record.sha256
    assert checkpoint.extra["pretrained_on"] == list(entry.pretrained_on)
    assert checkpoint.extra["synthetic"] is False

    target = _target_model(entry, n_classes=3).eval()
    loaded = load_source(target, checkpoint, include_final=False)
    assert loaded == len(target.state_dict()) - 2  # all but the new head's weight and bias
    fixture = foundation_fixture(FIXTURE_OF[model], "small.pt")
    with torch.no_grad():
        features = target.embed(fixture["x"])
    expected = fixture["features"] if model == "ecgfounder" else fixture["representation"]
    torch.testing.assert_close(features, expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("model", ["ecgfounder", "ecg_jepa"])
def test_the_full_size_entries_expect_exactly_the_published_keys_and_shapes(model: str) -> None:
    entry = get_foundation_model(model)
    published = foundation_fixture(FIXTURE_OF[model], "full_keys.json")["state_dict"]
    built = entry.build(n_classes=150 if model == "ecgfounder" else 1).state_dict()
    if model == "ecgfounder":
        ours = {reference_key(key): list(value.shape) for key, value in built.items()}
    else:
        ours = {key.removeprefix("encoder."): list(value.shape) for key, value in built.items()
                if key.startswith("encoder.")}
    assert ours == {key: list(shape) for key, shape in published.items()}


@pytest.mark.parametrize("model", ["ecgfounder", "ecg_jepa"])
def test_export_writes_the_published_format_that_convert_reads_back(model: str) -> None:
    entry = replace(FOUNDATION_MODELS[model], config=small_config(model))
    torch.manual_seed(0)
    built = _target_model(entry, n_classes=5)
    payload = entry.export(built)
    assert list(payload) == (["state_dict"] if model == "ecgfounder" else ["encoder"])
    converted = entry.convert(payload)
    for key, value in built.state_dict().items():
        if model == "ecg_jepa" and key.startswith("classifier."):
            assert key not in converted  # ECG-JEPA's files hold the encoder only
            continue
        assert torch.equal(converted[key], value), key
    with pytest.raises(EcgcoreError, match="exports a 'ecg"):
        entry.export(create_model("small_cnn"))


# ---------------------------------------------------------------- refusals write nothing
@pytest.mark.parametrize("model, renamed", [
    ("ecgfounder", "stage_list.1.block_list.0.conv2.conv.weight"),
    ("ecg_jepa", "encoder_blocks.blocks.1.attn.qkv.weight"),
])
def test_a_file_with_one_renamed_key_is_refused_naming_it(
        model: str, renamed: str, workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    use_small_entry(monkeypatch, model)
    payload = small_payload(model)
    state = payload["state_dict" if model == "ecgfounder" else "encoder"]
    state[renamed + "_renamed"] = state.pop(renamed)
    path = write_payload(payload, tmp_path / "renamed.pth")
    with pytest.raises(CheckpointFileError) as refused:
        add_checkpoint(path, model)
    message = str(refused.value)
    assert renamed in message and renamed + "_renamed" in message and str(path) in message
    assert list_checkpoints() == []


@pytest.mark.parametrize("model", ["ecgfounder", "ecg_jepa"])
def test_a_file_of_another_size_is_refused_by_the_entry_it_is_registered_as(
        model: str, workspace: Path, tmp_path: Path) -> None:
    """The fixtures' reduced files against the full-size published entries."""
    path = write_payload(small_payload(model), tmp_path / "small.pth")
    with pytest.raises(CheckpointFileError, match="shape|missing") as refused:
        add_checkpoint(path, model)
    assert "pos_embed" in str(refused.value) or "first_conv.conv.weight" in str(refused.value) \
        or "stage_list" in str(refused.value)
    assert list_checkpoints() == []


def test_a_file_of_the_other_model_is_refused(workspace: Path, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    use_small_entry(monkeypatch, "ecgfounder")
    use_small_entry(monkeypatch, "ecg_jepa")
    jepa = write_payload(small_payload("ecg_jepa"), tmp_path / "jepa.pth")
    with pytest.raises(CheckpointFileError, match="not an ECGFounder state dict"):
        add_checkpoint(jepa, "ecgfounder")
    founder = write_payload(small_payload("ecgfounder"), tmp_path / "founder.pth")
    with pytest.raises(CheckpointFileError, match="not an ECG-JEPA encoder state dict"):
        add_checkpoint(founder, "ecg_jepa")
    assert list_checkpoints() == []


class _RunsCode:
    """A pickle that would run a command when unpickled without weights_only."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


def test_files_are_read_with_weights_only_so_nothing_in_them_runs(
        workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    use_small_entry(monkeypatch, "ecgfounder")
    marker = tmp_path / "ran"
    payload = small_payload("ecgfounder")
    payload["args"] = _RunsCode(marker)
    path = write_payload(payload, tmp_path / "pickled.pth")
    with pytest.raises(CheckpointFileError, match="weights_only=True"):
        add_checkpoint(path, "ecgfounder")
    assert not marker.exists()
    (tmp_path / "noise.pth").write_bytes(b"<html>not a checkpoint</html>")
    with pytest.raises(CheckpointFileError, match="not loadable"):
        add_checkpoint(tmp_path / "noise.pth", "ecgfounder")
    write_payload({"state_dict": [1, 2, 3]}, tmp_path / "list.pth")
    with pytest.raises(CheckpointFileError):
        add_checkpoint(tmp_path / "list.pth", "ecgfounder")
    assert list_checkpoints() == []


def test_a_name_taken_by_another_file_is_refused_and_the_record_kept(
        workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    use_small_entry(monkeypatch, "ecgfounder")
    first = write_payload(small_payload("ecgfounder"), tmp_path / "a.pth")
    other_payload = small_payload("ecgfounder")
    other_payload["state_dict"]["dense.bias"] = other_payload["state_dict"]["dense.bias"] + 1
    other = write_payload(other_payload, tmp_path / "b.pth")
    record = add_checkpoint(first, "ecgfounder", name="founder")
    with pytest.raises(EcgcoreError, match="already registered.*remove it first"):
        add_checkpoint(other, "ecgfounder", name="founder")
    assert get_checkpoint("founder") == record
    assert add_checkpoint(first, "ecgfounder", name="founder") == record  # the same file again: no change
    moved = tmp_path / "moved" / "a.pth"
    moved.parent.mkdir()
    first.rename(moved)
    again = add_checkpoint(moved, "ecgfounder", name="founder")
    assert again.path == str(moved.resolve()) and again.sha256 == record.sha256 and again.added == record.added
    assert add_checkpoint(other, "ecgfounder", name="founder-b").sha256 == sha256_of(other)
    assert [r.name for r in list_checkpoints()] == ["founder", "founder-b"]


def test_a_changed_file_is_refused_at_load_and_its_record_stays(
        workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    use_small_entry(monkeypatch, "ecg_jepa")
    path = write_payload(small_payload("ecg_jepa"), tmp_path / "jepa.pth")
    record = add_checkpoint(path, "ecg_jepa")
    changed = small_payload("ecg_jepa")
    changed["encoder"]["norm.weight"] = changed["encoder"]["norm.weight"] * 2
    write_payload(changed, path)
    with pytest.raises(CheckpointFileError, match="changed since it was registered"):
        get_checkpoint("ecg_jepa").load()
    assert get_checkpoint("ecg_jepa") == record
    path.unlink()
    with pytest.raises(CheckpointFileError, match="is gone"):
        record.load()


def test_names_listing_and_removal(workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    use_small_entry(monkeypatch, "ecgfounder")
    path = write_payload(small_payload("ecgfounder"), tmp_path / "a.pth")
    with pytest.raises(EcgcoreError, match="no checkpoint 'founder' is registered; registered: none"):
        get_checkpoint("founder")
    with pytest.raises(EcgcoreError, match="unknown foundation model 'hubert'.*ecgfounder"):
        add_checkpoint(path, "hubert")
    for bad in ("../escape", "a/b", "", ".hidden"):
        with pytest.raises(EcgcoreError, match="checkpoint name"):
            add_checkpoint(path, "ecgfounder", name=bad)
    with pytest.raises(CheckpointFileError, match="no such checkpoint file"):
        add_checkpoint(tmp_path / "missing.pth", "ecgfounder")
    add_checkpoint(path, "ecgfounder", name="founder", note="Exported from run 42.")
    assert get_checkpoint("founder").provenance.endswith("Exported from run 42.")
    (workspace / "checkpoints" / "broken.json").write_text("{not json")
    assert [r.name for r in list_checkpoints()] == ["founder"]  # the unreadable record is skipped
    with pytest.raises(EcgcoreError, match="registered: founder"):
        get_checkpoint("other")
    removed = remove_checkpoint("founder")
    assert removed.name == "founder" and path.is_file()  # the file is never touched
    with pytest.raises(EcgcoreError, match="no checkpoint 'founder'"):
        remove_checkpoint("founder")


def test_records_round_trip_through_json(workspace: Path, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from ecgcore.foundation import RegisteredCheckpoint

    use_small_entry(monkeypatch, "ecgfounder")
    record = add_checkpoint(write_payload(small_payload("ecgfounder"), tmp_path / "a.pth"), "ecgfounder")
    data = record.to_dict()
    assert data["pretrained_on"] == ["HEEDB"] and isinstance(data["contract"]["leads"], list)
    assert RegisteredCheckpoint.from_dict(data) == record


# ---------------------------------------------------------------- the catalogue
def test_the_catalogue_names_real_architectures_and_honest_licences() -> None:
    assert set(FOUNDATION_MODELS) == {"ecgfounder", "ecg_jepa", "demo_net1d", "demo_vit"}
    assert {name: entry.arch for name, entry in FOUNDATION_MODELS.items()} == {
        "ecgfounder": "ecgfounder", "ecg_jepa": "ecg_jepa", "demo_net1d": "net1d_small",
        "demo_vit": "ecg_jepa_small"}
    for entry in FOUNDATION_MODELS.values():
        assert entry.arch in MODELS and entry.contract is MODELS[entry.arch].contract
        assert entry.licence and entry.provenance and entry.pretrained_on
    for name in ("ecgfounder", "ecg_jepa"):
        entry = FOUNDATION_MODELS[name]
        assert entry.licence.startswith("MIT (code)") and entry.commercial_use is False
        assert "not established" in entry.provenance and entry.url and entry.file_name
        assert entry.sha256 is None and entry.synthetic is False
    assert FOUNDATION_MODELS["ecgfounder"].file_name == "12_lead_ECGFounder.pth"
    for name in ("demo_net1d", "demo_vit"):
        entry = FOUNDATION_MODELS[name]
        assert entry.synthetic and entry.url is None and entry.sha256 is None
        assert "demo-sized" in entry.provenance


@pytest.mark.parametrize("model", ["demo_net1d", "demo_vit"])
def test_demo_files_written_by_export_register_and_load_like_the_real_ones(
        model: str, workspace: Path, tmp_path: Path) -> None:
    entry = FOUNDATION_MODELS[model]
    torch.manual_seed(1)
    trained = _target_model(entry, n_classes=4).eval()
    path = write_payload(entry.export(trained), tmp_path / f"{model}.pt")
    checkpoint = add_checkpoint(path, model).load()
    assert checkpoint.extra["synthetic"] is True and checkpoint.model_name == entry.arch
    target = _target_model(entry, n_classes=2).eval()
    load_source(target, checkpoint, include_final=False)
    x = torch.randn(2, len(entry.contract.leads), entry.contract.n_samples)
    with torch.no_grad():
        torch.testing.assert_close(target.embed(x), trained.embed(x), atol=1e-6, rtol=0)
