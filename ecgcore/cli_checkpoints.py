"""Commands for foundation-model checkpoints: `add-checkpoint`, `checkpoints`,
`remove-checkpoint`, `download-checkpoint` and `embed` (see `ecgcore.foundation`)."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from ecgcore.cli_registry import command, print_json
from ecgcore.errors import EcgcoreError


def _contract_line(contract: dict[str, Any]) -> str:
    leads = contract.get("leads") or []
    return f"{len(leads)} leads x {contract.get('n_samples')} samples at {contract.get('fs')} Hz"


def _add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", type=Path, help="the checkpoint file as published (e.g. 12_lead_ECGFounder.pth)")
    # Checked by the handler, not by argparse choices: the catalogue imports torch, which
    # building the parser for every command should not.
    p.add_argument("--model", required=True, metavar="MODEL",
                   help="which catalogue model the file is (`checkpoints --models` lists them)")
    p.add_argument("--name", default=None, help="registry name (default: the model's name)")
    p.add_argument("--json", action="store_true", help="print the record as JSON")


@command("add-checkpoint", "register a downloaded foundation-model checkpoint by path (SHA-256, "
         "loaded with weights_only, every tensor checked against the model)", _add_args)
def _add_checkpoint(args: argparse.Namespace) -> int:
    from ecgcore.foundation.checkpoints import add_checkpoint

    record = add_checkpoint(args.path, args.model, name=args.name)
    if args.json:
        print_json(record.to_dict())
    else:
        print(f"registered {record.name}: {record.model} ({record.arch}), SHA-256 {record.sha256[:16]}…, "
              f"{record.size_bytes} bytes, {record.path}")
        print(f"licence: {record.licence}; commercial use: {'yes' if record.commercial_use else 'no'}")
        print(f"input contract: {_contract_line(record.contract)}")
    return 0


def _list_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--models", action="store_true",
                   help="list the catalogue's models (what add-checkpoint --model takes) instead")
    p.add_argument("--json", action="store_true", help="print every record as JSON")


def _print_models(as_json: bool) -> None:
    from ecgcore.foundation.catalogue import FOUNDATION_MODELS

    if as_json:
        print_json([entry.describe() for entry in FOUNDATION_MODELS.values()])
        return
    for entry in FOUNDATION_MODELS.values():
        print(f"{entry.name:<12} {entry.title}; architecture {entry.arch}; "
              f"commercial use: {'yes' if entry.commercial_use else 'no'}")
        print(f"{'':<12} licence: {entry.licence}")


@command("checkpoints", "list the registered foundation-model checkpoints with licence and input contract",
         _list_args)
def _checkpoints(args: argparse.Namespace) -> int:
    from ecgcore.foundation.checkpoints import list_checkpoints

    if args.models:
        _print_models(args.json)
        return 0
    records = list_checkpoints()
    if args.json:
        print_json([record.to_dict() for record in records])
        return 0
    if not records:
        print("no checkpoint registered (python -m ecgcore add-checkpoint PATH --model MODEL)")
    for record in records:
        print(f"{record.name:<16} {record.model:<12} sha256 {record.sha256[:12]}  "
              f"commercial use: {'yes' if record.commercial_use else 'no'}  "
              f"{_contract_line(record.contract)}")
        print(f"{'':<16} licence: {record.licence}")
    return 0


def _remove_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", help="registry name of the checkpoint")


@command("remove-checkpoint", "forget a registered checkpoint (its file is kept)", _remove_args)
def _remove_checkpoint(args: argparse.Namespace) -> int:
    from ecgcore.foundation.checkpoints import remove_checkpoint

    record = remove_checkpoint(args.name)
    print(f"removed {record.name}; its file {record.path} is kept")
    return 0


def _download_args(p: argparse.ArgumentParser) -> None:
    from ecgcore.download.catalogue import CHECKPOINT_CATALOGUE

    p.add_argument("name", nargs="?", choices=list(CHECKPOINT_CATALOGUE), metavar="NAME",
                   help="checkpoint: " + ", ".join(CHECKPOINT_CATALOGUE) + " (--list describes them)")
    p.add_argument("--to", type=Path, default=None,
                   help="folder to download into (default: $ECGCORE_HOME/checkpoints/files/NAME)")
    p.add_argument("--as", dest="add_as", default=None, metavar="NAME",
                   help="registry name (default: the catalogue's model name, e.g. ecgfounder)")
    p.add_argument("--base-url", default=None, help="a mirror in the host's layout")
    p.add_argument("--list", action="store_true", help="describe the checkpoint catalogue and exit")
    p.add_argument("--json", action="store_true", help="print the result (or the catalogue) as JSON")


@command("download-checkpoint", "download a public foundation-model checkpoint, check it and register it",
         _download_args)
def _download_checkpoint(args: argparse.Namespace) -> int:
    from ecgcore import workspace
    from ecgcore.download import download_dataset
    from ecgcore.download.catalogue import CHECKPOINT_CATALOGUE
    from ecgcore.download.download_progress import TqdmBar
    from ecgcore.logs import progress_bars

    if args.list:
        if args.json:
            print_json([entry.describe() for entry in CHECKPOINT_CATALOGUE.values()])
        else:
            for entry in CHECKPOINT_CATALOGUE.values():
                print(f"{entry.name:<20} {entry.title}, {entry.approx_size}; {entry.licence}; "
                      f"checked by {entry.checksums}")
        return 0
    if args.name is None:
        raise EcgcoreError("download-checkpoint: give a checkpoint NAME (or --list)")
    entry = CHECKPOINT_CATALOGUE[args.name]
    to = args.to if args.to is not None else workspace.checkpoints_dir() / "files" / entry.name
    stop = threading.Event()
    signums = (signal.SIGTERM, signal.SIGINT)  # stop after the current chunk, keep the .part file
    before = {signum: signal.signal(signum, lambda *_: stop.set()) for signum in signums}
    try:
        with progress_bars():
            result = download_dataset(args.name, to, base_url=args.base_url,
                                      add_as=args.add_as or entry.checkpoint_model, progress=TqdmBar(), stop=stop)
    finally:
        for signum, handler in before.items():
            signal.signal(signum, handler)
    if args.json:
        print_json(result.to_dict())
    elif result.added_as:
        print(f"{entry.title}: verified and registered as checkpoint {result.added_as} ({result.root})")
    for failure in result.failed:
        print(f"error: {failure['path']}: {failure['reason']}", file=sys.stderr)
    return 0 if result.ok else 2


def _embed_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, metavar="NAME", help="registered checkpoint to embed with")
    p.add_argument("files", nargs="+", type=Path,
                   help="WFDB records: a .hea, its .dat/.mat, or the record path without extension")
    p.add_argument("--json", action="store_true",
                   help='print a list of {"record", "checkpoint", "dim", "embedding"}')


@command("embed", "pooled embeddings of records through a registered checkpoint, its input contract applied",
         _embed_args)
def _embed(args: argparse.Namespace) -> int:
    from ecgcore.foundation.embed import embed_files

    items = embed_files(args.checkpoint, args.files)
    if args.json:
        print_json(items)
        return 0
    for item in items:
        values = item["embedding"]
        norm = sum(v * v for v in values) ** 0.5
        head = ", ".join(f"{v:.4f}" for v in values[:4])
        print(f"{item['record']}: {item['dim']} dimensions, norm {norm:.4f}, first [{head}, …] "
              f"({item['checkpoint']})")
    return 0
