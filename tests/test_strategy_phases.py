"""Strategies as published, and early stopping that cannot cut a strategy short (issue 12).

The fastai numbers below were produced by fastai 1.0.61's own `Scheduler`,
`annealing_cos` and `even_mults` (lifted from the wheel) driving its
`OneCycleScheduler` logic for lr_max = 0.01 over 6 batches; they are written out here so
the test does not need fastai.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from ecgcore.data.pipeline import TaskDataset
from ecgcore.errors import EcgcoreError
from ecgcore.experiments.spec import ExperimentError
from ecgcore.models.base import ECGClassifier
from ecgcore.train import TrainConfig, fit
from ecgcore.train.callbacks import Callback
from ecgcore.train.schedules import schedule_factors
from ecgcore.transfer import StrategyOptions, get_strategy

ROOT = Path(__file__).resolve().parents[1]

# fastai 1.0.61 fit_one_cycle(6 batches, lr_max=0.01): (lr, Adam beta1) of batches 0..5
FASTAI_HEAD = [(0.0004, 0.95), (0.01, 0.85), (0.00904508879153485, 0.8595491502812526),
               (0.00654509879153485, 0.8845491502812526), (0.003454941208465151, 0.9154508497187474),
               (0.0009549512084651508, 0.9404508497187474)]
# fit_one_cycle(6 batches, slice(lr/1000, lr/10)) on three layer groups: lr of each group
FASTAI_ALL = [(4.0000000000000003e-07, 4e-06, 4e-05), (1e-05, 0.0001, 0.001),
              (9.04508879153485e-06, 9.045088791534851e-05, 0.0009045088791534849),
              (6.545098791534851e-06, 6.54509879153485e-05, 0.0006545098791534849),
              (3.4549412084651512e-06, 3.454941208465151e-05, 0.0003454941208465151),
              (9.54951208465151e-07, 9.549512084651507e-06, 9.549512084651507e-05)]


class ThreeGroups(ECGClassifier):
    """conv+BN, conv+BN, head: three layer groups, as the fastai tables above."""

    name = "three_groups"

    def __init__(self, n_classes: int) -> None:
        super().__init__()
        self.block1 = nn.Sequential(nn.Conv1d(12, 8, 7, stride=4, padding=3), nn.BatchNorm1d(8), nn.ReLU())
        self.block2 = nn.Sequential(nn.Conv1d(8, 8, 5, stride=4, padding=2), nn.BatchNorm1d(8), nn.ReLU())
        self.classifier = nn.Sequential(nn.Linear(8, n_classes))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.block2(self.block1(x)).mean(dim=-1)

    @property
    def head(self) -> nn.Module:
        return self.classifier

    def reset_head(self, n_classes: int) -> None:
        self.classifier[-1] = nn.Linear(8, n_classes)

    def layer_groups(self) -> list[nn.Module]:
        return [self.block1, self.block2, self.classifier]


@pytest.fixture()
def ds(superdiagnostic_ds: TaskDataset) -> TaskDataset:
    return superdiagnostic_ds


class Snapshots(Callback):
    def __init__(self, model: nn.Module) -> None:
        self.model, self.states = model, []

    def on_epoch_end(self, row: dict[str, Any]) -> None:
        self.states.append({k: v.detach().clone() for k, v in self.model.state_dict().items()})


def fit_strategy(ds: TaskDataset, tmp_path: Path, name: str, options: StrategyOptions, **train: Any):
    torch.manual_seed(0)
    model = ThreeGroups(len(ds.classes))
    strategy = get_strategy(name)
    config = TrainConfig(**{"batch_size": 16, "crop_seconds": 2.5, "eval_batch_size": 64, "lr": 0.01,
                            "early_stopping_patience": None, **train})
    snapshots = Snapshots(model)
    initial = {k: v.detach().clone() for k, v in model.state_dict().items()}
    result = fit(model, ds, config, plan_fn=lambda m, e, lr: strategy.plan(m, e, lr, options, config.epochs),
                 checkpoint_dir=tmp_path, callbacks=[snapshots], train_index=ds.split.train[:16])
    return model, result, initial, snapshots.states


# ----------------------------------------------------------------------------- schedules
def test_fastai_onecycle_matches_fastai_1_0_61_step_by_step() -> None:
    for step, (lr, beta1) in enumerate(FASTAI_HEAD):
        factor, mom = schedule_factors("fastai_onecycle", step, len(FASTAI_HEAD))
        assert factor * 0.01 == pytest.approx(lr, rel=1e-12)
        assert mom == pytest.approx(beta1, rel=1e-12)


def test_stlr_is_ulmfits_slanted_triangle() -> None:
    """Howard & Ruder eq. 3 with T = 20, cut_frac 0.1 (cut = 2), ratio 32, by hand."""
    by_hand = {0: 1 / 32, 1: (1 + 0.5 * 31) / 32, 2: 1.0, 11: (1 + 0.5 * 31) / 32, 19: (1 + (1 / 18) * 31) / 32}
    for step, factor in by_hand.items():
        assert schedule_factors("stlr", step, 20)[0] == pytest.approx(factor, rel=1e-12)


def test_discriminative_lr_is_the_benchmarks_two_one_cycle_runs(ds: TaskDataset, tmp_path: Path) -> None:
    """Head phase: fastai's one-cycle at lr for the head, the frozen groups' batch-norm layers
    training too (train_bn) while their convolutions stay as loaded; then a new one-cycle
    over every group at even_mults(lr/1000, lr/10), head included; Adam beta2 0.99.
    One batch per epoch, so each history row is one optimizer step."""
    options = StrategyOptions(head_epochs=6, lr_low=1e-3, lr_high=1e-1)
    model, result, initial, states = fit_strategy(ds, tmp_path, "discriminative_lr", options,
                                                  epochs=12, optimizer="adamw", weight_decay=0.01)
    rows = result.history
    assert [r["phase"] for r in rows] == ["head"] * 6 + ["all"] * 6
    for row, (lr, _) in zip(rows[:6], FASTAI_HEAD):
        assert row["lr_group2"] == pytest.approx(lr, rel=1e-9)
        assert row["lr_group0"] == pytest.approx(lr, rel=1e-9)  # batch-norm of the frozen group
    for row, lrs in zip(rows[6:], FASTAI_ALL):
        assert [row[f"lr_group{i}"] for i in range(3)] == pytest.approx(list(lrs), rel=1e-9)
    after_head = states[5]
    assert torch.equal(after_head["block1.0.weight"], initial["block1.0.weight"])
    assert torch.equal(after_head["block2.0.weight"], initial["block2.0.weight"])
    assert not torch.equal(after_head["block1.1.weight"], initial["block1.1.weight"])
    assert not torch.equal(after_head["block1.1.running_mean"], initial["block1.1.running_mean"])
    last = torch.load(tmp_path / "last.pt", weights_only=True)
    for group in last["optimizer"]["param_groups"]:
        assert tuple(group["betas"]) == pytest.approx((FASTAI_HEAD[-1][1], 0.99), rel=1e-12)


def test_discriminative_lr_new_head_is_kaiming_normal_with_zero_bias() -> None:
    """The benchmark: nn.Linear(in, n) with apply_init(kaiming_normal_): zero bias,
    weights of standard deviation sqrt(2 / fan_in)."""
    from ecgcore.checkpoint import Checkpoint
    from ecgcore.models import create_model
    from ecgcore.transfer import final_linear_name

    torch.manual_seed(0)
    source_model = create_model("small_cnn", n_classes=2)
    source = Checkpoint(state_dict=source_model.state_dict(), model_name="small_cnn",
                        model_config=dict(source_model.config), classes=["a", "b"], class_names=["a", "b"],
                        prep={}, stage="pretrain", seen={})
    classes = [f"c{i}" for i in range(64)]
    model = create_model("small_cnn", n_classes=len(classes))
    get_strategy("discriminative_lr").setup(model, source, classes, StrategyOptions())
    layer = model.get_submodule(final_linear_name(model))
    assert torch.count_nonzero(layer.bias) == 0
    assert float(layer.weight.detach().std()) == pytest.approx(math.sqrt(2 / layer.in_features), rel=0.1)


def test_gradual_unfreeze_is_ulmfit(ds: TaskDataset, tmp_path: Path) -> None:
    """Stage k trains the top k groups, group i at lr/2.6^(2-i); one slanted triangular
    schedule over the run; Adam (0.7, 0.99); groups added keep the others' Adam moments."""
    options = StrategyOptions(unfreeze_epochs=1)
    model, result, initial, states = fit_strategy(ds, tmp_path, "gradual_unfreeze", options, epochs=5)
    rows = result.history
    assert [r["phase"] for r in rows] == ["top 1 group", "top 2 groups", "all", "all", "all"]
    total = 5  # one step per epoch
    for epoch, row in enumerate(rows):
        factor = schedule_factors("stlr", epoch, total)[0]
        trained = min(3, epoch + 1)
        for group in range(3):
            want = 0.01 * factor / 2.6 ** (2 - group) if group >= 3 - trained else 0.0
            assert row[f"lr_group{group}"] == pytest.approx(want, rel=1e-9), (epoch, group)
    assert torch.equal(states[0]["block2.0.weight"], initial["block2.0.weight"])
    assert not torch.equal(states[1]["block2.0.weight"], initial["block2.0.weight"])
    last = torch.load(tmp_path / "last.pt", weights_only=True)
    assert {tuple(g["betas"]) for g in last["optimizer"]["param_groups"]} == {(0.7, 0.99)}
    head_state = last["optimizer"]["state"][0]  # the head's first parameter: stepped every epoch
    assert int(head_state["step"]) == 5


