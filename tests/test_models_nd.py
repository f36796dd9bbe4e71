"""Nguyen & Do's ResNets and RNNs and `small_cnn`: exact sizes, the transfer interface, rebuilds.

Parameter counts are the paper code's (12 leads, 1,000 samples, C = 5). Interface checks are
what every transfer strategy relies on: layer groups partition the parameters with the head
last, `reset_head` touches only the final Linear, and a model rebuilds from its `config`.
"""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from ecgcore.errors import EcgcoreError
from ecgcore.models import create_model, list_models
from ecgcore.models import nguyen_do_resnet as resnet_nd
from ecgcore.models import nguyen_do_rnn as rnn_nd

RESNETS = ["resnet1d18", "resnet1d34", "resnet1d50", "resnet1d101"]
RNNS = ["lstm_nd", "gru_nd", "bilstm_nd"]
MINE = [*RESNETS, *RNNS, "small_cnn"]
LENGTHS = [250, 1000, 2500]
# The big ResNets cost seconds per step on a shared 2-core CPU: shorter inputs only.
SHAPES = [(name, length) for name in MINE for length in LENGTHS
          if not (name in ("resnet1d50", "resnet1d101") and length > 250)
          and not (name == "resnet1d34" and length > 1000)]

PAPER_COUNTS = {
    "resnet1d18": 4_114_053, "resnet1d50": 17_010_821, "resnet1d101": 29_318_277,
    "lstm_nd": 545_605, "gru_nd": 534_205, "bilstm_nd": 1_091_205,
}


def _trainable(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _batch(n: int, length: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 12, length, generator=torch.Generator().manual_seed(seed))


def test_all_registered() -> None:
    assert set(MINE) <= set(list_models())


@pytest.mark.parametrize("name", sorted(PAPER_COUNTS))
def test_parameter_counts_match_the_paper(name: str) -> None:
    model = create_model(name, n_leads=12, n_classes=5, n_samples=1000)
    assert _trainable(model) == PAPER_COUNTS[name]


def test_small_and_resnet34_sizes() -> None:
    assert 50_000 <= _trainable(create_model("small_cnn")) <= 200_000
    # ResNet-34's blocks are BasicBlocks [3,4,6,3]: strictly between 18 and 50.
    assert PAPER_COUNTS["resnet1d18"] < _trainable(create_model("resnet1d34")) < PAPER_COUNTS["resnet1d50"]


@pytest.mark.parametrize(("name", "length"), SHAPES)
def test_forward_backward_reaches_every_parameter(name: str, length: int) -> None:
    torch.manual_seed(0)
    model = create_model(name, n_leads=12, n_classes=4, n_samples=length)
    model.train()
    out = model(_batch(2, length))
    assert out.shape == (2, 4) and out.dtype == torch.float32
    assert torch.isfinite(out).all()
    out.square().mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, f"no gradient for {missing[:5]}"


def _partition_ok(model: nn.Module, groups: list[nn.Module]) -> None:
    seen: dict[int, int] = {}
    for i, group in enumerate(groups):
        for p in group.parameters():
            assert id(p) not in seen, f"a parameter is in groups {seen[id(p)]} and {i}"
            seen[id(p)] = i
    assert set(seen) == {id(p) for p in model.parameters()}, "a parameter is in no group"


@pytest.mark.parametrize("name", MINE)
def test_layer_groups_partition_parameters_head_last(name: str) -> None:
    model = create_model(name, n_classes=5, n_samples=250)
    groups = model.layer_groups()
    _partition_ok(model, groups)
    assert groups[-1] is model.head
    assert len(groups) == (2 if name in RNNS else 6)
    if name in RESNETS:
        assert groups[:5] == [model.stem, model.layer1, model.layer2, model.layer3, model.layer4]
    if name in RNNS:
        assert groups[0] is model.rnn


@pytest.mark.parametrize("name", ["resnet1d18", "resnet1d50", *RNNS, "small_cnn"])
def test_reset_head_changes_width_and_keeps_everything_else(name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name, n_classes=5, n_samples=250)
    last = [m for m in model.head.modules() if isinstance(m, nn.Linear)][-1]
    final_ids = {id(last.weight), id(last.bias)}
    before = {n: p.detach().clone() for n, p in model.named_parameters() if id(p) not in final_ids}
    buffers = {n: b.clone() for n, b in model.named_buffers()}
    model.reset_head(3)
    assert model.n_classes == 3
    model.eval()
    assert model(_batch(2, 250)).shape == (2, 3)
    params = dict(model.named_parameters())
    for key, value in before.items():
        assert key in params and torch.equal(params[key], value), f"{key} changed"
    for key, value in dict(model.named_buffers()).items():
        assert torch.equal(value, buffers[key])
    _partition_ok(model, model.layer_groups())
    assert model.layer_groups()[-1] is model.head
    if name in RESNETS:  # Nguyen & Do replace fc2 only; fc1 (512 -> 512) stays pretrained
        assert model.head.fc1.out_features == 512 and model.head.fc2.out_features == 3


@pytest.mark.parametrize(("name", "dim"), [
    ("resnet1d18", 512), ("resnet1d50", 2048), ("lstm_nd", 250 * 100), ("gru_nd", 250 * 100),
    ("bilstm_nd", 250 * 200), ("small_cnn", 192),
])
def test_embed_shape_and_head_of_embed_is_forward(name: str, dim: int) -> None:
    model = create_model(name, n_classes=5, n_samples=250).eval()
    x = _batch(3, 250)
    with torch.no_grad():
        features = model.embed(x)
        assert features.shape == (3, dim)
        assert torch.allclose(model.head(features), model(x))


def test_rnn_embed_is_the_flattened_output_sequence() -> None:
    model = create_model("gru_nd", n_classes=2, n_samples=50).eval()
    x = _batch(2, 50)
    with torch.no_grad():
        sequence, _ = model.rnn(x.transpose(1, 2))  # (B, T, hidden), time-major
        assert torch.equal(model.embed(x), sequence.reshape(2, -1))


@pytest.mark.parametrize("name", RNNS)
def test_rnn_refuses_another_length(name: str) -> None:
    model = create_model(name, n_samples=250)
    with pytest.raises(EcgcoreError, match="built for 250 samples"):
        model(_batch(1, 300))


@pytest.mark.parametrize("name", MINE)
def test_create_model_config_round_trip(name: str) -> None:
    extra = {"widths": (16, 24, 32), "hidden": 32} if name == "small_cnn" else {}
    model = create_model(name, n_leads=12, n_classes=3, n_samples=250, **extra).eval()
    config = json.loads(json.dumps(model.config))  # run folders store it as JSON
    rebuilt = create_model(model.name, **config).eval()
    assert rebuilt.name == name and rebuilt.config == config
    assert [(n, p.shape) for n, p in rebuilt.state_dict().items()] == \
        [(n, p.shape) for n, p in model.state_dict().items()]
    rebuilt.load_state_dict(model.state_dict())
    x = _batch(2, 250)
    with torch.no_grad():
        assert torch.equal(rebuilt(x), model(x))


@pytest.mark.parametrize("name", ["resnet1d18", "lstm_nd", "gru_nd", "small_cnn"])
def test_seeded_builds_are_identical(name: str) -> None:
    torch.manual_seed(0)
    a = create_model(name, n_samples=250).state_dict()
    torch.manual_seed(0)
    b = create_model(name, n_samples=250).state_dict()
    torch.manual_seed(1)
    c = create_model(name, n_samples=250).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a if a[k].is_floating_point())


