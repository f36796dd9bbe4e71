"""Streamed self-supervised pretraining: peak memory and samples/s against the record count.

    python benchmarks/ssl_streaming_memory.py [--sizes 10000 100000 1000000] [--steps 300] [--json]

For each size, in a fresh process (so its peak resident memory is its own): a source of
that many synthetic records (`SyntheticShards`: 12 leads x 1,000 samples at 100 Hz,
generated shard by shard, never all in memory), streamed by `ShardStream` (shards of
`--shard-size` records, `--buffer-shards` held at a time, shuffled per epoch), and
`--steps` SimCLR pretraining steps of small_cnn on it: each batch through the method's own
`batch` (two random 2.5 s crops per record, the default augmentations), forward, NT-Xent,
backward, Adam step, exactly what the trainer does per step (`ecgcore.train.epoch`).
Reported per size: peak resident memory (`ru_maxrss`) and its growth over the process's
memory before the first step (torch, the model, the optimizer), and records/s over the
steps after the first 20 (each record gives two views).

The steps are the same for every size, so the number of records read is too: what could
grow with the record count is what the stream holds per record (the shard order, the
per-shard counts; no per-record array when every row is used) and what a non-streamed run
would hold (the whole array: 48 KB a record, 48 GB at 1 M). The ratio of peak memory
1 M / 10 k is the check (target about 1.0).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ecgcore.data.prepare.shards import SyntheticShards
from ecgcore.models import create_model
from ecgcore.ssl.methods import get_method, method_config
from ecgcore.ssl.pretrain import PLACEHOLDER_OUTPUTS
from ecgcore.train.data import (
    ShardStream,
    UnlabelledRecords,
    draw_epoch_seed,
    streamed_batches,
)

FS = 100.0
WARMUP = 20


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def run_one(n_records: int, steps: int, batch_size: int, shard_size: int, buffer_shards: int,
            crop_seconds: float, arch: str, seed: int) -> dict[str, Any]:
    """`steps` streamed SimCLR steps on `n_records` generated records, in this process."""
    torch.manual_seed(seed)
    source = SyntheticShards(n_records, fs=FS, seconds=10.0, n_leads=12, seed=seed)
    stream = ShardStream(source, shard_size=shard_size, buffer_shards=buffer_shards, batch_size=batch_size)
    base = UnlabelledRecords(n_records, FS)
    length = round(crop_seconds * FS)
    config = method_config("simclr", {})
    assert config is not None
    method = get_method(config)
    backbone = create_model(arch, n_leads=12, n_classes=PLACEHOLDER_OUTPUTS, n_samples=length)
    net = method.build(backbone, 12, length)
    optimizer = torch.optim.Adam(method.plan(net, backbone, 1e-3).param_groups)
    generator = torch.Generator().manual_seed(seed)
    before = peak_rss_mb()
    done, started = 0, 0.0
    net.train()
    while done < steps:  # epochs until the steps are done (10 k records: 156 steps an epoch)
        make = lambda view: method.batch(view, view.rows, length, generator)
        for batch in streamed_batches(stream, base, make, draw_epoch_seed(generator)):
            if done == WARMUP:
                started = time.perf_counter()
            loss = method.loss(method.outputs(net, batch), batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            done += 1
            if done == steps:
                break
    seconds = time.perf_counter() - started
    return {"records": n_records, "steps": steps, "batch_size": batch_size, "shard_size": shard_size,
            "buffer_shards": buffer_shards, "records_per_s": (steps - WARMUP) * batch_size / seconds,
            "rss_before_mb": before, "peak_rss_mb": peak_rss_mb(), "final_loss": float(loss.detach())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--shard-size", type=int, default=256)
    parser.add_argument("--buffer-shards", type=int, default=4)
    parser.add_argument("--crop-seconds", type=float, default=2.5)
    parser.add_argument("--arch", default="small_cnn")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--one", action="store_true", help="run the first size in this process (internal)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    settings: dict[str, Any] = {"steps": args.steps, "batch_size": args.batch_size, "shard_size": args.shard_size,
                                "buffer_shards": args.buffer_shards, "crop_seconds": args.crop_seconds,
                                "arch": args.arch, "seed": args.seed}
    if args.one:
        print(json.dumps(run_one(args.sizes[0], **settings)))
        return
    results = []
    for size in args.sizes:
        command = [sys.executable, __file__, "--one", "--sizes", str(size), "--steps", str(args.steps),
                   "--batch-size", str(args.batch_size), "--shard-size", str(args.shard_size),
                   "--buffer-shards", str(args.buffer_shards), "--crop-seconds", str(args.crop_seconds),
                   "--arch", args.arch, "--seed", str(args.seed)]
        out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        results.append(json.loads(out.strip().splitlines()[-1]))
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"simclr on {args.arch}, batch {args.batch_size}, {args.steps} steps, shards of {args.shard_size} "
          f"records, {args.buffer_shards} held; torch threads {torch.get_num_threads()}")
    print(f"{'records':>10} {'peak RSS MB':>12} {'before steps MB':>16} {'records/s':>10}")
    for r in results:
        print(f"{r['records']:>10,} {r['peak_rss_mb']:>12.0f} {r['rss_before_mb']:>16.0f} {r['records_per_s']:>10.0f}")
    first, last = results[0], results[-1]
    print(f"peak memory {last['records']:,} / {first['records']:,} records: "
          f"{last['peak_rss_mb'] / first['peak_rss_mb']:.3f}")


if __name__ == "__main__":
    main()
