"""The pieces `ecgcore.train.loop._fit` is made of: the loop's state (best weights and
patience within the last phase, its last.pt payload), the optimizer that follows the
strategy's plan, and resumes that end on the uninterrupted run's weights."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from test_strategy_phases import ThreeGroups
from test_train import FAST, StopAfter, one_thread, states_equal, tiny  # noqa: F401 (one_thread: autouse)
from torch import nn

from ecgcore.data.pipeline import TaskDataset
from ecgcore.train import Callback, TrainConfig, fit
from ecgcore.train.data import shuffled_batches
from ecgcore.train.distributed import Context
from ecgcore.train.optimizers import Optimisation
from ecgcore.train.state import FORMAT, VERSION, LoopState
from ecgcore.transfer import StrategyOptions, get_strategy
from ecgcore.transfer.base import EpochPlan

CPU = torch.device("cpu")


@pytest.fixture()
def ds(superdiagnostic_ds: TaskDataset) -> TaskDataset:
    return superdiagnostic_ds


def phase(index: int, n_phases: int = 2) -> EpochPlan:
    return EpochPlan(param_groups=[], phase_index=index, n_phases=n_phases)


# ------------------------------------------------------------------------------- LoopState


def test_best_weights_and_patience_belong_to_the_last_phase():
    model = nn.Linear(2, 1)
    state = LoopState()
    judge = lambda epoch, plan, auc: state.judge(epoch, plan, auc, has_val=True, patience=2, model=model)

    # an earlier phase: its latest epoch is the best, whatever the AUC, and patience does not count
    assert judge(0, phase(0), 0.9) and judge(1, phase(0), 0.5)
    assert (state.best_epoch, state.best_phase, state.best_auc, state.bad_epochs) == (1, 0, -math.inf, 0)

    state.start_phase(phase(1))  # the last phase starts: nothing of phase 0 is kept
    assert (state.best_epoch, state.best_state, state.best_phase) == (None, None, None)
    assert judge(2, phase(1), 0.6) and state.best_auc == 0.6
    with torch.no_grad():
        model.weight.fill_(7.0)
    assert not judge(3, phase(1), 0.6)  # not better: the weights of epoch 2 stay the best
    assert state.best_epoch == 2 and not torch.equal(state.best_state["weight"], model.weight)
    assert (state.bad_epochs, state.stopped_early) == (1, False)
    assert not judge(4, phase(1), math.nan) and state.bad_epochs == 1  # NaN AUC: no judgement
    assert not judge(5, phase(1), 0.55) and state.stopped_early

    state.start_phase(phase(1))  # later epochs of the same phase keep their best
    assert state.best_epoch == 2


def test_without_validation_the_latest_epoch_is_the_best_and_patience_never_counts():
    model = nn.Linear(2, 1)
    state = LoopState()
    for epoch in range(3):
        assert state.judge(epoch, phase(0, 1), math.nan, has_val=False, patience=None, model=model)
    assert (state.best_epoch, state.bad_epochs, state.stopped_early) == (2, 0, False)


def test_the_state_round_trips_through_its_last_pt_payload():
    model = nn.Linear(2, 1)
    config = TrainConfig(epochs=3)
    generator = torch.Generator().manual_seed(0)
    state = LoopState(step=12, next_epoch=2, bad_epochs=1, history=[{"epoch": 0}, {"epoch": 1}])
    state.optimisation.follow(EpochPlan([{"params": list(model.parameters()), "lr": 0.1, "group": "all"}],
                                        signature=("all", 0.1)), 0, model, config, Context(), CPU)
    fresh = state.checkpoint(config, model, torch.amp.GradScaler("cpu", enabled=False), generator)
    assert fresh["best"] == {"auc": -math.inf, "epoch": None, "state": None}  # no phase until one is kept
    assert (fresh["format"], fresh["version"], fresh["signature"]) == (FORMAT, VERSION, ("all", 0.1))

    state.judge(1, phase(0, 1), 0.7, has_val=True, patience=3, model=model)
    saved = state.checkpoint(config, model, torch.amp.GradScaler("cpu", enabled=False), generator)
    back = LoopState.from_checkpoint(saved, notes=["n"])
    assert (back.next_epoch, back.step, back.bad_epochs, back.history) == (2, 12, 0, state.history)
    assert (back.best_auc, back.best_epoch, back.best_phase) == (0.7, 1, 0)
    assert states_equal(back.best_state, state.best_state) and back.best().keys() == saved["best"].keys()
    assert back.optimisation.optimizer is None and back.notes == ["n"]  # rebuilt from the plans


# ------------------------------------------------------------------------------- Optimisation


def test_the_optimizer_is_kept_extended_or_rebuilt_as_the_plan_says():
    model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 1))
    config = TrainConfig(epochs=4, optimizer="adam")
    head = {"params": list(model[1].parameters()), "lr": 0.1, "group": 1}
    body = {"params": list(model[0].parameters()), "lr": 0.01, "group": 0}
    head_only = EpochPlan([head], signature=((1, 0.1),))
    both = EpochPlan([body, head], signature=((0, 0.01), (1, 0.1)))
    both_new_cycle = EpochPlan([body, head], signature=((0, 0.01), (1, 0.1)), cycle_start=3)
    opt = Optimisation()

    opt.follow(head_only, 0, model, config, Context(), CPU)
    first = opt.optimizer
    opt.follow(head_only, 1, model, config, Context(), CPU)
    assert opt.optimizer is first  # same plan, same cycle
    opt.follow(both, 2, model, config, Context(), CPU)
    assert opt.optimizer is first and len(first.param_groups) == 2  # extended (ULMFiT)
    assert first.param_groups[1]["params"] == list(model[0].parameters())
    opt.follow(both_new_cycle, 3, model, config, Context(), CPU)
    assert opt.optimizer is not first and opt.net is model  # a new cycle starts afresh


def test_a_resumed_optimizer_is_rebuilt_along_its_cycle_then_loaded():
    """Extended group by group (head, then body), the optimizer's groups are not those of
    one built for the final plan: a resume rebuilds it the same way, so every saved Adam
    moment lands on its own parameter."""
    model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 1))
    config = TrainConfig(epochs=4)
    head = {"params": list(model[1].parameters()), "lr": 0.1, "group": 1}
    body = {"params": list(model[0].parameters()), "lr": 0.01, "group": 0}
    head_only = EpochPlan([head], signature=((1, 0.1),))
    both = EpochPlan([body, head], signature=((0, 0.01), (1, 0.1)))
    trained = Optimisation()
    trained.follow(head_only, 0, model, config, Context(), CPU)
    trained.follow(both, 1, model, config, Context(), CPU)
    model(torch.ones(1, 2)).sum().backward()
    trained.optimizer.step()
    saved = trained.optimizer.state_dict()

    resumed = Optimisation()
    assert resumed.resume([(0, head_only), (1, both)], both.signature, saved, TrainConfig(epochs=4))
    for parameter in model.parameters():
        assert torch.equal(resumed.optimizer.state[parameter]["exp_avg"],
                           trained.optimizer.state[parameter]["exp_avg"])
    assert resumed.net is None  # the first epoch's follow wraps the model

    stray = Optimisation()  # plans that do not end on the saved one: no optimizer, a fresh start
    assert not stray.resume([(0, head_only)], both.signature, saved, config) and stray.optimizer is None


# ------------------------------------------------------------------------------- through fit


class CancelAtStep(Callback):
    def __init__(self, step: int) -> None:
        self.step, self.steps = step, 0

    def on_step(self, epoch: int, step: int, n_steps: int) -> None:
        self.steps += 1

    def should_stop(self) -> bool:
        return self.steps >= self.step


def test_a_run_cancelled_mid_epoch_resumes_to_the_uninterrupted_weights(ds: TaskDataset, tmp_path: Path):
    """Cancelled part way through epoch 1, the model holds half-trained weights; the resume
    takes epoch 0's from last.pt with every random state, and ends where a straight run ends."""
    config = TrainConfig(epochs=3, lr=3e-3, schedule="onecycle", early_stopping_patience=None, **FAST)
    straight = tiny()
    full = fit(straight, ds, config, checkpoint_dir=tmp_path / "a")
    steps = len(shuffled_batches(ds.split.train, FAST["batch_size"], torch.Generator()))

    cut = fit(tiny(), ds, config, checkpoint_dir=tmp_path / "b", callbacks=[CancelAtStep(steps + 2)])
    assert cut.cancelled and cut.epochs_run == 1
    assert cut.notes[-1] == "cancelled during epoch 1; last.pt holds epoch 0"
    resumed_model = tiny(seed=7)
    resumed = fit(resumed_model, ds, config, checkpoint_dir=tmp_path / "b")
    assert states_equal(straight.state_dict(), resumed_model.state_dict())
    drop = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]
    assert drop(resumed.history) == drop(full.history) and resumed.best_epoch == full.best_epoch
    last = torch.load(tmp_path / "b" / "last.pt", weights_only=True)
    assert last["step"] == 3 * steps  # the abandoned steps are not counted


