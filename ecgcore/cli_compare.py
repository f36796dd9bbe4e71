"""`answer`: the Compare page's answer for finished runs, on the command line, so that a
closing note or a paper table can be recomputed from the run store with one command
(registered in the one command registry, `ecgcore.cli_registry`, which imports this module)."""

from __future__ import annotations

import argparse
import math
from typing import Any

from ecgcore.cli_registry import command, print_json
from ecgcore.errors import EcgcoreError

CURVE_COLUMNS = ("line", "train_fraction", "n_train", "n_seeds", "macro_auc_mean", "ci_low", "ci_high",
                 "ci_method", "run_ids")
COMPARISON_COLUMNS = ("line", "baseline", "train_fraction", "diff", "low", "high", "p", "p Holm",
                      "n_seeds", "n_seeds_baseline", "method", "run_ids", "baseline_run_ids")


def _answer_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--experiment", help="only the runs of this experiment (its `name`), e.g. quickstart")
    p.add_argument("--json", action="store_true",
                   help="print {curve, comparisons, label_efficiency, answer, notes} as JSON")


def _plain(value: Any) -> Any:
    """A JSON value: NaN -> null, ±inf (label efficiency beyond / below the fractions
    measured) -> "inf" / "-inf", numpy scalars -> Python numbers."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _records(frame: Any, columns: tuple[str, ...]) -> list[dict[str, Any]]:
    return [{c: _plain(row[c]) for c in columns} for row in frame.to_dict("records")]


@command("answer", "each strategy against scratch at each target fraction: seed-mean CIs, two-level "
         "bootstrap differences, Holm-adjusted p-values and the answer sentences with their runs",
         _answer_args)
def _answer(args: argparse.Namespace) -> int:
    from ecgcore.views import compare
    from ecgcore.runs import RunStore

    store = RunStore()
    table = compare.finished(compare.runs_table(store))
    if args.experiment:
        table = table[table["experiment"] == args.experiment].reset_index(drop=True)
    if table.empty:
        raise EcgcoreError("no finished target runs" + (f" of experiment {args.experiment!r}"
                                                        if args.experiment else "") + " in the store")
    curve = compare.data_efficiency(table)
    predictions = {}
    for run_id in compare.run_ids_needed(curve):
        try:
            predictions[run_id] = compare.predictions(store, run_id)
        except EcgcoreError:
            continue  # grid_statistics names the runs it lacks
    stats = compare.grid_statistics(curve, predictions)
    sentences = compare.answer(stats)
    out = {
        "curve": _records(curve, CURVE_COLUMNS),
        "comparisons": _records(stats.comparisons, COMPARISON_COLUMNS),
        "adjustment": stats.adjustment,
        "label_efficiency": [{k: _plain(v) for k, v in vars(e).items()} for e in stats.efficiency],
        "answer": [{"text": s.text, "run_ids": list(s.run_ids)} for s in sentences],
        "notes": list(stats.notes),
    }
    if args.json:
        print_json(out)
        return 0
    print("macro AUC by target fraction (mean over seeds, 95 % CI):")
    for row in out["curve"]:
        print(f"  {row['line']:<24} {row['train_fraction']:>6} n_train {row['n_train']!s:>5} "
              f"seeds {row['n_seeds']}  {row['macro_auc_mean']:.3f} [{row['ci_low']:.3f}, {row['ci_high']:.3f}]"
              f"  ({row['ci_method']})")
    print(f"\nagainst scratch ({out['adjustment']}):")
    for row in out["comparisons"]:
        print(f"  {row['line']:<24} {row['train_fraction']:>6}  diff {row['diff']:+.3f} "
              f"[{row['low']:+.3f}, {row['high']:+.3f}]  p {row['p']}  Holm {row['p Holm']}  ({row['method']})")
    print("\nanswer:")
    for sentence in out["answer"]:
        runs = f" [runs: {', '.join(sentence['run_ids'])}]" if sentence["run_ids"] else ""
        print(f"  - {sentence['text']}{runs}")
    for note in out["notes"]:
        print(f"  note: {note}")
    return 0
