"""The `attention_probe` strategy's fit: the ECG foundation-model benchmark's "frozen" mode,
trained on cached token embeddings.

Al-Masud, Lopez Alcaraz & Strodthoff (ICLR 2026; AI4HealthUOL/ecg-fm-benchmarking
`clinical_ts/models/fm_ecg.py`, eval_mode "frozen"): the encoder's parameters frozen and in
eval mode, its token sequence (ECGFounder: the last stage's time steps; ECG-JEPA: the
normed patch tokens) pooled by a learnable-query attention head (16 heads, no biases, see
`ecgcore.models.token_head`) whose output projection gives the logits. Their run: AdamW,
lr 1e-3, weight decay 1e-3, batch 64, constant schedule, 100 epochs, the epoch with the best
validation macro AUC kept; here the run's own TrainConfig says all of that (set it so for
their recipe), and `ecgcore.train.fit` trains the head exactly as it trains any model:
same batches, loss, early stopping, best-epoch choice, history and resumable last.pt.

Because the encoder is frozen, its tokens are the same every epoch: they are extracted once
into the embedding cache (grouped to at most `MAX_TOKENS` tokens, float16; see
`embedding_cache`), and the head trains on them as if they were the data: a TaskDataset
whose rows are the records' token arrays. The trained head then becomes the model's head
(`TokenPooled`), so model.pt holds encoder and head and reloads through `create_model`.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ecgcore.checkpoint import Checkpoint
from ecgcore.data.pipeline import TaskDataset
from ecgcore.models.base import ECGClassifier
from ecgcore.models.token_head import AttentionHead, attention_heads, with_token_head
from ecgcore.train import TrainConfig, fit, predict
from ecgcore.train.callbacks import Callback, Callbacks
from ecgcore.train.device import select_device
from ecgcore.transfer.base import EpochPlan
from ecgcore.transfer.embedding_cache import (
    MAX_TOKENS,
    TOKENS,
    cached_embeddings,
    require_whole_window,
)
from ecgcore.transfer.strategy import EveryEpoch, ProbeFit

log = logging.getLogger(__name__)


class OnGroupedTokens(nn.Module):
    """The attention head applied to tokens already grouped (the cache's rows): what the
    trainer trains. It shares its parameters with the model's head."""

    def __init__(self, head: AttentionHead) -> None:
        super().__init__()
        self.head = head

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.head.classifier(self.head.pool.attend(tokens))


def probe_plan(phase: str) -> Callable[[nn.Module, int, float], EpochPlan]:
    """The trainer's plan_fn: every parameter of the head at the base LR, in `phase`."""

    def plan(module: nn.Module, epoch: int, lr: float) -> EpochPlan:
        return EpochPlan(param_groups=[{"params": list(module.parameters()), "lr": lr, "group": 0}],
                         signature=((0, lr),), phase=phase)

    return plan


def token_dataset(data: TaskDataset, tokens: np.ndarray) -> TaskDataset:
    """`data` with each record's tokens (records, tokens, dim) in place of its signal: the
    trainer reads them as (records, "leads", "samples") and, with no crop, feeds each
    record's whole array. No scaler, lengths or lead mask: they describe the signal."""
    return dataclasses.replace(data, X=tokens, scaler=None, lengths=None, lead_mask=None)


def fit_attention_probe(model: ECGClassifier, source: Checkpoint, data: TaskDataset, train: TrainConfig,
                        phase: dict[str, object], *, checkpoint_dir: Path, callbacks: Sequence[Callback] = (),
                        every_epoch: EveryEpoch | None = None, max_tokens: int = MAX_TOKENS) -> ProbeFit:
    """Extract (or read) the token embeddings, train a fresh attention head on the training
    split (validated on the validation split), and return `model` wrapped with it. `phase`
    is the strategy's report of its one phase, without epochs run (filled in here)."""
    require_whole_window(data, train, "attention_probe")
    started = time.perf_counter()
    device = select_device(train.device)
    embeddings = cached_embeddings(model, source, data, TOKENS, max_tokens=max_tokens,
                                   batch_size=train.eval_batch_size, device=device, precision=train.precision,
                                   stop=Callbacks(callbacks).should_stop)
    embedded = time.perf_counter() - started
    n_tokens, dim = int(embeddings.values.shape[1]), int(embeddings.values.shape[2])
    heads = attention_heads(dim)
    with torch.random.fork_rng(devices=[]):  # the head's initial weights follow the run's seed alone
        torch.manual_seed(train.seed)
        probed = with_token_head(model, len(data.classes), dim=dim, heads=heads, group=embeddings.group)
    trained = OnGroupedTokens(probed.attention)
    tokens = token_dataset(data, embeddings.values)
    log.info("attention probe: %d heads over %d tokens of %d (groups of %d) for %d classes",
             heads, n_tokens, dim, embeddings.group, len(data.classes))
    extra = [every_epoch(trained, tokens)] if every_epoch is not None else []
    result = fit(trained, tokens, train, plan_fn=probe_plan(str(phase["name"])), checkpoint_dir=checkpoint_dir,
                 callbacks=[*callbacks, *extra])
    trained.load_state_dict(result.best_state)
    result.best_state = {k: v.detach().cpu().clone() for k, v in probed.state_dict().items()}
    result.notes.append("attention probe: the head trained on the frozen encoder's cached token embeddings "
                        f"({'read from the cache' if not embeddings.extracted else 'extracted'})")
    report = {"kind": "attention_pool", "protocol": "ECG FM benchmark (ICLR 2026) frozen mode",
              "heads": heads, "tokens": n_tokens, "group": embeddings.group, "dim": dim, "bias": False,
              "embeddings": {"key": embeddings.key, "from_cache": not embeddings.extracted,
                             "dtype": str(embeddings.values.dtype), "seconds": round(embedded, 3)}}
    epochs_run = result.epochs_run
    reached = {"epochs_run": epochs_run, "reached": epochs_run > 0}
    return ProbeFit(probed, result, [{**phase, **reached, "probe": report}],
                    lambda rows: predict(trained, tokens, rows, train))
