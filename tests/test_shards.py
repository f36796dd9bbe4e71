"""The shard stream: every record once per epoch, ranks partition the shards, a resumed
stream equals the uninterrupted one, and no more than `buffer_shards` shards are held."""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field

import numpy as np
import pytest
import torch

from ecgcore.data.prepare.shards import MemmapShards, SyntheticShards
from ecgcore.errors import EcgcoreError
from ecgcore.train.data import (
    ShardStream,
    StreamedRows,
    UnlabelledRecords,
    draw_epoch_seed,
    training_batch,
)


@dataclass
class CountingSource:
    """Row i is filled with the number i; remembers every block it handed out (weakly), so a
    test can count the blocks still alive."""

    n_rows: int
    leads: int = 2
    samples: int = 8
    handed: list[weakref.ref] = field(default_factory=list)
    reads: list[tuple[int, int]] = field(default_factory=list)

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.n_rows, self.leads, self.samples

    def read(self, start: int, stop: int) -> np.ndarray:
        self.reads.append((start, stop))
        block = np.broadcast_to(np.arange(start, stop, dtype=np.float32)[:, None, None],
                                (stop - start, self.leads, self.samples)).copy()
        self.handed.append(weakref.ref(block))
        return block

    def alive(self) -> int:
        return sum(ref() is not None for ref in self.handed)


def epoch(stream: ShardStream, seed: int, rank: int = 0, world: int = 1, start: int = 0) -> list[np.ndarray]:
    return [rows for rows, _x in stream.batches(seed, rank, world, start)]


def test_every_record_once_per_epoch_with_its_own_signal() -> None:
    stream = ShardStream(CountingSource(1003), shard_size=50, buffer_shards=3, batch_size=64)
    seen = []
    for rows, x in stream.batches(epoch_seed=7):
        assert np.array_equal(x[:, 0, 0], rows.astype(np.float32))  # the signal is the row's
        seen.append(rows)
    rows = np.concatenate(seen)
    assert np.array_equal(np.sort(rows), np.arange(1003))
    assert [r.size for r in seen] == stream.batch_sizes()
    assert not np.array_equal(rows, np.arange(1003))  # shuffled
    assert not np.array_equal(rows, np.concatenate(epoch(stream, 8)))  # differently each epoch


def test_index_selects_rows_and_shards_are_read_whole_and_once() -> None:
    source = CountingSource(400)
    index = np.arange(0, 400, 3)
    stream = ShardStream(source, shard_size=40, buffer_shards=2, batch_size=16, index=index)
    assert np.array_equal(np.sort(np.concatenate(epoch(stream, 1))), index)
    assert sorted(source.reads) == [(k, k + 40) for k in range(0, 400, 40)]


