"""The typed run configuration: `RunConfig.to_dict()` is exactly the config.json (and so the
config hash) runs have always had, and run folders written before it existed still load,
round-trip and are reused by hash.

tests/fixtures/old_runs holds what the code of commit 049f94a (before RunConfig) wrote:
the config hashes of every preset's dry-run plan (`preset_hashes.json`, planned without
datasets, so the hashes hold on any machine) and the run folders of `experiment.toml`
(a 1-epoch small_cnn pretraining, its finetune run and a scratch run; the datasets it
names need not exist: a lenient plan keeps a missing dataset's path as written).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ecgcore.experiments.run_plan import expand
from ecgcore.experiments.spec import load_experiment
from ecgcore.runs import RunStore, config_hash
from ecgcore.runs.run_config import (
    CheckpointRef,
    DataConfig,
    ModelConfig,
    RunConfig,
    RunConfigError,
    SourceConfig,
    StrategyConfig,
    source_kind_of,
)
from ecgcore.views.launch.choices import LaunchChoices, experiment_config

ROOT = Path(__file__).resolve().parents[1]
OLD = Path(__file__).resolve().parent / "fixtures" / "old_runs"
#: The presets that existed at 049f94a (a preset added since has no recorded plan).
PRESETS = sorted(ROOT / "experiments" / name
                 for name in json.loads((OLD / "preset_hashes.json").read_text(encoding="utf-8")))


@pytest.fixture()
def no_datasets(workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty workspace and a working folder without dataset folders, so a lenient plan
    names every dataset as written (the plans the fixtures were recorded from)."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    return workspace


def _assert_round_trip(config: dict, digest: str) -> None:
    again = RunConfig.from_dict(config).to_dict()
    assert json.dumps(again, indent=2) == json.dumps(config, indent=2), "same keys, order and values"
    assert config_hash(again) == digest


@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: p.stem)
def test_preset_plans_keep_their_configs_and_hashes(preset: Path, no_datasets: Path) -> None:
    specs = expand(load_experiment(preset), strict=False)
    recorded = json.loads((OLD / "preset_hashes.json").read_text(encoding="utf-8"))[preset.name]
    assert [[s.kind, s.hash] for s in specs] == recorded, "the plan of commit 049f94a"
    for spec in specs:
        assert spec.kind == spec.run_config.kind
        _assert_round_trip(spec.config, spec.hash)


@pytest.mark.parametrize("choices", [
    LaunchChoices(target="target_challenge", strategies=("scratch", "random_frozen")),
    LaunchChoices(target="target_challenge", source="source_ptbxl", strategies=("scratch", "lp_ft", "source_only"),
                  fractions=(0.25, 1.0), seeds=(0, 1), pretrain_epochs=4),
    LaunchChoices(target="target_challenge", source="source_ptbxl", source_task="dataset_labels",
                  target_task="shared", strategies=("finetune",), device="cpu"),
], ids=["scratch", "transfer", "shared-target"])
def test_launch_form_configs_round_trip(choices: LaunchChoices, no_datasets: Path) -> None:
    specs = expand(experiment_config(choices), strict=False)
    assert specs
    for spec in specs:
        _assert_round_trip(spec.config, spec.hash)


@pytest.fixture()
def old_store(workspace: Path) -> RunStore:
    """A workspace holding the old run folders (no index: the store builds it)."""
    shutil.copytree(OLD / "runs", workspace / "runs")
    return RunStore(workspace)


def test_old_run_folders_load_and_round_trip(old_store: RunStore) -> None:
    assert old_store.reindex() == 3
    table = old_store.list().set_index("run_id")
    assert set(table.status) == {"done"} and set(table.kind) == {"pretrain", "target"}
    for run_id, row in table.iterrows():
        folder = old_store.get(run_id)
        text = folder.config_path.read_text(encoding="utf-8")
        config = folder.run_config
        assert json.dumps(config.to_dict(), indent=2) + "\n" == text, "config.json byte for byte"
        assert config_hash(config.to_dict()) == folder.results()["config_hash"] == row.config_hash
        assert folder.verify() == [], "checksums recorded by the old code still match"
        assert folder.load_model().model_name == config.model.arch == row.arch
        assert row.target == config.data.name and row.strategy == config.strategy_name


def test_planning_the_old_experiment_today_reuses_its_runs(old_store: RunStore, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    specs = expand(load_experiment(OLD / "experiment.toml"), strict=False)
    assert [s.kind for s in specs] == ["pretrain", "target", "target"]
    by_hash = {old_store.get(r).results()["config_hash"]: r for r in old_store.list().run_id}
    for spec in specs:
        found = old_store.find_done(spec.hash, kind=spec.kind)
        assert found is not None and found == by_hash[spec.hash], spec.label
        assert old_store.get(found).config == spec.config
    finetune = next(s.run_config for s in specs if s.run_config.strategy_name == "finetune")
    assert finetune.source is not None and finetune.source.pretrain_hash == specs[0].hash


def test_an_older_config_reads_with_defaults_for_newer_keys() -> None:
    """A pretraining config from before source train_fraction, challenge_weights and
    `precision` (then `amp`) existed."""
    config = json.loads(next((OLD / "runs").glob("*-b26dcf02-*/config.json")).read_text(encoding="utf-8"))
    config.pop("train_fraction")
    config["data"].pop("challenge_weights")
    config["train"].pop("precision")
    config["train"]["amp"] = True
    run = RunConfig.from_dict(config)
    assert run.kind == "pretrain" and run.train_fraction == 1.0 and run.data.challenge_weights is None
    assert run.train.precision == "fp16" and run.strategy is None and run.strategy_name == "scratch"
    assert run.shared_partner == run.shared_with and run.shared_with.endswith("target_challenge")


def test_optional_keys_are_written_only_when_used() -> None:
    plain = RunConfig(kind="target", experiment="e", model=ModelConfig("small_cnn"), seed=0,
                      data=DataConfig("/d/t"), strategy=StrategyConfig())
    written = plain.to_dict()
    assert not {"report", "train_n", "protocol", "task_from_grid"} & set(written)
    assert "exclude_sources" not in written["data"] and written["source"] is None
    assert written["pretrain_hash"] is None and written["strategy"] == "scratch"
    used = RunConfig.from_dict({**written, "train_n": 200, "protocol": "p", "task_from_grid": True,
                                "report": {"test_every_epoch": True},
                                "data": {**written["data"], "exclude_sources": ["PTB-XL"]}})
    again = used.to_dict()
    assert list(again)[-4:] == ["report", "train_n", "protocol", "task_from_grid"]
    assert again["data"]["exclude_sources"] == ["PTB-XL"] and used.data.exclude_sources == ("PTB-XL",)


@pytest.mark.parametrize(("change", "message"), [
    ({"arch": None}, "no 'arch'"),
    ({"datasets": {}}, "unknown key"),
    ({"kind": "finetune"}, "kind must be one of"),
    ({"kind": "pretrain"}, "no strategy"),
    ({"source": None, "pretrain_hash": "abc"}, "pretrain_hash without a source"),
    ({"train": {"epochs": 0}}, "epochs must be >= 1"),
    ({"data": {"task": "t"}}, "dataset must be a folder path"),
    ({"strategy_options": {"head_epoch": 3}}, "head_epoch"),
    ({"source_checkpoint": {"name": "x", "sha256": "ab", "arch": "ecgfounder"}}, "beside a source dataset"),
    ({"source": None, "pretrain_hash": None, "source_checkpoint": {"name": "x", "sha256": "ab"}},
     "arch must be strings"),
    ({"source": None, "pretrain_hash": None, "source_checkpoint": {"name": "x", "sha256": "ab",
                                                                   "arch": "a", "url": "u"}}, "unknown key"),
])
def test_a_mapping_that_is_not_a_run_config_says_why(change: dict, message: str) -> None:
    config = json.loads(next((OLD / "runs").glob("*-b142a6fe-*/config.json")).read_text(encoding="utf-8"))
    config.update(change)
    if change.get("arch", "") is None:
        config.pop("arch")
    with pytest.raises(RunConfigError, match=message):
        RunConfig.from_dict(config)


def test_a_checkpoint_source_is_written_only_when_used_and_round_trips() -> None:
    ref = CheckpointRef("demo_net1d", "ab" * 32, "net1d_small")
    run = RunConfig(kind="target", experiment="e", model=ModelConfig("net1d_small"), seed=0,
                    data=DataConfig("/d/t"), strategy=StrategyConfig("linear_probe"),
                    source=SourceConfig(None, None, ref))
    written = run.to_dict()
    assert written["source"] is None and written["pretrain_hash"] is None
    assert written["source_checkpoint"] == {"name": "demo_net1d", "sha256": "ab" * 32, "arch": "net1d_small"}
    assert list(written).index("source_checkpoint") == list(written).index("pretrain_hash") + 1
    again = RunConfig.from_dict(json.loads(json.dumps(written)))
    assert again == run and again.source_kind == "checkpoint" and again.source.name == "demo_net1d"
    assert config_hash(again.to_dict()) == config_hash(written)
    other_file = RunConfig.from_dict({**written, "source_checkpoint": {**ref.to_dict(), "sha256": "cd" * 32}})
    assert config_hash(other_file.to_dict()) != config_hash(written)  # other weights, another run
    with pytest.raises(RunConfigError, match="either a dataset"):
        SourceConfig(DataConfig("/d/s"), None, ref)
    with pytest.raises(RunConfigError, match="no pretraining run"):
        SourceConfig(None, "hash", ref)


def test_source_kind_of_results_old_and_new() -> None:
    assert source_kind_of({"source_kind": "checkpoint", "source": "demo_vit"}) == "checkpoint"
    assert source_kind_of({"source": "source_ptbxl"}) == "pretraining"  # written before source_kind
    assert source_kind_of({"source": None}) == "none"
    for results in (json.loads(path.read_text(encoding="utf-8"))
                    for path in (OLD / "runs").glob("*/results.json")):
        assert source_kind_of(results) == ("pretraining" if results.get("source") else "none")
