"""Background queue latency and slot scaling, with real workers and job processes.

    python benchmarks/bench_queue.py [--jobs 4] [--slots 2] [--scale 0.05] [--json]

(1) submit -> running: a one-slot worker is idle; a job is submitted; seconds from the
    submit() call until the table says "running" (claimed) and until its process exists
    (pid set). Target < 2 s. The experiment file is planned once before (imports, dataset
    scan), as in a running app; the submit() call itself is printed too.
(2) cancel -> stopped: the same job, training (a step reported), is cancelled; seconds
    until the table says "cancelled" (its process stopped at its next step and recorded
    it). Target < 5 s.
(3) A grid of `--jobs` tiny jobs (scratch small_cnn, 1 epoch, different seeds) with one
    worker of `--slots` slots against one worker of one slot, in the same workspace after
    a warm-up job (so both find the data cache built). Prints wall times and the ratio
    1-slot / N-slot (the speed-up; with C cores each of N CPU jobs gets C // N threads).

Every number comes from this run; the ratios are against targets (1, 2) or against the
1-slot baseline measured here (3). The 2-core machine may be shared: absolute seconds
move between runs.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SMOKE = str(ROOT / "experiments" / "smoke.toml")
SUBMIT_TARGET, CANCEL_TARGET = 2.0, 5.0


def _scratch(epochs: int, seeds: list[int]) -> list[str]:
    return [f"train.epochs={epochs}", "train.early_stopping_patience=50", 'grid.strategy=["scratch"]',
            "grid.train_fraction=[1.0]", f"grid.seed={seeds}"]


def _start_worker(slots: int) -> subprocess.Popen:
    from ecgcore.jobs import worker_status as workers

    process = subprocess.Popen([sys.executable, "-m", "ecgcore", "worker", "--slots", str(slots)],
                               cwd=ROOT, env={**os.environ}, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    _wait(lambda: any(w["pid"] == process.pid for w in workers.alive_workers()), 60, "worker start")
    return process


def _stop_worker(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=30)


def _wait(condition: Any, timeout: float, what: str, every: float = 0.01) -> float:
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        if condition():
            return time.perf_counter() - start
        time.sleep(every)
    raise SystemExit(f"timed out after {timeout} s waiting for {what}")


def latency() -> dict[str, float]:
    from ecgcore import jobs

    worker = _start_worker(1)
    try:
        time.sleep(1.0)  # the worker is idle in its poll loop
        from ecgcore.experiments import plan_experiment

        plan_experiment(SMOKE, _scratch(1, [0]))  # imports and dataset scans, as in a running app
        start = time.perf_counter()
        [job_id] = jobs.submit(SMOKE, _scratch(200, [0]))
        submit_call = time.perf_counter() - start
        _wait(lambda: jobs.get(job_id)["state"] == "running", 30, "running")
        submit_to_running = time.perf_counter() - start
        _wait(lambda: jobs.get(job_id)["pid"] is not None, 30, "pid")
        submit_to_process = time.perf_counter() - start
        _wait(lambda: (jobs.get(job_id)["progress"] or {}).get("step"), 300, "a training step", 0.1)
        asked = time.perf_counter()
        jobs.cancel(job_id)
        _wait(lambda: jobs.get(job_id)["state"] == "cancelled", 60, "cancelled")
        cancel_to_stopped = time.perf_counter() - asked
    finally:
        _stop_worker(worker)
    return {"submit_call_s": submit_call, "submit_to_running_s": submit_to_running, "submit_to_process_s": submit_to_process,
            "cancel_to_stopped_s": cancel_to_stopped}


def grid_seconds(slots: int, seeds: list[int]) -> float:
    from ecgcore import jobs

    worker = _start_worker(slots)
    try:
        start = time.perf_counter()
        ids = jobs.submit(SMOKE, _scratch(1, seeds))
        _wait(lambda: all(jobs.get(i)["state"] in jobs.ENDED for i in ids), 1800, "the grid", 0.1)
        seconds = time.perf_counter() - start
    finally:
        _stop_worker(worker)
    states = {jobs.get(i)["state"] for i in ids}
    if states != {"done"}:
        raise SystemExit(f"grid jobs ended as {states}: {[jobs.get(i)['error'] for i in ids]}")
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=4, help="tiny jobs in the grid")
    parser.add_argument("--slots", type=int, default=2, help="slots of the N-slot worker")
    parser.add_argument("--scale", type=float, default=0.05, help="demo data scale")
    parser.add_argument("--latency-only", action="store_true", help="skip the grid (3)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench_queue_") as tmp:
        os.environ["ECGCORE_HOME"] = tmp
        from ecgcore.data.synthetic import write_demo_data

        write_demo_data(Path(tmp) / "datasets", scale=args.scale)
        result: dict[str, Any] = latency()
        if args.latency_only:
            print(json.dumps(result, indent=2))
            return 0
        grid_seconds(1, [1000])  # warm-up: builds the data cache both grids then read
        one = grid_seconds(1, list(range(args.jobs)))
        many = grid_seconds(args.slots, list(range(args.jobs, 2 * args.jobs)))
    result.update({"jobs": args.jobs, "slots": args.slots, "cores": len(os.sched_getaffinity(0)),
                   "grid_1_slot_s": one, f"grid_{args.slots}_slots_s": many, "speedup": one / many})
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"submit() call (plan + insert)   {result['submit_call_s']:6.2f} s")
    print(f"submit -> running (claimed)     {result['submit_to_running_s']:6.2f} s   "
          f"{result['submit_to_running_s'] / SUBMIT_TARGET:.2f} of the {SUBMIT_TARGET:g} s target")
    print(f"submit -> job process started  {result['submit_to_process_s']:6.2f} s   "
          f"{result['submit_to_process_s'] / SUBMIT_TARGET:.2f} of the {SUBMIT_TARGET:g} s target")
    print(f"cancel -> stopped (cancelled)   {result['cancel_to_stopped_s']:6.2f} s   "
          f"{result['cancel_to_stopped_s'] / CANCEL_TARGET:.2f} of the {CANCEL_TARGET:g} s target")
    print(f"grid of {args.jobs} tiny jobs, {result['cores']} cores: 1 slot {one:.1f} s, "
          f"{args.slots} slots {many:.1f} s -> speed-up {one / many:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
