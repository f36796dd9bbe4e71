"""Self-supervised pretraining in runs (`ecgcore.ssl.methods`, `ecgcore.ssl.pretrain`): the
masks, what the reconstruction may see, every method on the zoo's backbones, the planner's
`[pretrain] method` / `[grid] pretrain_method`, a killed-and-resumed pretraining that ends
with the same encoder as an uninterrupted one, and an SSL encoder used as a source by a
linear probe and by fine-tuning on the demo data through the experiment runner."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from ecgcore.data.pipeline import TaskDataset
from ecgcore.errors import EcgcoreError
from ecgcore.experiments import run_experiment
from ecgcore.experiments.run_plan import expand
from ecgcore.experiments.spec import ExperimentError, load_experiment
from ecgcore.models import create_model
from ecgcore.runs import RunStore
from ecgcore.runs.run_config import PretrainMethodConfig, RunConfig
from ecgcore.ssl.masking import masked_count, sample_mask, token_mask
from ecgcore.ssl.methods import PRETRAIN_METHODS, get_method, method_config
from ecgcore.ssl.pretrain import pretrain_encoder
from ecgcore.train import Callback, TrainConfig
from ecgcore.views.compare.aggregate import data_efficiency
from ecgcore.views.compare.table import runs_table

BACKBONES = ("small_cnn", "resnet1d18", "lstm", "net1d_small", "ecg_jepa_small")


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def eight_leads(ds: TaskDataset) -> TaskDataset:
    """The dataset as ECG-JEPA's 8 leads (I, II, V1-V6) at its 1,000 samples, unscaled."""
    keep = [0, 1, 6, 7, 8, 9, 10, 11]
    return dataclasses.replace(ds, X=np.ascontiguousarray(ds.X[:, keep]), scaler=None, lead_mask=None)


def data_for(arch: str, ds: TaskDataset) -> tuple[TaskDataset, int]:
    """The dataset and crop length an architecture trains on here."""
    return (eight_leads(ds), 1000) if arch == "ecg_jepa_small" else (ds, 250)


# ---------------------------------------------------------------------------------------------
# masks


def test_token_mask_hides_the_same_count_in_every_record_whole_leads_first() -> None:
    tokens = token_mask(64, 12, 5, ratio=0.5, whole_leads=2, generator=torch.Generator().manual_seed(0))
    assert tokens.shape == (64, 12, 5) and tokens.dtype == torch.bool
    assert (tokens.reshape(64, -1).sum(dim=1) == 30).all()  # round(0.5 * 60) in every record
    whole = tokens.all(dim=2)
    assert (whole.sum(dim=1) >= 2).all()  # two leads lose every patch
    assert len({tuple(row.tolist()) for row in whole}) > 1  # not the same leads in every record
    again = token_mask(64, 12, 5, ratio=0.5, whole_leads=2, generator=torch.Generator().manual_seed(0))
    assert torch.equal(tokens, again)
    # the whole leads' patches count within the ratio, and at least one token stays visible
    assert masked_count(12, 5, 0.1, 3) == 15 and masked_count(2, 1, 0.99, 1) == 1
    with pytest.raises(EcgcoreError, match="mask_leads"):
        masked_count(12, 5, 0.5, 12)
    with pytest.raises(EcgcoreError, match="mask_ratio"):
        masked_count(12, 5, 1.0, 0)


def test_sample_mask_covers_each_hidden_patch_and_nothing_else() -> None:
    tokens = torch.tensor([[[True, False, True]]])
    mask = sample_mask(tokens, patch=4, n_samples=10)  # the last patch is 2 samples long
    assert mask.tolist() == [[[True] * 4 + [False] * 4 + [True] * 2]]


