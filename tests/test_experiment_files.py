"""Experiment files are data: parsed, validated key by key, overridden explicitly."""

from __future__ import annotations

from pathlib import Path

import pytest

from ecgcore.experiments.spec import ExperimentError, apply_override, grid_points, load_experiment

ROOT = Path(__file__).resolve().parents[1]


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "exp.toml"
    path.write_text(text)
    return path


BASE = """
[target]
dataset = "target_challenge"
[grid]
arch = ["small_cnn"]
strategy = ["scratch", "finetune"]
train_fraction = [0.1, 1.0]
seed = [0, 1]
"""


def test_every_preset_parses() -> None:
    for preset in sorted((ROOT / "experiments").glob("*.toml")):
        config = load_experiment(preset)
        assert config["grid"]["arch"] and config["grid"]["strategy"], preset.name


def test_grid_expands_in_file_order(tmp_path: Path) -> None:
    config = load_experiment(_write(tmp_path, BASE))
    points = grid_points(config)
    assert len(points) == 1 * 2 * 2 * 2
    assert points[0] == {"arch": "small_cnn", "strategy": "scratch", "train_fraction": 0.1, "seed": 0}
    assert points[-1] == {"arch": "small_cnn", "strategy": "finetune", "train_fraction": 1.0, "seed": 1}
    assert config["name"] == "exp"


def test_overrides_parse_toml_values(tmp_path: Path) -> None:
    config = load_experiment(_write(tmp_path, BASE), ["train.epochs=3", 'grid.strategy=["lp_ft"]',
                                                       "target.task=nguyen_georgia", "train.lr=1e-3"])
    assert config["train"] == {"epochs": 3, "lr": 0.001}
    assert config["grid"]["strategy"] == ["lp_ft"] and config["target"]["task"] == "nguyen_georgia"
    with pytest.raises(ExperimentError, match="expected KEY=VALUE"):
        apply_override({}, "epochs")


@pytest.mark.parametrize("text, message", [
    ("epochs = 3\n" + BASE, r"unknown key\(s\) epochs; known"),
    (BASE + "\nepochs = 3\n", r"unknown key\(s\) in \[grid\]: epochs"),
    (BASE.replace('dataset = "target_challenge"', 'dataset = "t"\ntsk = "x"'),
     r"unknown key\(s\) in \[target\]: tsk"),
    (BASE.replace("[target]\ndataset = \"target_challenge\"", ""), r"\[target\] dataset is required"),
    (BASE.replace('strategy = ["scratch", "finetune"]', "strategy = []"), r"\[grid\] strategy needs"),
    ("[target\n", "not valid TOML"),
])
def test_bad_files_get_one_clear_line(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ExperimentError, match=message):
        load_experiment(_write(tmp_path, text))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ExperimentError, match="no such experiment file"):
        load_experiment(tmp_path / "nope.toml")
