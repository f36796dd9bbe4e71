"""`explain` on a real run (trained from experiments/smoke.toml on tiny demo data) and real
records from ../shared/data/ecg: the documented JSON at the run's sampling rate, the
run's own probability, the run's windows stitched, and clear refusals."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ecgcore.cli import main
from ecgcore.data.recordset import Signal
from ecgcore.data.synthetic import write_demo_data
from ecgcore.explain import AttributionOptions, attribute
from ecgcore.views.explanations import explain_signal
from ecgcore.views.scoring import load_run, predict_files, prepare_input, read_record_file, score
from test_cli_runs import ROOT, TINY, _cli

CPSC = Path("ecg") / "cinc2021" / "CPSC_CPSC-Extra"


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """(workspace, run id) of a one-epoch small_cnn trained from scratch on the demo target."""
    home = tmp_path_factory.mktemp("ws")
    write_demo_data(home / "datasets", seed=0, scale=0.12)
    done = _cli(home, "run", str(ROOT / "experiments" / "smoke.toml"), *TINY,
                "--set", "train.epochs=1", "--set", 'grid.strategy=["scratch"]', "--json")
    assert done.returncode == 0, done.stderr
    return home, json.loads(done.stdout)[-1]


@pytest.fixture()
def in_workspace(trained: tuple[Path, str], monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("ECGCORE_HOME", str(trained[0]))
    return trained[1]


def test_explain_json_on_a_real_record(trained: tuple[Path, str], shared_data: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    home, run_id = trained
    record = shared_data / CPSC / "A0001.hea"  # 15 s at 500 Hz; the run reads 10 s at 100 Hz
    classes = json.loads(_cli(home, "show", run_id, "--json").stdout)["classes"]
    done = _cli(home, "explain", "--run", run_id, str(record), "--class", classes[0],
                "--method", "gradcam", "--json")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    for key in ("leads", "fs", "attribution", "lead_importance", "method", "class", "probability"):
        assert key in out, key
    assert out["fs"] == 100.0 and out["method"] == "gradcam" and out["class"] == classes[0]
    assert len(out["leads"]) == 12 and out["leads"][:2] == ["I", "II"]
    attribution = np.asarray(out["attribution"])
    assert attribution.shape == (12, 1000) and (attribution >= 0).all() and attribution.sum() > 0
    assert list(out["lead_importance"]) == out["leads"]
    assert sum(out["lead_importance"].values()) == pytest.approx(1.0)
    monkeypatch.setenv("ECGCORE_HOME", str(home))
    (predicted,) = predict_files(run_id, [record])
    assert out["probability"] == pytest.approx(predicted["probabilities"][classes[0]], abs=1e-6)


@pytest.mark.parametrize("args, message", [
    (["--class", "no_such_class"], "class 'no_such_class' is not one of run"),
    (["--method", "saliency"], "unknown attribution method 'saliency'; known: gradcam, ig, occlusion"),
    (["--run", "no_such_run"], "unknown run id 'no_such_run'"),
    (["--file", "missing.hea"], "header missing.hea not found"),
])
def test_bad_input_exits_non_zero_with_the_reason(in_workspace: str, shared_data: Path, args: list[str],
                                                  message: str, capsys: pytest.CaptureFixture) -> None:
    settings = {"--run": in_workspace, "--class": load_run(in_workspace).checkpoint.classes[0],
                "--method": "ig", "--file": str(shared_data / CPSC / "A0002.hea")}
    settings[args[0]] = args[1]
    if args[0] == "--file":
        settings["--file"] = str(shared_data / CPSC / args[1])
    argv = ["explain", "--run", settings["--run"], settings["--file"], "--class", settings["--class"],
            "--method", settings["--method"], "--steps", "2"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: ") and message in err


def test_crop_windows_are_attributed_and_stitched(in_workspace: str, shared_data: Path) -> None:
    """A 5 s record under a 2.5 s crop protocol: windows at 0, 1.25, 2.5 s are scored, the
    padding past 5 s is not; where only the first window reaches, the map is its own."""
    run = load_run(in_workspace)
    run = dataclasses.replace(run, train=dataclasses.replace(run.train, crop_seconds=2.5))
    full = read_record_file(shared_data / CPSC / "A0003.hea")
    short = Signal(full.data[:, :2500], full.fs, full.leads)
    code = run.checkpoint.classes[0]
    options = AttributionOptions(n_steps=8)
    explanation = explain_signal(run, short, code, "ig", "A0003-5s", options)
    x, n_valid = prepare_input(run, short, "A0003-5s")
    assert n_valid == 500 and explanation.n_valid == 500
    assert explanation.attribution.shape == (12, 1000)
    np.testing.assert_array_equal(explanation.signal, x)
    assert not explanation.attribution[:, 500:].any(), "zero padding no window scores"
    assert np.abs(explanation.attribution[:, :500]).sum() > 0
    first = attribute(run.model, torch.from_numpy(x[None, :, :250]), 0, "ig", options)
    np.testing.assert_allclose(explanation.attribution[:, :125], first[:, :125], rtol=1e-5, atol=1e-7)
    expected = score(run, x[None], np.array([n_valid]))[0, 0]
    assert explanation.probability == pytest.approx(float(expected), abs=1e-6)


def test_occlusion_lead_importance_is_the_whole_lead_drop(in_workspace: str, shared_data: Path) -> None:
    run = load_run(in_workspace)
    signal = read_record_file(shared_data / "ecg" / "ludb" / "data" / "1.dat")
    code = run.checkpoint.classes[0]
    explanation = explain_signal(run, signal, code, "occlusion", "ludb-1")
    x, n_valid = prepare_input(run, signal, "ludb-1")

    def p(values: np.ndarray) -> float:
        return float(score(run, values[None], np.array([n_valid]))[0, 0])

    drops = np.array([abs(p(x) - p(np.where(np.arange(12)[:, None] == lead, 0.0, x).astype(np.float32)))
                      for lead in range(12)])
    np.testing.assert_allclose(list(explanation.lead_importance.values()), drops / drops.sum(), atol=1e-6)
    assert explanation.attribution.shape == (12, 1000)
    # 0.5 s windows per lead: every sample of a window carries that window's drop.
    np.testing.assert_array_equal(explanation.attribution[:, 0], explanation.attribution[:, 49])
