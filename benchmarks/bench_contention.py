"""CPU training beside a busy program: the fixed torch thread count (every core) against
threads chosen from the free cores (`ecgcore.cpu`), on the quickstart.

    python benchmarks/bench_contention.py                 # reduced quickstart grid, once each
    python benchmarks/bench_contention.py --repeat 2      # each trial twice (median)
    python benchmarks/bench_contention.py --full          # the whole quickstart (17 runs)
    python benchmarks/bench_contention.py --json

Each trial is `python -m ecgcore run experiments/quickstart.toml` in a fresh run store (the
demo data and its prepared cache are written once, in benchmarks/out/contention/, and
shared), under one of two policies and two conditions:
  policies    fixed  ECGCORE_ADAPT_THREADS=0: torch's default, one thread per core (before)
              free   the default now: threads from the cores other programs leave free,
                     chosen at the start of every run and again after its epochs
  conditions  quiet  nothing started by the benchmark
              busy   one competing CPU-bound process (`while True: pass` in Python) for the
                     whole trial
Early stopping is off (patience above the epoch count), so every trial does the same
epochs and the wall times compare like for like; every trial must finish the same runs
with the same epoch counts. The reduced grid (default) is the quickstart with
strategies scratch + finetune at 25 % and 100 % of the target's training records, 8
epochs, and a 4-epoch pretraining: 5 runs. `--full` keeps the quickstart's grid (17 runs,
30 / 20 epochs).

Printed: every trial with its wall seconds, the threads its runs chose, and how busy other
programs (not this benchmark's) kept the cores, from /proc/stat less the CPU time of this
benchmark's children ("background"). The machine this runs on may be shared, so each cell
(policy x condition) is represented by its trial with the least background (`--pick
median` for the median instead), and the ratios come from those: busy / quiet per policy,
fixed / free when busy, free / fixed when quiet, and free-busy / fixed-quiet (the busy
machine now against a quiet one before).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from statistics import median
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ecgcore.cpu import ADAPT_ENV, ProcStatReader, cpu_cores  # noqa: E402

OUT = ROOT / "benchmarks" / "out" / "contention"
QUICKSTART = ROOT / "experiments" / "quickstart.toml"
NO_EARLY_STOP = ["--set", "train.early_stopping_patience=1000"]
REDUCED = ["--set", 'grid.strategy=["scratch","finetune"]', "--set", "grid.train_fraction=[0.25,1.0]",
           "--set", "train.epochs=8", "--set", "pretrain.epochs=4"]
BUSY_LOOP = "while True:\n    pass\n"


def prepare(home: Path) -> None:
    """Demo data (full scale) and its prepared cache, once."""
    if not (home / "datasets" / "target_challenge").is_dir():
        from ecgcore.data.synthetic import write_demo_data

        write_demo_data(home / "datasets", seed=0)
    warm = OUT / "warm.done"
    if not warm.exists():
        trial(home, "free", busy=False, settings=["--set", 'grid.strategy=["finetune"]', "--set",
                                                  "grid.train_fraction=[1.0]", "--set", "train.epochs=1",
                                                  "--set", "pretrain.epochs=1"])
        warm.write_text("cache prepared\n")


def fresh_store(home: Path) -> None:
    shutil.rmtree(home / "runs", ignore_errors=True)
    for path in home.glob("store.sqlite*"):
        path.unlink()


def trial(home: Path, policy: str, busy: bool, settings: list[str]) -> dict[str, Any]:
    fresh_store(home)
    env = {**os.environ, "ECGCORE_HOME": str(home), "ECGCORE_AUTO_WORKER": "0"}
    env.pop("ECGCORE_TORCH_THREADS", None)
    if policy == "fixed":
        env[ADAPT_ENV] = "0"
    else:
        env.pop(ADAPT_ENV, None)
    reader = ProcStatReader()
    before, children_before = reader.read(), _children_cpu()
    competitor = subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) if busy else None
    started = time.perf_counter()
    try:
        done = subprocess.run([sys.executable, "-m", "ecgcore", "run", str(QUICKSTART), *settings, "--json"],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=3600)
        wall = time.perf_counter() - started
    finally:
        if competitor is not None:
            competitor.send_signal(signal.SIGKILL)
            competitor.wait()
    after, children_after = reader.read(), _children_cpu()
    if done.returncode != 0:
        raise SystemExit(f"trial {policy}/{'busy' if busy else 'quiet'} failed:\n{done.stderr[-2000:]}")
    span = after.wall - before.wall
    background = max(0.0, (after.busy - before.busy) - (children_after - children_before)) / span
    runs = []
    for run_id in json.loads(done.stdout):
        results = json.loads((home / "runs" / run_id / "results.json").read_text())
        runs.append(results)
    threads = [r.get("threads") or {} for r in runs]
    return {
        "policy": policy, "condition": "busy" if busy else "quiet", "wall_s": wall,
        "train_s": sum(r["train_seconds"] for r in runs),
        "epochs": [r["epochs_run"] for r in runs], "n_runs": len(runs),
        "threads_min": min((t.get("min") for t in threads if t.get("min")), default=None),
        "threads_max": max((t.get("max") for t in threads if t.get("max")), default=None),
        "background_cores": background,
    }


def _children_cpu() -> float:
    times = os.times()
    return times.children_user + times.children_system


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="the whole quickstart grid (17 runs)")
    parser.add_argument("--repeat", type=int, default=1, help="trials per policy and condition (median)")
    parser.add_argument("--pick", choices=("least-background", "median"), default="least-background",
                        help="which trial of each cell the ratios use")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    OUT.mkdir(parents=True, exist_ok=True)
    home = OUT / "home"
    prepare(home)
    settings = NO_EARLY_STOP + ([] if args.full else REDUCED)
    cells = [("fixed", False), ("free", False), ("fixed", True), ("free", True)]
    trials: list[dict[str, Any]] = []
    for repeat in range(args.repeat):
        order = cells if repeat % 2 == 0 else cells[::-1]  # interleaved, so drift hits both policies
        for policy, busy in order:
            result = trial(home, policy, busy, settings)
            trials.append(result)
            print(f"  {result['policy']:5s} {result['condition']:5s} {result['wall_s']:7.1f} s wall, "
                  f"threads {result['threads_min']}-{result['threads_max']}, background "
                  f"{result['background_cores']:.2f} cores", file=sys.stderr, flush=True)
    epochs = {tuple(t["epochs"]) for t in trials}
    if len(epochs) != 1:
        raise SystemExit(f"trials did different work (epochs per run: {sorted(epochs)})")

    def cell(policy: str, condition: str, key: str = "wall_s") -> float:
        rows = [t for t in trials if t["policy"] == policy and t["condition"] == condition]
        if args.pick == "median":
            return median(t[key] for t in rows)
        return min(rows, key=lambda t: t["background_cores"])[key]

    ratios = {
        "fixed busy / fixed quiet": cell("fixed", "busy") / cell("fixed", "quiet"),
        "free busy / free quiet": cell("free", "busy") / cell("free", "quiet"),
        "fixed busy / free busy": cell("fixed", "busy") / cell("free", "busy"),
        "free quiet / fixed quiet": cell("free", "quiet") / cell("fixed", "quiet"),
        "free busy / fixed quiet": cell("free", "busy") / cell("fixed", "quiet"),
    }
    summary = {"grid": "full quickstart" if args.full else "reduced quickstart (5 runs)",
               "cores": cpu_cores(), "repeat": args.repeat, "pick": args.pick, "trials": trials,
               "ratios": ratios}
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(f"{summary['grid']}, early stopping off, {summary['cores']} cores, {args.repeat} trial(s) per "
          f"cell; ratios from the {args.pick} trial of each cell (*)")
    print(f"  {'policy':6s} {'cond.':6s} {'wall s':>8s} {'train s':>8s} {'threads':>9s} {'background':>11s}")
    for policy, busy in cells:
        condition = "busy" if busy else "quiet"
        for t in trials:
            if t["policy"] != policy or t["condition"] != condition:
                continue
            threads = (f"{summary['cores']} fixed" if policy == "fixed"
                       else f"{t['threads_min']}-{t['threads_max']}")
            mark = "*" if args.pick != "median" and t["wall_s"] == cell(policy, condition) else " "
            print(f"{mark} {policy:6s} {condition:6s} {t['wall_s']:8.1f} {t['train_s']:8.1f} {threads:>9s} "
                  f"{t['background_cores']:6.2f} cores")
    for name, value in ratios.items():
        print(f"{name:28s} {value:5.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
