"""Probes on cached embeddings against probes that encode again.

    python benchmarks/embedding_probe_cache.py                         # net1d_small, ecg_jepa_small
    python benchmarks/embedding_probe_cache.py --archs ecgfounder --scale 0.05 --epochs 3 --json

For each architecture, on the synthetic demo source prepared at its input contract (patient
split 60/20/20), a random-weight source model, interleaved `--repeat` times (median seconds):
(1) embedding_probe (`fit_embedding_probe`: the per-class logistic-regression grid)
      encode   an empty embedding cache: every record encoded, then the probes fitted
               (the encoding's own seconds are printed too)
      cached   the cache already holds the embeddings: read, then the same fit
    The folded final Linears are checked equal.
(2) attention_probe, `--epochs` epochs of the attention head, batch 32, no early stopping
      encode   what the ECG FM benchmark's frozen mode does: the model with the attention head
               trained by `ecgcore.train.fit` with every group but the head frozen, so the
               encoder runs on every batch of every epoch (and on validation)
      cached   `fit_attention_probe` on a cache that already holds the tokens
    Both train the same head from the same initial weights; the cached one sees float16
    tokens, so its validation AUC is printed beside the other's rather than required equal.
The ratio encode/cached is how many times faster a probe is once the embeddings are cached.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from statistics import median
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ecgcore.checkpoint import Checkpoint
from ecgcore.data.pipeline import SplitConfig, TaskDataset, build_dataset
from ecgcore.data.prepare.config import PrepConfig
from ecgcore.models import MODELS, ECGClassifier, create_model
from ecgcore.models.token_head import attention_heads, token_group, with_token_head
from ecgcore.train import TrainConfig, fit, macro_auc, predict
from ecgcore.transfer import StrategyOptions, get_strategy
from ecgcore.transfer.attention_probe import fit_attention_probe
from ecgcore.transfer.embedding_cache import MAX_TOKENS
from ecgcore.transfer.embedding_probe import fit_embedding_probe
from ecgcore.transfer.strategy import checked_groups, plan_from_rates

OUT = Path(__file__).resolve().parent / "out"
PHASE = {"name": "probe", "first_epoch": 0, "epochs_planned": None, "epochs_run": 0, "reached": True,
         "schedule": None, "train_bn": False}


def contract_dataset(arch: str, scale: float) -> TaskDataset:
    from ecgcore.data.synthetic import write_demo_data

    root = OUT / f"demo_{scale:g}"
    if not (root / "source_ptbxl").is_dir():
        write_demo_data(root, seed=0, scale=scale)
    contract = MODELS[arch].contract
    assert contract is not None, f"{arch} has no input contract"
    return build_dataset(root / "source_ptbxl", "ptbxl_superdiagnostic", contract.prep_config(PrepConfig()),
                         SplitConfig(method="patient", val=0.2, test=0.2, seed=0), OUT / "cache", n_jobs=-1)


def set_up(arch: str, data: TaskDataset, source: Checkpoint) -> ECGClassifier:
    torch.manual_seed(1)
    model = create_model(arch, n_leads=data.X.shape[1], n_classes=len(data.classes), n_samples=data.X.shape[2])
    get_strategy("embedding_probe").setup(model, source, list(data.classes), StrategyOptions())
    return model


class Home:
    """ECGCORE_HOME pointed at a folder for a while (the embedding cache lives under it)."""

    def __init__(self, path: Path) -> None:
        self.path, self.before = path, os.environ.get("ECGCORE_HOME")

    def __enter__(self) -> None:
        os.environ["ECGCORE_HOME"] = str(self.path)

    def __exit__(self, *exc: object) -> None:
        if self.before is None:
            os.environ.pop("ECGCORE_HOME", None)
        else:
            os.environ["ECGCORE_HOME"] = self.before


def timed(call: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    result = call()
    return time.perf_counter() - start, result


def linear_probe(arch: str, data: TaskDataset, source: Checkpoint, train: TrainConfig,
                 warm: Path) -> tuple[float, float, float]:
    """Seconds of (encode, cached) embedding probes, and of the encoding within the first;
    their folded heads must be equal."""
    with tempfile.TemporaryDirectory(dir=OUT) as cold, Home(Path(cold)):
        encode, first = timed(lambda: fit_embedding_probe(set_up(arch, data, source), source, data, train, PHASE))
    with Home(warm):
        cached, second = timed(lambda: fit_embedding_probe(set_up(arch, data, source), source, data, train, PHASE))
    assert second.phases[0]["probe"]["embeddings"]["from_cache"]
    for key, value in first.model.state_dict().items():
        assert torch.equal(value, second.model.state_dict()[key]), key
    return encode, cached, first.phases[0]["probe"]["embeddings"]["seconds"]


def attention_probe(arch: str, data: TaskDataset, source: Checkpoint, train: TrainConfig,
                    warm: Path) -> tuple[float, float, float, float]:
    """Seconds of (encode, cached) attention probes and their validation macro AUCs."""
    val = data.split.val

    def reencode() -> float:
        model = set_up(arch, data, source)
        with torch.no_grad():
            n_tokens, dim = model.eval().tokens(torch.from_numpy(data.batch([0]))).shape[1:]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(train.seed)
            probed = with_token_head(model, len(data.classes), dim=dim, heads=attention_heads(dim),
                                     group=token_group(n_tokens, MAX_TOKENS))
        head_only = (None,) * (len(probed.layer_groups()) - 1) + (1.0,)
        with tempfile.TemporaryDirectory(dir=OUT) as checkpoints:
            result = fit(probed, data, train, checkpoint_dir=checkpoints,
                         plan_fn=lambda m, epoch, lr: plan_from_rates(checked_groups(m), head_only, lr))
        probed.load_state_dict(result.best_state)
        return macro_auc(data.y[val], predict(probed, data, val, train))

    def from_cache() -> float:
        with tempfile.TemporaryDirectory(dir=OUT) as checkpoints, Home(warm):
            probe = fit_attention_probe(set_up(arch, data, source), source, data, train, dict(PHASE),
                                        checkpoint_dir=Path(checkpoints))
        assert probe.phases[0]["probe"]["embeddings"]["from_cache"]
        return macro_auc(data.y[val], probe.scores(val))

    encode, auc_encode = timed(reencode)
    cached, auc_cached = timed(from_cache)
    return encode, cached, auc_encode, auc_cached


def measure(arch: str, scale: float, epochs: int, repeat: int) -> dict[str, Any]:
    data = contract_dataset(arch, scale)
    torch.manual_seed(0)
    source_model = create_model(arch, n_leads=data.X.shape[1], n_classes=2, n_samples=data.X.shape[2])
    source = Checkpoint(state_dict=copy.deepcopy(source_model.state_dict()), model_name=arch,
                        model_config=dict(source_model.config), classes=["a", "b"], class_names=["a", "b"],
                        prep={}, stage="pretrain")
    train = TrainConfig(epochs=epochs, batch_size=32, lr=1e-3, optimizer="adamw", weight_decay=1e-3,
                        early_stopping_patience=None, eval_batch_size=64)
    times: dict[str, list[float]] = {"lr_encode": [], "lr_cached": [], "lr_encoding": [], "att_encode": [],
                                     "att_cached": []}
    aucs: tuple[float, float] = (float("nan"), float("nan"))
    with tempfile.TemporaryDirectory(dir=OUT) as warm:
        with Home(Path(warm)):  # fill the warm cache once (untimed)
            fit_embedding_probe(set_up(arch, data, source), source, data, train, PHASE)
            fit_attention_probe(set_up(arch, data, source), source, data, train, dict(PHASE),
                                checkpoint_dir=Path(warm) / "checkpoints")
        for _ in range(repeat):
            encode, cached, encoding = linear_probe(arch, data, source, train, Path(warm))
            times["lr_encode"].append(encode)
            times["lr_cached"].append(cached)
            times["lr_encoding"].append(encoding)
            encode, cached, *aucs = attention_probe(arch, data, source, train, Path(warm))
            times["att_encode"].append(encode)
            times["att_cached"].append(cached)
    m = {k: median(v) for k, v in times.items()}
    return {"arch": arch, "records": len(data), "split": data.split.sizes(), "classes": len(data.classes),
            "epochs": epochs, "embedding_probe_encode_s": round(m["lr_encode"], 3),
            "embedding_probe_cached_s": round(m["lr_cached"], 3), "encoding_s": round(m["lr_encoding"], 3),
            "embedding_probe_ratio": round(m["lr_encode"] / m["lr_cached"], 2),
            "attention_probe_encode_s": round(m["att_encode"], 3),
            "attention_probe_cached_s": round(m["att_cached"], 3),
            "attention_probe_ratio": round(m["att_encode"] / m["att_cached"], 2),
            "val_auc_encode": round(float(aucs[0]), 4), "val_auc_cached": round(float(aucs[1]), 4),
            "threads": torch.get_num_threads()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--archs", nargs="+", default=["net1d_small", "ecg_jepa_small"],
                        choices=sorted(name for name, a in MODELS.items() if a.contract is not None))
    parser.add_argument("--scale", type=float, default=0.15, help="demo data scale (0.15: about 300 records)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    OUT.mkdir(exist_ok=True)
    rows = []
    for arch in args.archs:
        rows.append(measure(arch, args.scale, args.epochs, args.repeat))
        if not args.json:
            r = rows[-1]
            print(f"{r['arch']:<15} {r['records']} records {r['split']}, {r['classes']} classes\n"
                  f"  embedding_probe  encode {r['embedding_probe_encode_s']:>8.2f} s  cached "
                  f"{r['embedding_probe_cached_s']:>8.2f} s  encode/cached {r['embedding_probe_ratio']:.2f}  "
                  f"(encoding {r['encoding_s']:.2f} s of it)\n"
                  f"  attention_probe  encode {r['attention_probe_encode_s']:>8.2f} s  cached "
                  f"{r['attention_probe_cached_s']:>8.2f} s  encode/cached {r['attention_probe_ratio']:.2f}  "
                  f"({r['epochs']} epochs; val macro AUC {r['val_auc_encode']} vs {r['val_auc_cached']})",
                  flush=True)
    if args.json:
        print(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