# ----------------------------------------------------------------------------- early stopping
@pytest.mark.parametrize("name", ["discriminative_lr", "lp_ft", "gradual_unfreeze"])
def test_early_stopping_never_ends_a_run_before_its_last_phase(ds: TaskDataset, tmp_path: Path, name: str) -> None:
    """lr so small that validation cannot improve: patience 1 used to stop at epoch 1, in the
    head-only phase. Now patience counts from the last phase, and the best weights are its."""
    options = StrategyOptions(head_epochs=4, unfreeze_epochs=2)
    _, result, _, _ = fit_strategy(ds, tmp_path, name, options, epochs=8, lr=1e-12,
                                   early_stopping_patience=1)
    last_phase_start = 4
    assert result.epochs_run > last_phase_start
    assert result.history[last_phase_start]["phase"] == "all"
    assert result.best_epoch is not None and result.best_epoch >= last_phase_start


def test_a_plan_too_short_for_its_phases_is_refused() -> None:
    strategy = get_strategy("discriminative_lr")
    with pytest.raises(EcgcoreError, match="epochs=30 never reaches its last phase.*>= 31"):
        strategy.check_epochs(5, 30, StrategyOptions(head_epochs=30))
    get_strategy("gradual_unfreeze").check_epochs(4, 4, StrategyOptions())
    with pytest.raises(EcgcoreError, match="'all'"):
        get_strategy("gradual_unfreeze").check_epochs(4, 3, StrategyOptions())


