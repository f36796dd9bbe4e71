"""The training set resident on the device (`ecgcore.train.device_data`): its batches are the
host batches' numbers, a fit through it trains exactly as one through host batches (the
resident path run on the CPU), and where a fit's data goes is decided from the sizes."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from test_train import one_thread  # noqa: F401 (autouse: one intra-op thread)

from ecgcore.data.pipeline import TaskDataset
from ecgcore.errors import EcgcoreError
from ecgcore.models import create_model
from ecgcore.train import TrainConfig, fit
from ecgcore.train.data import StreamSettings, training_batch
from ecgcore.train.device_data import (
    DEVICE_MARGIN,
    RESERVE_BYTES,
    ResidentTrainingSet,
    decide_placement,
    resident_bytes,
)

CPU, CUDA = torch.device("cpu"), torch.device("cuda")  # a device object needs no GPU
GB = 10**9


@pytest.fixture()
def short_records(superdiagnostic_ds: TaskDataset) -> TaskDataset:
    """The standard-scaled demo dataset with some training records shorter than their 10 s
    window (2.5 s, 4 s and 1 s of real signal): crops must stay inside the real signal."""
    assert superdiagnostic_ds.scaler is not None
    lengths = np.full(len(superdiagnostic_ds), superdiagnostic_ds.X.shape[2], dtype=np.int64)
    lengths[superdiagnostic_ds.split.train[:6:2]] = [250, 400, 100]
    return dataclasses.replace(superdiagnostic_ds, lengths=lengths)


# ------------------------------------------------------------------------------- batches


def test_resident_batches_equal_host_batches_draw_for_draw(short_records: TaskDataset):
    data = short_records
    train = data.split.train
    resident = ResidentTrainingSet(data, train[::-1], CPU)  # any order in: held sorted
    assert np.array_equal(resident.rows, np.sort(train))
    assert resident.n_bytes == resident_bytes(data, train)
    host_gen, device_gen = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    order = np.random.default_rng(0).permutation(train)
    batches = [order[:16], order[16:40], train[:6], order[40:41]]  # the short records, a batch of one
    for length in (250, 333, data.X.shape[2]):  # crops, an odd crop, the whole window
        for rows in batches:
            x_host, y_host = training_batch(data, rows, length, host_gen)
            x_res, y_res = resident.batch(rows, length, device_gen)
            assert x_res.shape == (rows.size, data.X.shape[1], length) and x_res.is_contiguous()
            assert torch.equal(x_res, x_host) and torch.equal(y_res, y_host)
            assert x_res.dtype == y_res.dtype == torch.float32
    assert torch.equal(host_gen.get_state(), device_gen.get_state()), "the same draws, no more"
    # the short records' crops start at 0 (shorter than, or as long as, the crop)
    x_short, _ = resident.batch(train[[0, 4]], 250, device_gen)
    assert torch.equal(x_short, torch.from_numpy(data.batch(train[[0, 4]])[:, :, :250]))


def test_resident_validation_windows_equal_the_memmap_windows(short_records: TaskDataset):
    """The validation rows held with the training rows give `evaluation_batches`' windows and
    masks exactly: sliding windows of the scaled records, a short record's padded tail unused."""
    from ecgcore.train.data import evaluation_batches

    data = short_records
    index = np.concatenate([data.split.val, data.split.train[:6]])  # the short records among them
    resident = ResidentTrainingSet(data, np.union1d(data.split.train, data.split.val), CPU)
    for length in (250, 333, data.X.shape[2]):
        pairs = zip(evaluation_batches(data, index, length, 16), resident.evaluation_batches(index, length, 16),
                    strict=True)
        for (rows, windows, use), (rows_r, windows_r, use_r) in pairs:
            assert np.array_equal(rows, rows_r)
            assert torch.equal(windows_r, windows) and torch.equal(use_r, use)
    short = next(resident.evaluation_batches(data.split.train[[2]], 250, 16))[2]  # 400 samples of signal
    assert short.tolist() == [[True, True, False, False, False, False, False]]  # windows at 0, 125, …, 750


def test_resident_batches_without_a_scaler_are_the_raw_crops(superdiagnostic_ds: TaskDataset):
    data = dataclasses.replace(superdiagnostic_ds, scaler=None)
    rows = data.split.train[:8]
    resident = ResidentTrainingSet(data, data.split.train, CPU)
    assert resident.scaler is None
    x_res, _ = resident.batch(rows, 250, torch.Generator().manual_seed(1))
    x_host, _ = training_batch(data, rows, 250, torch.Generator().manual_seed(1))
    assert torch.equal(x_res, x_host)


