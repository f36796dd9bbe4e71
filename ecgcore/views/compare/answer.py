"""The answer panel: a few plain sentences generated from a grid's comparison tables.

A pure function of `grid.GridStatistics`: no reads, no numbers of its own. Each sentence
carries the run ids it was computed from, so it can be checked against the run store. The
rules, per treated line against its baseline:
- the smallest fraction: who is ahead, by how much macro AUC, with the 95 % CI, the seeds and
  the Holm-adjusted p (adjusted over every comparison of the grid);
- the largest fraction, said as the gap closing, widening or reversing;
- the fractions in between, grouped as detectably better, detectably worse or no detectable
  difference;
- label efficiency at the smallest fraction ("… ≈ scratch at X %").
When a foundation-model checkpoint is among the sources, the sentences speak of source kinds:
"the checkpoint demo_net1d, probed frozen (embedding_probe), beats scratch …", "own
pretraining on source_ptbxl, fine-tuned (finetune), …", checkpoints first, and a first
sentence lists the sources and says they are each compared with scratch, not with each
other. Without a checkpoint the sentences are as they always were.
"No detectable difference" is said whenever the Holm-adjusted p is not below 0.05 (the
interval shown is the unadjusted 95 % CI of that comparison), except when that p is only a
bound set by the bootstrap's floor (every draw on one side, but 1/B times the number of
comparisons is not below 0.05): then the sentence says the draws are too few to decide,
never "no detectable difference".
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ecgcore.views.compare.efficiency import LabelEfficiency, percent
from ecgcore.views.compare.grid import GridStatistics
from ecgcore.views.compare.stats import ALPHA

#: How a strategy uses a source's weights, in the answer's words (others: "with <strategy>").
HOW: dict[str, str] = {
    "finetune": "fine-tuned", "linear_probe": "probed frozen", "embedding_probe": "probed frozen",
    "attention_probe": "probed frozen with attention pooling", "lp_ft": "probed then fine-tuned",
    "partial_freeze": "partly frozen", "gradual_unfreeze": "unfrozen gradually",
    "discriminative_lr": "fine-tuned with layer-wise rates", "source_only": "used as it is",
}
#: The order the answer speaks of source kinds in (the question first: a checkpoint).
KIND_ORDER: tuple[str, ...] = ("checkpoint", "pretraining", "none")


@dataclass(frozen=True)
class Sentence:
    text: str
    run_ids: list[str] = field(default_factory=list)


def _records(n_train: object) -> str:
    if n_train is None or (isinstance(n_train, float) and math.isnan(n_train)):
        return ""
    count = int(round(float(n_train)))  # type: ignore[arg-type]
    return f" ({count} training record{'s' if count != 1 else ''})"


def _seeds(row: dict) -> str:
    a, b = int(row["n_seeds"]), int(row["n_seeds_baseline"])
    text = f"{a} seed{'s' if a != 1 else ''} each" if a == b else f"{a} and {b} seeds"
    if a == 1 and b == 1:
        text += ", so seed-to-seed variance is not included"
    elif min(a, b) == 1:
        text += f"; {row['subject'].rstrip(',') if a == 1 else row['baseline']}'s seed variance not included"
    return text


def _p(row: dict, m: int) -> str:
    text = str(row["p Holm"])
    shown = f"p {text}" if text.startswith("<") else f"p = {text}"
    return f"Holm-adjusted {shown} over {m} comparison{'s' if m != 1 else ''}"


def _signed(value: float) -> str:
    """+0.12 / -0.03; a value that rounds to zero reads +0.00, never -0.00."""
    return f"{round(float(value), 2) + 0.0:+.2f}"


def _detail(row: dict, m: int) -> str:
    return (f"95 % CI {_signed(row['low'])} to {_signed(row['high'])}; {_seeds(row)}; {_p(row, m)}; "
            f"{int(row['n_boot'])} bootstrap draws")


def _detected(row: dict) -> bool:
    return bool(np.isfinite(row["p_holm"]) and row["p_holm"] < ALPHA and row["diff"] != 0)


def _undecided(row: dict) -> bool:
    """Not detected only because the bootstrap's floor bounds the adjusted p at or above alpha."""
    bound = row.get("p_holm_bound")
    return isinstance(bound, (bool, np.bool_)) and bool(bound) and not _detected(row)


def _too_few(row: dict) -> str:
    return (f"{int(row['n_boot'])} bootstrap draws are too few to decide after the Holm adjustment "
            f"(its p is only known to be below {float(row['p_holm']):.2g}); rerun with more draws")


def _first(row: dict, m: int) -> str:
    where = f"At {percent(row['train_fraction'])} of the target{_records(row['n_train'])}"
    if _undecided(row):
        return (f"{where} {row['subject']} against {row['baseline']}: {_signed(row['diff'])} macro AUC "
                f"({_detail(row, m)}); {_too_few(row)}.")
    if not _detected(row):
        return (f"{where} there is no detectable difference between {row['subject']} and {row['baseline']}: "
                f"{_signed(row['diff'])} macro AUC ({_detail(row, m)}).")
    verb = "beats" if row["diff"] > 0 else "trails"
    return f"{where} {row['subject']} {verb} {row['baseline']} by {abs(row['diff']):.2f} macro AUC ({_detail(row, m)})."


