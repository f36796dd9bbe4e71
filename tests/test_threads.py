"""CPU training under contention (issue 14): torch threads come from the cores other
programs leave free (measured from /proc/stat minus this process's own CPU time), capped by
the job's share, chosen at the start of a run and again after every epoch, and logged."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
import torch

from ecgcore.cpu import (
    CpuReading,
    ProcStatReader,
    ThreadGovernor,
    choose_threads,
    thread_cap,
)


@pytest.fixture()
def lines(caplog: pytest.LogCaptureFixture) -> "LogLines":
    """The messages ecgcore logged during the test (DEBUG and above), read live."""
    caplog.set_level(logging.DEBUG, logger="ecgcore")
    return LogLines(caplog)


class LogLines:
    def __init__(self, caplog: pytest.LogCaptureFixture) -> None:
        self.caplog = caplog

    def __getitem__(self, index: int) -> str:
        return self.caplog.messages[index]

    def __len__(self) -> int:
        return len(self.caplog.messages)


@pytest.fixture()
def keep_torch_threads() -> Iterator[None]:
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_threads_come_from_the_free_cores_not_the_cores_present():
    assert choose_threads(cap=2, cores=2, others_busy=0.0) == 2
    assert choose_threads(cap=2, cores=2, others_busy=1.0) == 1, "one busy program: one thread"
    assert choose_threads(cap=2, cores=2, others_busy=2.0) == 1, "never fewer than one"
    assert choose_threads(cap=2, cores=2, others_busy=0.2) == 2, "a core a fifth busy still counts as free"
    assert choose_threads(cap=2, cores=2, others_busy=0.4) == 1
    assert choose_threads(cap=4, cores=16, others_busy=3.0) == 4, "the job's share caps it"
    assert choose_threads(cap=16, cores=16, others_busy=13.4) == 2


def test_thread_cap_is_the_workers_share_else_the_cores(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("ECGCORE_TORCH_THREADS", "3")
    assert thread_cap(cores=8) == 3
    monkeypatch.delenv("ECGCORE_TORCH_THREADS")
    assert thread_cap(cores=8) == 8


STAT = """cpu  {u} 0 {s} 9000 0 0 0 0 0 0
cpu0 {u0} 0 0 4000 0 0 0 0 0 0
cpu1 {u1} 0 0 4000 0 0 0 0 0 0
cpu2 5000 0 0 1000 0 0 0 0 0 0
intr 1 2 3
"""


def test_proc_stat_reading_counts_only_this_processs_cpus_and_subtracts_its_own_time():
    texts = iter([STAT.format(u=100, s=0, u0=100, u1=0), STAT.format(u=900, s=0, u0=200, u1=150)])
    clock = iter([10.0, 11.0])
    own = iter([5.0, 5.5])
    reader = ProcStatReader(cpus={0, 1}, hz=100, read_stat=lambda: next(texts),
                            own_seconds=lambda: next(own), wall=lambda: next(clock))
    first, second = reader.read(), reader.read()
    # cpu0 + cpu1 busy 250 jiffies (2.5 core-seconds) over 1 s; cpu2 is not ours; 0.5 s was ours.
    assert second.others_since(first) == pytest.approx(2.5 - 0.5)
    assert isinstance(first, CpuReading)
    real = ProcStatReader()
    a = real.read()
    b = real.read()
    assert b.others_since(a) >= 0.0


def test_governor_lowers_and_raises_the_threads_with_the_measured_load(keep_torch_threads: None, lines):
    busy = {"others": 0.0}

    class FakeReader:
        """Each reading adds `busy["others"]` core-seconds of other programs per second."""

        def __init__(self) -> None:
            self.t = 0.0
            self.others = 0.0

        def read(self) -> CpuReading:
            self.t += 1.0
            self.others += busy["others"]
            return CpuReading(wall=self.t, busy=self.others, own=0.0)

    governor = ThreadGovernor(cap=2, cores=2, reader=FakeReader(), min_seconds=0.0)
    busy["others"] = 1.0  # a competing program is running when the run starts
    assert governor.start() == 1 and torch.get_num_threads() == 1
    assert lines[-1] == "torch threads: 1 (cap 2 of 2 cores; other programs kept 1.0 of 2 cores busy)"
    governor.on_epoch_end({"epoch": 0})
    assert torch.get_num_threads() == 1 and len(lines) == 1, "unchanged: nothing logged"
    busy["others"] = 0.0  # it ended
    governor.on_epoch_end({"epoch": 1})
    assert torch.get_num_threads() == 2
    assert lines[-1] == "torch threads: 1 -> 2 after epoch 1 (other programs kept 0.0 of 2 cores busy)"
    busy["others"] = 2.0
    governor.on_epoch_end({"epoch": 2})
    assert torch.get_num_threads() == 1
    summary = governor.summary()
    assert summary == {"cores": 2, "cap": 2, "start": 1, "min": 1, "max": 2, "changes": 2,
                       "others_busy_max": 2.0}


def test_a_run_logs_its_thread_choice(trained_run):
    """The CLI `run` path (the trained_run fixture) chose its threads and said so."""
    folder = trained_run.home / "runs" / trained_run.run_id
    log = (folder / "log.txt").read_text()
    assert "torch threads: " in log and "cores; other programs kept" in log
    threads = json.loads((folder / "results.json").read_text())["threads"]
    assert 1 <= threads["min"] <= threads["max"] <= threads["cap"] <= threads["cores"]


def test_governor_only_for_cpu_runs_and_can_be_switched_off(monkeypatch: pytest.MonkeyPatch):
    from ecgcore.cpu import ADAPT_ENV, governor_for
    from ecgcore.train import device as device_module

    deterministic = governor_for({"device": "cpu"})
    assert isinstance(deterministic, ThreadGovernor) and not deterministic.every_epoch, \
        "deterministic training (the default) keeps its first choice"
    assert governor_for({"device": "cpu", "deterministic": False}).every_epoch
    monkeypatch.setitem(device_module.AVAILABLE, "cuda", lambda: True)
    assert governor_for({"device": "cuda"}) is None, "GPU runs keep torch's own threads"
    monkeypatch.setenv(ADAPT_ENV, "0")
    assert governor_for({"device": "cpu"}) is None, "the fixed policy, for comparison"


class Load:
    """A reader whose other programs keep `others` cores busy; one second per reading."""

    def __init__(self, others: float) -> None:
        self.t, self.busy, self.others = 0.0, 0.0, others

    def read(self) -> CpuReading:
        self.t += 1.0
        self.busy += self.others
        return CpuReading(wall=self.t, busy=self.busy, own=0.0)


def test_deterministic_runs_keep_their_first_choice_and_a_resume_reuses_it(tmp_path, keep_torch_threads, lines):
    record = tmp_path / "checkpoints" / "threads.json"
    load = Load(others=1.0)
    first = ThreadGovernor(cap=2, cores=2, reader=load, min_seconds=0.0,
                           every_epoch=False, record=record)
    assert first.start() == 1 and json.loads(record.read_text()) == {"threads": 1}
    assert "kept for the whole run" in lines[-1]
    load.others = 0.0
    first.on_epoch_end({"epoch": 0})
    assert torch.get_num_threads() == 1, "no change within a deterministic run"
    # The attempt is killed; the resumed attempt finds the machine free but keeps 1 thread.
    resumed = ThreadGovernor(cap=2, cores=2, reader=Load(others=0.0), min_seconds=0.0,
                             every_epoch=False, record=record)
    assert resumed.start() == 1 and torch.get_num_threads() == 1
    assert "kept from the run's first attempt" in lines[-1]
