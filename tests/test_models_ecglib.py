"""ecglib's architectures (Avetisyan et al. 2024): exact against ecglib, and the transfer interface.

The pinned numbers below were produced once with ecglib 1.1.1's own classes
(`ecglib/models/architectures/resnet1d.py` and `densenet1d.py`, built with the defaults of
its `ResNetConfig` / `DenseNetConfig` as `ecglib.models.create_model` does, fastai 2.7.19
for `LinBnDrop` / `AdaptiveConcatPool1d`, torch 2.13.0 CPU), from a throwaway install that
is not a dependency of this project:

- parameter counts for (leads, classes);
- a fingerprint of ecglib's state dict: sha256 of the sorted "key shape" lines, first 16
  hex digits (every key and every shape, so loading their checkpoints is covered);
- the eval-mode logits of ecglib's model after its state dict is filled with the
  deterministic `_fill` values below, for the input `_signal()`. The same weights, renamed
  by `ecglib_state_dict` and loaded strictly here, must give the same logits. (In that
  one-off comparison the two forwards agreed bit for bit, in train mode too, and builds
  after the same `torch.manual_seed` had identical initial state dicts.)
"""

from __future__ import annotations

import hashlib
import json
import math
import re

import pytest
import torch
from torch import nn

from ecgcore.models import create_model, list_models

from ecgcore.models import nguyen_do_resnet as resnet_nd
from ecgcore.models.ecglib import EcglibDenseNet1d, EcglibResNet1d, ecglib_state_dict
from ecgcore.transfer.strategy import checked_groups

RESNETS = ["ecglib_resnet1d18", "ecglib_resnet1d50", "ecglib_resnet1d101"]
DENSENETS = ["ecglib_densenet1d121"]
ALL = [*RESNETS, *DENSENETS]
# Everyday checks skip the 28M-parameter resnet1d101 where 18/50 already cover the code.
QUICK = ["ecglib_resnet1d18", "ecglib_resnet1d50", "ecglib_densenet1d121"]

# ecglib 1.1.1, sum(p.numel() for p in model.parameters()), keyed by (leads, classes).
ECGLIB_COUNTS = {
    "ecglib_resnet1d18": {(12, 1): 6_837_888, (12, 3): 6_846_080, (1, 1): 6_835_776},
    "ecglib_resnet1d50": {(12, 1): 15_968_384, (12, 3): 15_976_576, (1, 1): 15_966_272},
    "ecglib_resnet1d101": {(12, 1): 28_275_840, (12, 3): 28_284_032, (1, 1): 28_273_728},
    "ecglib_densenet1d121": {(12, 1): 5_535_681, (12, 3): 5_537_731, (1, 1): 5_530_753},
}
# ecglib 1.1.1 state dicts (12 leads, 1 class): number of keys and fingerprint.
ECGLIB_STATE = {
    "ecglib_resnet1d18": (144, "697f9e1b1497504f"),
    "ecglib_resnet1d50": (324, "b1fd2458169df354"),
    "ecglib_resnet1d101": (None, "3d92d31117407778"),
    "ecglib_densenet1d121": (847, "8e2ded8703d2f52c"),
}
# ecglib 1.1.1 eval-mode logits (12 leads, 3 classes) for `_fill` weights and `_signal()`.
ECGLIB_LOGITS = {
    "ecglib_resnet1d18": [16.26312828063965, -4.6412034034729, -18.992557525634766,
                          22.332279205322266, -4.842473983764648, -25.180084228515625],
    "ecglib_resnet1d50": [2389.47705078125, -3407.16552734375, -4393.1923828125,
                          2357.638671875, -3356.01904296875, -4331.2744140625],
    "ecglib_densenet1d121": [9.072811126708984, -28.853302001953125, 8.937490463256836,
                             9.30455207824707, -29.626216888427734, 9.189203262329102],
}


