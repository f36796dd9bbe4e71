"""ECGFounder's Net1D: exact against the reference fixtures, its converter, and the transfer interface.

The fixtures in ../shared/fixtures/foundation/ecgfounder were made with the authors' own
`net1d.py` (PKUDigitalHealth/ECGFounder @ 04edac7, use_bn=False, use_do=False) and seeded
random weights (see that folder's README): `small.pt` holds a reduced configuration, its
state dict, an input and the reference's eval-mode logits and pooled features;
`full_keys.json` every key and shape of the published full-size checkpoint.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import torch
from conftest import foundation_fixture

from ecgcore.errors import EcgcoreError
from ecgcore.models import create_model
from ecgcore.models.ecgfounder import (
    INPUT_CONTRACT,
    Net1D,
    SamePadMaxPool1d,
    ecgfounder_state_dict,
    reference_key,
)
from ecgcore.models.input_contract import InputContract
from ecgcore.models.registry import layer_group_count
from ecgcore.transfer.strategy import checked_groups

SMALL_CONFIG = {"base_filters": 8, "filter_list": [8, 16, 24], "m_blocks_list": [1, 2, 1],
                "kernel_size": 5, "groups_width": 4}


@pytest.fixture(scope="module")
def small() -> dict[str, Any]:
    return foundation_fixture("ecgfounder", "small.pt")


@pytest.fixture(scope="module")
def full_keys() -> dict[str, Any]:
    return foundation_fixture("ecgfounder", "full_keys.json")


def _our_config(reference: dict[str, Any]) -> dict[str, Any]:
    """The reference's Net1D arguments -> ours (use_bn/use_do are fixed to False here)."""
    assert reference["use_bn"] is False and reference["use_do"] is False
    return {"n_leads": reference["in_channels"], "n_classes": reference["n_classes"],
            **{key: reference[key] for key in ("base_filters", "ratio", "filter_list", "m_blocks_list",
                                               "kernel_size", "stride", "groups_width")}}


def _loaded_small(small: dict[str, Any], wrapped: bool) -> Net1D:
    config = _our_config(small["config"])
    n_leads, n_classes = config.pop("n_leads"), config.pop("n_classes")
    model = create_model("ecgfounder", n_leads=n_leads, n_classes=n_classes, n_samples=5000, **config)
    checkpoint = {"state_dict": small["state_dict"]} if wrapped else small["state_dict"]
    model.load_state_dict(ecgfounder_state_dict(checkpoint, {"n_leads": n_leads, "n_classes": n_classes,
                                                             **config}))
    assert isinstance(model, Net1D)
    return model.eval()


# ---------------------------------------------------------------- exact against the reference
@pytest.mark.parametrize("wrapped", [False, True], ids=["state_dict", "published_file"])
def test_small_reproduces_reference_outputs(small: dict[str, Any], wrapped: bool) -> None:
    model = _loaded_small(small, wrapped)
    with torch.no_grad():
        features = model.embed(small["x"])
        logits = model(small["x"])
    assert features.shape == small["features"].shape
    torch.testing.assert_close(features, small["features"], atol=1e-5, rtol=0)
    torch.testing.assert_close(logits, small["logits"], atol=1e-5, rtol=0)


def test_unused_batch_norms_change_nothing(small: dict[str, Any]) -> None:
    """use_bn=False: the checkpoint's batch norms are carried, never applied."""
    model = _loaded_small(small, wrapped=False)
    with torch.no_grad():
        for name, module in model.named_modules():
            if isinstance(module, torch.nn.BatchNorm1d):
                module.weight.mul_(3.0).add_(1.0)
                module.running_mean.add_(5.0)
        logits = model(small["x"])
    torch.testing.assert_close(logits, small["logits"], atol=1e-5, rtol=0)


# ---------------------------------------------------------------- the published checkpoint's keys
def _meta_state(shapes: dict[str, list[int]]) -> dict[str, torch.Tensor]:
    """A state dict of the given shapes without memory (the converter reads keys and shapes)."""
    return {key: torch.empty(shape, device="meta", dtype=torch.int64 if key.endswith("num_batches_tracked")
                             else torch.float32) for key, shape in shapes.items()}


def test_full_size_matches_published_keys_and_count(full_keys: dict[str, Any]) -> None:
    config = _our_config(full_keys["config"])
    assert {k: v for k, v in config.items() if k not in ("n_leads", "n_classes")} == {
        "base_filters": 64, "ratio": 1, "filter_list": [64, 160, 160, 400, 400, 1024, 1024],
        "m_blocks_list": [2, 2, 2, 3, 3, 4, 4], "kernel_size": 16, "stride": 2, "groups_width": 16}
    model = create_model("ecgfounder", n_classes=150)  # the registered defaults are the published ones
    assert sum(p.numel() for p in model.parameters()) == full_keys["n_parameters"] == 30_819_014
    ours = {key: list(value.shape) for key, value in model.state_dict().items()}
    assert {reference_key(key): shape for key, shape in ours.items()} == full_keys["state_dict"]

    converted = ecgfounder_state_dict({"state_dict": _meta_state(full_keys["state_dict"])})
    assert {key: list(value.shape) for key, value in converted.items()} == ours


def test_published_lead_and_class_counts_come_from_the_file(full_keys: dict[str, Any]) -> None:
    """The 1-lead checkpoint and a fine-tuned head load with the published architecture."""
    shapes = dict(full_keys["state_dict"])
    shapes["first_conv.conv.weight"] = [64, 1, 16]
    shapes["dense.weight"], shapes["dense.bias"] = [3, 1024], [3]
    converted = ecgfounder_state_dict(_meta_state(shapes))
    assert converted["stem.conv.weight"].shape == (64, 1, 16) and converted["dense.weight"].shape == (3, 1024)


