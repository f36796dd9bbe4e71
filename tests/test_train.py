"""The trainer on a tiny synthetic TaskDataset (the demo data at scale 0.05): it learns,
stops early, evaluates on sliding windows, honours a strategy's freezing, resumes to the
same weights, picks devices, and writes complete history rows and loadable checkpoints."""

from __future__ import annotations

import dataclasses
import io
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score
from torch import nn

from ecgcore.data.pipeline import TaskDataset
from ecgcore.data.splits import Split
from ecgcore.errors import EcgcoreError
from ecgcore.models.base import ECGClassifier
from ecgcore.train import (
    Callback,
    ProgressBar,
    TrainConfig,
    fit,
    predict,
    select_device,
)
from ecgcore.train import device as device_module
from ecgcore.train.data import (
    random_crops,
    shuffled_batches,
    training_batch,
    window_starts,
)
from ecgcore.train.schedules import schedule_factors
from ecgcore.transfer.base import EpochPlan


class TinyNet(ECGClassifier):
    """Two strided conv blocks with batch norm, average pooling, a head with dropout."""

    name = "tiny"

    def __init__(self, n_leads: int = 12, n_classes: int = 5, width: int = 8) -> None:
        super().__init__()
        self.block1 = nn.Sequential(nn.Conv1d(n_leads, width, 7, stride=4, padding=3),
                                    nn.BatchNorm1d(width), nn.ReLU())
        self.block2 = nn.Sequential(nn.Conv1d(width, 2 * width, 5, stride=4, padding=2),
                                    nn.BatchNorm1d(2 * width), nn.ReLU())
        self.classifier = nn.Sequential(nn.Dropout(0.1), nn.Linear(2 * width, n_classes))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.block2(self.block1(x)).mean(dim=-1)

    @property
    def head(self) -> nn.Module:
        return self.classifier

    def reset_head(self, n_classes: int) -> None:
        self.classifier[-1] = nn.Linear(self.classifier[-1].in_features, n_classes)

    def layer_groups(self) -> list[nn.Module]:
        return [self.block1, self.block2, self.classifier]