def _as_ecglib(name: str, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our keys -> ecglib's (the inverse of `ecglib_state_dict`)."""
    if name in RESNETS:
        return {re.sub(r"^classifier\.", "head.lin_bn_drop.", k): v for k, v in state.items()}
    return {re.sub(r"^backbone\.stage\d+\.final_bn\.", "final_bn.",
                   re.sub(r"^backbone\.stage\d+\.(denseblock|transition)", r"backbone.\1", k)): v
            for k, v in state.items()}


def _fingerprint(state: dict[str, torch.Tensor]) -> str:
    lines = "".join(f"{k} {tuple(v.shape)}\n" for k, v in sorted(state.items()))
    return hashlib.sha256(lines.encode()).hexdigest()[:16]


def _fill(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Deterministic weights by position in ecglib's sorted key order (no RNG involved)."""
    out = {}
    for i, (key, value) in enumerate(sorted(state.items())):
        if not value.is_floating_point():
            out[key] = value.clone()
            continue
        n = value.numel()
        base = torch.sin(torch.arange(n, dtype=torch.float64) * 0.37 + i)
        if key.endswith("running_var"):
            t = 1.0 + 0.25 * base.abs()
        elif key.endswith("running_mean"):
            t = 0.05 * base
        elif key.endswith("bias"):
            t = 0.02 * base
        else:
            fan_in = max(1, n // value.shape[0]) if value.ndim > 1 else 1
            t = (1.0 + 0.5 * base) if value.ndim == 1 else base * (1.5 / math.sqrt(fan_in))
        out[key] = t.reshape(value.shape).to(value.dtype)
    return out


def _signal() -> torch.Tensor:
    t = torch.arange(2 * 12 * 256, dtype=torch.float32).reshape(2, 12, 256)
    return torch.sin(t * 0.05) + 0.1 * torch.cos(t * 0.31)


def _batch(n: int, length: int, leads: int = 12) -> torch.Tensor:
    return torch.randn(n, leads, length, generator=torch.Generator().manual_seed(0))


def _n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_registered_beside_nguyen_do_models() -> None:
    assert set(ALL) <= set(list_models())
    # The plain names stay Nguyen & Do's (their runs' configs and hashes do not change).
    assert isinstance(create_model("resnet1d18", n_samples=250), resnet_nd.ResNet1dND)


@pytest.mark.parametrize("name", ALL)
def test_parameter_counts_and_state_dict_are_ecglibs(name: str) -> None:
    for (leads, classes), count in ECGLIB_COUNTS[name].items():
        if name == "ecglib_resnet1d101" and (leads, classes) != (12, 1):
            continue  # the largest model once only; the other shapes are covered by 18/50
        model = create_model(name, n_leads=leads, n_classes=classes, n_samples=5000)
        assert _n_params(model) == count, (leads, classes)
        if (leads, classes) == (12, 1):
            theirs = _as_ecglib(name, model.state_dict())
            n_keys, fingerprint = ECGLIB_STATE[name]
            assert n_keys is None or len(theirs) == n_keys
            assert _fingerprint(theirs) == fingerprint


@pytest.mark.parametrize("name", sorted(ECGLIB_LOGITS))
def test_ecglib_weights_give_ecglibs_logits(name: str) -> None:
    model = create_model(name, n_leads=12, n_classes=3, n_samples=256)
    theirs = _fill(_as_ecglib(name, model.state_dict()))
    model.load_state_dict(ecglib_state_dict(theirs))  # strict
    model.eval()
    with torch.no_grad():
        logits = model(_signal())
    expected = torch.tensor(ECGLIB_LOGITS[name]).reshape(2, 3)
    assert torch.allclose(logits, expected, rtol=1e-4, atol=1e-4), logits


@pytest.mark.parametrize(("name", "length"), [("ecglib_resnet1d18", 500), ("ecglib_resnet1d50", 128),
                                              ("ecglib_densenet1d121", 500)])
def test_forward_backward_reaches_every_parameter(name: str, length: int) -> None:
    torch.manual_seed(0)
    model = create_model(name, n_leads=12, n_classes=4, n_samples=length).train()
    out = model(_batch(2, length))
    assert out.shape == (2, 4) and out.dtype == torch.float32 and torch.isfinite(out).all()
    out.square().mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, f"no gradient for {missing[:5]}"


def test_shapes_and_heads_as_ecglib_builds_them() -> None:
    resnet = create_model("ecglib_resnet1d18", n_classes=2, n_samples=5000).eval()
    assert isinstance(resnet, EcglibResNet1d)
    bn, drop, linear = resnet.head
    assert isinstance(bn, nn.BatchNorm1d) and bn.num_features == 4096
    assert torch.all(bn.bias == 1e-3), "fastai's BatchNorm starts its bias at 1e-3"
    assert isinstance(drop, nn.Dropout) and drop.p == 0.5
    assert isinstance(linear, nn.Linear) and linear.bias is None and linear.in_features == 4096
    first = resnet.backbone.hidden_block0.ResidualBlock1d_layer0
    assert first.conv2.kernel_size == (3,) and first.conv2.padding == (1,) and first.conv2.stride == (2,)
    x = _batch(1, 5000)
    with torch.no_grad():
        assert resnet.features(x).shape == (1, 2048, 79)  # stem /4, four stride-2 stages /16
        features = resnet.embed(x)
        assert features.shape == (1, 4096)
        assert torch.equal(features[:, :2048], resnet.features(x).amax(dim=2)), "max, then mean"
        assert torch.allclose(resnet.head(features), resnet(x))
    assert create_model("ecglib_resnet1d18", n_samples=250, head_dropout=0.0).head[1].__class__ \
        is nn.Linear, "no Dropout module at p=0, as fastai's LinBnDrop"

    dense = create_model("ecglib_densenet1d121", n_classes=2, n_samples=5000).eval()
    assert isinstance(dense, EcglibDenseNet1d)
    assert isinstance(dense.head, nn.Linear) and dense.head.in_features == 1024
    assert dense.stem[0].kernel_size == (7,) and dense.stem[0].bias is not None
    assert dense.backbone.stage2.denseblock2.denselayer23.conv1.kernel_size == (3,)
    assert [len(stage[0]) for stage in dense.backbone] == [6, 12, 24, 16]
    with torch.no_grad():
        features = dense.embed(x)
        assert features.shape == (1, 1024)
        assert torch.allclose(dense.head(features), dense(x))


@pytest.mark.parametrize("name", QUICK)
def test_layer_groups_partition_parameters_head_last(name: str) -> None:
    model = create_model(name, n_classes=5, n_samples=250)
    groups = checked_groups(model)  # every parameter in exactly one group
    assert len(groups) == 6 and groups[0] is model.stem and groups[-1] is model.head
    if name in RESNETS:
        assert groups[1:5] == list(model.backbone)
    else:
        assert groups[1:5] == list(model.backbone)
        assert [type(m).__name__ for m in groups[4]] == ["DenseBlock", "BatchNorm1d"], "final BN last"
    names = {id(m) for _, m in model.named_modules()}
    assert all(id(group) in names for group in groups), "every group is a submodule of the model"


@pytest.mark.parametrize("name", QUICK)
def test_reset_head_changes_width_and_keeps_everything_else(name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name, n_classes=1, n_samples=250)
    last = [m for m in model.head.modules() if isinstance(m, nn.Linear)][-1]
    final = {id(p) for p in last.parameters()}
    before = {n: p.detach().clone() for n, p in model.named_parameters() if id(p) not in final}
    model.reset_head(3)
    assert model.n_classes == 3
    new = [m for m in model.head.modules() if isinstance(m, nn.Linear)][-1]
    assert (new.bias is None) == (name in RESNETS)
    params = dict(model.named_parameters())
    assert all(torch.equal(params[k], v) for k, v in before.items())
    checked_groups(model)
    assert model.layer_groups()[-1] is model.head
    with torch.no_grad():
        assert model.eval()(_batch(2, 250)).shape == (2, 3)
    with pytest.raises(ValueError, match="at least one class"):
        model.reset_head(0)


@pytest.mark.parametrize("name", QUICK)
def test_config_round_trip_and_cam_layer(name: str) -> None:
    model = create_model(name, n_leads=3, n_classes=2, n_samples=250, kernel_size=5).eval()
    config = json.loads(json.dumps(model.config))
    rebuilt = create_model(model.name, **config).eval()
    rebuilt.load_state_dict(model.state_dict())
    x = _batch(2, 250, leads=3)
    with torch.no_grad():
        assert torch.equal(rebuilt(x), model(x))
    seen = []
    hook = model.cam_layer().register_forward_hook(lambda m, i, o: seen.append(o.shape))
    with torch.no_grad():
        model(x)
    hook.remove()
    assert len(seen) == 1 and len(seen[0]) == 3, "Grad-CAM needs (batch, channels, time)"
    with pytest.raises(ValueError, match="expected input"):
        model(_batch(1, 250, leads=12))
