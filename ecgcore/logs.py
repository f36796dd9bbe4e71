"""Where the engine's log records go: the run's `log.txt`, and the console of the CLI or of
a background job.

Every module logs through `logging.getLogger(__name__)` (all under the "ecgcore" logger);
nothing passes message callbacks around. Two handlers take the records out:

- `run_log(folder)` — while a run is being done, every record at DEBUG and above is
  appended to its folder's `log.txt` (one UTC-timestamped line each, as `RunFolder.log`
  writes them). Detail that only the run's log needs (data sizes, epochs, thread choice)
  is logged at DEBUG; what a person at the console should see is INFO and above.
- `console(stream)` — the CLI's and the job process's output: INFO and above, the message
  only (no level or logger name), so the CLI prints what it printed before logging existed.
  With `verbose=True` DEBUG records are printed too. Long CLI steps draw `tqdm` bars;
  `progress_bars()` keeps log lines from tearing them.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, TextIO

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

if TYPE_CHECKING:
    from ecgcore.runs.folder import RunFolder

ROOT = "ecgcore"


class RunLogHandler(logging.Handler):
    """Appends each record's message to one run folder's log.txt (warnings say so)."""

    def __init__(self, folder: "RunFolder") -> None:
        super().__init__(level=logging.DEBUG)
        self.folder = folder

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            if record.levelno >= logging.WARNING and not message.startswith(record.levelname):
                message = f"{record.levelname}: {message}"
            if record.exc_info:
                message += "\n" + logging.Formatter().formatException(record.exc_info)
            self.folder.log(message)
        except Exception:  # noqa: BLE001 -- logging must never break a run
            self.handleError(record)


@contextlib.contextmanager
def run_log(folder: "RunFolder") -> Iterator[None]:
    """While the block runs, every ecgcore record (DEBUG and above) also goes to the run's
    log.txt."""
    logger = logging.getLogger(ROOT)
    handler = RunLogHandler(folder)
    logger.addHandler(handler)
    previous = logger.level
    if logger.getEffectiveLevel() > logging.DEBUG:
        logger.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


class _ConsoleHandler(logging.StreamHandler):
    """The message only, to a stream chosen at emit time when none was given (so a test's
    captured sys.stdout/sys.stderr is honoured)."""

    def __init__(self, stream: TextIO | None, stream_name: str) -> None:
        super().__init__(stream)
        self._fixed = stream is not None
        self._stream_name = stream_name
        self.setFormatter(logging.Formatter("%(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        if not self._fixed:
            self.stream = getattr(sys, self._stream_name)
        super().emit(record)
        self.flush()


def console(to_stderr: bool = False, verbose: bool = False) -> logging.Handler:
    """Send ecgcore's records (INFO and above; DEBUG too when `verbose`) to stdout or stderr,
    message only; replaces a console handler set earlier (the CLI calls this per command)."""
    logger = logging.getLogger(ROOT)
    for old in [h for h in logger.handlers if isinstance(h, _ConsoleHandler)]:
        logger.removeHandler(old)
    handler = _ConsoleHandler(None, "stderr" if to_stderr else "stdout")
    handler.setLevel(logging.DEBUG if verbose else logging.INFO)
    logger.addHandler(handler)
    if logger.getEffectiveLevel() > handler.level:
        logger.setLevel(handler.level)
    return handler


@contextlib.contextmanager
def progress_bars() -> Iterator[None]:
    """Around a `tqdm` bar: log lines are written through tqdm so they do not tear it."""
    with logging_redirect_tqdm(loggers=[logging.getLogger(ROOT)]):
        yield


def tqdm_progress(label: str, unit: str = "record") -> Callable[[int, int], None]:
    """A `progress(done, total)` callback (the form the engine's long steps report in)
    drawing a tqdm bar on stderr; the bar closes when done reaches total."""
    bar: tqdm | None = None

    def update(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, desc=label, unit=unit, file=sys.stderr, dynamic_ncols=True)
        bar.total = total
        bar.update(done - bar.n)
        if done >= total:
            bar.close()

    return update
