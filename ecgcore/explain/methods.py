"""Attribution methods over Captum, one registry: name -> how to attribute one window.

Every method maps one input window x (1, leads, samples) and a class index to a
(leads, samples) float32 array at the input's resolution:

- `gradcam`: Grad-CAM (Selvaraju et al. 2017) on the model's `cam_layer()` (the last
  convolutional block): channel weights = time-averaged gradients of the class logit, the
  weighted channel sum, ReLU, linearly upsampled to the input length. That map has no lead
  axis (the block mixes all leads) and is coarse (small_cnn's last block has one step per
  32 samples), so it is multiplied by |gradient| of the logit with respect to the input,
  which has both: a sample matters when it lies where the model looked (CAM) and the
  logit is sensitive to it. This is Guided Grad-CAM with the plain gradient in place of
  guided backpropagation, on purpose: guided backpropagation fails the model-randomisation
  check (Adebayo et al. 2018); so, partly, does a product with the input (x * gradient
  keeps the trace's shape whatever the weights), while the gradient and Grad-CAM pass it.
  Values are >= 0. Models without a convolutional block (recurrent ones) refuse it.
- `ig`: Integrated Gradients (Sundararajan et al. 2017) of the class logit from an
  all-zero baseline (for z-scored or standardised input: a flat line at the mean), with
  `n_steps` Gauss-Legendre steps. Signed: positive samples push towards the class. Works
  for every architecture; on CUDA cuDNN is switched off during attribution because cuDNN's
  recurrent kernels cannot run backward in eval mode.
- `occlusion`: the drop in the class probability when a window of one lead is set to zero
  (Zeiler & Fergus 2014), per lead, in consecutive non-overlapping windows (leads x
  samples / window forward passes: 240 for a 10 s record with 0.5 s windows; overlapping
  strides would double that for a smoother map, too slow for recurrent models on a CPU);
  every sample gets its window's drop. Signed: positive = hiding it lowers the
  probability. The lead importance is whole-lead occlusion (`lead_zeroed_drop`).

The model is put in eval mode for the call and restored after; parameters never collect
gradients (Captum differentiates with respect to the input only); no randomness is used,
so the same call gives the same array.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from captum.attr import IntegratedGradients, LayerAttribution, LayerGradCam, Occlusion, Saliency
from torch import nn

from ecgcore.errors import EcgcoreError

DEFAULT_IG_STEPS = 32
# Inputs per Captum pass, in (leads x samples) elements (a 12-lead 10 s 500 Hz window is
# 60,000): IG keeps every step's activations for the backward pass, occlusion runs without
# gradients. Large passes matter for recurrent models, whose cost is mostly per time step.
IG_ELEMENTS_PER_PASS = 2_000_000     # 32 steps of a 500 Hz window in one pass
OCCLUSION_ELEMENTS_PER_PASS = 4_000_000


@dataclass(frozen=True)
class AttributionOptions:
    """Knobs of the methods: IG's step count and the occlusion window (samples; None = a
    twentieth of the input, 0.5 s of a 10 s window)."""

    n_steps: int = DEFAULT_IG_STEPS
    occlusion_window: int | None = None

    def __post_init__(self) -> None:
        if int(self.n_steps) < 1:
            raise EcgcoreError(f"integrated gradients needs n_steps >= 1 (got {self.n_steps})")
        if self.occlusion_window is not None and int(self.occlusion_window) < 1:
            raise EcgcoreError(f"occlusion window must be >= 1 sample (got {self.occlusion_window})")


AttributeFn = Callable[[nn.Module, torch.Tensor, int, AttributionOptions], torch.Tensor]
# (probability of the class for a prepared record, the record (leads, samples), its
# attribution) -> one non-negative score per lead.
LeadScoreFn = Callable[[Callable[[np.ndarray], float], np.ndarray, np.ndarray], np.ndarray]


def absolute_mass(probability: Callable[[np.ndarray], float], x: np.ndarray,
                  attribution: np.ndarray) -> np.ndarray:
    """A lead's share of the evidence: its total absolute attribution."""
    return np.abs(attribution).sum(axis=1)


def lead_zeroed_drop(probability: Callable[[np.ndarray], float], x: np.ndarray,
                     attribution: np.ndarray) -> np.ndarray:
    """Lead-wise occlusion: |p(record) - p(record with that lead set to zero)|, each p the
    run's own probability (its windows and aggregation), so a lead that only matters
    together with the whole record still counts."""
    full = probability(x)
    drops = []
    for lead in range(x.shape[0]):
        occluded = x.copy()
        occluded[lead] = 0.0
        drops.append(abs(full - probability(occluded)))
    return np.asarray(drops, dtype=np.float64)


@dataclass(frozen=True)
class Method:
    """One attribution method: a one-line description, its (model, x, target, options)
    -> (1, leads, samples) function, and how its per-lead scores are made."""

    description: str
    run: AttributeFn
    lead_scores: LeadScoreFn = absolute_mass


