"""Which finished run Predict scores a record with by default, and why.

A run fits a record when the record has every lead the run's model reads (its
config.json `prep.leads`; a missing lead would be zero-filled) and a sampling rate at
least the run's (`prep.fs`; a lower one would have to be upsampled). Among fitting runs,
those trained on real data come first (`ecgcore.views.provenance`), then the highest test
macro AUC. When no run fits, the same order over all runs picks one, and the reason says
what does not fit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ecgcore.runs import RunStore
from ecgcore.views.provenance import run_provenance


@dataclass(frozen=True)
class RunChoice:
    run_id: str
    reason: str


@dataclass(frozen=True)
class _Candidate:
    run_id: str
    leads: tuple[str, ...]
    fs: float
    macro_auc: float | None
    synthetic: bool

    def missing(self, leads: Sequence[str]) -> list[str]:
        have = {str(lead).strip().lower() for lead in leads}
        return [lead for lead in self.leads if lead.lower() not in have]

    def fits(self, leads: Sequence[str], fs: float) -> bool:
        return not self.missing(leads) and fs >= self.fs - 1e-9

    def rank(self) -> tuple[bool, float]:
        return (not self.synthetic, -1.0 if self.macro_auc is None else self.macro_auc)


def _candidates(store: RunStore) -> list[_Candidate]:
    frame = store.list(status="done")
    out: list[_Candidate] = []
    for _, row in frame.iterrows():
        if not (Path(row["path"]) / "model.pt").is_file():
            continue
        run_id = str(row["run_id"])
        prep = store.get(run_id).run_config.prep
        auc = row.get("macro_auc")
        out.append(_Candidate(run_id, prep.leads, prep.fs,
                              None if auc is None or pd.isna(auc) else float(auc),
                              run_provenance(run_id, store).synthetic))
    return out


def _auc(candidate: _Candidate) -> str:
    return "no test macro AUC" if candidate.macro_auc is None else f"test macro AUC {candidate.macro_auc:.3f}"


def choose_run(leads: Sequence[str], fs: float, store: RunStore | None = None) -> RunChoice | None:
    """The default run for a record with `leads` at `fs` Hz, with the reason; None when
    there is no finished run with a model."""
    store = store or RunStore()
    candidates = _candidates(store)
    if not candidates:
        return None
    fitting = [c for c in candidates if c.fits(leads, fs)]
    pool = fitting or candidates
    best = max(pool, key=lambda c: c.rank())
    kind = "trained on synthetic data" if best.synthetic else "trained on real data"
    if fitting:
        real_first = ("" if best.synthetic or all(not c.synthetic for c in fitting)
                      else "; runs trained on real data come first")
        only = " (every fitting run is trained on synthetic data)" if best.synthetic else ""
        reason = (f"Chosen for this record: the best {_auc(best)} of the {len(fitting)} finished "
                  f"run(s) whose leads ({len(best.leads)}) the record has and whose rate "
                  f"({best.fs:g} Hz) its {fs:g} Hz reaches, {kind}{only}{real_first}.")
    else:
        problems = []
        missing = best.missing(leads)
        if missing:
            problems.append(f"it lacks lead(s) {', '.join(missing)}, which are zero-filled")
        if fs < best.fs:
            problems.append(f"its {fs:g} Hz is upsampled to the run's {best.fs:g} Hz")
        reason = (f"No finished run fits this record's {len(leads)} lead(s) at {fs:g} Hz; chosen: "
                  f"the best {_auc(best)} overall, {kind} — {'; '.join(problems)}.")
    return RunChoice(best.run_id, reason)