def test_masked_loss_counts_the_hidden_samples_only() -> None:
    method = get_method(method_config("masked", {"patch": 10}))
    x = torch.randn(3, 12, 50)
    tokens = token_mask(3, 12, 5, 0.5, 1, torch.Generator().manual_seed(1))
    hidden = sample_mask(tokens, 10, 50)
    right_where_hidden = torch.where(hidden, x, x + 100.0)
    assert method.loss(right_where_hidden, (x, tokens)).item() == 0.0
    wrong_where_hidden = torch.where(hidden, x + 2.0, x)
    assert method.loss(wrong_where_hidden, (x, tokens)).item() == pytest.approx(4.0)


@pytest.mark.parametrize("arch", ["small_cnn", "lstm", "net1d_small", "ecg_jepa_small"])
def test_the_reconstruction_never_sees_what_it_reconstructs(arch: str) -> None:
    """Whatever the hidden samples hold, the output is the same: the CNN/RNN sees them zeroed,
    the ViT does not encode their tokens at all (MAE)."""
    method = get_method(method_config("masked", {}))
    n_leads, length = (8, 1000) if arch == "ecg_jepa_small" else (12, 250)
    torch.manual_seed(0)
    backbone = create_model(arch, n_leads=n_leads, n_classes=1, n_samples=length)
    module = method.build(backbone, n_leads, length).eval()
    x = torch.randn(2, n_leads, length)
    tokens = token_mask(2, n_leads, length // 50, 0.5, 1, torch.Generator().manual_seed(2))
    changed = torch.where(sample_mask(tokens, 50, length), torch.randn_like(x) * 5, x)
    with torch.no_grad():
        assert torch.allclose(module(x, tokens), module(changed, tokens), atol=1e-6)
        visible_changed = torch.where(sample_mask(tokens, 50, length), x, x + 1.0)
        assert not torch.allclose(module(x, tokens), module(visible_changed, tokens))


# ---------------------------------------------------------------------------------------------
# every method on the zoo's backbones


@pytest.mark.parametrize("name", list(PRETRAIN_METHODS))
@pytest.mark.parametrize("arch", BACKBONES)
def test_every_method_trains_every_zoo_backbone(arch: str, name: str, superdiagnostic_ds: TaskDataset) -> None:
    data, length = data_for(arch, superdiagnostic_ds)
    method = get_method(method_config(name, {}))
    torch.manual_seed(0)
    backbone = create_model(arch, n_leads=data.X.shape[1], n_classes=1, n_samples=length)
    if name == "clocs" and arch == "ecg_jepa_small":  # two segments of its whole contract window do not fit
        with pytest.raises(EcgcoreError, match="adjacent segments"):
            method.check(backbone, data.X.shape[1], length, data.X.shape[2])
        return
    method.check(backbone, data.X.shape[1], length, data.X.shape[2])
    module = method.build(backbone, data.X.shape[1], length)
    batch = method.batch(data, data.split.train[:6], length, torch.Generator().manual_seed(0))
    loss = method.loss(method.outputs(module, batch), batch)
    assert loss.ndim == 0 and math.isfinite(loss.item()) and loss.item() > 0
    loss.backward()
    encoder = [p for group in backbone.layer_groups()[:-1] for p in group.parameters()]
    assert encoder and all(p.grad is not None for p in encoder[:1])  # the first layer learns
    assert all(p.grad is None for p in backbone.head.parameters())  # no pretext task reads the head


def test_methods_refuse_what_they_cannot_train(superdiagnostic_ds: TaskDataset) -> None:
    lstm_nd = create_model("lstm_nd", n_leads=12, n_classes=1, n_samples=250)
    with pytest.raises(EcgcoreError, match="no feature sequence"):
        get_method(method_config("masked", {})).build(lstm_nd, 12, 250)
    jepa = create_model("ecg_jepa_small", n_leads=8, n_classes=1, n_samples=1000)
    with pytest.raises(EcgcoreError, match="patch = 50"):
        get_method(method_config("masked", {"patch": 25})).check(jepa, 8, 1000, 1000)
    with pytest.raises(EcgcoreError, match="no setting 'mask_ratio'"):
        get_method(PretrainMethodConfig("simclr", {"mask_ratio": 0.5}))
    with pytest.raises(EcgcoreError, match="unknown augmentation 'flip'"):
        method_config("simclr", {"augmentations": [{"name": "flip"}]})
    with pytest.raises(EcgcoreError, match="temperature = 'hot'"):
        method_config("clocs", {"temperature": "hot"})


def test_simclr_views_are_two_augmented_crops_drawn_from_the_generator(superdiagnostic_ds: TaskDataset) -> None:
    method = get_method(method_config("simclr", {}))
    rows = superdiagnostic_ds.split.train[:8]
    (views,) = method.batch(superdiagnostic_ds, rows, 250, torch.Generator().manual_seed(3))
    (again,) = method.batch(superdiagnostic_ds, rows, 250, torch.Generator().manual_seed(3))
    assert views.shape == (8, 2, 12, 250) and torch.equal(views, again)
    assert not torch.allclose(views[:, 0], views[:, 1])


def test_clocs_segments_are_adjacent_and_grouped_by_patient(superdiagnostic_ds: TaskDataset) -> None:
    ds = dataclasses.replace(superdiagnostic_ds, scaler=None)
    method = get_method(method_config("clocs", {"views": 3}))
    rows = ds.split.train[:10]
    segments, group = method.batch(ds, rows, 250, torch.Generator().manual_seed(0))
    assert segments.shape == (10, 3, 12, 250)
    raw = ds.raw_rows(rows)
    for i in range(10):  # three consecutive 250-sample pieces of the record
        joined = torch.cat(list(segments[i]), dim=1).numpy()
        starts = [s for s in range(1000 - 750 + 1) if np.array_equal(raw[i, :, s:s + 750], joined)]
        assert starts, f"record {i}: the segments are not one contiguous stretch"
    patients = np.asarray(ds.patients[rows]).astype(str)
    same = patients[:, None] == patients[None, :]
    assert np.array_equal(same, (group[:, None] == group[None, :]).numpy())


# ---------------------------------------------------------------------------------------------
# the planner

GRID = """
name = "ssl_test"
demo = true

[source]
dataset = "source_ptbxl"
task = "shared"

[target]
dataset = "target_challenge"
min_positives = 5

[prep]
fs = 100

[split]
method = "patient"
val = 0.2
test = 0.3

[train]
epochs = 2
batch_size = 32
crop_seconds = 2.5

[pretrain]
epochs = 2
temperature = 0.2
mask_ratio = 0.4

[grid]
arch = ["small_cnn"]
pretrain_method = ["supervised", "simclr", "masked"]
strategy = ["scratch", "linear_probe", "finetune"]
train_fraction = [0.5]
"""


def grid_file(tmp_path: Path, text: str = GRID) -> Path:
    path = tmp_path / "ssl_test.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_planner_puts_methods_side_by_side(tmp_path: Path, workspace: Path) -> None:
    specs = expand(load_experiment(grid_file(tmp_path)), strict=False)
    pretrains = {s.run_config.method_name: s for s in specs if s.kind == "pretrain"}
    assert set(pretrains) == {"supervised", "simclr", "masked"}
    supervised = pretrains["supervised"].config
    assert "pretrain_method" not in supervised and supervised["data"]["task"] == "shared"
    simclr, masked = pretrains["simclr"].config, pretrains["masked"].config
    assert simclr["data"]["task"] == masked["data"]["task"] == "unlabelled"  # the records, not the labels
    assert simclr["shared_with"] is None and simclr["train"]["epochs"] == 2  # method keys left out of [pretrain]
    assert simclr["pretrain_method"]["options"]["temperature"] == 0.2
    assert masked["pretrain_method"]["options"]["mask_ratio"] == 0.4
    assert "temperature" not in masked["pretrain_method"]["options"]  # each method takes its own settings
    augmentations = simclr["pretrain_method"]["options"]["augmentations"]
    assert augmentations[0] == {"name": "crop", "min_fraction": 0.5, "max_fraction": 1.0, "p": 1.0}
    assert RunConfig.from_dict(simclr).to_dict() == simclr
    targets = [s for s in specs if s.kind == "target"]
    assert len(targets) == 1 + 2 * 3  # one scratch run, a probe and a fine-tune from each source
    assert {s.depends_on for s in targets if s.run_config.strategy_name != "scratch"} == {
        s.hash for s in pretrains.values()}
    assert any("(simclr)" in s.label for s in targets) and "(masked, no labels)" in pretrains["masked"].label


METHODS_LINE = 'pretrain_method = ["supervised", "simclr", "masked"]'
STRATEGY_LINE = 'strategy = ["scratch", "linear_probe", "finetune"]'


@pytest.mark.parametrize(("changes", "message"), [
    ([(METHODS_LINE, 'pretrain_method = ["byol"]')], "unknown pretrain method 'byol'"),
    ([("mask_ratio = 0.4", "mask_ratoi = 0.4")], "mask_ratoi"),
    ([(STRATEGY_LINE, 'strategy = ["source_only"]')], "source_only"),
    ([('task = "shared"', 'task = "unlabelled"'), (METHODS_LINE, 'pretrain_method = ["supervised"]')],
     "only a self-supervised"),
], ids=["unknown method", "unknown setting", "source_only", "supervised without labels"])
def test_the_planner_refuses_what_cannot_run(tmp_path: Path, workspace: Path, changes: list[tuple[str, str]],
                                             message: str) -> None:
    text = GRID
    for old, new in changes:
        assert old in text
        text = text.replace(old, new)
    with pytest.raises(ExperimentError, match=message):
        expand(load_experiment(grid_file(tmp_path, text)), strict=False)


# ---------------------------------------------------------------------------------------------
# resume


class KillAt(Callback):
    """Stops the fit at step `step` of epoch `epoch` (the epoch is abandoned, as if the
    process had been killed there: last.pt holds the epoch before)."""

    def __init__(self, epoch: int, step: int) -> None:
        self.epoch, self.step, self.stop = epoch, step, False

    def on_step(self, epoch: int, step: int, n_steps: int) -> None:
        self.stop = self.stop or (epoch, step) == (self.epoch, self.step)

    def should_stop(self) -> bool:
        return self.stop


@pytest.mark.parametrize("name", ["simclr", "masked"])
def test_a_killed_and_resumed_pretraining_ends_with_the_same_encoder(
        name: str, superdiagnostic_ds: TaskDataset, tmp_path: Path) -> None:
    config = method_config(name, {})
    train = TrainConfig(epochs=3, batch_size=16, crop_seconds=2.5, device="cpu", seed=5)
    whole = pretrain_encoder("small_cnn", config, superdiagnostic_ds, train, seed=5, checkpoint_dir=tmp_path / "a")
    killed = pretrain_encoder("small_cnn", config, superdiagnostic_ds, train, seed=5, checkpoint_dir=tmp_path / "b",
                              callbacks=[KillAt(epoch=1, step=2)])
    assert killed.fit.cancelled and killed.fit.epochs_run == 1
    resumed = pretrain_encoder("small_cnn", config, superdiagnostic_ds, train, seed=5, checkpoint_dir=tmp_path / "b")
    assert any("resumed" in note for note in resumed.fit.notes)
    assert [r["train_loss"] for r in resumed.fit.history] == [r["train_loss"] for r in whole.fit.history]
    assert [r["val_loss"] for r in resumed.fit.history] == [r["val_loss"] for r in whole.fit.history]
    mine, theirs = resumed.backbone.state_dict(), whole.backbone.state_dict()
    assert mine.keys() == theirs.keys() and all(torch.equal(mine[k], theirs[k]) for k in mine)
    assert resumed.test_loss == whole.test_loss


# ---------------------------------------------------------------------------------------------
# end to end: an SSL encoder is a source for every strategy


def test_a_simclr_encoder_is_a_source_for_a_probe_and_for_fine_tuning(demo_ws: Path, tmp_path: Path) -> None:
    text = GRID.replace('pretrain_method = ["supervised", "simclr", "masked"]', 'pretrain_method = ["simclr"]')
    run_ids = run_experiment(grid_file(tmp_path, text))
    store = RunStore()
    results = {run_id: store.get(run_id).results() for run_id in run_ids}
    pretraining = next(r for r in run_ids if results[r]["kind"] == "pretrain")
    made = results[pretraining]
    assert made["pretrain_method"] == "simclr" and made["classes"] == [] and made["task"] == "unlabelled"
    assert made["augmentations"] == made["pretrain_settings"]["augmentations"]
    assert [a["name"] for a in made["augmentations"]][:2] == ["crop", "time_mask"]
    assert made["test"]["macro_auc"] is None and math.isfinite(made["test"]["pretext_loss"])
    history = pd.read_csv(store.get(pretraining).path / "history.csv")
    assert list(history["epoch"]) == [0, 1] and history["train_loss"].notna().all()
    assert history["val_loss"].notna().all() and history["val_macro_auc"].isna().all()
    assert json.loads((store.get(pretraining).path / "config.json").read_text())["pretrain_method"]["name"] == "simclr"
    source = store.get(pretraining).load_model()
    assert source.classes == [] and source.extra["pretrain_method"]["name"] == "simclr"
    assert not any(key.startswith(("projector", "backbone.")) for key in source.state_dict)  # the encoder only

    targets = {results[r]["strategy"]: r for r in run_ids if results[r]["kind"] == "target"}
    assert set(targets) == {"scratch", "linear_probe", "finetune"}
    for strategy in ("linear_probe", "finetune"):
        result = results[targets[strategy]]
        assert result["pretrain_method"] == "simclr" and result["source_kind"] == "pretraining"
        assert 0.0 <= result["test"]["macro_auc"] <= 1.0
    assert "pretrain_method" not in results[targets["scratch"]]
    probed = store.get(targets["linear_probe"]).load_model().state_dict
    tuned = store.get(targets["finetune"]).load_model().state_dict
    first = "blocks.0.down.0.weight"
    assert torch.equal(probed[first], source.state_dict[first])  # the frozen SSL encoder
    assert not torch.equal(tuned[first], source.state_dict[first])  # fine-tuned from it
    lines = set(data_efficiency(runs_table(store))["line"])
    assert lines == {"scratch", "linear_probe", "finetune"}  # one method: the names as always


def test_the_pretraining_loss_figure_gives_each_method_its_panel() -> None:
    from ecgcore.views.compare.compare_figures import pretraining_loss_figure

    history = pd.DataFrame({"run_id": ["a", "a", "b", "b", "c"], "epochs_done": [1, 2, 1, 2, 1],
                            "train_loss": [5.0, 4.0, 5.1, 4.2, 0.9], "val_loss": [4.8, 3.9, 5.0, 4.0, 0.8]})
    figure = pretraining_loss_figure(history, {"a": "simclr", "b": "simclr", "c": "masked"}, {"a": "run a"})
    assert [a.text for a in figure.layout.annotations] == ["simclr (NT-Xent)", "masked (MSE of the hidden samples)"]
    axes = {(t.name, t.line.dash): t.yaxis for t in figure.data}
    assert axes == {("run a", None): "y", ("run a (training loss)", "dot"): "y", ("b", None): "y",
                    ("b (training loss)", "dot"): "y", ("c", None): "y2", ("c (training loss)", "dot"): "y2"}
    assert figure.layout.xaxis2.title.text == "epoch"
