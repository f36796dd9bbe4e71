"""Device check: does the engine keep one GPU busy? One script, no network, under 6 minutes
on one NVIDIA GPU; `--cpu-smoke` runs the same code at tiny size on the CPU (the test suite
does, so it cannot rot).

    bash benchmarks/gpu_check.sh                    # on the GPU machine
    bash benchmarks/gpu_check.sh --cpu-smoke --out /tmp/check

Sections of DIR/gpu_check.json (default benchmarks/out/gpu_check.json), one table printed:
  machine          the GPU (name, memory), torch, CUDA and cuDNN versions, CPU cores
  synthetic_cache  a PTB-XL-scale prepared cache written directly (21,799 x 12 x 1,000
                   float32 at 100 Hz, `gpu_check_data`), the TaskDataset around it
  architectures    xresnet1d101, inception1d, lstm, small_cnn x float32 and AMP (bf16 where
                   the GPU has it, else fp16; CPU: float32 only, autocast is CUDA-only in
                   the trainer), batch 128, 2.5 s crops: the trainer's samples/s
                   (`ecgcore.train.fit`, data_on_device="auto") against a bare loop on
                   device-resident tensors, interleaved, the ratio ours/bare (target >= 0.9),
                   peak GPU memory (`gpu_check_speed`)
  presets          the trainer's samples/s of every other (architecture, input, batch) the
                   four paper presets use, and each preset's projected training hours
                   (`gpu_check_presets`)
  quickstart       experiments/quickstart.toml through `submit` + `worker --once` with 1 and
                   4 runs per GPU, wall time of each (`gpu_check_grid`)
  switches         the speed settings, each measured on the trainer alone (`trainer_speed`)
                   against its defaults (deterministic kernels): deterministic = false,
                   cudnn_benchmark = true, compile = true (small_cnn only: compiling
                   xresnet1d101 takes minutes; skipped under --cpu-smoke, where compiling
                   small_cnn alone takes ~45 s: tests/test_train_speed.py runs it)
A ratio below the target is reported ("below target"), not an error: the exit status is
non-zero only when something failed.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

SMOKE = "--cpu-smoke" in sys.argv
if SMOKE:  # before torch starts: the smoke run is a CPU run even on a GPU machine
    os.environ["CUDA_VISIBLE_DEVICES"] = ""

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch
from gpu_check_data import PTBXL_RECORDS, synthetic_dataset
from gpu_check_grid import (
    SMOKE_SCALE,
    fresh_home,
    grid_overrides,
    run_grid,
    write_datasets,
)
from gpu_check_presets import SpeedKey, preset_runs, project, speeds_needed
from gpu_check_speed import TARGET_RATIO, Sizing, amp_precision, compare, trainer_speed

from ecgcore.data.pipeline import TaskDataset
from ecgcore.train import TrainConfig
from ecgcore.train.device import select_device

OUT = Path(__file__).resolve().parent / "out"
ARCHS: tuple[str, ...] = ("xresnet1d101", "inception1d", "lstm", "small_cnn")
BATCH, CROP_SECONDS = 128, 2.5


@dataclasses.dataclass(frozen=True)
class Scale:
    """How big each part of the check is: the full check on a GPU, or the CPU smoke."""

    records: int  # rows of the 100 Hz cache
    other_records: int  # rows of a cache at another rate (Avetisyan's 500 Hz)
    arch_batch: int  # the four architectures' batch (128 on the GPU)
    preset_batch_cap: int | None  # presets' batches are cut to this (None: as the preset says)
    preset_crop_seconds: float | None  # presets' inputs cut to crops of the 100 Hz cache (None: their own)
    arch_sizing: Sizing
    preset_sizing: Sizing
    slot_counts: tuple[int, ...]


FULL = Scale(records=PTBXL_RECORDS, other_records=2048, arch_batch=BATCH, preset_batch_cap=None,
             preset_crop_seconds=None,
             arch_sizing=Sizing(epoch_seconds=1.0, timed_seconds=2.0, probe_seconds=0.3, probe_steps=3),
             preset_sizing=Sizing(epoch_seconds=1.0, timed_seconds=0.0, probe_seconds=0.2, probe_steps=2),
             slot_counts=(1, 4))
# Tiny: a few batches each, the presets' models on 2.5 s crops in batches of 2 (ResNet-101
# or DenseNet-121 on 10 s at 500 Hz would take most of a minute on a 2-core CPU).
CPU_SMOKE = Scale(records=256, other_records=16, arch_batch=8, preset_batch_cap=2, preset_crop_seconds=2.5,
                  arch_sizing=Sizing(epoch_seconds=0.0, timed_seconds=0.0, probe_seconds=0.0, probe_steps=1),
                  preset_sizing=Sizing(epoch_seconds=0.0, timed_seconds=0.0, probe_seconds=0.0, probe_steps=1),
                  slot_counts=(1, 2))


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def machine(device: torch.device) -> dict[str, Any]:
    """What ran the check."""
    facts: dict[str, Any] = {"device": str(device), "torch": torch.__version__, "cuda": torch.version.cuda,
                             "cudnn": torch.backends.cudnn.version(), "python": platform.python_version(),
                             "platform": platform.platform(), "cpu_cores": os.cpu_count(),
                             "torch_threads": torch.get_num_threads(), "gpu": None, "gpu_memory_bytes": None,
                             "bf16_supported": None}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        facts.update(gpu=props.name, gpu_memory_bytes=int(props.total_memory),
                     bf16_supported=bool(torch.cuda.is_bf16_supported()))
    return facts


def cache_facts(data: TaskDataset, seconds: float) -> dict[str, Any]:
    return {"records": len(data), "shape": list(data.X.shape), "dtype": str(data.X.dtype),
            "bytes": int(data.X.nbytes), "fs": data.prep.fs, "classes": list(data.classes),
            "prevalence": [round(float(p), 4) for p in data.y.mean(axis=0)],
            "train_rows": int(data.split.train.size), "seconds_to_write": seconds}


def architectures(data: TaskDataset, device: torch.device, scale: Scale) -> list[dict[str, Any]]:
    """Every architecture x precision, ours then bare, in a row."""
    precisions = ["float32"] + ([amp_precision(device)] if device.type == "cuda" else [])
    rows = []
    for arch in ARCHS:
        for precision in precisions:
            config = TrainConfig(batch_size=scale.arch_batch, crop_seconds=CROP_SECONDS, precision=precision,
                                 early_stopping_patience=None, device="auto", data_on_device="auto")
            progress(f"  {arch} {precision} ...")
            row = compare(arch, data, config, scale.arch_sizing)
            rows.append(row)
            progress(f"    ours {row['ours']['samples_per_s']:.0f}/s, bare {row['bare']['samples_per_s']:.0f}/s, "
                     f"ratio {row['ratio']:.3f}")
    return rows


def presets(main: TaskDataset, folder: Path, four: list[dict[str, Any]], scale: Scale) -> dict[str, Any]:
    """The trainer's float32 samples/s for every (arch, input, batch) of the presets (the
    four architectures' own numbers where they match), and each preset's projection."""
    runs = preset_runs()
    datasets: dict[tuple[float, float], TaskDataset] = {(main.prep.fs, main.prep.seconds): main}
    speeds: dict[SpeedKey, float] = {}
    measured = []
    for key, run in speeds_needed(runs).items():
        same = [r for r in four if r["precision"] == "float32" and (r["arch"], r["input_samples"], BATCH) == key]
        if same and run.train.precision == "float32":
            speeds[key] = same[0]["ours"]["samples_per_s"]
            measured.append({"arch": key[0], "input_samples": key[1], "batch_size": key[2],
                             "samples_per_s": speeds[key], "from": "architectures"})
            continue
        config = dataclasses.replace(run.train, seed=0, device="auto", data_on_device="auto",
                                     batch_size=min(run.train.batch_size, scale.preset_batch_cap or run.train.batch_size))
        shape = (run.fs, run.seconds)
        if scale.preset_crop_seconds is not None:
            shape = (main.prep.fs, main.prep.seconds)
            config = dataclasses.replace(config, crop_seconds=scale.preset_crop_seconds)
        if shape not in datasets:
            datasets[shape] = synthetic_dataset(folder / f"cache_{shape[0]:g}hz", scale.other_records,
                                                fs=shape[0], seconds=shape[1])
        progress(f"  {run.arch} at {run.input_samples} samples, batch {run.train.batch_size} ...")
        row = trainer_speed(run.arch, datasets[shape], config, scale.preset_sizing)
        speeds[key] = row["samples_per_s"]
        progress(f"    {speeds[key]:.0f}/s")
        measured.append({"arch": key[0], "input_samples": key[1], "batch_size": key[2],
                         "samples_per_s": speeds[key], "from": "measured", "detail": row})
    return {"speeds": measured, "projection": project(runs, speeds),
            "assumptions": ("every epoch of every run (no early stopping); training steps only (no "
                            "validation, test, data preparation or job start); published dataset sizes "
                            "through each run's split; runs one after another on one GPU; float32")}


SWITCHES: dict[str, dict[str, Any]] = {
    "defaults": {},
    "deterministic=false": {"deterministic": False},
    "cudnn_benchmark": {"deterministic": False, "cudnn_benchmark": True},
    "compile": {"compile": True},
}
SWITCH_ARCHS: tuple[str, ...] = ("xresnet1d101", "small_cnn")
COMPILED_ARCHS: tuple[str, ...] = ("small_cnn",)


def switches(data: TaskDataset, scale: Scale, smoke: bool) -> list[dict[str, Any]]:
    """The trainer's float32 samples/s under each speed setting, per architecture, and the
    ratio to its defaults (the first row of each architecture)."""
    rows: list[dict[str, Any]] = []
    for arch in SWITCH_ARCHS:
        baseline = None
        for name, settings in SWITCHES.items():
            if settings.get("compile") and (smoke or arch not in COMPILED_ARCHS):
                continue
            config = TrainConfig(batch_size=scale.arch_batch, crop_seconds=CROP_SECONDS, early_stopping_patience=None,
                                 device="auto", data_on_device="auto", **settings)
            progress(f"  {arch} {name} ...")
            row = trainer_speed(arch, data, config, scale.preset_sizing)
            baseline = baseline or row["samples_per_s"]
            rows.append({"arch": arch, "setting": name, "settings": settings, "samples_per_s": row["samples_per_s"],
                         "ratio_to_defaults": row["samples_per_s"] / baseline, "speed": row["speed"],
                         "peak_gpu_memory_bytes": row["peak_gpu_memory_bytes"]})
            progress(f"    {row['samples_per_s']:.0f}/s")
    return rows


def quickstart(folder: Path, device: torch.device, scale: Scale, smoke: bool) -> dict[str, Any]:
    """The quickstart through the worker once per slot count (reduced under --cpu-smoke)."""
    on_gpu = device.type == "cuda"
    if on_gpu:  # this process's cached blocks would count as used when the worker checks free memory
        torch.cuda.empty_cache()
    datasets = write_datasets(folder / "datasets", SMOKE_SCALE if smoke else 1.0)
    rounds = []
    for slots in scale.slot_counts:
        progress(f"  {slots} {'run(s) per GPU' if on_gpu else 'CPU slot(s)'} ...")
        rounds.append(run_grid(fresh_home(folder / f"home_{slots}", datasets), slots, on_gpu, grid_overrides(smoke)))
        progress(f"    {rounds[-1]['jobs']} jobs in {rounds[-1]['wall_seconds']:.1f} s")
    return {"experiment": "experiments/quickstart.toml", "overrides": list(grid_overrides(smoke)),
            "demo_scale": SMOKE_SCALE if smoke else 1.0, "rounds": rounds}


def check(out: Path, smoke: bool) -> dict[str, Any]:
    """Every section in turn; DIR/gpu_check.json is rewritten after each one ("complete"
    false until the last), so a failure late in the check keeps the numbers before it."""
    scale = CPU_SMOKE if smoke else FULL
    if smoke:  # two threads on a shared 2-core machine spin against other programs (20x slower)
        torch.set_num_threads(1)
    started = time.perf_counter()
    device = select_device("auto")
    report: dict[str, Any] = {"mode": "cpu-smoke" if smoke else "full", "complete": False,
                              "target_ratio": TARGET_RATIO, "machine": machine(device), "section_seconds": {}}
    out.mkdir(parents=True, exist_ok=True)
    progress(f"device check on {report['machine']['gpu'] or 'CPU'} ({report['mode']})")
    if not smoke and device.type != "cuda":
        progress("no GPU here: the full check is sized for one and takes long on a CPU (--cpu-smoke is the CPU run)")

    def section(name: str, what: str, measure: Callable[[], Any]) -> Any:
        progress(f"{what} ...")
        clock = time.perf_counter()
        report[name] = measure()
        report["section_seconds"][name] = time.perf_counter() - clock
        report["wall_seconds"] = time.perf_counter() - started
        (out / "gpu_check.json").write_text(json.dumps(report, indent=1))
        return report[name]

    with tempfile.TemporaryDirectory(prefix="gpu_check_") as scratch:
        folder = Path(scratch)
        progress(f"synthetic cache: {scale.records} records ...")
        clock = time.perf_counter()
        data = synthetic_dataset(folder / "cache_100hz", scale.records)
        report["synthetic_cache"] = cache_facts(data, time.perf_counter() - clock)
        four = section("architectures", "trainer vs bare loop", lambda: architectures(data, device, scale))
        section("presets", "paper presets", lambda: presets(data, folder, four, scale))
        section("quickstart", "quickstart through the job worker",
                lambda: quickstart(folder / "grid", device, scale, smoke))
        section("switches", "speed settings", lambda: switches(data, scale, smoke))  # last: compiling is slow
    report["complete"] = True
    (out / "gpu_check.json").write_text(json.dumps(report, indent=1))
    return report


def table(report: dict[str, Any]) -> str:
    """The report as one plain-text table (what benchmarks/README.md shows)."""
    m, c = report["machine"], report["synthetic_cache"]
    gib = (m["gpu_memory_bytes"] or 0) / 2**30
    gpu = f"{m['gpu']}, {gib:.1f} GiB" if m["gpu"] else "CPU"
    lines = [(f"machine: {gpu}; torch {m['torch']}, CUDA {m['cuda']}, cuDNN {m['cudnn']}; "
              f"{m['cpu_cores']} CPU cores ({report['mode']})"),
             (f"synthetic cache: {c['records']:,} x {c['shape'][1]} x {c['shape'][2]:,} float32 at {c['fs']:g} Hz "
              f"({c['bytes'] / 1e9:.2f} GB), written in {c['seconds_to_write']:.1f} s"),
             "",
             (f"{'architecture':<14}{'precision':<10}{'rows':>7}{'ours/s':>10}{'bare/s':>10}{'ratio':>7}"
              f"{'peak MiB ours':>15}{'bare':>7}  data")]
    for r in report["architectures"]:
        peak = [r[k]["peak_gpu_memory_bytes"] for k in ("ours", "bare")]
        mib = ["-" if p is None else f"{p / 2**20:.0f}" for p in peak]
        flag = "  below target" if r["below_target"] else ""
        lines.append(f"{r['arch']:<14}{r['precision']:<10}{r['rows']:>7}{r['ours']['samples_per_s']:>10.0f}"
                     f"{r['bare']['samples_per_s']:>10.0f}{r['ratio']:>7.3f}{mib[0]:>15}{mib[1]:>7}  "
                     f"{r['ours']['speed']['data_placement']}{flag}")
    lines.append(f"(ratio = ours / bare, target >= {report['target_ratio']})")
    lines += ["", f"{'speed setting':<34}{'samples/s':>10}{'x defaults':>11}"]
    for r in report["switches"]:
        lines.append(f"{r['arch'] + ' ' + r['setting']:<34}{r['samples_per_s']:>10.0f}{r['ratio_to_defaults']:>11.2f}")
    rounds = report["quickstart"]["rounds"]
    unit = "run(s) per GPU" if m["gpu"] else "CPU slot(s)"
    lines += ["", "quickstart through the job worker: " + "; ".join(
        f"{r['slots']} {unit}: {r['jobs']} jobs in {r['wall_seconds']:.1f} s" for r in rounds)
        + (f" ({rounds[0]['wall_seconds'] / rounds[-1]['wall_seconds']:.2f}x)" if len(rounds) > 1 else "")]
    lines += ["", f"{'preset':<40}{'runs':>6}{'sample-epochs':>16}{'hours':>9}"]
    for name, p in report["presets"]["projection"].items():
        lines.append(f"{name:<40}{p['runs']:>6}{p['sample_epochs']:>16,}{p['hours']:>9.2f}")
    lines.append(f"(projected training hours: {report['presets']['assumptions']})")
    spent = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in report["section_seconds"].items())
    lines.append(f"\nwall time of the check: {report['wall_seconds']:.0f} s ({spent})")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cpu-smoke", action="store_true",
                        help="the same code at tiny size on the CPU (well under a minute)")
    parser.add_argument("--out", type=Path, default=OUT, help="folder for gpu_check.json (default benchmarks/out)")
    args = parser.parse_args()
    report = check(args.out, args.cpu_smoke)
    print(table(report), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