def test_rows_mix_across_the_shards_of_a_buffer() -> None:
    stream = ShardStream(CountingSource(400), shard_size=50, buffer_shards=4, batch_size=100)
    first = epoch(stream, 3)[0]
    assert len(np.unique(first // 50)) > 1


def test_two_ranks_read_disjoint_shards_and_run_the_same_steps() -> None:
    stream = ShardStream(CountingSource(1000), shard_size=50, buffer_shards=2, batch_size=32)
    per_rank = [np.concatenate(epoch(stream, 11, rank, 2)) for rank in (0, 1)]
    shards = [set((rows // 50).tolist()) for rows in per_rank]
    assert not shards[0] & shards[1]
    assert shards[0] | shards[1] == set(range(20))
    assert len(epoch(stream, 11, 0, 2)) == len(epoch(stream, 11, 1, 2)) == len(stream.batch_sizes(2))
    assert per_rank[0].size == per_rank[1].size == 500


def test_unequal_shards_give_every_rank_the_rows_of_its_smallest_share() -> None:
    stream = ShardStream(CountingSource(1010), shard_size=100, buffer_shards=2, batch_size=32)  # last shard: 10 rows
    assert stream.epoch_rows(2) == 10 + 4 * 100
    for rank in (0, 1):
        assert np.concatenate(epoch(stream, 5, rank, 2)).size == stream.epoch_rows(2)
    with pytest.raises(EcgcoreError, match="cannot feed"):
        stream.epoch_rows(20)


def test_resumed_mid_epoch_equals_uninterrupted() -> None:
    source = CountingSource(777)
    stream = ShardStream(source, shard_size=40, buffer_shards=3, batch_size=50)
    whole = list(stream.batches(21))
    source.reads.clear()
    resumed = list(stream.batches(21, start=9))
    assert len(resumed) == len(whole) - 9
    for (rows_a, x_a), (rows_b, x_b) in zip(whole[9:], resumed):
        assert np.array_equal(rows_a, rows_b) and np.array_equal(x_a, x_b)
    assert len(source.reads) < stream.n_shards  # the windows before batch 9 were not read


def test_epoch_seed_comes_from_the_fit_generator() -> None:
    a, b = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    assert draw_epoch_seed(a) == draw_epoch_seed(b)
    assert draw_epoch_seed(a) != draw_epoch_seed(torch.Generator().manual_seed(1))


@pytest.mark.parametrize("buffer_shards", [1, 3])
def test_at_most_buffer_shards_held(buffer_shards: int) -> None:
    source = CountingSource(2000)
    stream = ShardStream(source, shard_size=37, buffer_shards=buffer_shards, batch_size=64)
    peak = 0
    for _rows, _x in stream.batches(2):
        peak = max(peak, source.alive())
    assert 1 <= peak <= buffer_shards


def test_memmap_shards_read_the_file(tmp_path) -> None:
    x = np.random.default_rng(0).normal(size=(30, 3, 5)).astype(np.float32)
    np.save(tmp_path / "X.npy", x)
    mapped = np.load(tmp_path / "X.npy", mmap_mode="r")
    shards = MemmapShards(mapped)
    assert shards.shape == (30, 3, 5)
    assert np.array_equal(shards.read(7, 19), x[7:19])
    assert np.array_equal(MemmapShards(x).read(0, 30), x)
    with pytest.raises(EcgcoreError, match="outside"):
        shards.read(25, 31)


def test_synthetic_rows_depend_on_their_index_only() -> None:
    source = SyntheticShards(10_000, seed=3)
    assert source.shape == (10_000, 12, 1000)
    block = source.read(100, 164)
    assert block.dtype == np.float32 and block.shape == (64, 12, 1000)
    assert np.array_equal(block[10:20], source.read(110, 120))
    assert not np.allclose(block[0], block[1])
    assert not np.array_equal(block, SyntheticShards(10_000, seed=4).read(100, 164))
    assert np.isfinite(block).all() and 0.1 < float(np.abs(block).max()) < 5


def test_streamed_rows_feed_an_objective_batch() -> None:
    stream = ShardStream(SyntheticShards(300), shard_size=64, buffer_shards=2, batch_size=32)
    rows, x = next(stream.batches(0))
    view = StreamedRows(rows, x, UnlabelledRecords(300, fs=100.0))
    crops, y = training_batch(view, rows, 250, torch.Generator().manual_seed(0))  # type: ignore[arg-type]
    assert crops.shape == (32, 12, 250) and y.shape == (32, 0)
    assert np.array_equal(view.raw_rows(rows[::-1]), x[::-1])
    with pytest.raises(EcgcoreError, match="does not hold"):
        view.raw_rows(np.array([int(np.setdiff1d(np.arange(300), rows)[0])]))


class KillAt:
    """Cancels a fit at (epoch, step)."""

    def __init__(self, epoch: int, step: int) -> None:
        self.epoch, self.step, self.stop = epoch, step, False

    def on_step(self, epoch: int, step: int, total: int) -> None:
        self.stop = self.stop or (epoch, step) == (self.epoch, self.step)

    def on_epoch_end(self, row: dict) -> None:
        pass

    def should_stop(self) -> bool:
        return self.stop


def test_streamed_pretraining_resumes_to_the_same_encoder_and_differs_from_unstreamed(
        superdiagnostic_ds, tmp_path) -> None:
    from ecgcore.ssl.methods import method_config
    from ecgcore.ssl.pretrain import pretrain_encoder, stream_settings
    from ecgcore.train import TrainConfig

    config = method_config("simclr", {})
    assert stream_settings(superdiagnostic_ds, config, None) is None  # small: not streamed by default
    asked = stream_settings(superdiagnostic_ds, method_config("simclr", {"stream": True, "shard_size": 16,
                                                                         "buffer_shards": 2}), None)
    assert (asked.shard_size, asked.buffer_shards) == (16, 2)  # [pretrain] stream = true, shard_size = 16
    assert stream_settings(superdiagnostic_ds, method_config("masked", {"stream": True}), False) is None
    train = TrainConfig(epochs=2, batch_size=16, crop_seconds=2.5, device="cpu", seed=5)
    run = lambda folder, **kw: pretrain_encoder("small_cnn", config, superdiagnostic_ds, train, seed=5,
                                                checkpoint_dir=tmp_path / folder, stream=True, **kw)
    whole = run("a")
    assert any("streamed in shards" in note for note in whole.fit.notes)
    killed = run("b", callbacks=[KillAt(epoch=1, step=2)])
    assert killed.fit.cancelled and killed.fit.epochs_run == 1
    resumed = run("b")
    assert [r["train_loss"] for r in resumed.fit.history] == [r["train_loss"] for r in whole.fit.history]
    mine, theirs = resumed.backbone.state_dict(), whole.backbone.state_dict()
    assert all(torch.equal(mine[k], theirs[k]) for k in mine)
    plain = pretrain_encoder("small_cnn", config, superdiagnostic_ds, train, seed=5, checkpoint_dir=tmp_path / "c",
                             stream=False)
    assert [r["train_loss"] for r in plain.fit.history] != [r["train_loss"] for r in whole.fit.history]


def test_streamed_fit_sees_every_training_row_once_per_epoch(superdiagnostic_ds) -> None:
    from ecgcore.train.data import StreamSettings

    train_rows = np.asarray(superdiagnostic_ds.split.train)
    stream = StreamSettings(shard_size=16, buffer_shards=2).stream(superdiagnostic_ds.X, train_rows, 8)
    seen = [(rows, x) for rows, x in stream.batches(0)]
    assert np.array_equal(np.sort(np.concatenate([r for r, _ in seen])), np.sort(train_rows))
    rows, x = seen[0]
    assert np.array_equal(x, superdiagnostic_ds.raw_rows(rows))
