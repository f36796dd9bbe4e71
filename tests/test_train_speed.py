"""Speed settings (data placement, cuDNN's autotuner, torch.compile): never part of a run's
identity, refused where they would contradict another setting, and recorded with what the
fit actually did."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ecgcore.models import create_model
from ecgcore.runs import NON_RESULT_KEYS, config_hash
from ecgcore.train import TrainConfig, fit
from ecgcore.train.config import SPEED_SETTINGS
from ecgcore.views.display import describe_speed

FAST = {"data_on_device": "always", "cudnn_benchmark": True, "deterministic": False, "compile": True}


def test_speed_settings_leave_the_hash_and_an_old_config_json_alone() -> None:
    assert SPEED_SETTINGS <= NON_RESULT_KEYS
    plain = TrainConfig(deterministic=False)
    fast = TrainConfig(**FAST)
    assert not SPEED_SETTINGS & set(plain.to_dict()), "defaults are not written"
    assert {k: fast.to_dict()[k] for k in SPEED_SETTINGS} == {k: FAST[k] for k in SPEED_SETTINGS}
    assert TrainConfig.from_dict(fast.to_dict()) == fast
    assert config_hash({"kind": "target", "train": plain.to_dict()}) == config_hash(
        {"kind": "target", "train": fast.to_dict()})
    assert plain.resume_differences(fast) == []


@pytest.mark.parametrize(("settings", "message"), [
    ({"cudnn_benchmark": True}, "needs deterministic = false"),
    ({"data_on_device": "yes"}, "data_on_device must be one of"),
])
def test_contradictory_or_unknown_speed_settings_are_refused(settings: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TrainConfig(**settings)


def test_a_fit_records_how_it_ran(superdiagnostic_ds, tmp_path) -> None:
    torch.manual_seed(0)
    model = create_model("small_cnn", n_leads=12, n_classes=len(superdiagnostic_ds.classes))
    result = fit(model, superdiagnostic_ds, TrainConfig(epochs=2, batch_size=16, crop_seconds=2.5, device="cpu"),
                 checkpoint_dir=tmp_path)
    speed = result.speed
    assert speed["data_placement"] == "host" and "CPU" in speed["placement_reason"]
    assert speed["precision"] == "float32" and speed["peak_gpu_memory_bytes"] is None
    assert not speed["cudnn_benchmark"] and not speed["compile"]
    # samples/s counts the training steps only: more than the epochs' whole wall time allows
    trained = 2 * superdiagnostic_ds.split.train.size
    assert speed["samples_per_second"] >= trained / sum(row["seconds"] for row in result.history)
    json.dumps(speed)  # results.json holds it as it is
    assert "training rows on the host" in describe_speed(speed, result.device)


def test_torch_compile_trains_the_same_model(superdiagnostic_ds, tmp_path) -> None:
    """torch.compile (inductor, a C++ compiler on the CPU) gives the eager model's losses and
    weights up to floating-point order, dropout masks included; the saved weights keep the
    model's own names."""
    results = []
    for compile_ in (False, True):
        torch.manual_seed(0)
        model = create_model("small_cnn", n_leads=12, n_classes=len(superdiagnostic_ds.classes))
        config = TrainConfig(epochs=1, batch_size=32, crop_seconds=2.5, device="cpu", compile=compile_)
        results.append(fit(model, superdiagnostic_ds, config, checkpoint_dir=tmp_path / str(compile_)))
    eager, compiled = results
    assert compiled.speed["compile"] and not eager.speed["compile"]
    assert compiled.best_state.keys() == eager.best_state.keys()
    assert np.isclose(compiled.history[0]["train_loss"], eager.history[0]["train_loss"], atol=1e-4)
    for key, value in eager.best_state.items():
        torch.testing.assert_close(compiled.best_state[key], value, atol=1e-4, rtol=1e-4)
