"""ecgcore.logs: engine records reach the run's log.txt and the console; tqdm bars for the CLI."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from ecgcore import logs
from ecgcore.runs import RunStore

log = logging.getLogger("ecgcore.test_logs")


def test_run_log_writes_every_engine_record_of_the_run_and_only_those(tmp_path: Path) -> None:
    folder = RunStore(tmp_path).create({"kind": "target", "arch": "small_cnn"}, kind="target")
    log.debug("before the run")
    with logs.run_log(folder):
        log.debug("data: 5 records")
        log.warning("leak: 2 test records were seen")
        logging.getLogger("other.library").warning("not ours")
    log.info("after the run")
    text = folder.log_path.read_text()
    assert "data: 5 records" in text and "WARNING: leak: 2 test records were seen" in text
    assert "before the run" not in text and "after the run" not in text and "not ours" not in text
    assert not [h for h in logging.getLogger("ecgcore").handlers if isinstance(h, logs.RunLogHandler)]


def test_console_prints_info_messages_only_and_verbose_adds_detail(capsys: pytest.CaptureFixture) -> None:
    handler = logs.console(to_stderr=False)
    try:
        log.info("run 1: scratch")
        log.debug("epoch 0, loss=0.7")
        out = capsys.readouterr()
        assert out.out == "run 1: scratch\n" and out.err == ""
        logs.console(to_stderr=True, verbose=True)  # replaces the first handler
        log.debug("epoch 1, loss=0.6")
        out = capsys.readouterr()
        assert out.out == "" and out.err == "epoch 1, loss=0.6\n"
    finally:
        for h in [h for h in logging.getLogger("ecgcore").handlers if h.__class__.__name__ == "_ConsoleHandler"]:
            logging.getLogger("ecgcore").removeHandler(h)
        assert handler is not None


def test_tqdm_progress_draws_a_bar_that_ends_at_the_total(capsys: pytest.CaptureFixture) -> None:
    progress = logs.tqdm_progress("prepare")
    progress(0, 10)
    progress(5, 10)
    progress(10, 10)
    err = capsys.readouterr().err
    assert "prepare" in err and "10/10" in err and "100%" in err
