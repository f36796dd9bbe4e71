"""The Launch page's Submit button: what it says and whether it does anything.

After a grid is queued its runs are "in queue", not "reused": nothing has run, so the button
must not say that everything is reused. With nothing new it is disabled and says why.
"""

from __future__ import annotations


def _runs(n: int) -> str:
    return f"{n} run{'s' if n != 1 else ''}"


def submit_label(n_new: int, n_reused: int, n_in_queue: int) -> tuple[str, bool]:
    """(label, enabled) of the Submit button for a plan with these counts."""
    if n_new:
        return f"Submit {n_new} new run{'s' if n_new != 1 else ''}", True
    if n_in_queue and n_reused:
        return f"Nothing new to submit: {_runs(n_reused)} done, {_runs(n_in_queue)} already in the queue", False
    if n_in_queue:
        return f"Nothing new to submit: {_runs(n_in_queue)} already in the queue", False
    if n_reused:
        return f"Nothing new to submit: {'the run is' if n_reused == 1 else f'all {n_reused} runs are'} done "\
               "(see Compare)", False
    return "Nothing to submit", False
