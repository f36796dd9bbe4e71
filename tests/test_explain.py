"""Attribution sanity on models trained in-process on synthetic records whose class
evidence sits in a known lead and time window (a bump in V2 between 0.4 and 0.6 s), and
the model-randomisation check of Adebayo et al. (2018)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from ecgcore.errors import EcgcoreError
from ecgcore.explain import AttributionOptions, attribute, attribution_context, list_methods
from ecgcore.models import create_model

FS = 100
N_SAMPLES = 200  # 2 s
V2 = 7
EVIDENCE = slice(40, 60)  # 0.4-0.6 s
OCCLUSION = AttributionOptions(occlusion_window=10)  # 0.1 s windows resolve the 0.2 s bump


def bump(centre_s: float, amplitude: float = 2.0, width_s: float = 0.03) -> np.ndarray:
    t = np.arange(N_SAMPLES) / FS
    return (amplitude * np.exp(-0.5 * ((t - centre_s) / width_s) ** 2)).astype(np.float32)


def synthetic(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Noise with a periodic 'beat' on every lead; positives carry a bump in V2 at 0.5 s;
    every record carries a distractor bump of the same shape in another lead (never V2) at
    a random time, so only 'a bump in V2' tells the class."""
    rng = np.random.default_rng(seed)
    x = 0.2 * rng.standard_normal((n, 12, N_SAMPLES)).astype(np.float32)
    phase = rng.uniform(0, 0.8, size=n)
    for i in range(n):
        for beat in np.arange(phase[i], N_SAMPLES / FS, 0.8):
            x[i] += 0.8 * bump(beat, width_s=0.015)
        other = rng.choice([lead for lead in range(12) if lead != V2])
        x[i, other] += bump(rng.uniform(0.2, N_SAMPLES / FS - 0.2))
    y = rng.random(n) < 0.5
    x[y, V2] += bump(0.5)
    return x, y.astype(np.float32)[:, None]


def train(name: str, epochs: int, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = create_model(name, n_leads=12, n_classes=1, n_samples=N_SAMPLES)
    x, y = (torch.from_numpy(a) for a in synthetic(256, seed))
    optimiser = torch.optim.Adam(model.parameters(), lr=5e-3)
    generator = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        for rows in torch.randperm(len(x), generator=generator).split(32):
            optimiser.zero_grad()
            loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x[rows]), y[rows])
            loss.backward()
            optimiser.step()
    model.zero_grad(set_to_none=True)
    return model.eval()


def accuracy(model: torch.nn.Module) -> float:
    x, y = synthetic(200, seed=99)
    with torch.no_grad():
        predicted = model(torch.from_numpy(x)).numpy() > 0
    return float((predicted == (y > 0.5)).mean())


def positive_record() -> torch.Tensor:
    x, y = synthetic(40, seed=7)
    return torch.from_numpy(x[int(np.argmax(y[:, 0]))])[None]


def evidence_share(attribution: np.ndarray) -> float:
    """Share of the absolute attribution inside V2 x 0.4-0.6 s (1/120 of the record)."""
    mass = np.abs(attribution)
    return float(mass[V2, EVIDENCE].sum() / mass.sum())


@pytest.fixture(scope="module")
def cnn() -> torch.nn.Module:
    model = train("small_cnn", epochs=5)
    assert accuracy(model) > 0.95, "the sanity checks need a model that learned the task"
    return model


@pytest.mark.parametrize("method", ["gradcam", "ig", "occlusion"])
def test_attribution_concentrates_on_the_evidence(cnn: torch.nn.Module, method: str) -> None:
    x = positive_record()
    attribution = attribute(cnn, x, 0, method, OCCLUSION)
    assert attribution.shape == (12, N_SAMPLES) and attribution.dtype == np.float32
    lead_mass = np.abs(attribution).sum(axis=1)
    assert int(np.argmax(lead_mass)) == V2, f"{method}: top lead {int(np.argmax(lead_mass))}"
    window_share_of_lead = np.abs(attribution[V2, EVIDENCE]).sum() / lead_mass[V2]
    assert window_share_of_lead > 0.5, f"{method}: {window_share_of_lead:.2f} of V2 in 0.4-0.6 s (10% of time)"
    assert evidence_share(attribution) > 0.15, f"{method}: evidence share {evidence_share(attribution):.3f} (area 0.008)"