def test_last_pt_and_best_pt_hold_the_version_1_fields(ds: TaskDataset, tmp_path: Path):
    """The files a resume (and older runs' folders) depend on, field for field."""
    fit(tiny(), ds, TrainConfig(epochs=1, **FAST), checkpoint_dir=tmp_path)
    last = torch.load(tmp_path / "last.pt", weights_only=True)
    assert list(last) == ["format", "version", "config", "next_epoch", "step", "bad_epochs", "stopped_early",
                          "model", "optimizer", "signature", "grad_scaler", "rng", "history", "best"]
    assert (last["format"], last["version"], last["next_epoch"], last["signature"]) == (FORMAT, VERSION, 1,
                                                                                        ("all", 1e-3))
    assert list(last["best"]) == ["auc", "epoch", "state", "phase"] and last["best"]["phase"] == 0
    assert list(last["rng"]) == ["torch", "generator", "numpy", "python"]
    best = torch.load(tmp_path / "best.pt", weights_only=True)
    assert list(best) == ["epoch", "val_macro_auc", "state_dict"] and best["epoch"] == 0
    assert states_equal(best["state_dict"], last["best"]["state"])


@pytest.mark.parametrize(("name", "cut"), [("gradual_unfreeze", 1), ("gradual_unfreeze", 3), ("lp_ft", 1),
                                           ("lp_ft", 2)])
