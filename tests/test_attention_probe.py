"""The attention probe: its head is the benchmark's learnable-query attention pooling (checked
against torch's multi-head attention as the reference calls it), the model holding it
reloads from its config, training runs on cached tokens (a second probe runs no encoder),
and a run through the experiment runner saves a model.pt that scores as the run did."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ecgcore.checkpoint import Checkpoint
from ecgcore.data.pipeline import SplitConfig, TaskDataset, build_dataset
from ecgcore.data.prepare.config import PrepConfig
from ecgcore.models import create_model
from ecgcore.models.token_head import (
    AttentionHead,
    TokenPooled,
    attention_heads,
    group_tokens,
    token_group,
)
from ecgcore.train import TrainConfig, predict
from ecgcore.transfer import StrategyOptions, get_strategy
from ecgcore.transfer.strategy import checked_groups

ROOT = Path(__file__).resolve().parents[1]
SMALL_NET1D = {"base_filters": 16, "filter_list": [16, 32], "m_blocks_list": [1, 1], "groups_width": 16}
SMALL_JEPA = {"embed_dim": 32, "depth": 2, "num_heads": 4}


def test_the_head_is_the_benchmarks_learnable_query_attention_pool() -> None:
    """clinical_ts/utils/heads.py LearnableQueryAttentionPool1d.forward: the query repeated per
    record, separate q/k/v projections, no biases, the output projection to the classes."""
    torch.manual_seed(0)
    head = AttentionHead(dim=32, n_classes=5, heads=16, group=1).eval()
    tokens = torch.randn(3, 7, 32)
    x = tokens.permute(1, 0, 2)
    pool = head.pool
    reference, _ = F.multi_head_attention_forward(
        query=pool.query.repeat(1, x.shape[1], 1), key=x, value=x, embed_dim_to_check=32, num_heads=16,
        q_proj_weight=pool.q_proj.weight, k_proj_weight=pool.k_proj.weight, v_proj_weight=pool.v_proj.weight,
        in_proj_weight=None, in_proj_bias=None, bias_k=None, bias_v=None, add_zero_attn=False, dropout_p=0,
        out_proj_weight=head.classifier.weight, out_proj_bias=None, use_separate_proj_weight=True,
        training=False, need_weights=False)
    torch.testing.assert_close(head(tokens), reference[0], rtol=1e-5, atol=1e-6)
    assert head.classifier.bias is None and all(p.bias is None for p in (pool.q_proj, pool.k_proj, pool.v_proj))
    assert pool.query.shape == (1, 1, 32)


def test_token_groups_divide_the_sequence_and_never_mix_two_leads_of_ecg_jepa() -> None:
    assert token_group(400, 80) == 5 and 50 % 5 == 0, "ECG-JEPA: 8 leads x 50 patches, lead-major"
    assert token_group(20, 80) == 1, "ECGFounder's 20 time steps stay as they are"
    assert token_group(63, 20) == 7 and token_group(13, 4) == 13
    tokens = torch.arange(2 * 6 * 3, dtype=torch.float32).reshape(2, 6, 3)
    torch.testing.assert_close(group_tokens(tokens, 3), torch.stack([tokens[:, :3].mean(1), tokens[:, 3:].mean(1)], 1))
    assert attention_heads(1024) == 16 and attention_heads(24) == 12 and attention_heads(7) == 7
    with pytest.raises(ValueError, match="do not split"):
        group_tokens(tokens, 4)


@pytest.mark.parametrize("arch, config, shape", [("ecgfounder", SMALL_NET1D, (12, 500)),
                                                 ("ecg_jepa", SMALL_JEPA, (8, 2500))])
def test_a_model_with_the_attention_head_reloads_from_its_config(arch: str, config: dict, shape: tuple) -> None:
    torch.manual_seed(1)
    encoder = create_model(arch, n_leads=shape[0], n_classes=3, n_samples=shape[1], **config)
    x = torch.randn(2, *shape)
    with torch.no_grad():
        n_tokens, dim = encoder.tokens(x).shape[1:]
    group = token_group(n_tokens, 80)
    model = create_model(arch, n_leads=shape[0], n_classes=4, n_samples=shape[1], **config,
                         token_head={"dim": dim, "heads": attention_heads(dim), "group": group})
    assert isinstance(model, TokenPooled) and model.n_classes == 4 and model.name == arch
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    rebuilt = create_model(arch, **model.config)
    rebuilt.load_state_dict(model.state_dict())  # strict: the same keys and shapes
    model.eval(), rebuilt.eval()
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x), model(x))
        torch.testing.assert_close(model(x), model.attention(model.tokens(x)))
    groups = checked_groups(model)  # every parameter in exactly one group
    assert groups[-1] is model.attention
    assert not any(isinstance(m, torch.nn.Linear) and m.out_features == 3 for m in model.encoder.modules()), \
        "the encoder's own head is gone"
    model.reset_head(2)
    assert model.n_classes == 2 and model.attention.classifier.bias is None


# ---------------------------------------------------------------- training on cached tokens
@pytest.fixture(scope="module")
def data(demo_sites: Path, tmp_path_factory: pytest.TempPathFactory) -> TaskDataset:
    return build_dataset(demo_sites / "source_ptbxl", "ptbxl_superdiagnostic",
                         PrepConfig(fs=50, seconds=10, normalize="zscore"),
                         SplitConfig(method="patient", val=0.25, test=0.15, seed=0),
                         tmp_path_factory.mktemp("attention_probe_prep"), n_jobs=1)


def test_the_probe_trains_on_cached_tokens_and_a_second_probe_runs_no_encoder(
        data: TaskDataset, workspace: Path, tmp_path: Path) -> None:
    torch.manual_seed(2)
    source_model = create_model("ecgfounder", n_leads=12, n_classes=2, **SMALL_NET1D)
    source = Checkpoint(state_dict=source_model.state_dict(), model_name="ecgfounder",
                        model_config=dict(source_model.config), classes=["a", "b"], class_names=["a", "b"],
                        prep={}, stage="pretrain")
    strategy = get_strategy("attention_probe")
    train = TrainConfig(epochs=3, batch_size=16, lr=1e-3, early_stopping_patience=None)
    fits, calls = [], []
    for attempt in range(2):
        model = create_model("ecgfounder", n_leads=12, n_classes=len(data.classes), **SMALL_NET1D)
        strategy.setup(model, source, list(data.classes), StrategyOptions())
        count = [0]
        model.stem.register_forward_hook(lambda *args, count=count: count.__setitem__(0, count[0] + 1))
        encoder_before = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("dense")}
        fits.append(strategy.fit_embeddings(model, source, data, train, checkpoint_dir=tmp_path / str(attempt)))
        calls.append(count[0])
    first, second = fits
    assert calls[0] >= 1 and calls[1] == 0, "the second probe reads the cache"
    assert second.phases[0]["probe"]["embeddings"]["from_cache"] and second.phases[0]["epochs_run"] == 3
    assert [row["phase"] for row in second.fit.history] == ["probe"] * 3
    state = second.model.state_dict()
    assert all(torch.equal(state[f"encoder.{k}"], v) for k, v in encoder_before.items()), "the encoder is frozen"
    assert second.model.config["token_head"] == {"dim": 32, "heads": 16, "group": 1}

    saved = create_model("ecgfounder", **second.model.config)  # model.pt's way back
    saved.load_state_dict(second.fit.best_state)
    test = data.split.test
    from_model = predict(saved, data, test, train)
    np.testing.assert_allclose(second.scores(test), from_model, atol=5e-3)  # tokens cached in float16
    np.testing.assert_allclose(first.scores(test), second.scores(test), atol=1e-6)  # same seed, same data


def test_attention_probe_runs_end_to_end_on_the_demo_net1d(demo_home: Path) -> None:
    """Through the experiment runner on net1d_small (its demo input contract), pretraining
    then the probe: model.pt (with the attention head) reloads in the views and scores the
    test records as predictions.npz says."""
    from ecgcore.experiments import run_experiment
    from ecgcore.experiments.execute import prepare_data
    from ecgcore.runs import RunStore
    from ecgcore.views.scoring import load_run

    run_ids = run_experiment(ROOT / "experiments" / "smoke.toml",
                             ['grid.arch=["net1d_small"]', 'grid.strategy=["attention_probe"]',
                              "pretrain.epochs=1", "train.epochs=2"])
    store = RunStore()
    folder = store.get(run_ids[-1])
    results = json.loads((folder.path / "results.json").read_text())
    assert results["strategy"] == "attention_probe" and results["epochs_run"] == 2
    probe = results["phases"][0]["probe"]
    assert probe["kind"] == "attention_pool" and probe["embeddings"]["dtype"] == "float16"
    run = load_run(results["run_id"])
    assert isinstance(run.model, TokenPooled)
    predictions = np.load(folder.path / "predictions.npz", allow_pickle=False)
    data = prepare_data(folder.run_config)
    position = {rid: i for i, rid in enumerate(data.record_ids)}
    rows = np.array([position[str(rid)] for rid in predictions["record_ids"]])
    with torch.no_grad():
        rescored = torch.sigmoid(run.model(torch.from_numpy(data.batch(rows)))).numpy()
    np.testing.assert_allclose(rescored, predictions["y_score"], atol=5e-3)
