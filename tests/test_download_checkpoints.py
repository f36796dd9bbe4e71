"""Checkpoint downloads against a local mirror on 127.0.0.1 in the hosts' layouts: Hugging
Face (tree JSON with each LFS file's SHA-256, files under /<repo>/resolve/<revision>/) and
Google Drive (/download?id=…, no checksum). A finished download is registered as a
checkpoint; a file that fails its check, or that does not load as the model, is not.

The files are the conformance fixtures' reduced models in the published formats, and the
catalogue entries are pointed at that reduced configuration (see test_foundation_checkpoints).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch
from test_download import Mirror
from test_foundation_checkpoints import small_payload, use_small_entry

from ecgcore.cli import main
from ecgcore.download import download_dataset, get_entry
from ecgcore.download.catalogue import CATALOGUE, CHECKPOINT_CATALOGUE
from ecgcore.download.download_job import DownloadJob
from ecgcore.download.listing import parse_huggingface_tree
from ecgcore.errors import EcgcoreError
from ecgcore.foundation import get_checkpoint, list_checkpoints

HF_FILE = "PKUDigitalHealth/ECGFounder/resolve/main/12_lead_ECGFounder.pth"
HF_TREE = "api/models/PKUDigitalHealth/ECGFounder/tree/main"


def build_huggingface_tree(root: Path, lfs_sha256: str | None = None) -> Path:
    """The ECGFounder repository as Hugging Face serves it: the weights (a reduced model in
    the published format), a README kept in git (no LFS sha), and the tree listing."""
    weights = root / HF_FILE
    weights.parent.mkdir(parents=True)
    torch.save(small_payload("ecgfounder"), weights)
    data = weights.read_bytes()
    tree = [{"type": "file", "oid": "0" * 40, "size": 12, "path": "README.md"},
            {"type": "directory", "oid": "1" * 40, "size": 0, "path": "csv"},
            {"type": "file", "oid": "2" * 40, "size": len(data), "path": "12_lead_ECGFounder.pth",
             "lfs": {"oid": lfs_sha256 or hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}}]
    (root / HF_TREE).parent.mkdir(parents=True)
    (root / HF_TREE).write_text(json.dumps(tree))
    return weights


def _download(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict, str]:
    code = main(["download-checkpoint", *argv, "--json"])
    out, err = capsys.readouterr()
    return code, json.loads(out) if out.strip() else {}, err


def test_the_checkpoint_catalogue_is_apart_from_the_datasets() -> None:
    assert set(CHECKPOINT_CATALOGUE) == {"ecgfounder", "ecg-jepa-multiblock", "ecg-jepa-random"}
    assert not set(CHECKPOINT_CATALOGUE) & set(CATALOGUE)
    assert all(not entry.is_checkpoint for entry in CATALOGUE.values())
    founder = get_entry("ecgfounder")
    assert founder.is_checkpoint and founder.checkpoint_model == "ecgfounder"
    assert founder.host == "huggingface" and founder.project == "PKUDigitalHealth/ECGFounder"
    assert founder.include == (founder.checkpoint_file,) == ("12_lead_ECGFounder.pth",)
    jepa = get_entry("ecg-jepa-multiblock")
    assert jepa.host == "gdrive" and jepa.checkpoint_model == "ecg_jepa"
    assert jepa.project == "1gMOT4xjQQg0GZkY1iE6NuDzua4ALw00l"  # the README's multi-block link
    assert get_entry("ecg-jepa-random").project == "1mh-XL0XOvvhFbhvuZ9c2KnTHa9B4F3Wx"
    assert "none published" in jepa.checksums and "SHA-256" in founder.checksums
    assert founder.describe()["checkpoint_model"] == "ecgfounder"
    assert "checkpoint_model" not in CATALOGUE["ludb"].describe()  # dataset entries describe as before
    with pytest.raises(EcgcoreError, match="unknown dataset 'nope'.*checkpoints: ecgfounder"):
        get_entry("nope")


def test_huggingface_tree_lists_lfs_files_with_their_sha256() -> None:
    digest = "ab" * 32
    text = json.dumps([{"type": "file", "path": "README.md", "size": 5, "oid": "c" * 40},
                       {"type": "file", "path": "w.pth", "size": 9, "oid": "d" * 40,
                        "lfs": {"oid": digest.upper(), "size": 9}},
                       {"type": "file", "path": "../x.pth", "size": 1, "lfs": {"oid": digest, "size": 1}}])
    files = parse_huggingface_tree(text, get_entry("ecgfounder"), "http://m", "main")
    assert [(f.path, f.algorithm, f.digest, f.size) for f in files] == [
        ("w.pth", "sha256", digest, 9), ("../x.pth", "sha256", digest, 1)]
    assert files[0].url == "http://m/PKUDigitalHealth/ECGFounder/resolve/main/w.pth"
    assert files[0].unsafe == "" and "'..'" in files[1].unsafe
    with pytest.raises(EcgcoreError, match="no file list in its tree JSON"):
        parse_huggingface_tree('{"error": "Repository not found"}', get_entry("ecgfounder"), "http://m", "main")


def test_huggingface_download_is_checked_and_registered(
        workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    use_small_entry(monkeypatch, "ecgfounder")
    weights = build_huggingface_tree(tmp_path / "mirror")
    with Mirror(tmp_path / "mirror") as mirror:
        code, result, err = _download(capsys, "ecgfounder", "--base-url", mirror.url)
        assert code == 0, err
        assert result["ok"] and result["fetched"] == 1 and result["added_as"] == "ecgfounder"
        assert [path for path, _ in mirror.file_requests()] == [f"/{HF_TREE}", f"/{HF_FILE}"]
    dest = workspace / "checkpoints" / "files" / "ecgfounder"
    record = get_checkpoint("ecgfounder")
    assert record.path == str(dest / "12_lead_ECGFounder.pth") and record.model == "ecgfounder"
    assert record.sha256 == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert json.loads((dest / "huggingface_tree.json").read_text())[2]["lfs"]["oid"] == record.sha256
    assert record.load().extra["checkpoint"] == "ecgfounder"


def test_a_file_that_fails_its_published_sha256_is_not_registered(
        workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    use_small_entry(monkeypatch, "ecgfounder")
    build_huggingface_tree(tmp_path / "mirror")
    with Mirror(tmp_path / "mirror") as mirror:
        mirror.corrupt_always.add(f"/{HF_FILE}")
        code, result, err = _download(capsys, "ecgfounder", "--to", str(tmp_path / "dl"), "--base-url", mirror.url)
    assert code == 2 and not result["ok"] and result["added_as"] == ""
    assert "corrupt twice" in result["failed"][0]["reason"] and "12_lead_ECGFounder.pth" in err
    assert list_checkpoints() == [] and not (tmp_path / "dl" / "12_lead_ECGFounder.pth").exists()


def test_a_verified_file_that_is_not_the_model_is_kept_but_not_registered(
        workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The sum matched (the host published that very file), yet it is not the reduced model
    the entry expects (here the full-size entry): refused, named, and kept for inspection."""
    build_huggingface_tree(tmp_path / "mirror")
    with Mirror(tmp_path / "mirror") as mirror:
        result = download_dataset("ecgfounder", tmp_path / "dl", base_url=mirror.url, add_as="ecgfounder")
    assert not result.ok and result.added_as == ""
    assert result.failed[0]["path"] == "12_lead_ECGFounder.pth"
    reason = result.failed[0]["reason"]
    assert reason.startswith("not registered: ") and "does not fit ECGFounder" in reason
    assert "stage_list" in reason and "deleted" not in reason
    assert (tmp_path / "dl" / "12_lead_ECGFounder.pth").is_file() and list_checkpoints() == []


