"""Several runs per GPU, on CPU: a fake GPU count and a fake free-memory probe stand in for
the machine, the job processes are fake handles, and the Worker, the queue, LocalLauncher's
slots and the memory admission are the real ones. 2 GPUs x 3 runs = 6 slots; a job too
big for the free memory waits (queued, with the reason on the Jobs page) while smaller
ones start, and starts once the probe reports the memory freed; the device column."""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ecgcore import workspace as ws
from ecgcore.errors import EcgcoreError
from ecgcore.jobs import gpu_probe as probe_module
from ecgcore.jobs import queue
from ecgcore.jobs.gpu_admission import GpuAdmission
from ecgcore.jobs.gpu_memory import (
    ACTIVATION_FACTOR,
    ALLOCATOR_MARGIN,
    BYTES_PER_PARAMETER,
    CUDA_CONTEXT_BYTES,
    FinishedRun,
    MemoryNeed,
    job_memory_need,
    memory_need,
    parameter_count,
)
from ecgcore.jobs.gpu_probe import MIB, GpuMemory, nvidia_smi_probe, parse_nvidia_smi
from ecgcore.jobs.local_launcher import LocalLauncher, job_env
from ecgcore.jobs.payload import RunJob
from ecgcore.jobs.worker_loop import Worker
from ecgcore.runs import RunStore
from ecgcore.views.launch.job_rows import (
    HELD_FOR_MEMORY,
    held_reason,
    job_row,
    jobs_table,
)

ROOT = Path(__file__).resolve().parents[1]
GIB = 1024**3


# -- fakes ---------------------------------------------------------------------------------------
class FakeProbe:
    """nvidia-smi as the test sets it: GPU index -> (free, total) bytes."""

    def __init__(self, **gpus: tuple[float, float]) -> None:
        self.gpus = {int(k[1:]): v for k, v in gpus.items()}  # g0=(free, total)

    def set_free(self, gpu: int, free_gib: float) -> None:
        self.gpus[gpu] = (free_gib, self.gpus[gpu][1])

    def __call__(self) -> dict[int, GpuMemory]:
        return {g: GpuMemory(int(free * GIB), int(total * GIB)) for g, (free, total) in self.gpus.items()}


class FakeHandle:
    """A job process that runs until the test ends it; its pid is a real sleeping process
    (so the worker's dead-pid and stale-heartbeat rules leave the job alone)."""

    def __init__(self, pid: int, env: dict[str, str]) -> None:
        self.pid, self.env, self.code = pid, env, None

    def poll(self) -> int | None:
        return self.code

    def signal(self, sig: int) -> None:
        self.code = -sig


class FakeLocalLauncher(LocalLauncher):
    """LocalLauncher with its process start replaced by a FakeHandle: slots, environment,
    device labels and memory admission are the real ones."""

    pid: int = 0

    def _spawn(self, job: dict[str, Any], env: dict[str, str]) -> FakeHandle:
        handle = FakeHandle(self.pid, env)
        self.handles[job["job_id"]] = handle
        return handle

    def __post_init__(self) -> None:
        super().__post_init__()
        self.handles: dict[str, FakeHandle] = {}


@pytest.fixture()
def sleeper() -> Iterator[int]:
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True)
    try:
        yield process.pid
    finally:
        process.kill()
        process.wait()


def _config(batch: int = 64, device: str = "cuda", **train: Any) -> dict[str, Any]:
    return {"kind": "target", "arch": "small_cnn", "strategy": "scratch", "seed": 0,
            "data": {"dataset": "d", "task": "t"}, "prep": {"fs": 100, "seconds": 10},
            "train": {"batch_size": batch, "device": device, **train}}


def _submit(label: str, config: dict[str, Any]) -> str:
    [job_id] = queue.submit_payloads([RunJob(run_kind="target", config=config, hash=f"h-{label}", run_label=label)])
    return job_id


