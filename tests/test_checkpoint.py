"""Model files round-trip, load with weights_only, and refuse what is not ours."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch

from ecgcore.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from ecgcore.errors import EcgcoreError


def _checkpoint() -> Checkpoint:
    return Checkpoint(
        state_dict={"w": torch.arange(6.0).reshape(2, 3)}, model_name="tiny",
        model_config={"width": 8}, classes=["426783006", "164889003"], class_names=["NSR", "AF"],
        prep={"fs": 100.0, "seconds": 10.0}, stage="pretrain",
        seen={"source_ptbxl": ["1", "2"]}, extra={"epoch": 3, "val_macro_auc": 0.91},
    )


def test_round_trip_keeps_everything(tmp_path: Path) -> None:
    path = save_checkpoint(_checkpoint(), tmp_path / "run" / "model.pt")
    loaded = load_checkpoint(path)
    assert torch.equal(loaded.state_dict["w"], torch.arange(6.0).reshape(2, 3))
    assert (loaded.model_name, loaded.model_config, loaded.classes, loaded.class_names) == (
        "tiny", {"width": 8}, ["426783006", "164889003"], ["NSR", "AF"])
    assert loaded.stage == "pretrain" and loaded.seen == {"source_ptbxl": ["1", "2"]}
    assert loaded.extra["val_macro_auc"] == 0.91
    assert [p.name for p in (tmp_path / "run").iterdir()] == ["model.pt"], "no temp file left"


class _Evil:
    def __reduce__(self):  # would run code if unpickled without weights_only
        return (Path("/tmp/ecgcore_pwned").touch, ())


@pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")
def test_files_that_are_not_ours_are_refused(tmp_path: Path) -> None:
    evil = tmp_path / "evil.pt"
    evil.write_bytes(pickle.dumps({"format_version": 1, "x": _Evil()}))
    with pytest.raises(EcgcoreError, match="not a loadable model file"):
        load_checkpoint(evil)
    assert not Path("/tmp/ecgcore_pwned").exists()
    plain = tmp_path / "plain.pt"
    torch.save({"weights": torch.zeros(2)}, plain)
    with pytest.raises(EcgcoreError, match="not an ecgcore model file"):
        load_checkpoint(plain)
    with pytest.raises(EcgcoreError, match="no such model file"):
        load_checkpoint(tmp_path / "missing.pt")