@pytest.mark.parametrize("method", ["gradcam", "ig", "occlusion"])
def test_randomised_model_gives_different_attributions(cnn: torch.nn.Module, method: str) -> None:
    """Adebayo et al. (2018): an explanation that survives re-initialising the weights
    explains the input, not the model."""
    x = positive_record()
    trained = attribute(cnn, x, 0, method, OCCLUSION)
    torch.manual_seed(1234)
    random_model = create_model("small_cnn", n_leads=12, n_classes=1, n_samples=N_SAMPLES).eval()
    randomised = attribute(random_model, x, 0, method, OCCLUSION)
    # Rank correlation of the maps as returned (signed for ig and occlusion): |IG| keeps
    # the trace's shape whatever the weights (it multiplies by the input), its sign does not.
    rho = spearmanr(trained.ravel(), randomised.ravel()).statistic
    assert rho < 0.5, f"{method}: rank correlation {rho:.2f} with a random model"
    assert evidence_share(randomised) < evidence_share(trained) / 2


@pytest.mark.parametrize("name, config", [("lstm_nd", {}), ("gru", {"hidden": 32, "n_layers": 1})])
def test_integrated_gradients_on_recurrent_models_and_gradcam_refuses_them(name: str, config: dict) -> None:
    """IG's completeness axiom: the attributions sum to logit(x) - logit(baseline = 0)."""
    torch.manual_seed(0)
    model = create_model(name, n_leads=12, n_classes=2, n_samples=N_SAMPLES, **config).eval()
    x = positive_record()
    attribution = attribute(model, x, 1, "ig", AttributionOptions(n_steps=24))
    assert attribution.shape == (12, N_SAMPLES) and np.isfinite(attribution).all()
    with torch.no_grad():
        difference = float(model(x)[0, 1] - model(torch.zeros_like(x))[0, 1])
    assert abs(difference) > 1e-3
    assert float(attribution.sum()) == pytest.approx(difference, rel=0.05, abs=1e-3)
    with pytest.raises(EcgcoreError, match=f"gradcam needs a convolutional model; {name} has no "
                                           "convolutional block"):
        attribute(model, x, 1, "gradcam")


def test_calls_are_deterministic_leave_no_gradients_and_restore_the_mode(cnn: torch.nn.Module) -> None:
    x = positive_record()
    cnn.train()
    try:
        for method in list_methods():
            first = attribute(cnn, x, 0, method, OCCLUSION)
            np.testing.assert_array_equal(first, attribute(cnn, x, 0, method, OCCLUSION))
            assert cnn.training, "the caller's mode is restored"
            assert all(p.grad is None for p in cnn.parameters()), f"{method} left parameter gradients"
    finally:
        cnn.eval()
    with torch.no_grad():  # gradient methods work even when the caller disabled autograd
        assert np.abs(attribute(cnn, x, 0, "ig")).sum() > 0


def test_bad_requests_are_refused_with_a_reason(cnn: torch.nn.Module) -> None:
    x = positive_record()
    with pytest.raises(EcgcoreError, match="unknown attribution method 'saliency'; known: gradcam, ig, occlusion"):
        attribute(cnn, x, 0, "saliency")
    with pytest.raises(EcgcoreError, match="class index 3 is not an output"):
        attribute(cnn, x, 3, "ig")
    with pytest.raises(EcgcoreError, match=r"one window \(1, leads, samples\)"):
        attribute(cnn, x[0], 0, "ig")
    with pytest.raises(EcgcoreError, match="n_steps >= 1"):
        AttributionOptions(n_steps=0)


def test_cudnn_is_off_during_attribution_on_cuda_only() -> None:
    """The CUDA branch's logic, checked without a GPU: cuDNN's RNN kernels cannot run
    backward in eval mode, so attribution on CUDA runs with cuDNN disabled, then restores it."""
    before = torch.backends.cudnn.enabled
    with attribution_context(torch.device("cuda")):
        assert torch.backends.cudnn.enabled is False
    assert torch.backends.cudnn.enabled == before
    with attribution_context(torch.device("cpu")):
        assert torch.backends.cudnn.enabled == before
