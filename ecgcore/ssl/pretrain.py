"""A self-supervised pretraining run's training step: a zoo backbone trained by a method's
pretext task through the trainer (`ecgcore.train.fit`, with the method as its objective),
so batches, checkpoints, resume, early stopping and history.csv are the trainer's own.

What it leaves is a source like any other: the backbone (`ECGClassifier`, whose model.pt
a target run loads with any strategy; the loader skips the final Linear) with a head of
one output that no pretext task trains, and no classes (a strategy that keeps source
head rows finds none to keep). The projection head or decoder is the method's, and is
dropped: transfer needs the encoder only.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ecgcore.data.pipeline import TaskDataset
from ecgcore.models import create_model
from ecgcore.models.base import ECGClassifier
from ecgcore.runs.run_config import PretrainMethodConfig
from ecgcore.ssl.methods import PretrainMethod, get_method
from ecgcore.train import FitResult, TrainConfig, fit
from ecgcore.train.callbacks import Callback
from ecgcore.train.data import StreamSettings, crop_length
from ecgcore.train.device import select_device

log = logging.getLogger(__name__)

#: Outputs of a self-supervised encoder's head: one untrained output that every transfer
#: strategy replaces (no class is learnt; model.pt needs a head to rebuild the model).
PLACEHOLDER_OUTPUTS = 1
#: A prepared array larger than this is streamed in shards (`ecgcore.train.data.ShardStream`)
#: unless the caller says otherwise: a fixed size, not this machine's memory, so a run
#: streams (and draws its batches) alike on every machine. MIMIC-IV-ECG at 100 Hz is 38 GB.
STREAM_ABOVE_BYTES = 16 * 2**30
TEST_NOTE = ("self-supervised pretraining scores no classes; pretext_loss is the method's loss on the "
             "test records (views and masks drawn from the run's seed)")


@dataclass
class Pretrained:
    """What `pretrain_encoder` leaves: the backbone (best weights loaded), the fit, the
    method, and its pretext loss on the test records."""

    backbone: ECGClassifier
    fit: FitResult
    method: PretrainMethod
    config: PretrainMethodConfig
    test_loss: float

    def test_metrics(self) -> dict[str, Any]:
        """results.json's `test`: the keys every run has (no classes, so no AUC) and the
        pretext loss."""
        return {"macro_auc": None, "macro_auc_ci": None, "per_class_auc": {}, "macro_auprc": None,
                "f1_weighted": None, "pretext_loss": None if math.isnan(self.test_loss) else self.test_loss,
                "note": TEST_NOTE}

    def facts(self) -> dict[str, Any]:
        """What results.json and model.pt record of the method: its name, every setting and
        the augmentations as applied."""
        return {"name": self.config.name, "settings": self.config.options,
                "augmentations": self.method.augmentations()}


def stream_settings(data: TaskDataset, config: PretrainMethodConfig, stream: bool | None) -> StreamSettings | None:
    """Shards to stream the training rows in: when asked (`stream` True, or the method's
    `stream` setting), never when refused (False), and otherwise when the prepared array
    exceeds STREAM_ABOVE_BYTES; in the method's shard size and buffer."""
    options = config.options
    if stream is None:
        stream = bool(options.get("stream")) or int(data.X.nbytes) > STREAM_ABOVE_BYTES
    if not stream:
        return None
    default = StreamSettings()
    return StreamSettings(shard_size=int(options.get("shard_size", default.shard_size)),
                          buffer_shards=int(options.get("buffer_shards", default.buffer_shards)))


def pretrain_encoder(arch: str, config: PretrainMethodConfig, data: TaskDataset, train: TrainConfig, *,
                     seed: int, checkpoint_dir: Path, callbacks: Sequence[Callback] = (),
                     stream: bool | None = None) -> Pretrained:
    """Build `arch` for `data`'s records, train it by `config`'s method (resuming from
    `checkpoint_dir`'s last.pt when there is one; streaming the records in shards as
    `stream_settings` says) and return it with its best weights."""
    method = get_method(config)
    n_leads, window = int(data.X.shape[1]), int(data.X.shape[2])
    length = crop_length(data, train.crop_seconds)
    torch.manual_seed(seed)
    backbone = create_model(arch, n_leads=n_leads, n_classes=PLACEHOLDER_OUTPUTS, n_samples=length)
    method.check(backbone, n_leads, length, window)
    module = method.build(backbone, n_leads, length)
    log.info("%s pretraining of %s on %d records (%d validation), labels unused", config.name, arch,
             data.split.train.size, data.split.val.size)
    shards = stream_settings(data, config, stream)
    result = fit(module, data, train, plan_fn=lambda m, epoch, lr: method.plan(m, backbone, lr),
                 checkpoint_dir=checkpoint_dir, callbacks=callbacks, objective=method, stream=shards)
    if shards is not None:
        result.notes.append(f"training records streamed in shards of {shards.shard_size} rows, "
                            f"{shards.buffer_shards} held at a time")
    module.load_state_dict(result.best_state)
    device = select_device(train.device)
    test_loss = method.pretext_loss(module, data, data.split.test, length, train.batch_size, seed, device,
                                    result.precision)
    module.to("cpu")
    return Pretrained(backbone=backbone, fit=result, method=method, config=config, test_loss=test_loss)