def test_dry_run_refuses_unreachable_phases_with_one_line(demo_home: Path) -> None:
    from ecgcore.experiments import plan_experiment

    with pytest.raises(ExperimentError) as caught:
        plan_experiment(ROOT / "experiments" / "smoke.toml",
                        ["grid.strategy=[\"discriminative_lr\"]", "train.epochs=3",
                         "strategy_options.head_epochs=3"], strict=False)
    message = str(caught.value)
    assert "\n" not in message and "small_cnn discriminative_lr" in message and "never reaches" in message


def test_results_record_phases_and_precision_and_answer_reads_them(
        demo_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """results.json lists the phases reached; `python -m ecgcore answer --json` then compares
    lp_ft with scratch from the store, each sentence naming runs that exist."""
    from ecgcore.cli import main
    from ecgcore.experiments import run_experiment

    run_ids = run_experiment(ROOT / "experiments" / "smoke.toml",
                             ["grid.strategy=[\"scratch\", \"lp_ft\"]", "train.epochs=3", "pretrain.epochs=1",
                              "strategy_options.head_epochs=2"])
    results = json.loads((demo_home / "runs" / run_ids[-1] / "results.json").read_text())
    assert results["strategy"] == "lp_ft"
    assert [p["name"] for p in results["phases"]] == ["linear probe", "all"]
    assert results["phases"][0] | {"epochs_planned": 2, "epochs_run": 2, "reached": True} == results["phases"][0]
    assert results["phases"][1]["reached"] and results["phases"][1]["first_epoch"] == 2
    assert results["precision"] == "float32" and results["precision_asked"] == "float32"

    capsys.readouterr()
    assert main(["answer", "--experiment", "smoke", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    [comparison] = out["comparisons"]
    assert (comparison["line"], comparison["baseline"], comparison["train_fraction"]) == ("lp_ft", "scratch", 0.4)
    assert comparison["low"] <= comparison["diff"] <= comparison["high"]
    assert out["answer"] and all(set(s["run_ids"]) <= set(run_ids) and s["run_ids"] for s in out["answer"])
    assert "seed-to-seed variance is not included" in out["answer"][0]["text"]
    assert main(["answer", "--experiment", "nothing-here"]) == 2  # one line on stderr


# ----------------------------------------------------------------------------- precision
def test_precision_is_explicit_float32_by_default_and_old_configs_still_load() -> None:
    assert TrainConfig().precision == "float32"
    assert TrainConfig.from_dict({"amp": True}).precision == "fp16"
    assert TrainConfig.from_dict({"amp": False}).precision == "float32"
    with pytest.raises(ValueError, match="precision"):
        TrainConfig(precision="half")
    from ecgcore.train.device import effective_precision

    assert effective_precision(torch.device("cpu"), "bf16") == "float32"
    assert effective_precision(torch.device("cuda"), "bf16") == "bf16"