def test_renamed_key_is_refused_naming_the_mismatch(full_keys: dict[str, Any]) -> None:
    state = _meta_state(full_keys["state_dict"])
    state["stage_list.3.block_list.1.conv2.conv.kernel"] = state.pop("stage_list.3.block_list.1.conv2.conv.weight")
    with pytest.raises(EcgcoreError) as caught:
        ecgfounder_state_dict({"state_dict": state})
    message = str(caught.value)
    assert "missing keys: stage_list.3.block_list.1.conv2.conv.weight" in message
    assert "unexpected keys: stage_list.3.block_list.1.conv2.conv.kernel" in message
    assert "shape mismatches" not in message


def test_wrong_shapes_and_non_tensors_are_refused(small: dict[str, Any], full_keys: dict[str, Any]) -> None:
    # the reduced model's weights against the published architecture: shapes named, five at most
    with pytest.raises(EcgcoreError, match=r"shape mismatches: first_conv\.conv\.weight \(16, 12, 16\) in the "
                                           r"file, \(64, 12, 16\) in the model.*\(\+\d+ more\)"):
        ecgfounder_state_dict(small["state_dict"])
    with pytest.raises(EcgcoreError, match="not tensors: epoch"):
        ecgfounder_state_dict({**_meta_state(full_keys["state_dict"]), "epoch": 3})


def test_converted_tensors_are_float32(small: dict[str, Any]) -> None:
    config = _our_config(small["config"])
    doubled = {k: v.double() if v.is_floating_point() else v for k, v in small["state_dict"].items()}
    converted = ecgfounder_state_dict(doubled, config)
    assert {v.dtype for v in converted.values()} == {torch.float32, torch.int64}


# ---------------------------------------------------------------- the transfer interface
def test_registry_defaults_and_layer_groups() -> None:
    """At the registry's defaults (12 leads, 5 classes, 1,000 samples) the full model runs."""
    model = create_model("ecgfounder")
    groups = checked_groups(model)
    assert len(groups) == layer_group_count("ecgfounder") == 9  # stem, seven stages, head
    assert groups[0] is model.stem and groups[-1] is model.head is model.dense
    assert [len(stage) for stage in groups[1:-1]] == [2, 2, 2, 3, 3, 4, 4]
    model.eval()
    with torch.no_grad():
        assert model.embed(torch.randn(1, 12, 1000)).shape == (1, 1024)
        assert model(torch.randn(1, 12, 1000)).shape == (1, 5)


def test_reset_head_and_short_odd_inputs() -> None:
    torch.manual_seed(0)
    model = create_model("ecgfounder", n_leads=3, n_classes=4, n_samples=37, **SMALL_CONFIG).eval()
    stages_before = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("dense.")}
    model.reset_head(2)
    assert model.n_classes == 2
    assert all(torch.equal(model.state_dict()[k], v) for k, v in stages_before.items())
    for length in (1, 37, 250):  # SAME padding: any length; 3 stride-2 stages + stem
        out = model(torch.randn(2, 3, length))
        assert out.shape == (2, 2) and torch.isfinite(out).all()
    assert model.cam_layer()(torch.randn(1, 16, 9)).shape == (1, 24, 5)
    with pytest.raises(ValueError, match="3 leads"):
        model(torch.randn(2, 12, 100))


def test_same_max_pool_pads_with_zeros() -> None:
    """The reference pads the shortcut's max-pool with zeros: a lone negative last sample gives 0."""
    x = torch.tensor([[[-1.0, -2.0, -3.0]]])
    assert SamePadMaxPool1d(2)(x).tolist() == [[[-1.0, 0.0]]]


def test_bad_architectures_are_refused() -> None:
    with pytest.raises(ValueError, match="may not shrink"):
        Net1D(12, 2, base_filters=16, filter_list=[16, 8], m_blocks_list=[1, 1], groups_width=4)
    with pytest.raises(ValueError, match="cannot be cut into"):
        Net1D(12, 2, base_filters=8, filter_list=[8], m_blocks_list=[1], groups_width=16)
    with pytest.raises(ValueError, match="one entry per stage"):
        Net1D(12, 2, filter_list=[64, 160], m_blocks_list=[2])


# ---------------------------------------------------------------- the input contract
def test_input_contract_is_the_reference_data_code() -> None:
    assert INPUT_CONTRACT.fs == 500 and INPUT_CONTRACT.n_samples == 5000 and INPUT_CONTRACT.duration_s == 10.0
    assert create_model("ecgfounder", n_classes=2).contract is INPUT_CONTRACT
    assert INPUT_CONTRACT.leads == ("I", "II", "III", "aVR", "aVL", "aVF",
                                    "V1", "V2", "V3", "V4", "V5", "V6")
    assert INPUT_CONTRACT.filter_parameters["bandpass_hz"] == [0.67, 40.0]
    assert INPUT_CONTRACT.source.startswith("https://github.com/PKUDigitalHealth/ECGFounder/")
    stored = json.loads(json.dumps(INPUT_CONTRACT.to_dict()))
    assert stored["leads"][4] == "aVL" and stored["filter_parameters"]["median_baseline_samples"] == 201
    with pytest.raises(ValueError, match="without repeats"):
        InputContract(fs=500, n_samples=10, leads=("I", "I"), filtering="", normalisation="", source="")
