"""The training set on the accelerator: where a fit's training rows live, and batches cut there.

Host batches (`data.training_batch`) read each batch's rows from the prepared memmap, crop
and scale them on the CPU, and copy them to the device: on a GPU that copy and the host
work can leave the accelerator waiting. A typical target's prepared cache fits in GPU
memory (all of PTB-XL at 100 Hz is about 1 GB as float32), so when it does the training
rows are copied to the device once (`ResidentTrainingSet`) and every batch is a gather, a
crop and the standard scaler done by torch on the device. The validation rows, scored
after every epoch, are held with them: their sliding windows are cut there too
(`ResidentTrainingSet.evaluation_batches`), so an epoch's validation does no host work
but drawing the window mask.

`decide_placement` chooses (TrainConfig.data_on_device): "auto" keeps the rows on a CUDA
device when they fit in its free memory with room to spare, and uses host batches
elsewhere; "always" takes the resident path on any device (on the CPU its tensors are in
host memory: that is how the tests show it trains exactly as the host path does);
"never" keeps host batches.

Results do not depend on the placement: a resident batch is the same numbers as
`training_batch` for the same generator state (the same shuffle, the same crop offsets
drawn by `data.crop_starts`, the same float32 scaler arithmetic).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from ecgcore.data.pipeline import TaskDataset
from ecgcore.errors import EcgcoreError
from ecgcore.train.data import crop_starts, valid_samples, window_starts, windows_used
from ecgcore.train.device import to_device

log = logging.getLogger(__name__)

DEVICE_MARGIN: float = 0.2
"""Fraction of the device's free memory never planned for the training set: other runs
sharing the GPU (`worker --runs-per-gpu`) grow after this one starts, and the caching
allocator fragments and keeps freed blocks."""

RESERVE_BYTES: int = 2 * 1024**3
"""Bytes kept free besides the margin for what the fit itself allocates after the training
set: the model's weights, gradients and optimizer state, the activations of a training
batch and of an evaluation batch (every window of eval_batch_size records), and cuDNN's
workspace. 2 GiB covers the registry's largest models at the default batch sizes."""

PLACEMENTS: tuple[str, ...] = ("device", "host")


@dataclass(frozen=True)
class Placement:
    """Where a fit's training batches come from: "device" (`ResidentTrainingSet`) or "host"
    (`data.training_batch`, prefetched), and why, in a sentence results.json records."""

    where: str
    reason: str

    def __post_init__(self) -> None:
        if self.where not in PLACEMENTS:
            raise EcgcoreError(f"a placement is one of {PLACEMENTS}, got {self.where!r}")


def resident_bytes(data: TaskDataset, rows: np.ndarray) -> int:
    """Bytes `rows` (a fit's training and validation rows) take on the device as
    `ResidentTrainingSet` holds them: X
    as float32, targets as float32 and the scaler's two float32 vectors (the valid lengths
    stay on the host, where the crop offsets are drawn)."""
    n = int(np.unique(np.asarray(rows, dtype=np.int64)).size)
    leads, samples = int(data.X.shape[1]), int(data.X.shape[2])
    scaler = 0 if data.scaler is None else 2 * leads
    return 4 * (n * leads * samples + n * int(data.y.shape[1]) + scaler)


def free_device_bytes(device: torch.device) -> int | None:
    """Free memory of a CUDA device (what `torch.cuda.mem_get_info` says); None elsewhere."""
    if device.type != "cuda" or not torch.cuda.is_available():
        return None
    free, _total = torch.cuda.mem_get_info(device)
    return int(free)


def usable_bytes(free_bytes: int, margin: float = DEVICE_MARGIN) -> int:
    """What the training set may take of `free_bytes`: less the margin and the reserve."""
    return int(free_bytes * (1 - margin)) - RESERVE_BYTES


def decide_placement(asked: str, device: torch.device, need_bytes: int, free_bytes: int | None,
                     margin: float = DEVICE_MARGIN) -> Placement:
    """Where the training rows live for `data_on_device = asked` on `device`, given the
    bytes they need (`resident_bytes`) and the device's free bytes (`free_device_bytes`;
    None when unknown). Pure: the decision and its reason depend on these numbers only.
    Raises EcgcoreError for "always" on a CUDA device it does not fit."""
    if asked == "never":
        return Placement("host", "asked for: never; host batches")
    if device.type != "cuda":
        if asked == "always":
            memory = "; on the CPU the resident tensors are in host memory" if device.type == "cpu" else ""
            return Placement("device", f"asked for: always{memory}")
        return Placement("host", f"{device.type.upper()}: host batches")
    if free_bytes is None:
        if asked == "always":
            return Placement("device", "asked for: always; the GPU's free memory is unknown")
        return Placement("host", "the GPU's free memory is unknown; host batches")
    usable = usable_bytes(free_bytes, margin)
    sizes = f"the training and validation rows ({_size(need_bytes)}) {{}} in the GPU's {_size(free_bytes)} free"
    if need_bytes <= usable:
        fits = sizes.format("fits")
        return Placement("device", f"asked for: always; {fits}" if asked == "always" else fits)
    room = (f"needs {_size(need_bytes)}, {_size(free_bytes)} free, of which {_size(max(usable, 0))} may be "
            f"used after a {margin:.0%} margin and {_size(RESERVE_BYTES)} for the model and activations")
    if asked == "always":
        raise EcgcoreError(f"data_on_device = 'always', but the training and validation rows do not fit on "
                           f"{device}: {room}; set data_on_device to 'auto' or 'never' for host batches")
    return Placement("host", f"the training and validation rows do not fit: {room}; host batches instead")


