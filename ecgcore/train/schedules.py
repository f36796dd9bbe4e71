"""Learning-rate schedules, one registry: name -> (LR multiplier, Adam beta1) at a step.

A schedule runs over one *cycle*: the optimizer steps of one optimisation run (the whole
run, or one phase of a transfer strategy that restarts its schedule, as fastai's separate
`fit_one_cycle` calls do). `factors(step, total)` gets the 0-based step within the cycle
and the cycle's number of steps; `beta2` is the Adam beta2 the schedule's recipe uses
(None: the optimizer's default).

| name             | what it computes                                                       |
|------------------|------------------------------------------------------------------------|
| constant         | the plan's LR at every step                                            |
| onecycle         | this workbench's one-cycle variant (before fastai's constants were     |
|                  | checked): cosine warm-up over the first 25 % of steps from lr/25 to lr, |
|                  | cosine down to lr/1e5; beta1 0.95 -> 0.85 -> 0.95. Kept for old runs.   |
| fastai_onecycle  | fastai 1.0.61 `fit_one_cycle` exactly (the PTB-XL benchmark's):        |
|                  | pct_start 0.3 (a1 = int(0.3 * total) steps up), div_factor 25, final    |
|                  | division 25e4, cosine both ways, beta1 0.95 -> 0.85 -> 0.95 and         |
|                  | beta2 0.99 (fastai's `AdamW = Adam(betas=(0.9, 0.99))`, beta1 driven by |
|                  | the schedule)                                                          |
| stlr             | ULMFiT's slanted triangular LR (Howard & Ruder 2018, eq. 3): cut_frac   |
|                  | 0.1, ratio 32: linear up from lr/32 over the first 10 % of steps, then  |
|                  | linear down to lr/32                                                   |

Written by hand: these are a few lines each, and torch's OneCycleLR counts its steps
differently from fastai v1 (checked step by step in tests/test_strategy_phases.py).
"""

# Kept by hand, not torch.optim.lr_scheduler: fastai's one-cycle (per-group betas, cycles restarted
# per phase) and ULMFiT's STLR are checked step by step against fastai 1.0.61's own code in the tests.

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

Factors = tuple[float, float | None]


@dataclass(frozen=True)
class Schedule:
    name: str
    factors: Callable[[int, int], Factors]
    beta2: float | None = None


def _cosine(start: float, end: float, position: float) -> float:
    """fastai's annealing_cos: from `start` at 0 to `end` at 1."""
    return end + (start - end) * (1 + math.cos(math.pi * position)) / 2


def _constant(step: int, total: int) -> Factors:
    return 1.0, None


ONECYCLE_WARMUP, ONECYCLE_DIV, ONECYCLE_DIV_FINAL = 0.25, 25.0, 1e5
BETA1_CYCLE = (0.95, 0.85)


def _onecycle(step: int, total: int) -> Factors:
    position = step / max(total - 1, 1)
    if position < ONECYCLE_WARMUP:
        phase = position / ONECYCLE_WARMUP
        return _cosine(1 / ONECYCLE_DIV, 1.0, phase), _cosine(*BETA1_CYCLE, phase)
    phase = (position - ONECYCLE_WARMUP) / (1 - ONECYCLE_WARMUP)
    return _cosine(1.0, 1 / ONECYCLE_DIV_FINAL, phase), _cosine(BETA1_CYCLE[1], BETA1_CYCLE[0], phase)


FASTAI_PCT_START, FASTAI_DIV, FASTAI_FINAL_DIV, FASTAI_BETA2 = 0.3, 25.0, 25.0 * 1e4, 0.99


def _fastai_onecycle(step: int, total: int) -> Factors:
    """fastai 1.0.61 OneCycleScheduler: batch 0 runs at lr/25; each batch end steps a
    Scheduler whose n_iter is max(1, a1) for the way up and a2 = total - a1 for the way
    down, so batch k <= up runs at the up-cosine's k/up and later batches at the
    down-cosine's (k - up)/a2."""
    up = max(1, int(total * FASTAI_PCT_START))
    down = max(1, total - int(total * FASTAI_PCT_START))
    if step <= up:
        position = step / up
        return _cosine(1 / FASTAI_DIV, 1.0, position), _cosine(*BETA1_CYCLE, position)
    position = (step - up) / down
    return (_cosine(1.0, 1 / FASTAI_FINAL_DIV, position),
            _cosine(BETA1_CYCLE[1], BETA1_CYCLE[0], position))


STLR_CUT_FRAC, STLR_RATIO = 0.1, 32.0


def _stlr(step: int, total: int) -> Factors:
    cut = max(1, math.floor(total * STLR_CUT_FRAC))
    if step < cut:
        p = step / cut
    else:
        p = max(0.0, 1 - (step - cut) / (cut * (1 / STLR_CUT_FRAC - 1)))
    return (1 + p * (STLR_RATIO - 1)) / STLR_RATIO, None


SCHEDULES: dict[str, Schedule] = {s.name: s for s in (
    Schedule("constant", _constant),
    Schedule("onecycle", _onecycle),
    Schedule("fastai_onecycle", _fastai_onecycle, beta2=FASTAI_BETA2),
    Schedule("stlr", _stlr),
)}


def schedule_factors(schedule: str, step: int, total_steps: int) -> Factors:
    """(LR multiplier, Adam beta1 or None to leave it) at 0-based `step` of a cycle of
    `total_steps` steps."""
    return SCHEDULES[schedule].factors(step, total_steps)
