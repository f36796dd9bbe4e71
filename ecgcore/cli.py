"""`python -m ecgcore …`: one registry of commands, each with --help; bad input exits
non-zero with one line naming the input and the reason."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path
from typing import Any

from ecgcore import logs
from ecgcore.cli_registry import COMMANDS, command, print_json
from ecgcore.errors import EcgcoreError



def _demo_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, default=None,
                   help="folder to write into (default: $ECGCORE_HOME/datasets)")
    p.add_argument("--seed", type=int, default=0, help="random seed (output is deterministic by seed)")
    p.add_argument("--scale", type=float, default=1.0,
                   help="multiply every site's record count (e.g. 0.1 for a quick look)")
    p.add_argument("--json", action="store_true", help="print what was written as JSON")


@command("demo-data", "write the embedded synthetic multi-site default in real formats", _demo_args)
def _demo_data(args: argparse.Namespace) -> int:
    from ecgcore import workspace
    from ecgcore.data.synthetic import write_demo_data

    out = args.out if args.out is not None else workspace.datasets_dir()
    written = write_demo_data(out, seed=args.seed, scale=args.scale)
    if args.json:
        print_json(written)
    else:
        for site in written["sites"]:
            print(f"{site['name']}: {site['n_records']} records ({site['layout']}) -> {site['path']}")
    return 0


def _inspect_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", type=Path, help="dataset folder")
    p.add_argument("--layout", default=None, help="force a layout instead of detecting it")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="reader option, repeatable (e.g. --option fs=500 for PTB-XL's 500 Hz records)")
    p.add_argument("--no-signals", action="store_true",
                   help="check headers only (fast); skip reading every signal")
    p.add_argument("--json", action="store_true", help="print the report as JSON")


def parse_options(pairs: list[str]) -> dict[str, Any]:
    """`["fs=500", "name=x"]` -> `{"fs": 500, "name": "x"}` (numbers parsed, the rest text)."""
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"option {pair!r} is not KEY=VALUE")
        try:
            options[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            options[key.strip()] = value
    return options


@command("inspect-data", "describe a dataset folder: layout, counts, rates, labels, bad records",
         _inspect_args)
def _inspect_data(args: argparse.Namespace) -> int:
    from ecgcore.data.dataset_survey import format_report, inspect_dataset

    with logs.progress_bars():
        report = inspect_dataset(args.path, layout=args.layout, check_signals=not args.no_signals,
                                 progress=logs.tqdm_progress("check signals") if sys.stderr.isatty() else None,
                                 **parse_options(args.option))
    if args.json:
        print_json(report)
    else:
        print(format_report(report))
    return 0


def _prepare_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", type=Path, help="dataset folder")
    p.add_argument("--task", required=True,
                   help="label task, e.g. ptbxl_superdiagnostic, challenge2021_scored, nguyen_georgia "
                        "(see `python -m ecgcore tasks`)")
    p.add_argument("--fs", type=float, default=100.0, help="target sampling rate in Hz (default 100)")
    p.add_argument("--seconds", type=float, default=10.0, help="window length in seconds (default 10)")
    p.add_argument("--crop", default="first", choices=("first", "centre", "pad"))
    p.add_argument("--resample", default="polyphase", choices=("polyphase", "decimate"))
    p.add_argument("--normalize", default="none", choices=("none", "zscore", "minmax", "standard"))
    p.add_argument("--split", default="auto", choices=("auto", "official", "patient", "paper"))
    p.add_argument("--seed", type=int, default=None, help="split seed (paper split: random_state)")
    p.add_argument("--train-fraction", type=float, default=None,
                   help="use only this fraction of the training records (stratified)")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="reader option, repeatable (e.g. --option fs=500 for PTB-XL)")
    p.add_argument("--json", action="store_true", help="print the dataset description as JSON")


@command("prepare-data", "label, preprocess (cached memmap) and split a dataset for one task",
         _prepare_args)
def _prepare_data(args: argparse.Namespace) -> int:
    from ecgcore.data.pipeline import SplitConfig, build_dataset
    from ecgcore.data.prepare import PrepConfig

    prep = PrepConfig(fs=args.fs, seconds=args.seconds, crop=args.crop, resample=args.resample,
                      normalize=args.normalize)
    split = SplitConfig(method=args.split, seed=args.seed, train_fraction=args.train_fraction)
    with logs.progress_bars():
        dataset = build_dataset(args.path, args.task, prep=prep, split=split,
                                open_options=parse_options(args.option),
                                progress=logs.tqdm_progress("prepare") if sys.stderr.isatty() else None)
    if args.json:
        print_json(dataset.describe())
        return 0
    described = dataset.describe()
    print(f"{described['dataset']} ({described['layout']}), task {described['task']}: "
          f"{described['n_records']} records, {described['n_dropped']} dropped "
          f"{described['dropped_counts'] or ''}")
    notes = described["split"]["notes"]
    print(f"split {described['split']['method']}: {described['split']['sizes']}"
          + (f" ({notes})" if notes else ""))
    print(f"cache: {described['cache']}  X: {tuple(dataset.X.shape)} float32")
    print(dataset.summary().to_string())
    return 0


def _tasks_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print name -> description as JSON")


@command("tasks", "list the named label tasks", _tasks_args)
def _tasks(args: argparse.Namespace) -> int:
    from ecgcore.data.labels import list_tasks

    tasks = list_tasks()
    if args.json:
        print_json(tasks)
    else:
        for name, description in tasks.items():
            print(f"{name:<26} {description}")
    return 0


def _run_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", type=Path, help="experiment file (TOML), e.g. experiments/smoke.toml")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                   help="override a setting, repeatable (e.g. --set train.epochs=3 "
                        "--set 'grid.strategy=[\"scratch\"]')")
    p.add_argument("--dry-run", action="store_true", help="list the runs the grid expands to; train nothing")
    p.add_argument("--json", action="store_true", help="print the runs (or run ids) as JSON")


@command("run", "run the experiment(s) in a TOML file in this process, printing run ids", _run_args)
def _run(args: argparse.Namespace) -> int:
    from ecgcore.experiments import plan_experiment, run_experiment
    from ecgcore.runs import RunStore

    if args.dry_run:
        specs = plan_experiment(args.config, args.overrides, strict=False)
        store = RunStore()
        listing = [{"kind": s.kind, "config_hash": s.hash, "label": s.label,
                    "depends_on": s.depends_on, "done_run": store.find_done(s.hash, kind=s.kind),
                    "missing_datasets": list(s.missing), "config": s.config} for s in specs]
        if args.json:
            print_json(listing)
        else:
            for item in listing:
                state = f"done as {item['done_run']}" if item["done_run"] else "to run"
                if item["missing_datasets"]:  # datasets, and checkpoints as "checkpoint NAME"
                    datasets = [m for m in item["missing_datasets"] if not m.startswith("checkpoint ")]
                    checkpoints = [m for m in item["missing_datasets"] if m.startswith("checkpoint ")]
                    state = "; ".join(
                        ([f"dataset not found: {', '.join(datasets)}"] if datasets else [])
                        + ([f"not registered yet: {', '.join(checkpoints)} (a demo checkpoint is made "
                            "when the file runs)"] if checkpoints else []))
                print(f"{item['config_hash']}  {item['label']}  [{state}]")
        return 0
    from ecgcore.train import ProgressBar

    bars = [ProgressBar()] if sys.stderr.isatty() else []  # a terminal: a tqdm bar per epoch
    with logs.progress_bars():
        run_ids = run_experiment(args.config, args.overrides, callbacks=bars)
    if args.json:
        print_json(run_ids)
    else:
        print("\n".join(run_ids))
    return 0


def _runs_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print the runs as a JSON list")


@command("runs", "list the runs in the store", _runs_args)
def _runs(args: argparse.Namespace) -> int:
    from ecgcore.runs import RunStore

    table = RunStore().list()
    if args.json:
        print_json(json.loads(table.to_json(orient="records")))
    elif table.empty:
        print("no runs yet (python -m ecgcore run experiments/smoke.toml)")
    else:
        columns = [c for c in ("run_id", "kind", "status", "target", "arch", "strategy",
                               "train_fraction", "seed", "macro_auc") if c in table.columns]
        print(table[columns].to_string(index=False))
    return 0


def _show_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", help="run id")
    p.add_argument("--json", action="store_true", help="print results.json")


@command("show", "print one run's results", _show_args)
def _show(args: argparse.Namespace) -> int:
    from ecgcore.errors import EcgcoreError
    from ecgcore.runs import RunStore

    results = RunStore().get(args.run).results()
    if results is None:
        raise EcgcoreError(f"run {args.run} has no results yet (still running, or it crashed)")
    if args.json:
        print_json(results)
    else:
        test = results.get("test", {})
        method = results.get("pretrain_method")  # a self-supervised pretraining: no class scored
        how = f"{method} pretraining" if method else results.get("strategy")
        print(f"{results['run_id']}  {results.get('status')}  {results.get('arch')} "
              f"{how}  {results.get('kind') or 'target'} {results.get('target')}")
        if method:
            print(f"test pretext loss {test.get('pretext_loss')} (self-supervised: no class is scored)")
        else:
            print(f"test macro AUC {test.get('macro_auc')} CI {test.get('macro_auc_ci')}")
        for code, auc in (test.get("per_class_auc") or {}).items():
            print(f"  {code:<22} {auc}")
        if results.get("epochs_run"):
            from ecgcore.views.display import describe_speed

            print(describe_speed(results.get("speed"), results.get("device", "cpu")))
    return 0


def _predict_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run", required=True, help="run id whose model scores the files")
    p.add_argument("files", nargs="+", type=Path, help="record files (.hea, or its .dat/.mat)")
    p.add_argument("--json", action="store_true", help="print a list with one object per file")


@command("predict", "per-class probabilities for records on disk, with a run's model", _predict_args)
def _predict(args: argparse.Namespace) -> int:
    from ecgcore.views.scoring import predict_files

    predictions = predict_files(args.run, args.files)
    if args.json:
        print_json(predictions)
    else:
        about = predictions[0]["provenance"] if predictions else None
        if about:
            print(about["line"])
            if about["warning"]:
                print(f"WARNING: {about['warning']}")
            print(predictions[0]["research_use"])
        for item in predictions:
            ranked = sorted(item["probabilities"].items(), key=lambda kv: -kv[1])
            print(item["record"] + ": " + ", ".join(
                f"{item['names'][code]} {p:.2f}" for code, p in ranked[:5])
                + f"; called ({item['thresholds_source']}): "
                + (", ".join(item["names"][code] for code in item["called"]) or "none"))
            if item["rhythm_conflict"]:
                print("  rhythm conflict: " + " vs ".join(item["names"][c] for c in item["rhythm_conflict"]))
    return 0


def _explain_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run", required=True, help="run id whose model is explained")
    p.add_argument("file", type=Path, help="record file (.hea, or its .dat/.mat)")
    p.add_argument("--class", dest="class_code", required=True, metavar="CODE",
                   help="class to explain (a code from the run's classes, e.g. a SNOMED code)")
    p.add_argument("--method", default="ig", help="gradcam, ig (default) or occlusion")
    p.add_argument("--steps", type=int, default=None,
                   help="integrated-gradients steps (default 32; more = closer to exact)")
    p.add_argument("--json", action="store_true",
                   help="print leads, fs, attribution (leads x samples), lead_importance, "
                        "method, class, probability as JSON")


@command("explain", "which leads and samples drove a run's probability for one class on a record",
         _explain_args)
def _explain(args: argparse.Namespace) -> int:
    from ecgcore.explain import AttributionOptions
    from ecgcore.views.explanations import explain_file

    options = AttributionOptions() if args.steps is None else AttributionOptions(n_steps=args.steps)
    explanation = explain_file(args.run, args.file, args.class_code, args.method, options)
    if args.json:
        print_json({**explanation.to_json(), "file": str(args.file)})
        return 0
    e = explanation
    print(f"{e.record}: {e.class_name} ({e.class_code}) probability {e.probability:.3f}, "
          f"{e.method}, {len(e.leads)} leads x {e.attribution.shape[1]} samples at {e.fs:g} Hz")
    strength = abs(e.attribution).sum(axis=0)
    peak = int(strength.argmax())
    print(f"strongest attribution at {peak / e.fs:.2f} s")
    for lead, share in sorted(e.lead_importance.items(), key=lambda kv: -kv[1]):
        print(f"  {lead:<4} {share:6.1%}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ecgcore", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="also print the detail each run writes to its log.txt")
    subs = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (help_text, configure, handler) in COMMANDS.items():
        sub = subs.add_parser(name, help=help_text, description=help_text)
        configure(sub)
        sub.set_defaults(handler=handler)
    return parser


def main(argv: list[str] | None = None) -> int:
    if hasattr(signal, "SIGPIPE"):  # `… | head` ends the output quietly, as Unix tools do
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    args = build_parser().parse_args(argv)
    # Engine messages: to stdout for `run` (beside the run ids, as before), else to stderr,
    # so a command's own output (and every --json) stays clean for scripts.
    logs.console(to_stderr=args.command != "run" or bool(getattr(args, "json", False)),
                 verbose=args.verbose)
    try:
        return args.handler(args)
    except (EcgcoreError, OSError, ValueError) as err:
        # One line even when the input named in the message holds a line break.
        print("error: " + str(err).replace("\r", "\\r").replace("\n", "\\n"), file=sys.stderr)
        return 2




# The background queue's commands (submit, jobs, cancel, logs, worker, job-run), then `answer`,
# live in their own modules; importing them here registers them in this order (--help's).
from ecgcore import cli_queue  # noqa: E402,F401,I001
from ecgcore import cli_compare  # noqa: E402,F401  (answer)
from ecgcore import cli_checkpoints  # noqa: E402,F401  (add-checkpoint, checkpoints, embed, ...)


# -- dataset downloads (ecgcore.download) ---------------------------------------------------------
def _download_args(p: argparse.ArgumentParser) -> None:
    from ecgcore.download.catalogue import CATALOGUE

    p.add_argument("name", nargs="?", choices=list(CATALOGUE), metavar="NAME",
                   help="dataset: " + ", ".join(CATALOGUE) + " (--list describes them)")
    p.add_argument("--to", type=Path, default=None, help="folder to download into (created)")
    p.add_argument("--version", default=None, help="dataset version (default: the catalogue's)")
    p.add_argument("--base-url", default=None,
                   help="a mirror in the source's layout (default: physionet.org/files or zenodo.org)")
    p.add_argument("--include", action="append", default=[], metavar="GLOB",
                   help="only files whose path matches, repeatable (e.g. 'records100/*' '*.csv')")
    p.add_argument("--workers", type=int, default=4, help="files fetched at a time (default 4)")
    p.add_argument("--add", nargs="?", const="", default=None, metavar="NAME",
                   help="add the finished dataset to the workspace (default name: the dataset's)")
    p.add_argument("--json-progress", type=Path, default=None, metavar="FILE",
                   help="keep FILE updated with the progress as JSON (for scripts)")
    p.add_argument("--list", action="store_true", help="describe the catalogue and exit")
    p.add_argument("--json", action="store_true", help="print the result (or the catalogue) as JSON")


@command("download", "download a public dataset (PhysioNet, Zenodo), resumable and checked against "
         "the published sums", _download_args)
def _download(args: argparse.Namespace) -> int:
    import threading

    from ecgcore.download import CATALOGUE, download_dataset
    from ecgcore.download.download_progress import JsonFile, TqdmBar, chain
    from ecgcore.logs import progress_bars

    if args.list:
        if args.json:
            print_json([entry.describe() for entry in CATALOGUE.values()])
        else:
            for entry in CATALOGUE.values():
                print(f"{entry.name:<14} {entry.title} {entry.version}, {entry.approx_size}; "
                      f"checked by {entry.checksums}")
        return 0
    if args.name is None or args.to is None:
        raise EcgcoreError("download: give a dataset NAME and --to DIR (or --list)")
    stop = threading.Event()
    signums = (signal.SIGTERM, signal.SIGINT)  # stop after the current chunk, keep .part files
    before = {signum: signal.signal(signum, lambda *_: stop.set()) for signum in signums}
    progress = chain(TqdmBar(), JsonFile(args.json_progress) if args.json_progress else None)
    add_as = None if args.add is None else (args.add or args.name)
    try:
        with progress_bars():
            result = download_dataset(args.name, args.to, version=args.version, base_url=args.base_url,
                                      include=tuple(args.include), workers=args.workers, add_as=add_as,
                                      progress=progress, stop=stop)
    finally:
        for signum, handler in before.items():
            signal.signal(signum, handler)
    if args.json:
        print_json(result.to_dict())
    else:
        print(f"{result.dataset} {result.version}: {result.files_total} files, {result.fetched} fetched, "
              f"{result.skipped} already there and verified, {len(result.failed)} failed; "
              f"{result.bytes_received} bytes received -> {result.root}")
        if result.added_as:
            print(f"added to the workspace as {result.added_as}")
    for failure in result.failed:
        print(f"error: {failure['path']}: {failure['reason']}", file=sys.stderr)
    return 0 if result.ok else 2


def _verify_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs", nargs="*", metavar="RUN", help="run ids (default: every run in the store)")
    p.add_argument("--json", action="store_true", help="print one object per run: run_id, ok, problems")


@command("verify", "check finished runs against the checksums recorded when they finished; "
         "exit 1 when any run has a problem", _verify_args)
def _verify(args: argparse.Namespace) -> int:
    from ecgcore.runs import RunStore

    store = RunStore()
    report = {run: store.get(run).verify() for run in args.runs} if args.runs else store.verify_all()
    listed = store.list()
    statuses = dict(zip(listed["run_id"], listed["status"], strict=True))
    if args.json:
        print_json([{"run_id": run, "status": statuses.get(run), "ok": not problems, "problems": problems}
                    for run, problems in report.items()])
    else:
        for run, problems in report.items():
            print(f"{run}: " + ("ok" if not problems else "; ".join(problems)) + f" ({statuses.get(run)})")
        bad = sum(1 for problems in report.values() if problems)
        print(f"{len(report)} run(s) checked, {bad} with problems", file=sys.stderr)
    return 1 if any(report.values()) else 0
