"""The embedding cache: what it holds equals the model's own features, a second probe on the
same data reads it without running the encoder, its key follows the weights, the data and
the kind, and a half-written entry is never taken for a finished one."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ecgcore.checkpoint import Checkpoint
from ecgcore.data.pipeline import SplitConfig, TaskDataset, build_dataset
from ecgcore.data.prepare.config import PrepConfig
from ecgcore.errors import EcgcoreError
from ecgcore.models import ECGClassifier, create_model
from ecgcore.models.token_head import group_tokens
from ecgcore.train import TrainConfig
from ecgcore.transfer import StrategyOptions, get_strategy
from ecgcore.transfer.embedding_cache import (
    POOLED,
    TOKENS,
    cached_embeddings,
    embedding_key,
    embeddings_dir,
    open_embeddings,
    require_whole_window,
    weights_identity,
)

SMALL_NET1D = {"base_filters": 16, "filter_list": [16, 32], "m_blocks_list": [1, 1], "groups_width": 16}


@pytest.fixture(scope="module")
def data(demo_sites: Path, tmp_path_factory: pytest.TempPathFactory) -> TaskDataset:
    """The 5 % demo source at 50 Hz x 10 s, z-scored per record (no train-fitted scaler)."""
    return build_dataset(demo_sites / "source_ptbxl", "ptbxl_superdiagnostic",
                         PrepConfig(fs=50, seconds=10, normalize="zscore"),
                         SplitConfig(method="patient", val=0.25, test=0.15, seed=0),
                         tmp_path_factory.mktemp("embedding_cache_prep"), n_jobs=1)


def source_of(seed: int) -> Checkpoint:
    torch.manual_seed(seed)
    model = create_model("ecgfounder", n_leads=12, n_classes=2, **SMALL_NET1D)
    return Checkpoint(state_dict={k: v.clone() for k, v in model.state_dict().items()}, model_name="ecgfounder",
                      model_config=dict(model.config), classes=["a", "b"], class_names=["a", "b"], prep={},
                      stage="pretrain")


def set_up(source: Checkpoint, n_classes: int) -> ECGClassifier:
    """What a probe run does before fitting: the source backbone, a fresh final Linear."""
    model = create_model("ecgfounder", n_leads=12, n_classes=n_classes, **SMALL_NET1D)
    get_strategy("embedding_probe").setup(model, source, [str(i) for i in range(n_classes)], StrategyOptions())
    return model


class EncoderCalls:
    """Counts forward calls of the model's stem: every encoder pass goes through it."""

    def __init__(self, model: ECGClassifier) -> None:
        self.count = 0
        model.layer_groups()[0].register_forward_hook(lambda *args: self.bump())

    def bump(self) -> None:
        self.count += 1


def test_a_second_probe_reads_the_cache_and_runs_no_encoder(data: TaskDataset, workspace: Path) -> None:
    source = source_of(1)
    first = set_up(source, 5)
    calls = EncoderCalls(first)
    extracted = cached_embeddings(first, source, data, POOLED, batch_size=32)
    assert extracted.extracted and calls.count == 3, "90 records in batches of 32"
    assert extracted.values.shape == (len(data), 32) and extracted.values.dtype == np.float32
    assert extracted.record_ids == list(data.record_ids)
    assert extracted.path.parent == workspace / "cache" / "embeddings"
    with torch.no_grad():  # the pooled features are the final Linear's input: embed(x) for Net1D
        expected = first.eval().embed(torch.from_numpy(data.batch(np.arange(len(data))))).numpy()
    np.testing.assert_allclose(extracted.values, expected, rtol=1e-5, atol=1e-6)

    second = set_up(source, 3)  # another task's head: same encoder, same cache entry
    calls = EncoderCalls(second)
    again = cached_embeddings(second, source, data, POOLED, batch_size=7)
    assert not again.extracted and calls.count == 0 and again.key == extracted.key
    np.testing.assert_array_equal(again.take(np.array([5, 0, 3])), np.asarray(extracted.values)[[5, 0, 3]])


