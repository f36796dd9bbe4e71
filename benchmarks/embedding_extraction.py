"""Embedding extraction: the embedding cache's extraction against a bare no-grad forward loop.

    python benchmarks/embedding_extraction.py                      # the four contract models
    python benchmarks/embedding_extraction.py --archs net1d_small --records 256 --repeat 3 --json

For each architecture, at its input contract (the synthetic demo source prepared by
`contract.prep_config`, so the input has the contract's rate, length, leads, filters and
normalisation), the same records, the same weights and the same batch size, interleaved
`--repeat` times (median):
  ours   `ecgcore.transfer.embedding_cache.cached_embeddings(..., "pooled")` into a fresh cache
         folder each time: the key (hashing the source's state dict), reading each batch from
         the prepared memmap (`data.batch`, one background thread ahead), the forward in eval
         mode under no_grad with a hook catching the final Linear's input, float32 copies into
         the entry's .npy memmap, meta.json and the atomic publish. The source is given as a
         registered checkpoint gives it (its file's SHA-256 in `extra`); an unregistered one
         (a pretraining run's model) adds one SHA-256 of its state dict per extraction
         (0.15-0.2 s for ECGFounder's 123 MB)
  bare   the rows already in memory as one tensor, `model.eval()`, `torch.no_grad()`, a loop
         of `model.embed(x)` over the same batches, outputs concatenated
and prints records/s of both and ours/bare (target >= 0.9). Both give the same embeddings
(checked to 1e-5). The full-size models are slow on a CPU (ECG-JEPA: 85 M parameters over
400 tokens), so they run few records by default (`--records` overrides every model's count).
Random weights: the speed does not depend on them.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path
from statistics import median
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ecgcore.checkpoint import Checkpoint
from ecgcore.data.pipeline import SplitConfig, TaskDataset, build_dataset
from ecgcore.data.prepare.config import PrepConfig
from ecgcore.data.splits import Split
from ecgcore.models import MODELS, ECGClassifier, create_model
from ecgcore.transfer.embedding_cache import POOLED, cached_embeddings, weights_identity

OUT = Path(__file__).resolve().parent / "out"
#: records, batch size and demo-data scale per model: a few minutes in all on the 2-core
#: machine (the demo-sized models need a thousand records before a run's fixed costs, about
#: 10 ms for the entry's files, stop showing beside their 0.3 ms per record)
DEFAULTS: dict[str, tuple[int, int, float]] = {"ecgfounder": (64, 8, 0.05), "ecg_jepa": (8, 4, 0.05),
                                               "net1d_small": (1024, 64, 0.6), "ecg_jepa_small": (1024, 64, 0.6)}


def contract_dataset(arch: str, records: int, scale: float) -> TaskDataset:
    """`records` rows of the demo source prepared at the architecture's input contract (the
    prepared array is cached in benchmarks/out; its preparation is not timed)."""
    from ecgcore.data.synthetic import write_demo_data

    root = OUT / f"demo_{scale:g}"
    if not (root / "source_ptbxl").is_dir():
        write_demo_data(root, seed=0, scale=scale)
    contract = MODELS[arch].contract
    assert contract is not None, f"{arch} has no input contract"
    data = build_dataset(root / "source_ptbxl", "ptbxl_superdiagnostic", contract.prep_config(PrepConfig()),
                         SplitConfig(), OUT / "cache", n_jobs=-1)
    n = min(records, len(data))
    every = np.arange(n, dtype=np.int64)
    return dataclasses.replace(  # the first n rows, named as a prepared array of their own
        data, X=data.X[:n], y=data.y[:n], record_ids=data.record_ids[:n], table=data.table.iloc[:n],
        lead_mask=None if data.lead_mask is None else data.lead_mask[:n],
        lengths=None if data.lengths is None else data.lengths[:n],
        split=Split(train=every, val=every[:0], test=every[:0], method="all"),
        cache_path=f"{data.cache_path}-first{n}")


def source_of(model: ECGClassifier) -> Checkpoint:
    """The weights as a registered checkpoint gives them: its file's SHA-256 in `extra` (here a
    digest of the state dict, made once before timing), so extraction hashes no weights."""
    state = model.state_dict()
    digest = weights_identity(Checkpoint(state, model.name, {}, [], [], {})).split(":", 1)[1]
    return Checkpoint(state_dict=state, model_name=model.name, model_config=dict(model.config),
                      classes=[], class_names=[], prep={}, stage="checkpoint", extra={"sha256": digest})


def ours(model: ECGClassifier, source: Checkpoint, data: TaskDataset, batch: int) -> tuple[float, np.ndarray]:
    with tempfile.TemporaryDirectory(dir=OUT) as folder:
        start = time.perf_counter()
        entry = cached_embeddings(model, source, data, POOLED, batch_size=batch, cache_dir=Path(folder))
        seconds = time.perf_counter() - start
        assert entry.extracted
        return len(data) / seconds, np.array(entry.values)


def bare(model: ECGClassifier, data: TaskDataset, batch: int) -> tuple[float, np.ndarray]:
    x = torch.from_numpy(data.batch(np.arange(len(data))))
    model.eval()
    start = time.perf_counter()
    with torch.no_grad():
        out = [model.embed(x[i:i + batch]) for i in range(0, len(x), batch)]
    seconds = time.perf_counter() - start
    return len(data) / seconds, torch.cat(out).numpy()


def measure(arch: str, records: int, batch: int, repeat: int, scale: float) -> dict[str, Any]:
    data = contract_dataset(arch, records, scale)
    torch.manual_seed(0)
    model = create_model(arch, n_leads=data.X.shape[1], n_classes=5, n_samples=data.X.shape[2])
    source = source_of(model)
    bare(model, data, batch)  # warm-up (first-call allocations), untimed
    rates: dict[str, list[float]] = {"ours": [], "bare": []}
    for _ in range(repeat):
        rate, ours_values = ours(model, source, data, batch)
        rates["ours"].append(rate)
        rate, bare_values = bare(model, data, batch)
        rates["bare"].append(rate)
        np.testing.assert_allclose(ours_values, bare_values, rtol=1e-5, atol=1e-5)
    o, b = median(rates["ours"]), median(rates["bare"])
    return {"arch": arch, "records": len(data), "batch": batch, "input": list(data.X.shape[1:]),
            "params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
            "ours_records_s": round(o, 2), "bare_records_s": round(b, 2), "ratio": round(o / b, 3),
            "threads": torch.get_num_threads()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--archs", nargs="+", default=list(DEFAULTS), choices=sorted(DEFAULTS))
    parser.add_argument("--records", type=int, help="records per model (default: per model, see DEFAULTS)")
    parser.add_argument("--batch-size", type=int, help="batch size (default: per model)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--scale", type=float, help="demo data scale (default: per model; 0.15 is about 280 records)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    OUT.mkdir(exist_ok=True)
    rows = []
    for arch in args.archs:
        records, batch, scale = DEFAULTS[arch]
        rows.append(measure(arch, args.records or records, args.batch_size or batch, args.repeat,
                            args.scale or scale))
        if not args.json:
            r = rows[-1]
            print(f"{r['arch']:<15} {r['params_m']:>6} M params  input {r['input'][0]}x{r['input'][1]:<5} "
                  f"{r['records']:>4} records, batch {r['batch']:<3}  ours {r['ours_records_s']:>8.2f} rec/s  "
                  f"bare {r['bare_records_s']:>8.2f} rec/s  ours/bare {r['ratio']:.3f}", flush=True)
    if args.json:
        print(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
