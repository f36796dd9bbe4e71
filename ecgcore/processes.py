"""Is a process alive? One answer for the job queue and its workers."""

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
