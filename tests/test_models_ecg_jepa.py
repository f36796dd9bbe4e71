"""ECG-JEPA's encoder: exact against the reference fixtures, its converter, its input contract
and the transfer interface.

The fixtures in ../shared/fixtures/foundation/ecg_jepa were made with the authors' own
`ecg_jepa.py` + `pos_encoding.py` (sehunfromdaegu/ECG_JEPA @ d937ad2, built as
`ecg_jepa(**params).encoder`) and seeded random weights (see that folder's README):
`small.pt` holds a reduced configuration, the encoder's state dict, an input (2, 8, 2500) and
the reference's eval-mode `representation` and all 400 `tokens`; `full_keys.json` every key
and shape of the published encoder.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import torch
from conftest import foundation_fixture

from ecgcore.data.recordset import STANDARD_LEADS
from ecgcore.errors import EcgcoreError
from ecgcore.models import create_model
from ecgcore.models.ecg_jepa import (
    INPUT_CONTRACT,
    ECGJepa,
    ecg_jepa_state_dict,
    sincos_positions,
)
from ecgcore.models.input_contract import InputContract
from ecgcore.models.registry import layer_group_count
from ecgcore.transfer.strategy import checked_groups

FULL_POSITIONS = 400 * 768  # the fixed sin-cos table: a Parameter (untrained) there, a buffer here


@pytest.fixture(scope="module")
def small() -> dict[str, Any]:
    return foundation_fixture("ecg_jepa", "small.pt")


@pytest.fixture(scope="module")
def full_keys() -> dict[str, Any]:
    return foundation_fixture("ecg_jepa", "full_keys.json")


def _our_config(reference: dict[str, Any]) -> dict[str, Any]:
    """The reference's `ecg_jepa` arguments -> this registry's (the predictor is not built)."""
    assert reference["c"] == 8 and reference["pos_type"] == "sincos"
    assert reference["leads"] == list(range(8))
    return {"embed_dim": reference["encoder_embed_dim"], "depth": reference["encoder_depth"],
            "num_heads": reference["encoder_num_heads"]}


def _small_model(small: dict[str, Any], checkpoint: dict[str, Any]) -> ECGJepa:
    model = create_model("ecg_jepa", n_leads=8, n_classes=3, n_samples=2500, **_our_config(small["config"]))
    result = model.load_state_dict(ecg_jepa_state_dict(checkpoint), strict=False)
    assert result.unexpected_keys == [] and set(result.missing_keys) == {"classifier.weight", "classifier.bias"}
    assert isinstance(model, ECGJepa)
    return model.eval()


@pytest.mark.parametrize("wrapped", [True, False], ids=["checkpoint", "state_dict"])
def test_small_model_reproduces_the_reference(small: dict[str, Any], wrapped: bool) -> None:
    checkpoint = {"encoder": small["state_dict"], "epoch": 3} if wrapped else small["state_dict"]
    model = _small_model(small, checkpoint)
    with torch.no_grad():
        tokens = model.encoder.tokens(small["x"])
        representation = model.embed(small["x"])
        logits = model(small["x"])
    assert tokens.shape == small["tokens"].shape == (2, 400, 64)
    torch.testing.assert_close(tokens, small["tokens"], rtol=0, atol=1e-5)
    torch.testing.assert_close(representation, small["representation"], rtol=0, atol=1e-5)
    assert logits.shape == (2, 3)


def test_fresh_positions_and_mask_are_the_reference_ones(small: dict[str, Any]) -> None:
    """A model built from scratch (scratch, random_frozen) has the reference's fixed
    positions, and the lead/time mask: a token sees its own lead and its own time patch."""
    model = create_model("ecg_jepa", n_leads=8, n_samples=2500, **_our_config(small["config"]))
    torch.testing.assert_close(model.encoder.pos_embed, small["state_dict"]["pos_embed"], rtol=0, atol=1e-6)
    assert torch.equal(sincos_positions(64, 8, 50), model.encoder.pos_embed)
    allowed = model.encoder.allowed
    assert allowed.shape == (400, 400) and bool((allowed.sum(dim=1) == 50 + 7).all())
    assert allowed[0, 49] and allowed[0, 50] and allowed[0, 350]  # same lead; same patch, leads 1 and 7
    assert not allowed[0, 51] and not allowed[120, 171]  # other lead, other patch
    assert "encoder.allowed" not in model.state_dict()  # derived, not a checkpoint key


def test_converter_accepts_the_published_encoder(full_keys: dict[str, Any]) -> None:
    state = {key: torch.empty(shape) for key, shape in full_keys["state_dict"].items()}
    converted = ecg_jepa_state_dict({"encoder": state})
    model = create_model("ecg_jepa", n_classes=5)
    assert full_keys["n_parameters"] == 85_374_720
    assert sum(v.numel() for k, v in model.state_dict().items()
               if k.startswith("encoder.")) == full_keys["n_parameters"]
    trainable = sum(p.numel() for p in model.encoder.parameters())
    assert trainable == full_keys["n_parameters"] - FULL_POSITIONS
    assert set(converted) == {k for k in model.state_dict() if k.startswith("encoder.")}
    result = model.load_state_dict(converted, strict=False)
    assert result.unexpected_keys == [] and set(result.missing_keys) == {"classifier.weight", "classifier.bias"}


def test_converter_refuses_a_renamed_key_naming_it(full_keys: dict[str, Any]) -> None:
    shapes = dict(full_keys["state_dict"])
    shapes["encoder_blocks.blocks.5.attn.qkv_weight"] = shapes.pop("encoder_blocks.blocks.5.attn.qkv.weight")
    state = {key: torch.empty(shape, device="meta") for key, shape in shapes.items()}
    with pytest.raises(EcgcoreError) as refused:
        ecg_jepa_state_dict({"encoder": state})
    message = str(refused.value)
    assert "missing encoder_blocks.blocks.5.attn.qkv.weight" in message
    assert "unexpected encoder_blocks.blocks.5.attn.qkv_weight" in message


def test_converter_refuses_a_shape_mismatch_and_a_foreign_state(small: dict[str, Any]) -> None:
    state = dict(small["state_dict"])
    state["encoder_blocks.blocks.1.mlp.fc1.weight"] = torch.zeros(128, 64)
    with pytest.raises(EcgcoreError, match=r"blocks\.1\.mlp\.fc1\.weight: shape \(128, 64\), expected \(256, 64\)"):
        ecg_jepa_state_dict(state)
    with pytest.raises(EcgcoreError, match="not an ECG-JEPA encoder state dict"):
        ecg_jepa_state_dict({"state_dict": {"conv.weight": torch.zeros(3, 3)}})


def test_checkpoint_weights_do_not_fit_another_size(small: dict[str, Any]) -> None:
    """The converter checks the checkpoint against itself; loading into a model of another
    size is refused by torch's strict shape check."""
    model = create_model("ecg_jepa", embed_dim=32, depth=2, num_heads=4)
    with pytest.raises(RuntimeError, match="size mismatch"):
        model.load_state_dict(ecg_jepa_state_dict(small["state_dict"]), strict=False)