def _per_pass(x: torch.Tensor, most: int, budget: int) -> int:
    return max(1, min(most, budget // max(1, x[0].numel())))


def cam_layer_of(model: nn.Module) -> nn.Module:
    """The layer Grad-CAM weighs, or a clear error for models that have none."""
    layer = model.cam_layer() if hasattr(model, "cam_layer") else None
    if layer is None:
        name = getattr(model, "name", "") or type(model).__name__
        raise EcgcoreError(f"gradcam needs a convolutional model; {name} has no convolutional "
                           "block (for recurrent models use ig or occlusion)")
    return layer


def _gradcam(model: nn.Module, x: torch.Tensor, target: int,
             options: AttributionOptions) -> torch.Tensor:
    layer = cam_layer_of(model)
    cam = LayerGradCam(model, layer).attribute(x, target=target, relu_attributions=True)
    if cam.ndim != 3:
        raise EcgcoreError(f"gradcam: the layer's output has shape {tuple(cam.shape)}; "
                           "expected (batch, channels, time)")
    cam = LayerAttribution.interpolate(cam, (x.shape[-1],), interpolate_mode="linear")
    gradient = Saliency(model).attribute(x.clone().requires_grad_(True), target=target, abs=True)
    return cam.detach() * gradient.detach()


def _integrated_gradients(model: nn.Module, x: torch.Tensor, target: int,
                          options: AttributionOptions) -> torch.Tensor:
    steps = int(options.n_steps)
    return IntegratedGradients(model).attribute(
        x, baselines=torch.zeros_like(x), target=target, n_steps=steps,
        internal_batch_size=_per_pass(x, steps, IG_ELEMENTS_PER_PASS)).detach()


class _Probabilities(nn.Module):
    """The model's sigmoid outputs: occlusion measures drops in probability."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.model(x))


def _occlusion(model: nn.Module, x: torch.Tensor, target: int,
               options: AttributionOptions) -> torch.Tensor:
    samples = int(x.shape[-1])
    window = min(samples, int(options.occlusion_window or max(1, round(samples / 20))))
    with torch.no_grad():
        return Occlusion(_Probabilities(model)).attribute(
            x, sliding_window_shapes=(1, window), strides=(1, window),
            baselines=0.0, target=target,
            perturbations_per_eval=_per_pass(x, 64, OCCLUSION_ELEMENTS_PER_PASS)).detach()


METHODS: dict[str, Method] = {
    "gradcam": Method("Grad-CAM of the last convolutional block x |input gradient| "
                      "(CNNs only; >= 0)", _gradcam),
    "ig": Method("Integrated Gradients of the class logit from a zero baseline "
                 "(every architecture; signed)", _integrated_gradients),
    "occlusion": Method("drop in the class probability when a short window of one lead is "
                        "zeroed (signed); lead importance: whole lead zeroed", _occlusion,
                        lead_zeroed_drop),
}


def list_methods() -> list[str]:
    return list(METHODS)


def get_method(name: str) -> Method:
    if name not in METHODS:
        raise EcgcoreError(f"unknown attribution method {name!r}; known: {', '.join(METHODS)}")
    return METHODS[name]


def attribution_context(device: torch.device) -> contextlib.AbstractContextManager:
    """cuDNN off on CUDA (its RNN kernels refuse backward in eval mode); nothing elsewhere."""
    if torch.device(device).type == "cuda":
        return torch.backends.cudnn.flags(enabled=False)
    return contextlib.nullcontext()


@contextlib.contextmanager
def evaluating(model: nn.Module) -> Iterator[None]:
    """The model in eval mode (dropout off, batch-norm running statistics) for the call,
    then back to the mode it was in."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def model_device(model: nn.Module) -> torch.device:
    parameter = next(model.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


def attribute(model: nn.Module, x: torch.Tensor, target: int, method: str,
              options: AttributionOptions | None = None) -> np.ndarray:
    """x (1, leads, samples) -> (leads, samples) float32 attribution of class `target`
    (an output index of the model) by `method` (see `METHODS`)."""
    chosen = get_method(method)
    if x.ndim != 3 or x.shape[0] != 1:
        raise EcgcoreError(f"attribute expects one window (1, leads, samples); got {tuple(x.shape)}")
    n_classes = getattr(model, "n_classes", None)
    if not isinstance(target, (int, np.integer)) or target < 0 or (
            n_classes is not None and target >= n_classes):
        raise EcgcoreError(f"class index {target!r} is not an output of this model "
                           f"({n_classes} classes)")
    device = model_device(model)
    x = x.detach().to(device=device, dtype=torch.float32)
    with evaluating(model), attribution_context(device), torch.enable_grad():
        values = chosen.run(model, x, int(target), options or AttributionOptions())
    return values[0].float().cpu().numpy().astype(np.float32, copy=False)
