"""Attribution cost for one 10 s, 500 Hz, 12-lead record: Grad-CAM, Integrated Gradients and
occlusion against one plain forward pass of the same model, on this CPU.

    python benchmarks/bench_explain.py [--models resnet1d18,gru_nd] [--repeat 1] [--steps 32] [--threads N] [--json]

For each model (freshly initialised with seed 0: the cost does not depend on the weights)
and a generated beat-train record (12 x 5,000 samples), it times (median of `--repeat`):
  forward     one `model(x)` under torch.no_grad, the baseline every ratio divides by
  gradcam     `attribute(..., "gradcam")`: Grad-CAM on `cam_layer()` x |input gradient|
              (recurrent models refuse it; printed as such)
  ig          Integrated Gradients, `--steps` steps from a zero baseline
  occlusion   one lead's 0.5 s window zeroed at a time: 12 x 20 = 240 perturbed passes
The same calls `ecgcore.views.explanations.explain_signal` makes per window; a record scored on crops
pays this once per crop window instead (at the crop's shorter length).
Every timed map is checked to be (12, 5000) and finite, and IG to be complete (its sum
equals logit(x) - logit(0) to 5 %).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from statistics import median
from typing import Any, Callable

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ecgcore.errors import EcgcoreError  # noqa: E402
from ecgcore.explain import AttributionOptions, attribute  # noqa: E402
from ecgcore.models import create_model  # noqa: E402

FS = 500
SECONDS = 10
N_SAMPLES = FS * SECONDS
N_CLASSES = 5


def beat_train(seed: int = 0) -> torch.Tensor:
    """(1, 12, 5000): a 72 bpm train of narrow QRS-like bumps and T waves plus noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(N_SAMPLES) / FS
    x = 0.05 * rng.standard_normal((12, N_SAMPLES))
    gains = rng.uniform(0.3, 1.5, size=(12, 1))
    for beat in np.arange(0.3, SECONDS, 60 / 72):
        x += gains * np.exp(-0.5 * ((t - beat) / 0.012) ** 2)
        x += 0.3 * gains * np.exp(-0.5 * ((t - beat - 0.3) / 0.05) ** 2)
    return torch.from_numpy(x.astype(np.float32))[None]


def timed(call: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """(median seconds of `repeat` calls, the first call's result)."""
    times, result = [], None
    for i in range(repeat):
        start = time.perf_counter()
        out = call()
        times.append(time.perf_counter() - start)
        result = out if i == 0 else result
    return median(times), result


def check(model: torch.nn.Module, x: torch.Tensor, method: str, values: np.ndarray) -> None:
    """Every map is (12, 5000) and finite; IG is complete (sums to logit(x) - logit(0))."""
    assert values.shape == (12, N_SAMPLES) and np.isfinite(values).all(), method
    if method == "ig":
        with torch.no_grad():
            difference = float(model(x)[0, 0] - model(torch.zeros_like(x))[0, 0])
        total = float(values.sum())
        assert abs(total - difference) <= 0.05 * abs(difference) + 1e-3, (total, difference)


def bench_model(name: str, x: torch.Tensor, repeat: int, options: AttributionOptions) -> dict[str, Any]:
    torch.manual_seed(0)
    model = create_model(name, n_leads=12, n_classes=N_CLASSES, n_samples=N_SAMPLES).eval()

    def forward() -> None:
        with torch.no_grad():
            model(x)

    forward()  # warm-up: first-call allocations
    row: dict[str, Any] = {"model": name, "forward": timed(forward, max(repeat, 5))[0]}
    for method in ("gradcam", "ig", "occlusion"):
        try:
            row[method], values = timed(lambda: attribute(model, x, 0, method, options), repeat)
        except EcgcoreError:
            row[method] = None  # recurrent models have no convolutional block
            continue
        check(model, x, method, values)
        print(f"{name} {method}: {row[method]:.2f} s", file=sys.stderr, flush=True)
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="resnet1d18,gru_nd")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--steps", type=int, default=32, help="integrated-gradients steps")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: torch's); 1 is steadier on a shared machine")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    options = AttributionOptions(n_steps=args.steps, occlusion_window=FS // 2)
    x = beat_train()
    rows = [bench_model(name.strip(), x, args.repeat, options) for name in args.models.split(",")]
    if args.json:
        json.dump(rows, sys.stdout, indent=2)
        print()
        return 0
    print(f"one record: 12 leads x {N_SAMPLES} samples ({SECONDS} s at {FS} Hz); torch threads "
          f"{torch.get_num_threads()}; IG {args.steps} steps; occlusion 0.5 s windows; median of {args.repeat}")
    print(f"{'model':<12} {'method':<10} {'seconds':>9} {'x forward':>10}")
    for row in rows:
        print(f"{row['model']:<12} {'forward':<10} {row['forward']:>9.3f} {1.0:>10.1f}")
        for method in ("gradcam", "ig", "occlusion"):
            seconds = row[method]
            if seconds is None:
                print(f"{row['model']:<12} {method:<10} {'refused':>9} {'-':>10}")
            else:
                print(f"{row['model']:<12} {method:<10} {seconds:>9.3f} {seconds / row['forward']:>10.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