def test_resnet_init_is_kaiming_fan_out() -> None:
    torch.manual_seed(0)
    model = create_model("resnet1d50")
    conv = model.layer3[0].conv2  # 256 -> 256, kernel 3: fan_out = 768
    assert conv.weight.std().item() == pytest.approx((2 / (256 * 3)) ** 0.5, rel=0.05)
    assert torch.equal(model.layer3[0].bn3.weight, torch.ones(1024))


def _as_nguyen_do(state: dict[str, torch.Tensor], renames: dict[str, str]) -> dict[str, torch.Tensor]:
    """Our keys -> the paper code's keys and float64, as their checkpoints hold them."""
    out = {}
    for key, value in state.items():
        for ours, theirs in renames.items():
            if key.startswith(ours):
                key = theirs + key[len(ours):]
                break
        out[key] = value.double() if value.is_floating_point() else value
    return out


@pytest.mark.parametrize(("name", "module", "renames"), [
    ("resnet1d18", resnet_nd, {"stem.conv1.": "conv1.", "stem.bn1.": "bn1.",
                               "classifier.fc1.": "fc1.", "classifier.fc2.": "fc2."}),
    ("bilstm_nd", rnn_nd, {"rnn.": "lstm.", "classifier.": "fc."}),
    ("gru_nd", rnn_nd, {"rnn.": "gru.", "classifier.": "fc."}),
])
def test_nguyen_do_checkpoint_keys_load(name, module, renames) -> None:
    source = create_model(name, n_samples=100).eval()
    theirs = _as_nguyen_do(source.state_dict(), renames)
    assert "fc.weight" in theirs or "fc2.weight" in theirs
    target = create_model(name, n_samples=100).eval()
    target.load_state_dict(module.nguyen_do_state_dict(theirs))  # strict
    x = _batch(2, 100)
    with torch.no_grad():
        assert torch.allclose(target(x), source(x))


def test_small_cnn_overfits_a_tiny_batch_quickly() -> None:
    """50 Adam steps on 8 records (about 2 s on an idle 2-core CPU; no wall-clock assert,
    since the CPU is shared) must cut the loss by more than 80%."""
    torch.manual_seed(0)
    model = create_model("small_cnn", n_classes=5, n_samples=1000)
    x = _batch(8, 1000, seed=1)
    y = (torch.rand(8, 5, generator=torch.Generator().manual_seed(2)) > 0.5).float()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    loss_fn = nn.BCEWithLogitsLoss()
    losses = []
    for _ in range(50):
        optimizer.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    model.eval()
    with torch.no_grad():
        final = loss_fn(model(x), y).item()
    assert final < 0.2 * losses[0], (losses[0], final)
