"""Is a process alive? One answer for the job queue and the background downloads."""

from __future__ import annotations

import os
from pathlib import Path


def pid_alive(pid: int) -> bool:
    """True when a process with this pid exists on this machine (zombies count as dead)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        status = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1][:1]
        return status != "Z"
    except (OSError, IndexError):
        return True


def child_or_pid_alive(pid: int) -> bool:
    """`pid_alive`, but a finished child of this process is reaped first (never counted)."""
    try:
        finished, _ = os.waitpid(pid, os.WNOHANG)
        return finished != pid
    except ChildProcessError:
        return pid_alive(pid)  # not our child (started by another process): ask the system