def test_a_row_outside_the_resident_set_is_an_error(superdiagnostic_ds: TaskDataset):
    data = superdiagnostic_ds
    resident = ResidentTrainingSet(data, data.split.train, CPU)
    with pytest.raises(EcgcoreError, match="rows it does not hold"):
        resident.batch(data.split.val[:2], 250, torch.Generator())


def test_resident_bytes_count_x_targets_and_scaler(superdiagnostic_ds: TaskDataset):
    data = superdiagnostic_ds
    rows = data.split.train
    n, leads, samples = rows.size, data.X.shape[1], data.X.shape[2]
    expected = 4 * (n * leads * samples + n * data.y.shape[1] + 2 * leads)
    assert resident_bytes(data, np.concatenate([rows, rows[:3]])) == expected  # repeats held once
    assert resident_bytes(dataclasses.replace(data, scaler=None), rows) == expected - 4 * 2 * leads


# ------------------------------------------------------------------------------- fit


def small_cnn() -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model("small_cnn", n_leads=12, n_classes=5)


def test_a_fit_on_resident_data_equals_one_on_host_batches(short_records: TaskDataset, tmp_path: Path,
                                                           caplog: pytest.LogCaptureFixture,
                                                           monkeypatch: pytest.MonkeyPatch):
    config = {"device": "cpu", "epochs": 3, "batch_size": 16, "crop_seconds": 2.5, "pos_weight": True,
              "eval_batch_size": 64}
    assert short_records.split.val.size > 0
    resident_batches = []
    batch = ResidentTrainingSet.batch
    monkeypatch.setattr(ResidentTrainingSet, "batch",
                        lambda self, *args: resident_batches.append(args[0].size) or batch(self, *args))
    with caplog.at_level(logging.INFO, logger="ecgcore.train.device_data"):
        host = fit(small_cnn(), short_records, TrainConfig(**config, data_on_device="never"),
                   checkpoint_dir=tmp_path / "host")
        assert resident_batches == []
        device = fit(small_cnn(), short_records, TrainConfig(**config, data_on_device="always"),
                     checkpoint_dir=tmp_path / "device")
    assert sum(resident_batches) == 3 * short_records.split.train.size, "every batch cut from the resident set"
    placements = [r.getMessage() for r in caplog.records if r.name == "ecgcore.train.device_data"]
    assert placements == ["training batches on the host: asked for: never; host batches",
                          ("training batches on the device: asked for: always; on the CPU the resident "
                           "tensors are in host memory")], "logged once per fit"
    assert host.epochs_run == device.epochs_run == 3
    for h, d in zip(host.history, device.history):
        for key in ("train_loss", "val_loss", "val_macro_auc"):
            assert d[key] == pytest.approx(h[key], abs=1e-6, rel=0), key
    assert host.history[0]["train_loss"] != host.history[-1]["train_loss"], "it trained"
    assert host.best_epoch == device.best_epoch
    assert host.best_state.keys() == device.best_state.keys()
    for key, value in host.best_state.items():
        torch.testing.assert_close(device.best_state[key], value, atol=1e-6, rtol=0)


def test_set_up_places_the_default_objective_and_keeps_others_on_the_host(superdiagnostic_ds: TaskDataset):
    from ecgcore.ssl import methods
    from ecgcore.train.distributed import Context
    from ecgcore.train.loop import set_up

    data, ctx = superdiagnostic_ds, Context()
    config = TrainConfig(device="cpu", crop_seconds=2.5, data_on_device="always")
    supervised = set_up(small_cnn(), data, config, None, ctx, CPU)
    assert supervised.placement.where == "device" and supervised.resident is not None
    assert np.array_equal(supervised.resident.rows, np.union1d(data.split.train, data.split.val)), "train + val"
    auto = set_up(small_cnn(), data, dataclasses.replace(config, data_on_device="auto"), None, ctx, CPU)
    assert (auto.placement.where, auto.placement.reason, auto.resident) == ("host", "CPU: host batches", None)
    streamed = set_up(small_cnn(), data, config, None, ctx, CPU, stream=StreamSettings(shard_size=8))
    assert (streamed.placement.where, streamed.resident) == ("host", None)
    assert "streamed in shards" in streamed.placement.reason
    method = methods.get_method(methods.method_config("simclr", {}))
    ssl = set_up(small_cnn(), data, config, None, ctx, CPU, objective=method)
    assert (ssl.placement.where, ssl.resident) == ("host", None)
    assert f"{type(method).__name__} objective makes its own batches" in ssl.placement.reason