def test_a_strategy_run_resumed_after_epoch_k_ends_on_the_uninterrupted_weights(
        ds: TaskDataset, tmp_path: Path, name: str, cut: int):
    """ULMFiT's optimizer gains a group per stage: cut after epoch 0 (the next stage extends
    the restored optimizer) or epoch 2 (restored into a grown optimizer; this used to fail
    to load). lp_ft: cut within the linear probe (same plan) and at the new cycle of "all"."""
    strategy = get_strategy(name)
    options = StrategyOptions(unfreeze_epochs=1, head_epochs=2)
    config = TrainConfig(epochs=5, lr=0.01, early_stopping_patience=None, **FAST)
    plan_fn = lambda m, epoch, lr: strategy.plan(m, epoch, lr, options, config.epochs)

    def model() -> nn.Module:
        torch.manual_seed(0)
        return ThreeGroups(len(ds.classes))

    straight = model()
    full = fit(straight, ds, config, plan_fn=plan_fn, checkpoint_dir=tmp_path / "a")
    fit(model(), ds, config, plan_fn=plan_fn, checkpoint_dir=tmp_path / "b", callbacks=[StopAfter(cut)])
    resumed_model = model()
    resumed = fit(resumed_model, ds, config, plan_fn=plan_fn, checkpoint_dir=tmp_path / "b")
    assert resumed.notes == [f"resumed from {tmp_path / 'b' / 'last.pt'} after epoch {cut - 1}"]
    assert states_equal(straight.state_dict(), resumed_model.state_dict())
    drop = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]
    assert drop(resumed.history) == drop(full.history)