def _size(n_bytes: int) -> str:
    """Bytes in words: "1.05 GB", "4.8 MB" (decimal units, as GPU makers state memory)."""
    return f"{n_bytes / 1e9:.2f} GB" if n_bytes >= 1e9 else f"{n_bytes / 1e6:.1f} MB"


class ResidentTrainingSet:
    """The rows of a TaskDataset a fit trains and validates on, held on `device`: raw X as
    one float32 tensor (the rows in sorted order), targets as float32, the standard scaler
    as float32 mean and 1/std (the arithmetic of `apply_standard_scaler`). `batch` equals
    `training_batch`; `evaluation_batches` equals `data.evaluation_batches`."""

    def __init__(self, data: TaskDataset, rows: np.ndarray, device: torch.device) -> None:
        self.rows = np.unique(np.asarray(rows, dtype=np.int64))  # dataset row of each resident position
        self.device = device
        self.valid = valid_samples(data, self.rows)  # on the host: crop offsets are drawn there
        self.x = torch.from_numpy(data.raw_rows(self.rows)).to(device)
        self.y = torch.from_numpy(data.y[self.rows].astype(np.float32)).to(device)
        self.scaler: tuple[torch.Tensor, torch.Tensor] | None = None
        if data.scaler is not None:
            mean, std = data.scaler
            self.scaler = (torch.from_numpy(np.asarray(mean, dtype=np.float32)[:, None]).to(device),
                           torch.from_numpy((1.0 / np.asarray(std, dtype=np.float64)).astype(np.float32)[:, None])
                           .to(device))

    @property
    def n_bytes(self) -> int:
        tensors = [self.x, self.y, *(self.scaler or ())]
        return sum(t.numel() * t.element_size() for t in tensors)

    def positions(self, rows: np.ndarray) -> np.ndarray:
        """Where dataset rows `rows` sit in the resident tensors; an error for a row not held."""
        rows = np.asarray(rows, dtype=np.int64)
        at = np.minimum(np.searchsorted(self.rows, rows), self.rows.size - 1)
        if not np.array_equal(self.rows[at], rows):
            raise EcgcoreError("the resident training set was asked for rows it does not hold")
        return at

    def batch(self, rows: np.ndarray, length: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs (random crops, scaled) and float targets of dataset rows `rows`, on the
        device: the values `training_batch(data, rows, length, generator)` gives, with the
        same draws from `generator`. The row positions and crop offsets travel to the
        device in one small copy (pinned and non-blocking on CUDA: a plain copy would wait
        for the previous step's kernels, leaving the GPU idle while the next are issued);
        the gather, crop and scaling run there."""
        at = self.positions(rows)
        starts = crop_starts(self.valid[at], length, generator)
        index = to_device(torch.from_numpy(np.stack([at, starts])), self.device)
        where, start = index[0], index[1]
        if length == self.x.shape[2]:
            x = self.x[where]
        else:  # (N, leads, T - length + 1, length) view; row b's crop is window start[b]
            x = self.x.unfold(2, length, 1)[where, :, start]
        return self._scaled(x).contiguous(), self.y[where]

    def _scaled(self, x: torch.Tensor) -> torch.Tensor:
        """(x - mean) * (1 / std) per lead, in float32 as `apply_standard_scaler` computes it."""
        if self.scaler is None:
            return x
        mean, scale = self.scaler
        return (x - mean).mul_(scale)

    def evaluation_batches(self, index: np.ndarray, length: int, batch_size: int,
                           ) -> Iterator[tuple[np.ndarray, torch.Tensor, torch.Tensor]]:
        """(rows, windows, use) per batch of records, the values `data.evaluation_batches`
        gives (`record_windows` of the scaled records), the windows cut on the device:
        each record's sliding windows consecutive; `use` (on the host, where the scores are
        aggregated) marks the windows inside its real signal."""
        starts = window_starts(int(self.x.shape[2]), length)
        at_start = torch.from_numpy(starts).to(self.device)
        for i in range(0, index.size, batch_size):
            rows = np.asarray(index[i:i + batch_size], dtype=np.int64)
            at = self.positions(rows)
            where = to_device(torch.from_numpy(at), self.device)
            x = self._scaled(self.x[where])  # (B, leads, T)
            windows = x.unfold(2, length, 1)[:, :, at_start]  # (B, leads, W, length)
            windows = windows.permute(0, 2, 1, 3).reshape(-1, x.shape[1], length)
            yield rows, windows, torch.from_numpy(windows_used(starts, self.valid[at], length))


def place_training_set(data: TaskDataset, rows: np.ndarray, asked: str, device: torch.device,
                       host_only: str | None = None) -> tuple[Placement, ResidentTrainingSet | None]:
    """The fit's placement (logged once) and, when it is "device", the resident set of
    `rows` (the rows it trains and validates on). `host_only`: why this fit must use host batches whatever was asked (a self-supervised
    objective builds its own batches; a streamed fit reads shards), as the reason."""
    if host_only is not None:
        placement = Placement("host", host_only)
    else:
        placement = decide_placement(asked, device, resident_bytes(data, rows), free_device_bytes(device))
    log.info("training batches on the %s: %s", placement.where, placement.reason)
    if placement.where == "host":
        return placement, None
    return placement, ResidentTrainingSet(data, rows, device)
