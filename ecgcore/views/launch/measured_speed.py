"""How fast one architecture runs at one input shape on this machine, measured and cached.

A foundation model at its input contract's shape can be far slower than the small models
the finished-run rates of `estimate` usually come from: ECGFounder (30.7 M parameters) at
12 leads x 5,000 samples ran 18 samples/s forward and 4.1 samples/s forward + backward +
Adam on one thread of the 2-core development CPU. So Launch prices such a model from a
measurement of that model at that shape, never from a guess:
- `forward_per_second`: a no-grad forward pass in eval mode, what a frozen probe pays per
  record (`embedding_probe` and `attention_probe` run the encoder once per record, then
  train a head on the cached embeddings);
- `train_per_second`: forward + backward + Adam step in train mode, what fine-tuning pays
  per training sample and epoch.
Each is timed on random inputs after one warm-up batch, for at least `MIN_STEPS` batches
and until `BUDGET_SECONDS` have passed, on one torch thread (as `estimate.measure_throughput`:
one thread never disturbs the app, and several spin against each other on a busy machine).
A measurement is cached as JSON under `$ECGCORE_HOME/cache/speed/`, keyed by architecture,
leads, samples, device and threads, and redone when torch or the core count changed.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from ecgcore import workspace
from ecgcore.views.launch.estimate import (
    PRIOR_EPOCH_SHARE,
    PRIOR_FACTORS,
    Throughput,
    samples_per_second,
    train_step,
)

log = logging.getLogger(__name__)

#: Samples per timed batch (small: a 30 M-parameter model at 5,000 samples takes ~2 s per
#: training batch of 8 on one thread).
BATCH = 8
#: Timed batches per mode at least, and the seconds after which no further batch starts.
MIN_STEPS = 2
BUDGET_SECONDS = 3.0
THREADS = 1
#: Bump when the measurement changes, so cached numbers of the old one are not read.
VERSION = 1


@dataclass(frozen=True)
class ModelSpeed:
    """Measured samples per second of `arch` at (`n_leads`, `n_samples`) on `device_type`."""

    arch: str
    n_leads: int
    n_samples: int
    device_type: str
    n_params: int
    forward_per_second: float
    train_per_second: float
    batch: int
    threads: int
    measured: float  # unix time
    torch_version: str
    cpu_count: int

    def describe(self) -> str:
        """'ecgfounder (30.7 M parameters) at 12 leads × 5000 samples on cpu: 18 samples/s
        forward, 4.1 samples/s forward + backward (measured here, one thread, batch 8)'."""
        threads = "one thread" if self.threads == 1 else f"{self.threads} threads"
        return (f"{self.arch} ({_millions(self.n_params)} parameters) at {self.n_leads} leads × {self.n_samples} "
                f"samples on {self.device_type}: {_rate(self.forward_per_second)} samples/s forward, "
                f"{_rate(self.train_per_second)} samples/s forward + backward (measured here, {threads}, "
                f"batch {self.batch})")


def _millions(count: int) -> str:
    return f"{count / 1e6:.1f} M" if count >= 1e5 else f"{count / 1e3:.0f} k"


def _rate(value: float) -> str:
    return f"{value:.2g}" if value < 10 else f"{value:.0f}"


def speed_path(arch: str, n_leads: int, n_samples: int, device_type: str, threads: int = THREADS) -> Path:
    return workspace.cache_dir() / "speed" / f"{arch}-{n_leads}x{n_samples}-{device_type}-t{threads}-v{VERSION}.json"


def model_speed(arch: str, n_leads: int, n_samples: int, device_type: str = "cpu",
                threads: int = THREADS) -> ModelSpeed:
    """The cached measurement, or a new one (written to the cache)."""
    import torch

    path = speed_path(arch, n_leads, n_samples, device_type, threads)
    cached = _read(path)
    if cached is not None and cached.torch_version == torch.__version__ and cached.cpu_count == os.cpu_count():
        return cached
    speed = measure_speed(arch, n_leads, n_samples, device_type, threads)
    _write(path, speed)
    return speed


def _read(path: Path) -> ModelSpeed | None:
    try:
        return ModelSpeed(**json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return None


def _write(path: Path, speed: ModelSpeed) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}")
    temp.write_text(json.dumps(asdict(speed), indent=2), encoding="utf-8")
    os.replace(temp, path)


def measure_speed(arch: str, n_leads: int, n_samples: int, device_type: str = "cpu",
                  threads: int = THREADS, batch: int = BATCH, min_steps: int = MIN_STEPS,
                  budget_s: float = BUDGET_SECONDS) -> ModelSpeed:
    """Time a fresh `arch` model on random (batch, n_leads, n_samples) inputs: forward
    only (eval, no grad), then forward + backward + Adam (train)."""
    import torch

    from ecgcore.models import create_model

    device = torch.device(device_type)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        model = create_model(arch, n_leads=n_leads, n_classes=10, n_samples=n_samples).to(device)
        x = torch.randn(batch, n_leads, n_samples, device=device)

        def forward() -> None:
            with torch.no_grad():
                model(x)

        model.eval()
        forward_rate = samples_per_second(forward, batch, device, min_steps, budget_s)
        model.train()
        train_rate = samples_per_second(train_step(model, batch, n_leads, n_samples, device), batch, device,
                                        min_steps, budget_s)
        n_params = sum(p.numel() for p in model.parameters())
    finally:
        torch.set_num_threads(previous)
    speed = ModelSpeed(arch, n_leads, n_samples, device.type, int(n_params), forward_rate, train_rate, batch,
                       threads, time.time(), torch.__version__, os.cpu_count() or 1)
    log.info("measured %s", speed.describe())
    return speed


#: How a run uses its encoder, for pricing: "train" (forward + backward per training sample
#: and epoch) or "embed" (one forward pass per record into the embedding cache, then a head
#: trained on the cached embeddings, whose cost is left out: small next to the encoder's).
SPEED_MODES: tuple[str, ...] = ("train", "embed")


def speed_throughput(speed: ModelSpeed, mode: str) -> Throughput:
    """A measured speed as the estimate's rough prior: seconds per sample (forward + backward
    for "train", forward for "embed") times `PRIOR_FACTORS`; a "train" run stops early after
    `PRIOR_EPOCH_SHARE` of its epochs at the fast end, an "embed" pass does not stop early."""
    if mode not in SPEED_MODES:
        raise ValueError(f"mode must be one of {SPEED_MODES}, got {mode!r}")
    rate = speed.train_per_second if mode == "train" else speed.forward_per_second
    per_sample = 1.0 / rate
    low, typical, high = (per_sample * factor for factor in PRIOR_FACTORS)
    if mode == "train":
        what = (f"fine-tuning priced from the training speed measured for {speed.describe()}, times "
                f"{PRIOR_FACTORS[0]:g}–{PRIOR_FACTORS[2]:g} (data loading, validation and a busy machine come "
                f"on top), early stopping after {PRIOR_EPOCH_SHARE:.0%} of the epochs at the fast end; "
                "finished runs will replace it")
        share = PRIOR_EPOCH_SHARE
    else:
        what = (f"frozen probes priced as one encoder forward pass over every record (train, validation and "
                f"test; the embedding cache then serves every epoch and a second probe on the same data), "
                f"from the forward speed measured for {speed.describe()}, times {PRIOR_FACTORS[0]:g}–"
                f"{PRIOR_FACTORS[2]:g}; the head's training on the cached embeddings is not counted")
        share = 1.0
    return Throughput(speed.arch, typical, what, 0, low=low, high=high, epoch_share=share, rough=True)
