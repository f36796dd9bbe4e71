"""The checkpoint commands: `add-checkpoint`, `checkpoints`, `remove-checkpoint` and `embed`.

The catalogue entries are pointed at the conformance fixtures' reduced models (see
test_foundation_checkpoints), whose files are written in the published formats; `embed`
reads WFDB records written here and is checked against the model's `embed` on the input
prepared by hand from the checkpoint's input contract.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.signal
import torch
from test_foundation_checkpoints import small_payload, use_small_entry, write_payload

from ecgcore.cli import main
from ecgcore.data import wfdbio
from ecgcore.data.prepare import PrepConfig
from ecgcore.data.prepare.per_record import preprocess_signal
from ecgcore.data.recordset import STANDARD_LEADS
from ecgcore.data.wfdb_write import write_record
from ecgcore.foundation import FoundationModel, get_checkpoint, list_checkpoints
from ecgcore.models import create_model
from ecgcore.transfer.loading import load_source


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _record(folder: Path, name: str, fs: float, seconds: float, seed: int) -> Path:
    """A 12-lead record of a few sines and noise, in mV; returns its .hea."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(fs * seconds)) / fs
    data = np.stack([0.8 * np.sin(2 * np.pi * (1.1 + 0.1 * i) * t) + 0.3 * np.sin(2 * np.pi * 7 * t + i)
                     + 0.05 * rng.standard_normal(t.size) for i in range(12)])
    return write_record(folder, name, data, fs=fs, leads=STANDARD_LEADS)


def _registered(model: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                capsys: pytest.CaptureFixture[str]) -> FoundationModel:
    entry = use_small_entry(monkeypatch, model)
    path = write_payload(small_payload(model), tmp_path / f"{model}.pth")
    code, _, err = _run(capsys, "add-checkpoint", str(path), "--model", model, "--name", f"my-{model}")
    assert code == 0, err
    return entry


def test_add_list_and_remove(workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                             capsys: pytest.CaptureFixture[str]) -> None:
    use_small_entry(monkeypatch, "ecgfounder")
    path = write_payload(small_payload("ecgfounder"), tmp_path / "12_lead_ECGFounder.pth")
    code, out, err = _run(capsys, "add-checkpoint", str(path), "--model", "ecgfounder", "--json")
    assert code == 0, err
    added = json.loads(out)
    assert added["name"] == "ecgfounder" and added["path"] == str(path.resolve())

    code, out, _ = _run(capsys, "checkpoints", "--json")
    assert code == 0 and json.loads(out) == [added]
    code, out, _ = _run(capsys, "checkpoints")
    assert code == 0
    assert "ecgfounder" in out and added["sha256"][:12] in out and "commercial use: no" in out
    assert "12 leads x 5000 samples at 500 Hz" in out and "licence: MIT (code)" in out

    code, out, _ = _run(capsys, "remove-checkpoint", "ecgfounder")
    assert code == 0 and "is kept" in out and path.is_file()
    code, out, _ = _run(capsys, "checkpoints", "--json")
    assert json.loads(out) == []