# ------------------------------------------------------------------------------- placement


def usable(free: int) -> int:
    return int(free * (1 - DEVICE_MARGIN)) - RESERVE_BYTES


@pytest.mark.parametrize("asked", ["auto", "never"])
def test_host_batches_off_cuda_unless_always_is_asked(asked: str):
    for device in (CPU, torch.device("mps")):
        placement = decide_placement(asked, device, need_bytes=GB, free_bytes=None)
        assert placement.where == "host"
    assert decide_placement("auto", CPU, GB, None).reason == "CPU: host batches"
    assert decide_placement("never", CUDA, GB, 80 * GB).where == "host"
    assert "never" in decide_placement("never", CUDA, GB, 80 * GB).reason
    always = decide_placement("always", CPU, 100 * GB, None)
    assert always.where == "device" and "asked for: always" in always.reason


def test_auto_on_cuda_puts_the_training_set_there_when_it_fits():
    placement = decide_placement("auto", CUDA, need_bytes=1_046_352_000, free_bytes=79_100_000_000)
    assert placement.where == "device"
    assert placement.reason == "the training and validation rows (1.05 GB) fits in the GPU's 79.10 GB free"
    free = 10 * GB
    assert decide_placement("auto", CUDA, usable(free), free).where == "device"  # exactly at the limit
    short = decide_placement("auto", CUDA, usable(free) + 1, free)
    assert short.where == "host"
    assert short.reason.startswith(f"the training and validation rows do not fit: needs {usable(free) / GB:.2f} GB, "
                                   "10.00 GB free")
    assert short.reason.endswith("host batches instead")
    tiny = decide_placement("auto", CUDA, need_bytes=4_800_000, free_bytes=3 * GB)
    assert tiny.reason == "the training and validation rows (4.8 MB) fits in the GPU's 3.00 GB free"
    assert decide_placement("auto", CUDA, 1, RESERVE_BYTES).where == "host", "the reserve is kept free"
    assert decide_placement("auto", CUDA, GB, None).where == "host"  # free memory unknown


def test_always_on_cuda_refuses_a_training_set_that_does_not_fit():
    fits = decide_placement("always", CUDA, need_bytes=GB, free_bytes=40 * GB)
    assert fits.where == "device" and fits.reason.startswith("asked for: always; the training and validation rows (1.00 GB) fits")
    with pytest.raises(EcgcoreError, match=r"do not fit on cuda: needs 12.00 GB, 8.00 GB free"):
        decide_placement("always", CUDA, need_bytes=12 * GB, free_bytes=8 * GB)


def test_the_margin_is_a_fraction_of_free_memory():
    free = 20 * GB
    need = int(free * 0.5) - RESERVE_BYTES
    assert decide_placement("auto", CUDA, need, free, margin=0.5).where == "device"
    assert decide_placement("auto", CUDA, need + 1, free, margin=0.5).where == "host"


# ------------------------------------------------------------------------------- copies


def test_host_batches_for_the_cpu_are_neither_pinned_nor_copied():
    from ecgcore.train.device import pinned_for, to_device

    batch = (torch.zeros(2, 12, 250), torch.ones(2, 5))
    assert pinned_for(CPU, batch) is batch
    assert all(to_device(t, CPU) is t for t in batch)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_on_cuda_resident_batches_equal_host_batches_and_host_batches_arrive_pinned(short_records: TaskDataset):
    from ecgcore.train.device import pinned_for, to_device

    gpu = torch.device("cuda")
    resident = ResidentTrainingSet(short_records, short_records.split.train, gpu)
    rows = short_records.split.train[:24]
    x_res, y_res = resident.batch(rows, 250, torch.Generator().manual_seed(5))
    x_host, y_host = training_batch(short_records, rows, 250, torch.Generator().manual_seed(5))
    assert x_res.device.type == "cuda"
    assert torch.equal(x_res.cpu(), x_host) and torch.equal(y_res.cpu(), y_host)
    pinned = pinned_for(gpu, (x_host, y_host))
    assert all(t.is_pinned() for t in pinned)
    assert torch.equal(to_device(pinned[0], gpu).cpu(), x_host)
    assert to_device(x_res, gpu) is x_res