def _last(row: dict, first: dict, m: int) -> str:
    where = f"At {percent(row['train_fraction'])}{_records(row['n_train'])}"
    same_sign = np.sign(row["diff"]) == np.sign(first["diff"])
    if _undecided(row):
        return f"{where} the difference is {_signed(row['diff'])} macro AUC ({_detail(row, m)}); {_too_few(row)}."
    if not _detected(row):
        gap = "the gap closes to" if _detected(first) else "the difference is"
        return f"{where} {gap} {_signed(row['diff'])} macro AUC ({_detail(row, m)}): no detectable difference."
    verb = "beats" if row["diff"] > 0 else "trails"
    if _detected(first) and same_sign:
        change = "narrows" if abs(row["diff"]) < abs(first["diff"]) else "widens"
        return (f"{where} the gap {change} to {_signed(row['diff'])}: {row['subject']} still {verb} {row['baseline']} "
                f"({_detail(row, m)}).")
    return f"{where} {row['subject']} {verb} {row['baseline']} by {abs(row['diff']):.2f} macro AUC ({_detail(row, m)})."


def _between(rows: list[dict]) -> str:
    groups: dict[str, list[str]] = {"detectably better": [], "detectably worse": [], "no detectable difference": [],
                                    "undecided (too few bootstrap draws)": []}
    for row in rows:
        key = ("detectably better" if row["diff"] > 0 else "detectably worse") if _detected(row) \
            else "undecided (too few bootstrap draws)" if _undecided(row) else "no detectable difference"
        groups[key].append(percent(row["train_fraction"]))
    parts = [f"{name} at {', '.join(where)}" for name, where in groups.items() if where]
    return (f"In between, {rows[0]['subject']} against {rows[0]['baseline']}: " + "; ".join(parts)
            + " (Holm-adjusted).")


def _efficiency(item: LabelEfficiency, subject: str) -> str:
    low, high = (item.where(v) for v in item.ci)
    lead = (f"{subject} at {percent(item.at_fraction)} of the target reaches {item.target_auc:.2f} macro AUC; "
            f"{item.baseline}")
    if item.fraction == np.inf:
        reach = (f"does not reach it at any fraction measured (up to {percent(item.measured[-1])}): "
                 "beyond the largest fraction measured")
    elif item.fraction == -np.inf:
        reach = f"already reaches it at its smallest fraction measured ({percent(item.measured[0])})"
    else:
        reach = f"reaches it at about {percent(item.fraction)} of the target"
    return (f"{lead} {reach} (95 % CI {low} to {high}; interpolated linearly in log fraction, "
            f"two-level bootstrap over seeds and test records, {item.n_boot} draws).")


def _kind(row: dict) -> str:
    kind = row.get("source_kind")
    return kind if isinstance(kind, str) and kind in KIND_ORDER else "none"


def _how(strategy: str) -> str:
    return f"{HOW.get(strategy, f'with {strategy}')} ({strategy})"


def _subject(row: dict) -> str:
    """A treated line as the answer names it once a checkpoint is among the sources."""
    kind = _kind(row)
    if kind == "checkpoint":
        return f"the checkpoint {row['source']}, {_how(str(row['strategy']))},"
    if kind == "pretraining":
        return f"own pretraining on {row['source']}, {_how(str(row['strategy']))},"
    return str(row["line"])


def _sources(table: pd.DataFrame) -> str:
    """The first sentence when sources of several kinds are compared: which, and how."""
    named: dict[tuple[str, str], list[str]] = {}
    for row in table.to_dict("records"):
        kind = _kind(row)
        if kind != "none":
            named.setdefault((kind, str(row["source"])), []).append(str(row["strategy"]))
    order = sorted(named, key=lambda key: (KIND_ORDER.index(key[0]), key[1]))
    said = [f"{'the checkpoint' if kind == 'checkpoint' else 'own pretraining on'} {source} "
            f"({', '.join(dict.fromkeys(named[(kind, source)]))})" for kind, source in order]
    return ("Sources, each against scratch of the same architecture at each fraction: " + "; ".join(said)
            + ". They are not tested against each other here (a head to head does that).")


def answer(stats: GridStatistics) -> list[Sentence]:
    """The answer panel's sentences (module docstring), each with the run ids behind it."""
    table: pd.DataFrame = stats.comparisons
    sentences: list[Sentence] = []
    m = len(table)
    by_kind = "source_kind" in table and bool((table["source_kind"] == "checkpoint").any())
    if by_kind:  # resting on the runs of every source-started line it names
        sourced = table[table["source_kind"] != "none"].to_dict("records")
        sentences.append(Sentence(_sources(table), list(dict.fromkeys(
            run_id for row in sourced for run_id in row["run_ids"]))))
    groups = sorted(table.groupby(["line", "baseline"], sort=True),
                    key=lambda item: KIND_ORDER.index(_kind(item[1].iloc[0].to_dict())) if by_kind else 0)
    for (line, baseline), part in groups:
        rows = part.sort_values("train_fraction").to_dict("records")
        subject = _subject(rows[0]) if by_kind else str(line)
        for row in rows:
            row["subject"] = subject
        ids = lambda chosen: list(dict.fromkeys(r for row in chosen for r in (*row["run_ids"],
                                                                                *row["baseline_run_ids"])))
        sentences.append(Sentence(_first(rows[0], m), ids(rows[:1])))
        if len(rows) > 2:
            sentences.append(Sentence(_between(rows[1:-1]), ids(rows[1:-1])))
        if len(rows) > 1:
            sentences.append(Sentence(_last(rows[-1], rows[0], m), ids(rows[-1:])))
        for item in stats.efficiency:
            if item.line == line and item.baseline == baseline:
                named = subject.rstrip(",")
                named = named[:1].upper() + named[1:] if by_kind else named  # "The checkpoint …" opens it
                sentences.append(Sentence(_efficiency(item, named), list(item.run_ids)))
    for note in stats.notes:
        sentences.append(Sentence(note[0].upper() + note[1:] + ".", []))
    return sentences
