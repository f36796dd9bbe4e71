"""`PrepConfig.normalize_before_crop`: ecglib's normalise-then-crop order, beside the default.

ecglib (Avetisyan et al. 2024; `EcgDataset.__getitem__` in ecglib 1.1.1) z-scores each lead
of the whole resampled record (`scipy.stats.zscore(axis=1)`), then pads with zeros at the
end or keeps the first 10 s. `_ecglib_reference` below is that order, written with the same
scipy call, as the reference.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import zscore

from ecgcore.data.prepare import PrepConfig
from ecgcore.data.prepare.per_record import preprocess_signal
from ecgcore.data.recordset import STANDARD_LEADS, Signal
from ecgcore.runs.hashing import config_hash

FS = 500.0
WINDOW = 5000  # 10 s at 500 Hz


def _signal(seconds: float, seed: int = 0) -> Signal:
    """A 12-lead record whose second half has another offset and amplitude than its first
    (so statistics over the first 10 s and over the whole record differ)."""
    n = int(seconds * FS)
    rng = np.random.default_rng(seed)
    t = np.arange(n) / FS
    data = np.sin(2 * np.pi * 1.2 * t)[None, :] * rng.uniform(0.5, 2.0, (12, 1))
    data = data + rng.normal(0, 0.05, (12, n))
    data[:, n // 2:] = 3.0 * data[:, n // 2:] + 1.5
    return Signal(data=data.astype(np.float32), fs=FS, leads=STANDARD_LEADS)


def _ecglib_reference(signal: Signal, length: int) -> np.ndarray:
    scaled = zscore(np.asarray(signal.data, dtype=np.float64), axis=1)
    out = np.zeros((scaled.shape[0], length))
    keep = min(length, scaled.shape[1])
    out[:, :keep] = scaled[:, :keep]
    return out


def _run(signal: Signal, before: bool) -> np.ndarray:
    config = PrepConfig(fs=FS, seconds=10, normalize="zscore", normalize_before_crop=before)
    window, _ = preprocess_signal(signal, config, config.window, "r1")
    return window


def test_a_longer_record_differs_and_matches_ecglib_only_when_normalised_first() -> None:
    signal = _signal(16.0)
    original = signal.data.copy()
    ecglib_order = _run(signal, before=True)
    assert np.array_equal(signal.data, original), "the caller's signal is not changed"
    np.testing.assert_allclose(ecglib_order, _ecglib_reference(signal, WINDOW), atol=1e-5)
    default = _run(signal, before=False)
    # Default: each lead of the 10 s window has mean 0 and std 1. ecglib's window does not:
    # its statistics came from all 16 s.
    np.testing.assert_allclose(default.mean(axis=1), 0.0, atol=1e-4)
    np.testing.assert_allclose(default.std(axis=1), 1.0, atol=1e-4)
    assert np.abs(ecglib_order.mean(axis=1)).min() > 0.05
    assert np.abs(default - ecglib_order).max() > 0.5


def test_a_shorter_record_is_the_same_either_way_padding_stays_zero() -> None:
    """ecgcore's default already excludes the padding from the statistics, so a record
    under 10 s is scaled over its own samples in both orders; z-scoring the padded window
    (zeros included) would have been a third, different result."""
    signal = _signal(6.0)
    ecglib_order, default = _run(signal, before=True), _run(signal, before=False)
    reference = _ecglib_reference(signal, WINDOW)
    np.testing.assert_allclose(ecglib_order, reference, atol=1e-5)
    np.testing.assert_allclose(default, reference, atol=1e-5)
    assert not ecglib_order[:, 3000:].any(), "zero padding after the z-score stays zero"
    padded = np.zeros((12, WINDOW))
    padded[:, :3000] = signal.data
    assert np.abs(zscore(padded, axis=1) - reference).max() > 0.1


def test_minmax_before_crop_and_flat_leads() -> None:
    signal = _signal(16.0)
    signal.data[3] = 2.0  # a flat lead: 0, not NaN (ecglib's z_norm would stop on NaN)
    config = PrepConfig(fs=FS, seconds=10, normalize="minmax", normalize_before_crop=True)
    window, _ = preprocess_signal(signal, config, config.window, "r1")
    assert np.all(window[3] == 0.0)
    whole = np.asarray(signal.data[0], dtype=np.float64)
    expected = 2 * (whole - whole.min()) / (whole.max() - whole.min()) - 1
    np.testing.assert_allclose(window[0], expected[:WINDOW], atol=1e-5)
    z = PrepConfig(fs=FS, seconds=10, normalize="zscore", normalize_before_crop=True)
    assert np.all(preprocess_signal(signal, z, z.window, "r1")[0][3] == 0.0)


def test_default_keeps_old_dicts_and_hashes() -> None:
    """The setting is written only when true: configs made before it existed hash the same
    (values pinned before the setting was added); cache keys hash the same `to_dict`."""
    default = PrepConfig()
    assert "normalize_before_crop" not in default.to_dict()
    assert config_hash(default.to_dict()) == "29e87f448d512e5b"
    assert config_hash(PrepConfig(fs=500, normalize="zscore").to_dict()) == "248635f6bb01e926"
    assert PrepConfig.from_dict(default.to_dict()) == default
    ecglib = PrepConfig(fs=500, normalize="zscore", normalize_before_crop=True)
    assert ecglib.to_dict()["normalize_before_crop"] is True
    assert PrepConfig.from_dict(ecglib.to_dict()) == ecglib
    assert config_hash(ecglib.to_dict()) != "248635f6bb01e926"


@pytest.mark.parametrize(("values", "message"), [
    ({"normalize": "none", "normalize_before_crop": True}, "per-record normalize"),
    ({"normalize": "standard", "normalize_before_crop": True}, "per-record normalize"),
    ({"normalize": "zscore", "normalize_before_crop": "yes"}, "true or false"),
])
def test_bad_settings_are_refused(values: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PrepConfig.from_dict(values)
