"""The workspace contract: one folder, created on demand; datasets added by path remembered."""

from __future__ import annotations

from pathlib import Path

from ecgcore import workspace as ws


def test_layout_and_dataset_registry(workspace: Path, tmp_path: Path) -> None:
    root = ws.home()
    assert root == workspace.resolve()
    for sub in ("datasets", "cache", "runs"):
        assert (root / sub).is_dir()

    (root / "datasets" / "site_a").mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    ws.add_dataset("mine", elsewhere)
    assert (root / "store.sqlite").is_file()
    entries = {e.name: e for e in ws.list_datasets()}
    assert entries["site_a"].path == root / "datasets" / "site_a"
    assert not entries["site_a"].registered
    assert entries["mine"].path == elsewhere.resolve() and entries["mine"].registered

    ws.remove_dataset("mine")
    assert "mine" not in {e.name for e in ws.list_datasets()}
    assert elsewhere.is_dir(), "forgetting a dataset never deletes its files"