def _drive_mirror(root: Path, payload: object | bytes) -> Path:
    """Google Drive's download endpoint serving one file (the mirror ignores the query)."""
    root.mkdir(parents=True, exist_ok=True)
    target = root / "download"
    if isinstance(payload, bytes):
        target.write_bytes(payload)
    else:
        torch.save(payload, target)
    return target


def test_google_drive_download_has_no_sum_so_loading_it_is_its_check(
        workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    use_small_entry(monkeypatch, "ecg_jepa")
    dest = tmp_path / "jepa"
    # Drive answering with its HTML warning page instead of the file: refused and deleted
    _drive_mirror(tmp_path / "mirror", b"<!DOCTYPE html><html>Google Drive can't scan this file</html>")
    with Mirror(tmp_path / "mirror") as mirror:
        code, result, err = _download(capsys, "ecg-jepa-multiblock", "--to", str(dest), "--base-url", mirror.url)
    assert code == 2 and "not registered" in err and "not loadable" in result["failed"][0]["reason"]
    assert "deleted" in result["failed"][0]["reason"]
    assert not (dest / "multiblock_epoch100.pth").exists() and list_checkpoints() == []

    # the real file, cut once mid-transfer: resumed, loaded, registered under the model's name
    served = _drive_mirror(tmp_path / "mirror", small_payload("ecg_jepa"))
    with Mirror(tmp_path / "mirror") as mirror:
        mirror.cut_once["/download"] = 1000
        code, result, err = _download(capsys, "ecg-jepa-multiblock", "--to", str(dest), "--base-url", mirror.url)
        ranges = [byte_range for path, byte_range in mirror.requests if path == "/download"]
    assert code == 0, err
    assert result["ok"] and result["added_as"] == "ecg_jepa" and ranges == [None, "bytes=1000-"]
    record = get_checkpoint("ecg_jepa")
    assert record.sha256 == hashlib.sha256(served.read_bytes()).hexdigest()
    assert record.path == str(dest / "multiblock_epoch100.pth")
    source = json.loads((dest / "gdrive_source.json").read_text())
    assert "id=1gMOT4xjQQg0GZkY1iE6NuDzua4ALw00l" in source["url"] and source["checksum"] is None


def test_a_download_job_done_on_a_cluster_node_is_registered_by_the_dispatcher(
        workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    use_small_entry(monkeypatch, "ecgfounder")
    build_huggingface_tree(tmp_path / "mirror")
    job = DownloadJob.of("ecgfounder", tmp_path / "dl", add_as="founder")
    assert job.title == CHECKPOINT_CATALOGUE["ecgfounder"].title
    with Mirror(tmp_path / "mirror") as mirror:
        result = download_dataset(job.dataset, job.to, base_url=mirror.url, add_as=None)  # what the node does
    assert result.ok and list_checkpoints() == []
    job.record_in_index()  # what the dispatcher does when the job ends
    assert get_checkpoint("founder").path == str(tmp_path / "dl" / "12_lead_ECGFounder.pth")


def test_download_checkpoint_list(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["download-checkpoint", "--list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [item["name"] for item in listed] == list(CHECKPOINT_CATALOGUE)
    assert main(["download-checkpoint", "--list"]) == 0
    assert "ecg-jepa-random" in capsys.readouterr().out
