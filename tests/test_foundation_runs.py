"""Checkpoint sources end to end on the demo data: a demo checkpoint is pretrained, written
in its published file format and registered; a grid with `[grid] checkpoint` plans runs
from it (and not from another architecture's), applies the architecture's input contract
to every run, probes and fine-tunes from it, and records what each run started from."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from ecgcore.errors import EcgcoreError
from ecgcore.experiments import plan_experiment, run_experiment
from ecgcore.experiments import demo_checkpoints
from ecgcore.experiments.execute import execute
from ecgcore.experiments.spec import ExperimentError
from ecgcore.foundation.checkpoints import get_checkpoint
from ecgcore.models import MODELS, create_model
from ecgcore.runs import RunStore, config_hash
from ecgcore.runs.run_config import CheckpointRef, SourceConfig

GRID = """
name = "fm_test"
demo = true

[source]
dataset = "source_ptbxl"
task = "shared"

[target]
dataset = "target_challenge"
min_positives = 5

[split]
method = "patient"
val = 0.2
test = 0.3

[train]
epochs = 2
batch_size = 32

[pretrain]
epochs = 1

[grid]
arch = ["net1d_small", "ecg_jepa_small"]
checkpoint = ["none", "demo_net1d"]
strategy = ["scratch", "finetune", "linear_probe", "embedding_probe"]
train_fraction = [1.0]
"""


@pytest.fixture()
def quick_demo_recipes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Demo checkpoints pretrained for one epoch (the code path, not the weights, is tested)."""
    monkeypatch.setattr(demo_checkpoints, "DEMO_RECIPES", {
        name: dataclasses.replace(recipe, epochs=1, min_positives=5)
        for name, recipe in demo_checkpoints.DEMO_RECIPES.items()})


@pytest.fixture()
def grid_file(tmp_path: Path) -> Path:
    path = tmp_path / "fm_test.toml"
    path.write_text(GRID, encoding="utf-8")
    return path


def test_a_dry_run_lists_an_unmade_demo_checkpoint_and_a_real_run_needs_it_registered(
        demo_ws: Path, grid_file: Path, tmp_path: Path) -> None:
    specs = plan_experiment(grid_file, strict=False)
    from_checkpoint = [s for s in specs if s.run_config.source_kind == "checkpoint"]
    assert len(from_checkpoint) == 3  # finetune, linear_probe, embedding_probe of net1d_small only
    assert all(s.run_config.model.arch == "net1d_small" and s.missing == ("checkpoint demo_net1d",)
               for s in from_checkpoint)
    assert not any(s.run_config.model.arch == "ecg_jepa_small" and s.run_config.source_kind == "checkpoint"
                   for s in specs)  # another architecture's checkpoint: no such point
    cropped = plan_experiment(grid_file, ["train.crop_seconds=2.5"], strict=False)
    assert {s.run_config.train.crop_seconds for s in cropped} == {None}  # the contract's whole window
    not_demo = tmp_path / "not_demo.toml"
    not_demo.write_text(GRID.replace("demo = true", "demo = false").replace('"demo_net1d"', '"ecgfounder"'),
                        encoding="utf-8")
    with pytest.raises(ExperimentError, match="checkpoint 'ecgfounder'"):
        plan_experiment(not_demo)


def test_demo_checkpoint_grid_end_to_end(demo_ws: Path, grid_file: Path, quick_demo_recipes: None) -> None:
    run_ids = run_experiment(grid_file, ['grid.arch=["net1d_small"]', 'grid.strategy=["scratch", "linear_probe", '
                                         '"embedding_probe", "random_embedding_probe"]'])
    record = get_checkpoint("demo_net1d")
    payload = torch.load(record.path, weights_only=True)
    assert set(payload) == {"state_dict"} and "first_conv.conv.weight" in payload["state_dict"]  # ECGFounder's file
    assert "Exported from pretraining run" in record.provenance and record.arch == "net1d_small"

    store = RunStore()
    results = {run_id: store.get(run_id).results() for run_id in run_ids}
    configs = {run_id: store.get(run_id).config for run_id in run_ids}
    by_kind: dict[str, list[str]] = {}
    for run_id, result in results.items():
        if result["kind"] == "target":
            by_kind.setdefault(result["source_kind"], []).append(run_id)
    assert len(by_kind["checkpoint"]) == 2 and len(by_kind["pretraining"]) == 2 and len(by_kind["none"]) == 2

    for run_id in by_kind["checkpoint"]:
        result, config = results[run_id], configs[run_id]
        assert result["source"] == "demo_net1d" and result["arch"] == "net1d_small"
        assert result["source_checkpoint"]["sha256"] == record.sha256 == config["source_checkpoint"]["sha256"]
        assert result["source_checkpoint"]["model"] == "demo_net1d"
        assert result["data_origin"]["source"]["synthetic"] is True
        assert 0.0 <= result["test"]["macro_auc"] <= 1.0
    for run_id, result in results.items():  # every run of a contract architecture: its contract's input
        contract = MODELS[result["arch"]].contract
        assert result.get("input_contract", contract.to_dict()) == contract.to_dict()
        prep = configs[run_id]["prep"]
        assert (prep["fs"], prep["seconds"], prep["leads"]) == (
            contract.fs, contract.duration_s, list(contract.leads))

    probe = next(r for r in by_kind["checkpoint"] if results[r]["strategy"] == "linear_probe")
    source = record.load().state_dict
    trained = store.get(probe).load_model().state_dict
    assert torch.equal(trained["stages.0.0.conv1.weight"], source["stages.0.0.conv1.weight"])  # frozen encoder

    random_probe = next(r for r in by_kind["none"] if results[r]["strategy"] == "random_embedding_probe")
    torch.manual_seed(configs[random_probe]["seed"])  # the run's random, frozen encoder: the seed's initialisation
    fresh = create_model("net1d_small", n_leads=12, n_classes=len(results[random_probe]["classes"]), n_samples=1000)
    probed = store.get(random_probe).load_model().state_dict
    assert all(torch.equal(probed[key], value) for key, value in fresh.state_dict().items()
               if not key.startswith("dense."))
    assert results[random_probe]["phases"][0]["probe"]["classes"]  # the per-class choices, as embedding_probe's


def test_a_checkpoint_changed_since_planning_is_refused(demo_ws: Path, grid_file: Path,
                                                       quick_demo_recipes: None) -> None:
    demo_checkpoints.make_demo_checkpoint("demo_net1d", str(demo_ws / "datasets" / "source_ptbxl"))
    spec = next(s for s in plan_experiment(grid_file) if s.run_config.source_kind == "checkpoint")
    stale = dataclasses.replace(spec.run_config, source=SourceConfig(
        None, None, CheckpointRef("demo_net1d", "0" * 64, "net1d_small")))
    stale_spec = dataclasses.replace(spec, run_config=stale, hash=config_hash(stale.to_dict()))
    with pytest.raises(EcgcoreError, match="plan the run again"):
        execute(stale_spec, RunStore())
    runs = RunStore().list()
    failed = runs[runs["kind"] == "target"]  # beside the demo checkpoint's pretraining, done
    assert list(failed["status"]) == ["failed"] and "SHA-256" in json.dumps(list(failed["error"]))

def test_attention_probe_is_refused_at_planning_for_a_model_without_tokens(demo_ws: Path, grid_file: Path) -> None:
    with pytest.raises(ExperimentError, match="attention_probe needs a model with a token sequence; lstm"):
        plan_experiment(grid_file, ['grid.arch=["lstm"]', 'grid.checkpoint=["none"]',
                                    'grid.strategy=["attention_probe"]'], strict=False)
