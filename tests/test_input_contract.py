"""Input contracts: the preparation steps they need, checked against the reference data code
of each model (written out here with scipy, as the authors wrote it), the PrepConfig each
contract imposes, and the architectures that declare one."""

from __future__ import annotations

import dataclasses

import json

import numpy as np
import pytest
import torch
from scipy import signal as sps

from ecgcore.data.prepare import signal_ops as ops
from ecgcore.data.prepare.config import PrepConfig
from ecgcore.data.prepare.per_record import preprocess_signal
from ecgcore.data.recordset import STANDARD_LEADS, Signal
from ecgcore.models import MODELS, create_model, ecg_jepa, ecgfounder
from ecgcore.models.ecg_jepa import ecg_jepa_state_dict
from ecgcore.models.ecgfounder import (
    DEMO_INPUT_CONTRACT,
    ecgfounder_state_dict,
    reference_key,
)
from ecgcore.models.input_contract import InputContract

ECGFOUNDER = ecgfounder.INPUT_CONTRACT
JEPA = ecg_jepa.INPUT_CONTRACT


def known_signal(fs: float, seconds: float = 10.0, n_leads: int = 12, seed: int = 0) -> np.ndarray:
    """Per lead: 1 Hz wave + 50 Hz hum + linear drift + a little noise, float32 (as a Signal holds)."""
    t = np.arange(round(seconds * fs)) / fs
    rng = np.random.default_rng(seed)
    rows = [(0.5 + 0.1 * i) * np.sin(2 * np.pi * t + i) + 0.3 * np.sin(2 * np.pi * 50 * t)
            + (0.05 * i - 0.2) * t + 0.05 * rng.standard_normal(t.size) for i in range(n_leads)]
    return np.stack(rows).astype(np.float32)


# ---------------------------------------------------------------- the references, as their authors wrote them

def ecgfounder_filter_bandpass(signal: np.ndarray, fs: float) -> np.ndarray:
    """PKUDigitalHealth/ECGFounder util.filter_bandpass @ 04edac7."""
    b, a = sps.iirnotch(50, 30, fs)
    filtered = np.zeros_like(signal)
    for c in range(signal.shape[0]):
        filtered[c] = sps.filtfilt(b, a, signal[c])
    b, a = sps.butter(N=4, Wn=[0.67, 40], btype="bandpass", fs=fs)
    for c in range(signal.shape[0]):
        filtered[c] = sps.filtfilt(b, a, filtered[c])
    baseline = np.zeros_like(filtered)
    for c in range(filtered.shape[0]):
        kernel_size = int(0.4 * fs) + 1
        if kernel_size % 2 == 0:
            kernel_size += 1
        baseline[c] = sps.medfilt(filtered[c], kernel_size=kernel_size)
    return filtered - baseline


def ecgfounder_z_score(signal: np.ndarray) -> np.ndarray:
    """dataset.py's `z_score_normalization`."""
    return (signal - np.mean(signal)) / (np.std(signal) + 1e-8)


# ---------------------------------------------------------------- each new step against scipy

def test_notch_is_iirnotch_q30_filtfilt_and_q_is_used() -> None:
    x = known_signal(500)
    b, a = sps.iirnotch(50, 30, 500)
    expected = np.stack([sps.filtfilt(b, a, row.astype(np.float64)) for row in x])
    np.testing.assert_allclose(ops.notch(x, 500, 50.0, 30.0), expected, atol=1e-5)
    np.testing.assert_allclose(ops.notch(x, 500, 50.0), expected, atol=1e-5)  # Q 30 is the default
    b5, a5 = sps.iirnotch(50, 5, 500)
    wide = np.stack([sps.filtfilt(b5, a5, row.astype(np.float64)) for row in x])
    np.testing.assert_allclose(ops.notch(x, 500, 50.0, 5.0), wide, atol=1e-5)
    assert np.abs(wide - expected).max() > 1e-3  # a different Q is a different filter


@pytest.mark.parametrize("fs", [500, 250])
def test_ba_bandpass_is_butter_filtfilt_as_ecgfounder_filters(fs: int) -> None:
    x = known_signal(fs)
    b, a = sps.butter(N=4, Wn=[0.67, 40], btype="bandpass", fs=fs)
    expected = np.stack([sps.filtfilt(b, a, row.astype(np.float64)) for row in x])
    got = ops.bandpass(x, fs, 0.67, 40.0, order=4, design="ba")
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected, atol=1e-5)
    # the default second-order sections are the same filter, computed another way
    np.testing.assert_allclose(ops.bandpass(x, fs, 0.67, 40.0, order=4), expected, atol=1e-4)
    with pytest.raises(ValueError, match="filter design"):
        ops.bandpass(x, fs, 0.67, 40.0, design="zpk")