def tiny(seed: int = 0, n_classes: int = 5) -> TinyNet:
    torch.manual_seed(seed)
    return TinyNet(n_classes=n_classes)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models on a shared 2-core machine: one intra-op thread is many times faster
    (two OpenMP threads spin against the other processes' load)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture()
def ds(superdiagnostic_ds: TaskDataset) -> TaskDataset:
    return superdiagnostic_ds


def without_validation(ds: TaskDataset) -> TaskDataset:
    split = Split(train=ds.split.train, val=np.array([], dtype=np.int64), test=ds.split.test,
                  method=ds.split.method)
    return dataclasses.replace(ds, split=split)


FAST = {"batch_size": 16, "crop_seconds": 2.5, "eval_batch_size": 64}


class StopAfter(Callback):
    """Cancels once `epochs` epochs have ended; records the rows it saw."""

    def __init__(self, epochs: int | None = None) -> None:
        self.epochs, self.rows, self.steps = epochs, [], 0

    def on_step(self, epoch: int, step: int, n_steps: int) -> None:
        self.steps += 1

    def on_epoch_end(self, row: dict[str, Any]) -> None:
        self.rows.append(row)

    def should_stop(self) -> bool:
        return self.epochs is not None and len(self.rows) >= self.epochs


def states_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ------------------------------------------------------------------------------- learning


def test_overfits_a_tiny_batch(ds: TaskDataset, tmp_path: Path):
    rows = ds.split.train[:16]
    assert all(0 < ds.y[rows, c].sum() < rows.size for c in range(ds.y.shape[1]) if ds.y[rows, c].any())
    config = TrainConfig(epochs=40, batch_size=16, lr=2e-2, crop_seconds=None)
    model = tiny()
    result = fit(model, without_validation(ds), config, checkpoint_dir=tmp_path, train_index=rows)
    assert result.epochs_run == 40 and not result.stopped_early
    assert result.history[-1]["train_loss"] < 0.1 < result.history[0]["train_loss"]
    scores = predict(model, ds, rows, config)
    defined = [c for c in range(ds.y.shape[1]) if 0 < ds.y[rows, c].sum() < rows.size]
    assert defined
    for c in defined:
        assert roc_auc_score(ds.y[rows, c], scores[:, c]) == 1.0


def test_early_stopping_stops_when_validation_does_not_improve(ds: TaskDataset, tmp_path: Path):
    # only the head trains, at a rate far too small to reorder any validation score, with
    # the batch-norm statistics frozen: the validation AUC cannot improve after epoch 0
    def head_only(model: nn.Module, epoch: int, lr: float) -> EpochPlan:
        groups = model.layer_groups()
        return EpochPlan([{"params": list(groups[-1].parameters()), "lr": lr, "group": 2}],
                         frozen=groups[:-1], signature=("head", lr))

    config = TrainConfig(epochs=10, lr=1e-12, early_stopping_patience=2, **FAST)
    result = fit(tiny(), ds, config, plan_fn=head_only, checkpoint_dir=tmp_path)
    assert result.stopped_early and result.early_stopping
    assert result.epochs_run == 3 and result.best_epoch == 0
    assert len({row["val_macro_auc"] for row in result.history}) == 1
    assert any("stopped early" in note for note in result.notes)


def test_without_a_validation_set_best_is_last_and_early_stopping_is_off(ds: TaskDataset,
                                                                         tmp_path: Path):
    config = TrainConfig(epochs=2, early_stopping_patience=1, **FAST)
    model = tiny()
    result = fit(model, without_validation(ds), config, checkpoint_dir=tmp_path)
    assert not result.early_stopping and not result.stopped_early
    assert result.best_epoch == 1 and result.epochs_run == 2
    assert states_equal(result.best_state, {k: v.cpu() for k, v in model.state_dict().items()})
    assert math.isnan(result.history[-1]["val_macro_auc"])
    assert any("no validation set" in note for note in result.notes)


# ------------------------------------------------------------------------------- evaluation


def test_window_starts_cover_the_record_at_half_window_stride():
    np.testing.assert_array_equal(window_starts(1000, 250), [0, 125, 250, 375, 500, 625, 750])
    np.testing.assert_array_equal(window_starts(1000, 300), [0, 150, 300, 450, 600, 700])
    np.testing.assert_array_equal(window_starts(1000, 1000), [0])


def test_random_crops_cut_each_row_at_its_own_offset():
    x = np.arange(3 * 2 * 10, dtype=np.float32).reshape(3, 2, 10)
    crops = random_crops(x, 4, np.array([0, 6, 3]))
    for b, s in enumerate([0, 6, 3]):
        np.testing.assert_array_equal(crops[b], x[b, :, s:s + 4])


def test_sliding_window_scores_equal_manual_aggregation(ds: TaskDataset):
    model = tiny().eval()
    rows = ds.split.test
    x = torch.from_numpy(ds.batch(rows))
    with torch.no_grad():
        per_window = torch.stack([torch.sigmoid(model(x[:, :, s:s + 250]))
                                  for s in (0, 125, 250, 375, 500, 625, 750)], dim=1)
    for aggregate, manual in (("max", per_window.amax(dim=1)), ("mean", per_window.mean(dim=1))):
        config = TrainConfig(crop_seconds=2.5, eval_aggregate=aggregate, eval_batch_size=4)
        np.testing.assert_allclose(predict(model, ds, rows, config), manual.numpy(), rtol=1e-5,
                                   atol=1e-6)
    whole = predict(model, ds, rows, TrainConfig(crop_seconds=None))
    with torch.no_grad():
        np.testing.assert_allclose(whole, torch.sigmoid(model(x)).numpy(), rtol=1e-5, atol=1e-6)


def test_crops_and_windows_stay_out_of_the_zero_padding_of_short_records(ds: TaskDataset):
    lengths = np.full(len(ds), 1000, dtype=np.int64)
    rows = ds.split.test
    lengths[rows[:3]] = [250, 400, 100]  # 2.5 s, 4 s and 1 s of real signal in a 10 s window
    short = dataclasses.replace(ds, lengths=lengths)
    generator = torch.Generator().manual_seed(0)
    x = ds.batch(rows)
    for _ in range(5):
        crops, _ = training_batch(short, rows, 250, generator)
        np.testing.assert_array_equal(crops[0].numpy(), x[0, :, :250])  # the only place it fits
        np.testing.assert_array_equal(crops[2].numpy(), x[2, :, :250])  # shorter than a crop
        offsets = [s for s in range(151) if np.array_equal(crops[1].numpy(), x[1, :, s:s + 250])]
        assert offsets, "the 4 s record's crop starts within its first 150 samples"

    model = tiny().eval()
    with torch.no_grad():
        windows = torch.stack([torch.sigmoid(model(torch.from_numpy(x[:3, :, s:s + 250])))
                               for s in (0, 125)], dim=1)
    scores = predict(model, short, rows[:3], TrainConfig(crop_seconds=2.5, eval_aggregate="mean"))
    np.testing.assert_allclose(scores[0], windows[0, 0].numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(scores[1], windows[1].mean(dim=0).numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(scores[2], windows[2, 0].numpy(), rtol=1e-5, atol=1e-6)


def test_a_crop_longer_than_the_window_is_refused(ds: TaskDataset, tmp_path: Path):
    with pytest.raises(EcgcoreError, match="crop of 12.0 s is 1200 samples"):
        fit(tiny(), ds, TrainConfig(epochs=1, crop_seconds=12.0), checkpoint_dir=tmp_path)


# ------------------------------------------------------------------------------- strategies


def gradual(model: nn.Module, epoch: int, lr: float) -> EpochPlan:
    """Epoch 0: block1 frozen, block2 at lr/10, head at lr; from epoch 1 everything at lr."""
    b1, b2, head = model.layer_groups()
    if epoch == 0:
        return EpochPlan([{"params": list(b2.parameters()), "lr": lr / 10, "group": 1},
                          {"params": list(head.parameters()), "lr": lr, "group": 2}],
                         frozen=[b1], signature=("b2+head", lr))
    return EpochPlan([{"params": list(model.parameters()), "lr": lr, "group": "all"}],
                     frozen=[], signature=("all", lr))


def test_plan_freezing_is_honoured_then_the_optimizer_is_rebuilt(ds: TaskDataset, tmp_path: Path):
    model = tiny()
    start = {k: v.clone() for k, v in model.state_dict().items()}
    after_epoch: list[dict[str, torch.Tensor]] = []

    class Snapshot(Callback):
        def on_epoch_end(self, row: dict[str, Any]) -> None:
            after_epoch.append({k: v.detach().clone() for k, v in model.state_dict().items()})

    config = TrainConfig(epochs=2, lr=1e-2, early_stopping_patience=None, **FAST)
    result = fit(model, ds, config, plan_fn=gradual, checkpoint_dir=tmp_path, callbacks=[Snapshot()])
    first, second = after_epoch
    block1 = [k for k in start if k.startswith("block1.")]
    assert {"block1.1.running_mean", "block1.1.running_var", "block1.1.num_batches_tracked"} <= set(block1)
    for key in block1:  # weights and batch-norm statistics untouched while frozen
        assert torch.equal(first[key], start[key]), key
    for key in ("block2.0.weight", "block2.1.running_mean", "classifier.1.weight"):
        assert not torch.equal(first[key], start[key]), key
    assert not torch.equal(second["block1.0.weight"], start["block1.0.weight"])  # unfrozen at epoch 1
    assert not torch.equal(second["block1.1.running_mean"], start["block1.1.running_mean"])
    e0, e1 = result.history
    assert (e0["lr_group0"], e0["lr_group1"], e0["lr_group2"]) == (0.0, pytest.approx(1e-3), 1e-2)
    assert (e1["lr_group0"], e1["lr_group1"], e1["lr_group2"]) == (1e-2, 1e-2, 1e-2)
    assert all(p.requires_grad for p in model.parameters())


def test_onecycle_schedule_warms_up_then_anneals():
    total = 101
    lrs = [schedule_factors("onecycle", s, total)[0] for s in range(total)]
    assert lrs[0] == pytest.approx(1 / 25) and lrs[25] == pytest.approx(1.0)
    assert lrs[-1] == pytest.approx(1e-5) and max(lrs) == pytest.approx(1.0)
    assert schedule_factors("onecycle", 25, total)[1] == pytest.approx(0.85)
    assert schedule_factors("constant", 7, total) == (1.0, None)


# ------------------------------------------------------------------------------- checkpoints


def test_resume_after_a_stop_gives_the_same_weights_and_history(ds: TaskDataset, tmp_path: Path):
    config = TrainConfig(epochs=4, lr=3e-3, schedule="onecycle", pos_weight=True, grad_clip=1.0,
                         early_stopping_patience=None, **FAST)
    straight = tiny()
    full = fit(straight, ds, config, plan_fn=gradual, checkpoint_dir=tmp_path / "a")

    stopper = StopAfter(epochs=2)
    interrupted = fit(tiny(), ds, config, plan_fn=gradual, checkpoint_dir=tmp_path / "b",
                      callbacks=[stopper])
    assert interrupted.cancelled and interrupted.epochs_run == 2
    resumed_model = tiny(seed=123)  # the weights come from last.pt, not from this init
    resumed = fit(resumed_model, ds, config, plan_fn=gradual, checkpoint_dir=tmp_path / "b")
    assert not resumed.cancelled and resumed.epochs_run == 4
    assert any("resumed" in note for note in resumed.notes)

    assert states_equal(straight.state_dict(), resumed_model.state_dict())
    assert states_equal(full.best_state, resumed.best_state) and full.best_epoch == resumed.best_epoch
    drop = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]
    assert drop(full.history) == drop(resumed.history)

    again = fit(tiny(), ds, config, plan_fn=gradual, checkpoint_dir=tmp_path / "b")  # finished
    assert again.epochs_run == 4 and states_equal(again.best_state, full.best_state)


def test_small_cnn_resumes_bit_for_bit_too(ds: TaskDataset, tmp_path: Path):
    from ecgcore.models import create_model

    def small() -> nn.Module:
        torch.manual_seed(0)
        return create_model("small_cnn", n_classes=ds.y.shape[1], n_samples=250)

    config = TrainConfig(epochs=3, schedule="onecycle", optimizer="adamw", weight_decay=1e-2,
                         early_stopping_patience=None, **FAST)
    straight = small()
    full = fit(straight, ds, config, checkpoint_dir=tmp_path / "a")
    fit(small(), ds, config, checkpoint_dir=tmp_path / "b", callbacks=[StopAfter(epochs=1)])
    resumed_model = small()
    resumed = fit(resumed_model, ds, config, checkpoint_dir=tmp_path / "b")
    assert states_equal(straight.state_dict(), resumed_model.state_dict())
    assert [r["val_macro_auc"] for r in full.history] == [r["val_macro_auc"] for r in resumed.history]


def test_resume_refuses_a_checkpoint_of_other_settings(ds: TaskDataset, tmp_path: Path):
    fit(tiny(), ds, TrainConfig(epochs=1, **FAST), checkpoint_dir=tmp_path)
    with pytest.raises(EcgcoreError, match="other settings.*lr"):
        fit(tiny(), ds, TrainConfig(epochs=1, lr=0.5, **FAST), checkpoint_dir=tmp_path)
    fresh = fit(tiny(), ds, TrainConfig(epochs=1, lr=0.5, **FAST), checkpoint_dir=tmp_path, resume=False)
    assert fresh.epochs_run == 1


def test_history_rows_and_checkpoint_files_are_complete(ds: TaskDataset, tmp_path: Path):
    stream = io.StringIO()
    watcher = StopAfter()
    config = TrainConfig(epochs=2, optimizer="adamw", weight_decay=1e-2, **FAST)
    result = fit(tiny(), ds, config, checkpoint_dir=tmp_path,
                 callbacks=[watcher, ProgressBar(config.epochs, stream=stream, min_interval=0)])
    expected = {"epoch", "train_loss", "val_loss", "val_macro_auc", "lr", "seconds",
                "lr_group0", "lr_group1", "lr_group2", "phase"}
    assert [row["epoch"] for row in result.history] == [0, 1]
    for row in result.history:
        assert set(row) == expected and row["phase"] == "train"  # no strategy: one phase
        assert all(isinstance(row[k], float) and math.isfinite(row[k]) for k in expected - {"epoch", "phase"})
        assert 0.0 <= row["val_macro_auc"] <= 1.0
    assert watcher.rows == result.history
    steps = len(shuffled_batches(ds.split.train, 16, torch.Generator()))
    assert watcher.steps == 2 * steps
    assert result.device == "cpu" and result.train_seconds == pytest.approx(
        sum(r["seconds"] for r in result.history))
    assert result.best_epoch == int(np.argmax([r["val_macro_auc"] for r in result.history]))

    best = torch.load(tmp_path / "best.pt", weights_only=True)
    assert best["epoch"] == result.best_epoch and states_equal(best["state_dict"], result.best_state)
    last = torch.load(tmp_path / "last.pt", weights_only=True)
    assert last["next_epoch"] == 2 and last["history"] == result.history
    assert not list(tmp_path.glob(".*"))  # no temp files left behind
    drawn = stream.getvalue()
    assert "epoch 1/2: 100%" in drawn and f"{steps}/{steps}" in drawn
    assert "epoch 1/2 train_loss" in drawn and "epoch 2/2 train_loss" in drawn


def test_cancel_during_an_epoch_keeps_the_previous_checkpoint(ds: TaskDataset, tmp_path: Path):
    class CancelAtStep(Callback):
        def __init__(self) -> None:
            self.steps = 0

        def on_step(self, epoch: int, step: int, n_steps: int) -> None:
            self.steps += 1

        def should_stop(self) -> bool:
            return self.steps >= 2

    result = fit(tiny(), ds, TrainConfig(epochs=3, **FAST), checkpoint_dir=tmp_path,
                 callbacks=[CancelAtStep()])
    assert result.cancelled and result.epochs_run == 0 and result.best_epoch is None
    assert not (tmp_path / "last.pt").exists()


# ------------------------------------------------------------------------------- settings


def test_device_selection_prefers_cuda_then_mps_then_cpu(monkeypatch: pytest.MonkeyPatch):
    def available(cuda: bool, mps: bool) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
        monkeypatch.setattr(device_module, "_mps_available", lambda: mps)

    available(cuda=True, mps=True)
    assert select_device("auto") == torch.device("cuda")
    available(cuda=False, mps=True)
    assert select_device("auto") == torch.device("mps") and select_device("mps").type == "mps"
    available(cuda=False, mps=False)
    assert select_device("auto") == torch.device("cpu") == select_device("cpu")
    with pytest.raises(EcgcoreError, match="'cuda' was asked for but is not available"):
        select_device("cuda")
    with pytest.raises(EcgcoreError, match="unknown device 'tpu'"):
        select_device("tpu")
    assert device_module.effective_precision(torch.device("cuda"), "fp16") == "fp16"
    assert device_module.effective_precision(torch.device("cpu"), "fp16") == "float32"


def test_train_config_round_trips_and_refuses_bad_settings():
    config = TrainConfig(epochs=3, optimizer="adamw", crop_seconds=2.5, grad_clip=1.0)
    assert TrainConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="unknown settings \\['epoch'\\]"):
        TrainConfig.from_dict({"epoch": 3})
    for bad in ({"optimizer": "sgd"}, {"schedule": "cosine"}, {"eval_aggregate": "median"},
                {"epochs": 0}, {"crop_seconds": 0.0}, {"device": "tpu"}, {"lr": -1.0}):
        with pytest.raises(ValueError, match="TrainConfig"):
            TrainConfig(**bad)


# ------------------------------------------------------------------------------- torchrun

TORCHRUN_SCRIPT = '''
import json, os, sys
from pathlib import Path
import torch
sys.path.insert(0, {tests!r})
from test_train import StopAfter, gradual, tiny
from ecgcore.data.pipeline import SplitConfig, build_dataset
from ecgcore.data.prepare.config import PrepConfig
from ecgcore.train import TrainConfig, fit

torch.set_num_threads(1)
ds = build_dataset({data!r}, "ptbxl_superdiagnostic", PrepConfig(fs=100, seconds=10, normalize="standard"),
                   SplitConfig(method="patient", val=0.25, test=0.15, seed=0), {cache!r}, n_jobs=1)
watcher = StopAfter()
result = fit(tiny(seed=int(os.environ["RANK"])), ds,  # different inits: DDP broadcasts rank 0's
             TrainConfig(epochs=2, batch_size=16, crop_seconds=2.5), checkpoint_dir={out!r},
             plan_fn=gradual, callbacks=[watcher])  # the frozen group changes: DDP is re-wrapped
rank = os.environ["RANK"]
torch.save(result.best_state, Path({out!r}) / f"rank{{rank}}.pt")
Path({out!r}, f"rank{{rank}}.json").write_text(json.dumps({{"steps": watcher.steps,
    "history": [{{k: v for k, v in r.items() if k != "seconds"}} for r in result.history]}}))
'''


def test_two_process_torchrun_on_cpu(ds: TaskDataset, tmp_path: Path):
    import json
    import os
    import subprocess
    import sys

    script = tmp_path / "run.py"
    out = tmp_path / "out"
    script.write_text(TORCHRUN_SCRIPT.format(tests=str(Path(__file__).parent), data=ds.root,
                                             cache=str(Path(ds.cache_path).parents[1]), out=str(out)))
    root = str(Path(__file__).parents[1])
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                           "--nproc_per_node", "2", str(script)], capture_output=True, text=True,
                          check=False, timeout=180, env=env, cwd=root)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]
    states = [torch.load(out / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert states_equal(*states)  # DDP kept the two copies identical
    assert ranks[0]["history"] == ranks[1]["history"]  # same mean loss and validation everywhere
    per_process = len(shuffled_batches(ds.split.train, 16, torch.Generator(), rank=0, world_size=2))
    assert ranks[0]["steps"] == ranks[1]["steps"] == 2 * per_process
    assert per_process < len(shuffled_batches(ds.split.train, 16, torch.Generator()))
    last = torch.load(out / "last.pt", weights_only=True)
    assert last["next_epoch"] == 2 and not list(out.glob(".*"))
    assert states_equal(last["best"]["state"], states[0])


def test_positive_weights_are_negatives_over_positives():
    from ecgcore.train.loop import positive_weights

    y = np.array([[1, 0, 0], [0, 0, 1], [0, 0, 1], [0, 0, 1]], dtype=np.uint8)
    np.testing.assert_allclose(positive_weights(y).numpy(), [3.0, 1.0, 1 / 3])
