"""How the app shows engine values: one label per run, missing values, engine text inside Markdown.

Every page names a run with `run_label` (charts: the short form, "finetune · small_cnn · 0.5 · s0
(a96a)"; pickers and links: the full form, with the whole run id), so a run reads the same on
Compare, Inspect and Predict. Tables pass through `for_display`, which writes a missing value as
"—" or the reason it is missing instead of "None". Text written by the engine (strategy
descriptions, dataset notes, error messages) goes through `escape_markdown` before a page renders
it as Markdown, so `lr*lr_low` or a glob like 'records100/*' keeps its characters.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import pandas as pd

#: A missing value in a table shown to a person.
MISSING = "—"
#: The row keys a run label reads (an index row of RunStore.list or a runs_table row).
LABEL_COLUMNS: tuple[str, ...] = ("run_id", "kind", "strategy", "arch", "train_fraction", "seed", "target")


def _present(value: Any) -> bool:
    if value is None:
        return False
    try:
        return not bool(pd.isna(value))
    except (TypeError, ValueError):
        return True


def run_label(row: Mapping[str, Any], full: bool = False) -> str:
    """A readable name for a run: strategy, architecture, target fraction and seed, then the id's
    last four characters, or (`full`) the whole id: unique and stable, so fit for pickers and links.
    A pretraining run says so and names the dataset it trained on (its fraction means nothing)."""
    seed = row.get("seed")
    if row.get("kind") == "pretrain":
        parts = ["pretrain", str(row.get("arch") or "?")]
        if _present(row.get("target")):
            parts.append(str(row["target"]).rstrip("/").rsplit("/", 1)[-1])
    else:
        parts = [str(row.get("strategy") or "?"), str(row.get("arch") or "?")]
        fraction = row.get("train_fraction")
        if _present(fraction):
            parts.append(f"{float(fraction):g}")
    if _present(seed):
        parts.append(f"s{int(seed)}")
    run_id = str(row.get("run_id", ""))
    return " · ".join(parts) + (f" · {run_id}" if full else f" ({run_id[-4:]})")


def _rows(table: pd.DataFrame) -> list[dict[str, Any]]:
    columns = [c for c in LABEL_COLUMNS if c in table.columns]
    # column lists, not to_dict("records"): ~50 ms for 500 runs
    return [dict(zip(columns, values)) for values in zip(*(table[c].tolist() for c in columns))]


def full_labels(table: pd.DataFrame) -> dict[str, str]:
    """run_id -> run_label(full=True) for every row: what selection widgets show and links hold."""
    return {str(row["run_id"]): run_label(row, full=True) for row in _rows(table)}


def run_labels(table: pd.DataFrame) -> dict[str, str]:
    """run_id -> run_label for every row; the whole id is appended when two labels would collide."""
    labels = {str(row["run_id"]): run_label(row) for row in _rows(table)}
    seen: dict[str, int] = {}
    for label in labels.values():
        seen[label] = seen.get(label, 0) + 1
    return {rid: (label if seen[label] == 1 else f"{label} {rid}") for rid, label in labels.items()}


# Characters that change inline Markdown in Streamlit (emphasis, code, links, HTML, tables,
# strikethrough, LaTeX); a backslash keeps each literal (CommonMark escapes any punctuation).
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>|~$])")


def escape_markdown(text: object) -> str:
    """`text` as Markdown that renders exactly these characters (no italics from `a*b*c`,
    no emphasis from `file_name_`, no link, no LaTeX from `$`)."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", str(text))


def _text(value: Any, fmt: str | None) -> str:
    if fmt is not None:
        try:
            return fmt.format(value)
        except (TypeError, ValueError):  # e.g. "{:d}" given a float, "{:.3f}" given a reason
            pass
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def for_display(frame: pd.DataFrame, formats: Mapping[str, str] | None = None,
                missing: Mapping[str, str] | None = None) -> pd.DataFrame:
    """A copy of `frame` for a person to read: every column that has a missing value (None, NaN,
    <NA>) is written as text, each value with its `formats` entry (a str.format pattern, e.g.
    "{:.3f}") and each missing one as its `missing` entry (the reason) or "—". Columns without a
    gap keep their values (and their numeric sort). Keep the raw frame for downloads."""
    formats = dict(formats or {})
    missing = dict(missing or {})
    shown = frame.copy()
    for column in shown.columns:
        values = shown[column]
        try:
            gaps = values.isna().to_numpy(dtype=bool)
        except (TypeError, ValueError):
            continue
        if not gaps.any():
            continue
        fmt = formats.get(column)
        reason = missing.get(column, MISSING)
        shown[column] = [reason if gap else _text(value, fmt) for value, gap in zip(values.tolist(), gaps)]
    return shown


def format_number(value: Any, fmt: str = "{:.3f}", reason: str = MISSING) -> str:
    """One number as text, or `reason` when it is missing or not finite."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return reason
    return fmt.format(number) if math.isfinite(number) else reason


def describe_speed(speed: dict[str, Any] | None, device: str) -> str:
    """results.json's "speed" (`ecgcore.train.speed`) in one line; runs written before
    it say so."""
    if not speed:
        return f"trained on {device} (speed not recorded)"
    parts = [f"trained on {device} in {speed.get('precision', 'float32')}",
             f"training rows on the {speed.get('data_placement', 'host')}"]
    if speed.get("samples_per_second") is not None:
        parts.append(f"{speed['samples_per_second']:,.0f} samples/s")
    if speed.get("peak_gpu_memory_bytes") is not None:
        parts.append(f"peak GPU memory {speed['peak_gpu_memory_bytes'] / 2**30:.2f} GiB")
    switches = [name for name in ("cudnn_benchmark", "compile") if speed.get(name)]
    if switches:
        parts.append(" and ".join(switches) + " on")
    return ", ".join(parts)