def test_median_baseline_is_medfilt_with_ecgfounder_kernel() -> None:
    assert ops.median_kernel(500, 0.4) == 201 and ops.median_kernel(250, 0.4) == 101
    assert ops.median_kernel(5, 1.0) == 7  # int(5) + 1 = 6 is even: made odd, as the reference does
    x = known_signal(500)
    expected = np.stack([row - sps.medfilt(row.astype(np.float64), kernel_size=201) for row in x])
    got = ops.remove_median_baseline(x, 500, 0.4)
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert np.abs(got.mean(axis=1)).max() < np.abs(x.mean(axis=1)).max()  # the drift is gone


def test_fft_resample_is_scipy_resample_to_ecg_jepa_length() -> None:
    x = known_signal(500, n_leads=8)
    got = ops.resample(x, 500, 250, "fft")
    np.testing.assert_allclose(got, sps.resample(x.astype(np.float64), 2500, axis=1), atol=1e-5)
    assert got.dtype == np.float32 and got.shape == (8, 2500)
    assert ops.resampled_length(5000, 500, 250, "fft") == 2500
    # ECG-JEPA's ecg_data.py: new_length = int((fs_out / fs_in) * n), e.g. a 7 s record at 360 Hz
    assert ops.resampled_length(2520, 360, 250, "fft") == int((250 / 360) * 2520) == 1750
    assert ops.resample(known_signal(360, seconds=7), 360, 250, "fft").shape[1] == 1750
    # polyphase differs at the same rates (an FIR filter, not Fourier truncation)
    assert np.abs(ops.resample(x, 500, 250, "polyphase") - got).max() > 1e-4


def test_zscore_all_is_one_mean_and_std_over_all_leads() -> None:
    x = known_signal(250, seconds=4)
    expected = ecgfounder_z_score(x.astype(np.float64))
    window, valid = ops.crop_or_pad(x, 1200, "first")  # 1,000 samples of signal, 200 of padding
    got = ops.zscore_all(window, valid)
    np.testing.assert_allclose(got[:, :valid], expected, atol=1e-5)
    assert not got[:, valid:].any()
    per_lead = ops.zscore(x.copy(), x.shape[1])  # per-lead z-score: every lead at unit std
    assert np.allclose(per_lead.std(axis=1), 1.0, atol=1e-4) and not np.allclose(got.std(axis=1), 1.0, atol=1e-2)
    flat = ops.zscore_all(np.zeros((2, 10), dtype=np.float32), 10)
    assert not flat.any()  # + 1e-8 keeps a flat record finite


# ---------------------------------------------------------------- PrepConfig: new settings, old hashes

PREVIOUS_KEYS = {"fs", "seconds", "crop", "min_seconds", "max_seconds", "resample", "normalize", "bandpass",
                 "filter_order", "notch_hz", "leads", "missing_leads"}


def test_new_settings_are_written_only_when_set() -> None:
    assert set(PrepConfig().to_dict()) == PREVIOUS_KEYS
    assert set(PrepConfig(notch_hz=50, notch_q=30).to_dict()) == PREVIOUS_KEYS
    changed = PrepConfig(notch_hz=50, notch_q=20, filter_design="ba", baseline_median_s=0.4,
                         resample="fft", normalize="zscore_all", normalize_before_crop=True)
    stored = json.loads(json.dumps(changed.to_dict()))
    assert set(stored) - PREVIOUS_KEYS == {"notch_q", "filter_design", "baseline_median_s", "normalize_before_crop"}
    assert PrepConfig.from_dict(stored) == changed


