"""The background queue's commands (`submit`, `jobs`, `cancel`, `logs`, `worker`, `job-run`),
registered in the one command registry, `ecgcore.cli_registry` (which imports this module)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ecgcore.cli_registry import command, print_json
from ecgcore.errors import EcgcoreError


def _submit_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", type=Path, help="experiment file (TOML), e.g. experiments/smoke.toml")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                   help="override a setting, repeatable (as for `run`)")
    p.add_argument("--max-attempts", type=int, default=2,
                   help="how often a lost job (killed process, stale heartbeat) is tried in all")
    p.add_argument("--json", action="store_true", help="print the job ids as a JSON list")


@command("submit", "queue the runs of an experiment file as background jobs, printing job ids",
         _submit_args)
def _submit(args: argparse.Namespace) -> int:
    from ecgcore.jobs import submit

    job_ids = submit(args.config, args.overrides, max_attempts=args.max_attempts)
    if args.json:
        print_json(job_ids)
    else:
        print("\n".join(job_ids))
    return 0


def _jobs_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true",
                   help="print a JSON list (job_id, state, pid, attempts, run_id, error, progress, …)")


@command("jobs", "list the background jobs and their state", _jobs_args)
def _jobs(args: argparse.Namespace) -> int:
    from ecgcore.jobs import list_jobs, public

    jobs = [public(job) for job in list_jobs()]
    if args.json:
        print_json(jobs)
        return 0
    for job in jobs:
        progress = job["progress"] or {}
        where = f" epoch {progress.get('epoch')} step {progress.get('step')}/{progress.get('n_steps')}" \
            if job["state"] == "running" and progress.get("epoch") is not None else ""
        print(f"{job['job_id']}  {job['state']:<10} {job['run_id'] or '-':<24} {job['label']}{where}"
              + (f"  [{job['error']}]" if job["error"] else ""))
    return 0


def _job_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("job", help="job id (see `jobs`)")


@command("cancel", "cancel a job (queued: at once; running: stops at its next step)", _job_args)
def _cancel(args: argparse.Namespace) -> int:
    from ecgcore.jobs import cancel

    print(f"{args.job}: {cancel(args.job)}")
    return 0


@command("logs", "print a job's output and its run's log.txt", _job_args)
def _logs(args: argparse.Namespace) -> int:
    from ecgcore.jobs import get, log_files

    print("".join(f"== {title} ({path})\n" + path.read_text() for title, path in log_files(get(args.job))), end="")
    return 0


def _worker_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--slots", type=int, default=None,
                   help="jobs at a time (default: --runs-per-gpu per GPU, or 1 without GPUs; "
                        "ray: as many as the cluster's CPUs fit)")
    p.add_argument("--runs-per-gpu", type=int, default=1, metavar="N",
                   help="jobs sharing each GPU (default 1); a job starts only when its expected GPU memory "
                        "fits what the GPU has free, else it stays queued; no effect without GPUs. "
                        "ray: each GPU job asks for 1/N of a GPU")
    p.add_argument("--once", action="store_true", help="stop when no job is queued or waiting")
    p.add_argument("--runner", default="local", choices=["local", "ray"],
                   help="local: job processes on this machine; ray: one Ray task per job on a cluster")
    p.add_argument("--address", default=None,
                   help="ray: the cluster to join (HEAD_IP:6379, or 'auto'); default: start a local Ray")
    p.add_argument("--cpus-per-job", type=float, default=1.0,
                   help="ray: CPUs each job asks for (its torch threads)")


@command("worker", "claim queued jobs and run each in its own process (or Ray task), one per slot",
         _worker_args)
def _worker(args: argparse.Namespace) -> int:
    from ecgcore.jobs.launchers import get_launcher
    from ecgcore.jobs.worker_loop import Worker

    if args.slots is not None and args.slots < 1:
        raise EcgcoreError(f"--slots must be at least 1, got {args.slots}")
    if args.runs_per_gpu < 1:
        raise EcgcoreError(f"--runs-per-gpu must be at least 1 (jobs sharing one GPU), got {args.runs_per_gpu}")
    if args.runner == "ray":
        options = {"address": args.address, "slots": args.slots, "cpus_per_job": args.cpus_per_job,
                   "gpus_per_job": 1.0 / args.runs_per_gpu if args.runs_per_gpu > 1 else None}
    else:
        options = {"slots": args.slots, "runs_per_gpu": args.runs_per_gpu}
    return Worker(get_launcher(args.runner, **options), once=args.once).run()


def _job_run_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("job", help="job id (started by the worker)")
    p.add_argument("--claim", type=Path, default=None, metavar="FILE",
                   help="a job on a cluster node: read the job from this claim file and report beside it, "
                        "never opening the index (the Ray launcher passes it)")


@command("job-run", "run one claimed job in this process (the worker starts this)", _job_run_args)
def _job_run(args: argparse.Namespace) -> int:
    from ecgcore.jobs.job_process import run_job

    return run_job(args.job, claim=args.claim)