def test_input_contract_is_declared_from_the_reference_data_code() -> None:
    assert isinstance(INPUT_CONTRACT, InputContract) and ECGJepa.contract is INPUT_CONTRACT
    assert (INPUT_CONTRACT.fs, INPUT_CONTRACT.n_samples, INPUT_CONTRACT.duration_s) == (250, 2500, 10.0)
    assert INPUT_CONTRACT.leads == ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")
    assert set(INPUT_CONTRACT.leads) <= set(STANDARD_LEADS)
    assert INPUT_CONTRACT.filter_parameters == {}  # pretraining and linear evaluation: unfiltered
    assert "sehunfromdaegu/ECG_JEPA" in INPUT_CONTRACT.source and INPUT_CONTRACT.source.endswith("ecg_data.py")
    assert json.loads(json.dumps(INPUT_CONTRACT.to_dict()))["leads"] == list(INPUT_CONTRACT.leads)


def test_registry_defaults_build_the_contract_shape() -> None:
    """`layer_group_count` builds at the registry's defaults (12 leads, 1,000 samples): the
    model takes its contract's shape all the same, records it in `config`, and refuses
    other input with a message naming the contract."""
    model = create_model("ecg_jepa", embed_dim=32, depth=3, num_heads=4)
    assert model.config == {"n_leads": 8, "n_classes": 5, "n_samples": 2500, "embed_dim": 32,
                            "depth": 3, "num_heads": 4}
    assert model.embed(torch.zeros(1, 8, 2500)).shape == (1, 32)
    with pytest.raises(ValueError, match=r"8 leads, 2500 samples.*I, II, V1.*250 Hz"):
        model(torch.zeros(1, 12, 1000))
    assert layer_group_count("ecg_jepa") == 5
    rebuilt = create_model("ecg_jepa", **{k: v for k, v in model.config.items()})
    assert rebuilt.config == model.config


def test_layer_groups_full_size() -> None:
    """[W_P, blocks 0-3, blocks 4-7, blocks 8-11 + final norm, head]; every parameter in one."""
    model = create_model("ecg_jepa", n_leads=8, n_samples=2500)
    groups = checked_groups(model)
    blocks = model.encoder.encoder_blocks.blocks
    assert groups[0] is model.encoder.W_P and groups[-1] is model.head is model.classifier
    assert [list(g) for g in groups[1:-1]] == [list(blocks[0:4]), list(blocks[4:8]),
                                               [*blocks[8:12], model.encoder.norm]]


@pytest.mark.parametrize(("depth", "runs"), [(1, [[0]]), (2, [[0], [1]]), (5, [[0, 1], [2, 3], [4]])])
def test_layer_groups_small_depths(depth: int, runs: list[list[int]]) -> None:
    model = create_model("ecg_jepa", embed_dim=16, depth=depth, num_heads=2)
    groups = checked_groups(model)
    blocks = list(model.encoder.encoder_blocks.blocks)
    assert len(groups) == 2 + len(runs)
    assert [[blocks.index(b) for b in g if b in blocks] for g in groups[1:-1]] == runs
    assert groups[-2][-1] is model.encoder.norm


def test_reset_head_keeps_the_representation_and_everything_trains(small: dict[str, Any]) -> None:
    model = _small_model(small, small["state_dict"])
    with torch.no_grad():
        before = model.embed(small["x"])
    model.reset_head(7)
    assert model.n_classes == 7 and model.classifier.in_features == 64
    with torch.no_grad():
        torch.testing.assert_close(model.embed(small["x"]), before, rtol=0, atol=0)
    with pytest.raises(ValueError, match="at least one class"):
        model.reset_head(0)
    model.train()
    model(small["x"]).sum().backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []
    assert model.encoder.pos_embed.grad is None and not model.encoder.pos_embed.requires_grad