def _finished_run(store: RunStore, config: dict[str, Any], peak: int | None, n_train: int = 100) -> str:
    """A finished run of `config` whose results.json records `peak` GPU bytes."""
    folder = store.create(config, kind="target")
    store.finish(folder.run_id, {
        "source": None, "target": "d", "arch": config["arch"], "strategy": "scratch", "train_fraction": 1.0,
        "n_train": n_train, "seed": 0, "classes": ["a"], "best_epoch": 0, "epochs_run": 1, "device": "cuda",
        "train_seconds": 1.0, "speed": {"peak_gpu_memory_bytes": peak},
        "test": {"macro_auc": 0.5, "macro_auc_ci": [0.4, 0.6], "per_class_auc": {"a": 0.5},
                 "macro_auprc": 0.5, "f1_weighted": 0.5}})
    return folder.run_id


# -- slots ---------------------------------------------------------------------------------------
def test_two_gpus_three_runs_each_make_six_slots(workspace: Path, sleeper: int) -> None:
    """2 GPUs x 3 runs per GPU: 6 slots, 3 on each GPU (round-robin, so the first jobs spread),
    each job started with its slot's CUDA_VISIBLE_DEVICES and its device recorded."""
    launcher = FakeLocalLauncher(n_gpus=2, runs_per_gpu=3, gpu_probe=FakeProbe(g0=(40, 80), g1=(40, 80)))
    launcher.pid = sleeper
    assert launcher.capacity() == 6
    assert launcher.devices == ["0", "1", "0", "1", "0", "1"]
    assert [job_env(d, 6, 8) for d in launcher.devices] == [{"CUDA_VISIBLE_DEVICES": d, "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
                                                           for d in "010101"]
    assert "2 GPUs x 3 runs each" in launcher.describe()

    ids = [_submit(f"run{i}", _config()) for i in range(7)]
    worker = Worker(launcher)
    worker.step()
    assert sorted(worker.children) == [0, 1, 2, 3, 4, 5], "every slot took a job"
    started = {child.job_id: launcher.handles[child.job_id].env["CUDA_VISIBLE_DEVICES"]
               for child in worker.children.values()}
    assert sorted(started.values()) == ["0", "0", "0", "1", "1", "1"]
    jobs = {j["job_id"]: j for j in queue.list_jobs()}
    for job_id, visible in started.items():
        assert jobs[job_id]["state"] == "running" and jobs[job_id]["device"] == f"cuda:{visible}"
    assert set(started) == set(ids[:6]) and jobs[ids[6]]["state"] == "queued", "oldest first; the 7th waits a slot"
    assert jobs[ids[6]]["device"] is None and held_reason(jobs[ids[6]]) is None, "waiting for a slot, not memory"


def test_runs_per_gpu_is_checked_and_has_no_effect_on_cpu(workspace: Path, caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(EcgcoreError, match="--runs-per-gpu must be at least 1"):
        LocalLauncher(n_gpus=2, runs_per_gpu=0)
    with pytest.raises(EcgcoreError, match="not both"):
        LocalLauncher(slots=4, n_gpus=2, runs_per_gpu=2)
    with caplog.at_level(logging.INFO, logger="ecgcore.jobs.local_launcher"):
        cpu = LocalLauncher(n_gpus=0, runs_per_gpu=3)
    assert cpu.capacity() == 1 and cpu.devices == [None] and cpu.admission is None
    assert "--runs-per-gpu 3 has no effect" in caplog.text
    assert LocalLauncher(n_gpus=2).devices == ["0", "1"], "default: one run per GPU, as before"


def test_cli_refuses_zero_runs_per_gpu(workspace: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "ecgcore", "worker", "--runs-per-gpu", "0", "--once"], check=False,
                          cwd=ROOT, capture_output=True, text=True, timeout=120, env={**os.environ, "ECGCORE_HOME": str(workspace)})
    assert done.returncode == 2
    assert "error: --runs-per-gpu must be at least 1 (jobs sharing one GPU), got 0" in done.stderr


# -- memory admission ----------------------------------------------------------------------------
def test_a_big_job_waits_while_smaller_ones_start_then_starts_when_memory_frees(workspace: Path,
                                                                                 sleeper: int) -> None:
    """One 16 GiB GPU x 4 runs, 5 GiB free. Needs come from finished runs' recorded peaks
    (batch 64: 1 GiB, batch 1024: 12 GiB). The big job (oldest) waits; two small ones start;
    the third small one waits too, because the two just started have not allocated yet
    (their promise counts although the probe still says 5 GiB). Memory frees as jobs end,
    and every job starts in the end; nothing is claimed that does not fit."""
    store = RunStore()
    _finished_run(store, _config(64), peak=1 * GIB)
    _finished_run(store, _config(64), peak=GIB // 2)  # the largest matching peak counts
    _finished_run(store, _config(1024), peak=12 * GIB)
    small_need = int(CUDA_CONTEXT_BYTES + ALLOCATOR_MARGIN * GIB)
    big_need = int(CUDA_CONTEXT_BYTES + ALLOCATOR_MARGIN * 12 * GIB)
    probe = FakeProbe(g0=(5, 16))
    launcher = FakeLocalLauncher(n_gpus=1, runs_per_gpu=4, gpu_probe=probe)
    launcher.pid = sleeper
    big = _submit("big", _config(1024))
    smalls = [_submit(f"small{i}", _config(64)) for i in range(3)]
    assert job_memory_need(queue.get(big)) == big_need and job_memory_need(queue.get(smalls[0])) == small_need

    worker = Worker(launcher)
    worker.step()
    state = {j["job_id"]: j for j in queue.list_jobs()}
    assert [state[s]["state"] for s in smalls] == ["running", "running", "queued"]
    assert state[big]["state"] == "queued" and state[big]["attempts"] == 0, "held, not claimed"
    assert launcher.admission is not None and launcher.admission.promised(0) == 2 * small_need
    why = held_reason(state[big])
    assert why is not None and why.startswith("waits for GPU memory: needs 15.15 GiB, 5.00 GiB free on GPU 0")
    assert "measured: peak 12.00 GiB" in why
    assert held_reason(state[smalls[2]]) is not None, "the promise of the two just started counts"
    # the Jobs page shows where each job runs, and that the big one waits for memory
    table = jobs_table(list(state.values()), now=0.0).set_index("job_id")
    assert table.loc[smalls[0], "GPU"] == "cuda:0" and table.loc[big, "GPU"] == HELD_FOR_MEMORY
    assert job_row(state[big], now=0.0)["held"] == why

    worker.step()  # nothing changed: the same jobs wait, the promises of the two started count
    assert [queue.get(j)["state"] for j in (big, smalls[2])] == ["queued", "queued"]
    assert "needs 15.15 GiB, 1.10 GiB free on GPU 0" in (held_reason(queue.get(big)) or "")

    # the two small ones allocated (their first step) and the probe sees it: still no room
    for job_id in smalls[:2]:
        queue.beat(job_id, {"epoch": 0, "step": 1, "n_steps": 10})
    probe.set_free(0, 5 - 2 * small_need / GIB)
    worker.step()
    assert launcher.admission.promised(0) == 0, "allocated jobs are no longer promised"
    assert queue.get(smalls[2])["state"] == "queued"

    # one small job ends: its memory frees, the third small one starts, the big one still waits
    _end(launcher, smalls[0])
    probe.set_free(0, 5 - small_need / GIB)
    worker.step()
    assert queue.get(smalls[2])["state"] == "running" and queue.get(big)["state"] == "queued"
    # the others end, the GPU is free: the big job starts, and its note is gone
    for job_id in (smalls[1], smalls[2]):
        _end(launcher, job_id)
    probe.set_free(0, 16)
    worker.step()
    job = queue.get(big)
    assert job["state"] == "running" and job["device"] == "cuda:0" and job["progress"] is None
    assert job_row(job, now=0.0)["device"] == "cuda:0" and held_reason(job) is None


def _end(launcher: FakeLocalLauncher, job_id: str) -> None:
    queue.end(job_id, "done")
    launcher.handles[job_id].code = 0


def test_a_job_bigger_than_the_gpu_runs_alone(workspace: Path) -> None:
    """A job that needs more than the GPU's total memory is not held forever: it starts when
    nothing else of this worker runs on its GPU, and waits while something does."""
    needs = {"huge": MemoryNeed(20 * GIB, 20 * GIB, "test"), "small": MemoryNeed(GIB, GIB, "test")}
    admission = GpuAdmission([0, 1, 0, 1], FakeProbe(g0=(15, 16), g1=(15, 16)), need_of=lambda j: needs[j["label"]])
    huge = {"job_id": "job-huge", "label": "huge", "spec": RunJob("target", _config(), "h").to_payload()}
    # slots 0 (GPU 0) and 1 (GPU 1) busy: no GPU is idle, the huge job waits
    held = admission.assign([huge], free=[2, 3])
    assert held.starts == [] and held.held["job-huge"].startswith("waits for a GPU of its own: needs 20.00 GiB")
    # GPU 1's slots both free: it starts there, alone
    alone = admission.assign([huge], free=[1, 2, 3])
    assert [(s.slot, s.device) for s in alone.starts] == [(1, "cuda:1")]


def test_without_an_answer_from_the_probe_jobs_start_as_slots_free(workspace: Path, sleeper: int) -> None:
    launcher = FakeLocalLauncher(n_gpus=1, runs_per_gpu=2, gpu_probe=lambda: None)
    launcher.pid = sleeper
    ids = [_submit(f"r{i}", _config(4096)) for i in range(2)]
    Worker(launcher).step()
    assert [queue.get(j)["device"] for j in ids] == ["cuda:0", "cuda:0"]


def test_cpu_jobs_need_no_gpu_memory(workspace: Path) -> None:
    cpu_job = {"job_id": "j", "spec": RunJob("target", _config(device="cpu"), "h").to_payload()}
    assert memory_need(cpu_job, []).bytes == 0
    admission = GpuAdmission([0], FakeProbe(g0=(0, 16)))
    [start] = admission.assign([cpu_job], free=[0]).starts
    assert start.device == "cpu", "a CPU job in a GPU slot is recorded as running on the CPU"


# -- memory need ---------------------------------------------------------------------------------
def _job(config: dict[str, Any]) -> dict[str, Any]:
    return {"job_id": "j", "spec": RunJob("target", config, "h").to_payload()}


def _run(batch: int, peak: int | None, samples: int = 1000, precision: str = "float32",
         n_train: int | None = None, n_val: int | None = None, fraction: float = 1.0) -> FinishedRun:
    return FinishedRun("r", "small_cnn", batch, (12, samples), precision, peak, ("target", "d", "t", fraction),
                       n_train, n_val)


def test_memory_need_measured_from_the_same_shape_else_estimated() -> None:
    job = _job(_config(64))
    measured = memory_need(job, [_run(64, 2 * GIB), _run(64, 3 * GIB), _run(32, 9 * GIB), _run(64, 9 * GIB, 250),
                                 _run(64, 9 * GIB, precision="bf16")])
    assert measured.bytes == measured.minimum == int(CUDA_CONTEXT_BYTES + ALLOCATOR_MARGIN * 3 * GIB)
    assert "measured: peak 3.00 GiB" in measured.basis

    params = parameter_count("small_cnn", 12, 1000)
    assert params > 0
    tensors = BYTES_PER_PARAMETER * params + ACTIVATION_FACTOR * 64 * 12 * 1000 * 4
    unknown_set = memory_need(job, [_run(64, None)])  # a finished run without a peak (trained on CPU)
    assert unknown_set.bytes == int(CUDA_CONTEXT_BYTES + ALLOCATOR_MARGIN * tensors)
    assert "training set size not known yet" in unknown_set.basis
    with_set = memory_need(job, [_run(64, None, n_train=500)])
    resident = 500 * 12 * 1000 * 4
    assert with_set.bytes == int(CUDA_CONTEXT_BYTES + ALLOCATOR_MARGIN * (tensors + resident))
    assert with_set.minimum == unknown_set.bytes, "'auto' keeps a set that does not fit on the host"
    assert with_set.on(total=with_set.bytes) == with_set.bytes and with_set.on(total=GIB) == with_set.minimum
    always = memory_need(_job(_config(64, data_on_device="always")), [_run(64, None, n_train=500)])
    assert always.minimum == always.bytes == with_set.bytes
    never = memory_need(_job(_config(64, data_on_device="never")), [_run(64, None, n_train=500)])
    assert never.bytes == unknown_set.bytes
    # the validation rows live beside the training rows; any training fraction tells their count
    with_val = memory_need(job, [_run(64, None, n_train=500), _run(64, None, n_train=50, n_val=80, fraction=0.1)])
    assert with_val.bytes == int(CUDA_CONTEXT_BYTES + ALLOCATOR_MARGIN * (tensors + 580 * 12 * 1000 * 4))
    assert "(580 records)" in with_val.basis
    cropped = memory_need(_job(_config(64, crop_seconds=2.5)), [])
    assert cropped.bytes < unknown_set.bytes, "the crop, not the window, sets the activations"


# -- probe and schema ----------------------------------------------------------------------------
def test_nvidia_smi_answer_is_read_and_a_missing_one_is_none(monkeypatch: pytest.MonkeyPatch) -> None:
    assert parse_nvidia_smi("0, 80000, 81559\n1, 1024, 81559\n") == {
        0: GpuMemory(80000 * MIB, 81559 * MIB), 1: GpuMemory(1024 * MIB, 81559 * MIB)}
    assert parse_nvidia_smi("0, [N/A], [N/A]\n") is None
    assert parse_nvidia_smi("") is None
    monkeypatch.setattr(probe_module, "QUERY", ("no-such-program-ecgcore",))
    assert nvidia_smi_probe() is None
    monkeypatch.setattr(probe_module, "QUERY", (sys.executable, "-c", "raise SystemExit(9)"))
    assert nvidia_smi_probe() is None
    monkeypatch.setattr(probe_module, "QUERY", (sys.executable, "-c", "print('0, 10, 20')"))
    assert nvidia_smi_probe() == {0: GpuMemory(10 * MIB, 20 * MIB)}


def test_an_older_jobs_table_gains_the_device_column(workspace: Path) -> None:
    """A store made before jobs recorded their worker and device gets both columns."""
    path = ws.index_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE jobs (job_id TEXT PRIMARY KEY, spec TEXT NOT NULL, config_hash TEXT NOT NULL,"
                     " kind TEXT NOT NULL, label TEXT, depends_on TEXT, state TEXT NOT NULL, progress TEXT,"
                     " pid INTEGER, host TEXT, heartbeat REAL, attempts INTEGER NOT NULL DEFAULT 0,"
                     " max_attempts INTEGER NOT NULL DEFAULT 2, error TEXT, created REAL NOT NULL, started REAL,"
                     " finished REAL, cancel_requested REAL, run_id TEXT)")
        conn.execute("INSERT INTO jobs (job_id, spec, config_hash, kind, state, created) VALUES (?,?,?,?,?,?)",
                     ("job-old", json.dumps(RunJob("target", _config(), "h").to_payload()), "h", "target",
                      "queued", 1.0))
    [old] = queue.list_jobs()
    assert old["device"] is None and old["worker"] is None
    job = queue.claim_job("job-old", host="h", worker="w", device="cuda:1")
    assert job is not None and job["device"] == "cuda:1" and job["worker"] == "w"
    assert queue.claim_job("job-old", device="cuda:0") is None, "a job is claimed once"
    assert jobs_table([job], now=0.0)["GPU"].tolist() == ["cuda:1"]