def test_token_embeddings_are_the_models_tokens_grouped_in_float16(data: TaskDataset, workspace: Path) -> None:
    source = source_of(2)
    model = set_up(source, 5)
    entry = cached_embeddings(model, source, data, TOKENS, max_tokens=20, batch_size=64)
    with torch.no_grad():
        tokens = model.eval().tokens(torch.from_numpy(data.batch(np.arange(len(data)))))
    assert tokens.shape[1:] == (63, 32), "500 samples / 2^3"
    assert entry.group == 7 and entry.values.shape == (len(data), 9, 32), "63 = 7 x 9: at most 20 groups"
    assert entry.values.dtype == np.float16
    np.testing.assert_allclose(entry.values.astype(np.float32), group_tokens(tokens, 7).numpy(),
                               rtol=2e-3, atol=1e-3)
    assert json.loads((entry.path / "meta.json").read_text())["group"] == 7
    small_cnn = create_model("small_cnn", n_leads=12, n_classes=5, n_samples=500)
    with pytest.raises(EcgcoreError, match="offers no token sequence"):
        cached_embeddings(small_cnn, source, data, TOKENS)


def test_the_key_follows_weights_data_kind_and_a_registered_checkpoints_sha256(
        data: TaskDataset, demo_sites: Path, tmp_path: Path) -> None:
    source = source_of(3)
    model = set_up(source, 5)
    key = embedding_key(model, source, data, POOLED)
    assert embedding_key(set_up(source, 2), source, data, POOLED) == key, "the class count does not matter"
    assert embedding_key(model, source_of(4), data, POOLED) != key
    assert embedding_key(model, source, data, TOKENS) != key
    assert embedding_key(model, source, data, POOLED, precision="bf16") != key
    other = build_dataset(demo_sites / "source_ptbxl", "ptbxl_superdiagnostic",
                          PrepConfig(fs=50, seconds=10, normalize="minmax"),
                          SplitConfig(method="patient", val=0.25, test=0.15, seed=0), tmp_path, n_jobs=1)
    assert embedding_key(model, source, other, POOLED) != key
    # a registered checkpoint is known by its file's digest, not by re-hashing its tensors
    registered = Checkpoint(**{**source.__dict__, "extra": {"sha256": "ab" * 32}})
    changed = Checkpoint(**{**source_of(5).__dict__, "extra": {"sha256": "ab" * 32}})
    assert weights_identity(registered) == weights_identity(changed) == "sha256:" + "ab" * 32
    assert weights_identity(source).startswith("state:") and weights_identity(source) != weights_identity(source_of(4))


def test_a_half_written_entry_is_rebuilt_and_no_temp_folder_stays(data: TaskDataset, workspace: Path) -> None:
    source = source_of(6)
    model = set_up(source, 5)
    entry = cached_embeddings(model, source, data, POOLED)
    (entry.path / "meta.json").unlink()  # as a build killed before its last write leaves it
    assert open_embeddings(entry.path) is None
    calls = EncoderCalls(model)
    rebuilt = cached_embeddings(model, source, data, POOLED)
    assert rebuilt.extracted and calls.count == 1 and rebuilt.path == entry.path
    assert [p.name for p in embeddings_dir().iterdir()] == [entry.key]
    (entry.path / "values.npy").write_bytes(b"not an array")
    assert open_embeddings(entry.path) is None


def test_probes_refuse_a_crop_of_the_prepared_window(data: TaskDataset) -> None:
    require_whole_window(data, TrainConfig(crop_seconds=10), "embedding_probe")  # the whole window: fine
    with pytest.raises(EcgcoreError, match="embedding_probe embeds each record's whole prepared window"):
        require_whole_window(data, TrainConfig(crop_seconds=2.5), "embedding_probe")


def test_a_stopped_extraction_leaves_no_entry(data: TaskDataset, workspace: Path) -> None:
    """A run's callbacks are asked after every batch (a cancelled job stops there)."""
    source = source_of(7)
    model = set_up(source, 5)
    asked = []
    with pytest.raises(EcgcoreError, match="stopped after 32 of 90 records"):
        cached_embeddings(model, source, data, POOLED, batch_size=32, stop=lambda: asked.append(1) or True)
    assert len(asked) == 1 and list(embeddings_dir().iterdir()) == []
    assert model.training, "the model's mode is restored"