def test_a_refused_file_exits_2_naming_the_key_and_registers_nothing(
        workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    use_small_entry(monkeypatch, "ecgfounder")
    payload = small_payload("ecgfounder")
    payload["state_dict"]["dense.kernel"] = payload["state_dict"].pop("dense.weight")
    path = write_payload(payload, tmp_path / "renamed.pth")
    code, out, err = _run(capsys, "add-checkpoint", str(path), "--model", "ecgfounder")
    assert code == 2 and out == ""
    assert err.startswith("error: ") and "dense.weight" in err and "dense.kernel" in err
    code, _, err = _run(capsys, "add-checkpoint", str(path), "--model", "no-such-model")
    assert code == 2 and "unknown foundation model 'no-such-model'" in err and "ecg_jepa" in err
    assert list_checkpoints() == []


def test_checkpoints_models_lists_the_catalogue(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "checkpoints", "--models", "--json")
    assert code == 0
    listed = {item["name"]: item for item in json.loads(out)}
    assert set(listed) == {"ecgfounder", "ecg_jepa", "demo_net1d", "demo_vit"}
    assert listed["demo_vit"]["arch"] == "ecg_jepa_small" and listed["ecgfounder"]["commercial_use"] is False
    code, out, _ = _run(capsys, "checkpoints", "--models")
    assert code == 0 and "architecture net1d_small" in out


def _direct_jepa_embedding(entry: FoundationModel, header: Path) -> torch.Tensor:
    """ECG-JEPA's contract by hand: leads I, II, V1-V6 in that order, the whole record
    resampled with scipy.signal.resample (FFT) to 250 Hz, the first 2,500 samples, in mV."""
    signal = wfdbio.read_signal(header)
    contract = entry.contract
    rows = [list(signal.leads).index(lead) for lead in contract.leads]
    n_out = int(signal.data.shape[1] * contract.fs / signal.fs)
    x = scipy.signal.resample(np.asarray(signal.data, dtype=np.float64)[rows], n_out, axis=1)[:, :contract.n_samples]
    model = create_model(entry.arch, n_leads=len(contract.leads), n_classes=1, n_samples=contract.n_samples,
                         **entry.config)
    model.load_state_dict(entry.convert(small_payload("ecg_jepa")), strict=False)
    with torch.no_grad():
        return model.eval().embed(torch.tensor(x, dtype=torch.float32)[None])[0]


def test_embed_prints_each_records_pooled_embedding_after_the_contract(
        workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    entry = _registered("ecg_jepa", monkeypatch, tmp_path, capsys)
    a = _record(tmp_path / "records", "rec_a", fs=500, seconds=10, seed=0)
    b = _record(tmp_path / "records", "rec_b", fs=500, seconds=12, seed=1)
    code, out, err = _run(capsys, "embed", "--checkpoint", "my-ecg_jepa", str(a), str(b.with_suffix(".dat")),
                          str(b.with_suffix("")), "--json")
    assert code == 0, err
    items: list[dict[str, Any]] = json.loads(out)
    assert [item["record"] for item in items] == ["rec_a", "rec_b", "rec_b"]
    for item in items:
        assert set(item) == {"record", "checkpoint", "dim", "embedding"}
        assert item["checkpoint"] == "my-ecg_jepa" and item["dim"] == 64 == len(item["embedding"])
    assert items[1]["embedding"] == items[2]["embedding"]  # the same record named two ways
    for item, header in ((items[0], a), (items[1], b)):
        expected = _direct_jepa_embedding(entry, header)
        torch.testing.assert_close(torch.tensor(item["embedding"]), expected, atol=1e-4, rtol=1e-4)
    assert not np.allclose(items[0]["embedding"], items[1]["embedding"])

    code, out, _ = _run(capsys, "embed", "--checkpoint", "my-ecg_jepa", str(a))
    assert code == 0 and out.startswith("rec_a: 64 dimensions, norm ") and "(my-ecg_jepa)" in out


def test_embed_with_an_ecgfounder_checkpoint_uses_its_loaded_weights(
        workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """The filtered, z-scored 12-lead contract; the embedding is the loaded model's on that input."""
    entry = _registered("ecgfounder", monkeypatch, tmp_path, capsys)
    header = _record(tmp_path / "records", "rec_250", fs=250, seconds=10, seed=2)
    code, out, err = _run(capsys, "embed", "--checkpoint", "my-ecgfounder", str(header), "--json")
    assert code == 0, err
    [item] = json.loads(out)
    assert item["dim"] == entry.config["filter_list"][-1]
    checkpoint = get_checkpoint("my-ecgfounder").load()
    prep = entry.contract.prep_config(PrepConfig())
    window, _ = preprocess_signal(wfdbio.read_signal(header), prep, prep.window, "rec_250")
    assert window.shape == (12, 5000) and abs(float(window.mean())) < 1e-4  # z-scored over all leads
    model = create_model(entry.arch, n_leads=12, n_classes=1, n_samples=5000, **entry.config)
    load_source(model, checkpoint, include_final=False)
    with torch.no_grad():
        expected = model.eval().embed(torch.from_numpy(window)[None])[0]
    torch.testing.assert_close(torch.tensor(item["embedding"]), expected, atol=1e-5, rtol=1e-5)


def test_embed_errors_name_the_input(workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "embed", "--checkpoint", "absent", str(tmp_path / "x.hea"))
    assert code == 2 and "no checkpoint 'absent' is registered" in err
    _registered("ecg_jepa", monkeypatch, tmp_path, capsys)
    code, _, err = _run(capsys, "embed", "--checkpoint", "my-ecg_jepa", str(tmp_path / "nothing_here"))
    assert code == 2 and "nothing_here.hea" in err