@pytest.mark.parametrize(("setting", "message"), [
    ({"notch_q": 0}, "notch_q"), ({"filter_design": "zpk"}, "filter_design"),
    ({"baseline_median_s": -1.0}, "baseline_median_s"), ({"resample": "cubic"}, "resample"),
    ({"normalize": "zscore_leads"}, "normalize"),
])
def test_new_settings_are_checked(setting: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PrepConfig(**setting)


# ---------------------------------------------------------------- contracts -> PrepConfig

def test_ecgfounder_contract_imposes_its_preparation_and_keeps_the_rest() -> None:
    base = PrepConfig(fs=100, seconds=2.5, crop="centre", min_seconds=8, max_seconds=9, resample="decimate",
                      normalize="standard", bandpass=(0.5, 30), notch_hz=60, missing_leads="drop")
    assert ECGFOUNDER.prep_config(base) == PrepConfig(
        fs=500, seconds=10, crop="first", min_seconds=8, max_seconds=10, resample="polyphase",
        normalize="zscore_all", bandpass=(0.67, 40), filter_order=4, filter_design="ba", notch_hz=50,
        notch_q=30, baseline_median_s=0.4, leads=ECGFOUNDER.leads, missing_leads="drop")
    assert ECGFOUNDER.prep_config(base).window == 5000


def test_ecg_jepa_contract_is_unfiltered_fft_resampled_8_leads() -> None:
    base = PrepConfig(bandpass=(0.5, 40), notch_hz=50, normalize="zscore", normalize_before_crop=True,
                      baseline_median_s=0.2, max_seconds=60)
    assert JEPA.prep_config(base) == PrepConfig(fs=250, seconds=10, resample="fft",
                                                leads=("I", "II", "V1", "V2", "V3", "V4", "V5", "V6"))


def test_demo_contract_is_ecgfounders_preparation_at_100_hz() -> None:
    prep = DEMO_INPUT_CONTRACT.prep_config(PrepConfig())
    assert (prep.fs, prep.window, prep.leads) == (100.0, 1000, tuple(STANDARD_LEADS))
    same_filters = {"notch_hz", "notch_q", "bandpass", "filter_order", "filter_design", "baseline_median_s",
                    "normalize", "resample", "leads"}
    full = ECGFOUNDER.prep_config(PrepConfig())
    assert {k: getattr(prep, k) for k in same_filters} == {k: getattr(full, k) for k in same_filters}


def test_contract_fields_agree_with_their_prose_numbers_and_round_trip() -> None:
    numbers = ECGFOUNDER.filter_parameters
    assert (ECGFOUNDER.notch_hz, ECGFOUNDER.notch_q) == (numbers["notch_hz"], numbers["notch_q"])
    assert list(ECGFOUNDER.bandpass) == numbers["bandpass_hz"] and ECGFOUNDER.filter_order == numbers["butterworth_order"]
    assert ops.median_kernel(ECGFOUNDER.fs, ECGFOUNDER.baseline_median_s) == numbers["median_baseline_samples"]
    for contract in (ECGFOUNDER, JEPA, DEMO_INPUT_CONTRACT):
        stored = json.loads(json.dumps(contract.to_dict()))
        assert InputContract.from_dict(stored) == contract


def test_a_contract_that_cannot_be_applied_is_refused_where_declared() -> None:
    kwargs = {"fs": 250, "n_samples": 2500, "leads": ("I",), "filtering": "", "normalisation": "", "source": ""}
    with pytest.raises(ValueError, match="normalize"):
        InputContract(**kwargs, normalize="standard")  # a dataset-level scaler is no contract
    with pytest.raises(ValueError, match="resample"):
        InputContract(**kwargs, resample="cubic")
    with pytest.raises(ValueError, match="bandpass"):
        InputContract(**kwargs, bandpass=(40.0, 0.67))


# ---------------------------------------------------------------- a record through the pipeline

def test_a_500_hz_record_through_ecgfounders_contract_equals_the_reference() -> None:
    data = known_signal(500, seconds=12)  # longer than the window: the first 10 s are kept
    order = ("V6", "I", "II", "III", "aVR", "aVF", "aVL", "V1", "V2", "V3", "V4", "V5")  # not the model's
    rows = [order.index(lead) for lead in ECGFOUNDER.leads]
    window, info = preprocess_signal(Signal(data, 500.0, order), ECGFOUNDER.prep_config(PrepConfig()),
                                     ECGFOUNDER.n_samples, "r1")
    reference = data[rows].astype(np.float64)
    expected = ecgfounder_z_score(ecgfounder_filter_bandpass(reference, 500)[:, :5000])
    assert window.shape == (12, 5000) and info.n_valid == 5000
    np.testing.assert_allclose(window, expected, atol=1e-5)


def test_a_record_through_the_demo_contract_is_filtered_at_its_rate_then_resampled() -> None:
    data = known_signal(500)
    window, _ = preprocess_signal(Signal(data, 500.0, STANDARD_LEADS), DEMO_INPUT_CONTRACT.prep_config(PrepConfig()),
                                  1000, "r1")
    filtered = ecgfounder_filter_bandpass(data.astype(np.float64), 500)
    expected = ecgfounder_z_score(sps.resample_poly(filtered, 1, 5, axis=1))
    np.testing.assert_allclose(window, expected, atol=1e-5)


def test_a_500_hz_record_through_ecg_jepas_contract_equals_the_reference() -> None:
    data = known_signal(500)
    window, _ = preprocess_signal(Signal(data, 500.0, STANDARD_LEADS), JEPA.prep_config(PrepConfig()),
                                  JEPA.n_samples, "r1")
    # ecg_data.waves_ptbxl: resample(data, 2500, axis=1), then leads I, II, V1-V6
    reduced = sps.resample(data.astype(np.float64), 2500, axis=1)
    expected = np.concatenate([reduced[:2], reduced[6:]])
    np.testing.assert_allclose(window, expected, atol=1e-5)


# ---------------------------------------------------------------- the architectures

def test_foundation_and_demo_architectures_declare_their_contracts() -> None:
    assert MODELS["ecgfounder"].contract is ECGFOUNDER and MODELS["net1d_small"].contract is DEMO_INPUT_CONTRACT
    assert MODELS["ecg_jepa"].contract is JEPA and MODELS["ecg_jepa_small"].contract is ecg_jepa.DEMO_INPUT_CONTRACT
    demo_vit = ecg_jepa.DEMO_INPUT_CONTRACT  # ECG-JEPA's input at 100 Hz: 20 patches per lead
    assert (demo_vit.fs, demo_vit.n_samples, demo_vit.leads) == (100, 1000, JEPA.leads)
    assert demo_vit.prep_config(PrepConfig()) == dataclasses.replace(JEPA.prep_config(PrepConfig()), fs=100.0)
    assert MODELS["resnet1d18"].contract is None and MODELS["small_cnn"].contract is None
    for name in ("net1d_small", "ecg_jepa_small"):
        assert "demo" in MODELS[name].description


def test_net1d_small_takes_its_contracts_input_and_loads_through_the_published_converter() -> None:
    torch.manual_seed(0)
    model = create_model("net1d_small", n_leads=12, n_classes=3, n_samples=1000)
    assert model(torch.randn(2, 12, DEMO_INPUT_CONTRACT.n_samples)).shape == (2, 3)
    assert sum(p.numel() for p in model.parameters()) < 200_000
    published = {reference_key(key): value for key, value in model.state_dict().items()}
    architecture = {key: model.config[key] for key in ("n_leads", "n_classes", *ecgfounder.SMALL_CONFIG)}
    converted = ecgfounder_state_dict(published, architecture)
    rebuilt = create_model("net1d_small", **model.config)
    rebuilt.load_state_dict(converted, strict=True)
    x = torch.randn(1, 12, 1000)
    assert torch.equal(rebuilt(x), model(x))


def test_ecg_jepa_small_takes_its_demo_contracts_8_by_1000_and_its_encoder_state_converts() -> None:
    torch.manual_seed(0)
    model = create_model("ecg_jepa_small", n_classes=3)
    assert {k: model.config[k] for k in ("n_leads", "n_samples", "embed_dim", "depth", "num_heads")} == {
        "n_leads": 8, "n_samples": 1000, "embed_dim": 64, "depth": 3, "num_heads": 4}
    assert MODELS["ecg_jepa_small"].contract.n_samples == 1000
    assert model.encoder.pos_embed.shape == (8 * 20, 64)  # 20 patches of 50 samples per lead
    x = torch.randn(2, 8, 1000)
    assert model(x).shape == (2, 3) and model.embed(x).shape == (2, 64)
    converted = ecg_jepa_state_dict({"encoder": model.encoder.state_dict()})
    rebuilt = create_model("ecg_jepa_small", n_classes=3)
    missing, unexpected = rebuilt.load_state_dict(converted, strict=False)
    assert unexpected == [] and all(key.startswith("classifier.") for key in missing)
    assert torch.equal(rebuilt.embed(x), model.embed(x))
