"""From a run's probabilities to calls: the run's own thresholds, and rhythms that exclude
each other.

A class is called when its probability reaches the run's threshold for it: tuned on the
run's validation split and stored in results.json (`test.thresholds`). A class without
a tuned threshold (an old run, or a class validation could not tune) is called at 0.5,
and `Thresholds.source` says so. Inspect, Predict and the report all call through here,
so they agree. Rhythms a recording has only one of (`ecgcore.data.labels.rhythms`) are
checked: when two or more are called, `rhythm_conflict` names them and the most probable.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ecgcore.data.labels import abbreviation, class_name
from ecgcore.data.labels.rhythms import is_exclusive_rhythm

DEFAULT_THRESHOLD = 0.5
TUNED = "tuned on validation"
UNTUNED = f"{DEFAULT_THRESHOLD:g} (no tuned thresholds in results.json)"


@dataclass(frozen=True)
class Thresholds:
    """Per-class decision thresholds of a run and where they come from."""

    values: Mapping[str, float]
    source: str

    def __getitem__(self, code: str) -> float:
        return float(self.values.get(code, DEFAULT_THRESHOLD))

    @property
    def note(self) -> str:
        return calls_note(self.source)


def calls_note(source: str) -> str:
    """One line for a page or report: how probabilities became calls."""
    return f"called where p ≥ the run's threshold per class, {source}"


def run_thresholds(results: Mapping[str, Any] | None, classes: Sequence[str]) -> Thresholds:
    """The run's thresholds for `classes` from results.json (`test.thresholds`); 0.5 where a
    class has none, said in `source`."""
    stored = ((results or {}).get("test") or {}).get("thresholds") or {}
    tuned = {c: float(stored[c]) for c in classes
             if isinstance(stored.get(c), (int, float)) and math.isfinite(stored[c])}
    if not tuned:
        return Thresholds({}, UNTUNED)
    missing = len(classes) - len(tuned)
    if not missing:
        return Thresholds(tuned, TUNED)
    plural = "class" if missing == 1 else "classes"
    return Thresholds(tuned, f"{TUNED} ({DEFAULT_THRESHOLD:g} for {missing} {plural} without a "
                             "tuned threshold)")


@dataclass(frozen=True)
class Call:
    """One class for one record: probability, the run's threshold, and the truth if known."""

    code: str
    probability: float
    threshold: float = DEFAULT_THRESHOLD
    true: bool | None = None

    @property
    def called(self) -> bool:
        return self.probability >= self.threshold

    @property
    def name(self) -> str:
        return class_name(self.code)


def make_calls(probabilities: Mapping[str, float], thresholds: Thresholds,
               truth: Mapping[str, bool] | None = None) -> list[Call]:
    """Every class's call, most probable first (ties keep the given order)."""
    calls = [Call(code, float(p), thresholds[code], None if truth is None else bool(truth.get(code)))
             for code, p in probabilities.items()]
    return sorted(calls, key=lambda c: -c.probability)


@dataclass(frozen=True)
class RhythmConflict:
    """Two or more called rhythms that a recording has only one of, most probable first."""

    calls: tuple[Call, ...]

    @property
    def most_probable(self) -> Call:
        return self.calls[0]

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(c.code for c in self.calls)

    def sentence(self) -> str:
        named = " and ".join(f"{c.name} (p = {c.probability:.3f})" for c in self.calls)
        return (f"Rhythm conflict: the model calls {named}, which exclude each other; the most "
                f"probable rhythm is {self.most_probable.name}.")

    def short(self) -> str:
        """A footnote for the report's calls table."""
        best = self.most_probable
        return f"* rhythms exclude each other; most probable: {abbreviation(best.code)} ({best.probability:.3f})"


def rhythm_conflict(calls: Iterable[Call]) -> RhythmConflict | None:
    """The called exclusive rhythms when there are two or more, else None."""
    called = sorted((c for c in calls if c.called and is_exclusive_rhythm(c.code)),
                    key=lambda c: -c.probability)
    return RhythmConflict(tuple(called)) if len(called) > 1 else None
