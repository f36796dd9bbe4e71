"""ecgcore.views.display: the one run label, missing values shown as "—" or their reason, and engine
text that keeps its characters when a page renders it as Markdown."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from ecgcore.views.display import MISSING, escape_markdown, for_display, format_number, full_labels, run_label, run_labels
from ecgcore.download import CATALOGUE
from ecgcore.transfer import list_strategies


def _unescaped(markdown: str) -> str:
    """CommonMark's rule: a backslash before ASCII punctuation leaves the punctuation, literal."""
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", markdown)


def test_engine_text_keeps_its_characters_in_markdown() -> None:
    texts = [list_strategies()["discriminative_lr"], *[" ".join(entry.notes) for entry in CATALOGUE.values()],
             "lr*lr_low", "records100/* and *.csv", "a_b_c", "[x](y)", "<b>bold</b>", "`code`", "a\\*b"]
    assert "lr*lr_low" in texts[0] and any("'*.csv'" in t for t in texts), "the issue's two cases are checked"
    for text in texts:
        escaped = escape_markdown(text)
        assert _unescaped(escaped) == text, text
        # nothing left that opens emphasis, code, a link, HTML or LaTeX: each such character is escaped
        assert not re.search(r"(?<!\\)(?:\\\\)*[*_`\[\]<>$~|]", escaped), escaped


def test_run_label_short_full_pretrain_and_collisions() -> None:
    row = {"run_id": "20261206-1307-31ce4b95-a96a", "kind": "target", "strategy": "finetune",
           "arch": "small_cnn", "train_fraction": 0.5, "seed": 0, "target": "target_challenge"}
    assert run_label(row) == "finetune · small_cnn · 0.5 · s0 (a96a)"
    assert run_label(row, full=True) == "finetune · small_cnn · 0.5 · s0 · 20261206-1307-31ce4b95-a96a"
    pretrain = {**row, "kind": "pretrain", "strategy": "scratch", "train_fraction": 1.0, "target": "source_ptbxl"}
    assert run_label(pretrain) == "pretrain · small_cnn · source_ptbxl · s0 (a96a)"
    table = pd.DataFrame([row, {**row, "run_id": "x-a96a"}, {**row, "run_id": "r3", "seed": np.nan}])
    short = run_labels(table)
    assert short["x-a96a"] == "finetune · small_cnn · 0.5 · s0 (a96a) x-a96a", "colliding labels get the id"
    assert short["r3"] == "finetune · small_cnn · 0.5 (r3)"
    assert full_labels(table)["r3"] == "finetune · small_cnn · 0.5 · r3"


def test_for_display_writes_missing_values_as_dash_or_reason() -> None:
    frame = pd.DataFrame({"protocol": [None, "paper"], "std": [np.nan, 0.01234],
                          "n": pd.array([3, None], dtype="Int64"), "whole": [1.0, 2.0]})
    shown = for_display(frame, formats={"std": "{:.3f}"}, missing={"std": "one seed"})
    assert shown["protocol"].tolist() == [MISSING, "paper"]
    assert shown["std"].tolist() == ["one seed", "0.012"]
    assert shown["n"].tolist() == ["3", MISSING]
    assert shown["whole"].tolist() == [1.0, 2.0], "columns without gaps keep their values"
    assert "None" not in shown.astype(str).to_numpy()
    assert frame["protocol"].isna().iloc[0], "the raw frame is left alone"
    assert format_number(None) == MISSING and format_number(float("nan"), reason="n/a") == "n/a"
    assert format_number(0.91234) == "0.912"
