"""Property-based fuzzing of experiment files: TOML documents and `--set` overrides.

The promise (RELIABILITY.md): an experiment file is data. Whatever a TOML file holds —
unknown keys, values of the wrong type, NaN, dates, nested tables where a list belongs —
loading it and expanding its grid (`load_experiment` + `plan.expand`, as `run --dry-run`
and the Launch page do) gives runs, or raises the project's own error (ExperimentError or
another EcgcoreError) with a one-line message naming the file, key or section. Nothing is
evaluated, nothing is written beside the workspace.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import event, example, given
from hypothesis import strategies as st

from ecgcore.data.pipeline import SplitConfig
from ecgcore.data.prepare import PrepConfig
from ecgcore.errors import EcgcoreError
from ecgcore.experiments.run_plan import expand
from ecgcore.experiments.spec import DATASET_KEYS, PROTOCOL_KEYS, SCHEMA, TOP_LEVEL, load_experiment
from ecgcore.models import MODELS
from ecgcore.train import TrainConfig
from ecgcore.transfer import STRATEGIES, StrategyOptions
from test_fuzz_wfdb import fuzz

ROOT = Path(__file__).resolve().parents[1]


def _base(path: Path) -> dict[str, Any]:
    """A shipped experiment file without `demo` (no data is written) and with at most two
    values per grid key (one, besides source, target and strategy; the full Nguyen & Do grid is 480 runs: seconds to plan)."""
    doc = {k: v for k, v in tomllib.loads(path.read_text()).items() if k != "demo"}
    doc["grid"] = {k: v[: 2 if k in ("source", "target", "strategy") else 1] if isinstance(v, list) else v
                   for k, v in doc.get("grid", {}).items()}
    return doc


BASES = {p.stem: _base(p) for p in sorted((ROOT / "experiments").glob("*.toml"))}
DATACLASS_FIELDS = {section: [f.name for f in dataclasses.fields(cls)] for section, cls in {
    "prep": PrepConfig, "split": SplitConfig, "pretrain_split": SplitConfig, "train": TrainConfig,
    "pretrain": TrainConfig, "strategy_options": StrategyOptions}.items()}
SECTION_KEYS = {section: sorted(keys) if keys is not None else DATACLASS_FIELDS.get(section, ["x"])
                for section, keys in SCHEMA.items()}
PLAUSIBLE = ["small_cnn", *sorted(MODELS)[:3], "scratch", "finetune", *sorted(STRATEGIES)[:3],
             "patient", "official", "paper", "auto", "shared", "dataset_labels", "snomed:164889003",
             "source_ptbxl", "target_challenge", "ptbxl", "cpsc2018", "paper_exact", "ours",
             "zscore", "none", "centre", "/etc", "~", "../..", "", 0, 1, 2, -1, 0.5, 1.0, 1e9, 10**18]

SCALARS = st.one_of(
    st.sampled_from(PLAUSIBLE), st.text(max_size=8), st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True), st.booleans(),
    st.datetimes(min_value=datetime.datetime(1, 1, 1)), st.dates(), st.times())
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=6)


def toml_value(value: Any) -> str:
    """`value` as a TOML (inline) value: the whole document is written as `"key" = value`
    lines, so any nesting is expressible without a TOML writer."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):  # raw unicode: TOML has no surrogate-pair escapes
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return "{" + ", ".join(f"{toml_value(k)} = {toml_value(v)}" for k, v in value.items()) + "}"


def toml_document(doc: dict[str, Any]) -> str:
    return "".join(f"{toml_value(k)} = {toml_value(v)}\n" for k, v in doc.items())


@st.composite
def key_paths(draw: st.DrawFn, doc: dict[str, Any]) -> list[str]:
    """A path to set: one that exists in `doc`, one the schema knows, or an unknown one."""
    section = draw(st.sampled_from([*SECTION_KEYS, *TOP_LEVEL, "unknown"]))
    if section in ("datasets", "protocols"):
        names = list(doc.get(section, {}) if isinstance(doc.get(section), dict) else {}) or ["d"]
        keys = sorted(DATASET_KEYS if section == "datasets" else PROTOCOL_KEYS)
        path = [section, draw(st.sampled_from([*names, "new"])), draw(st.sampled_from(keys))]
        if path[-1] in ("prep", "split", "pretrain_split", "datasets"):
            path.append(draw(st.sampled_from([*DATACLASS_FIELDS["prep"][:3], *names])))
        return path
    if section in SECTION_KEYS:
        return [section, draw(st.sampled_from([*SECTION_KEYS[section], "unknown_key"]))]
    return [section]


def _set(doc: dict[str, Any], path: list[str], value: Any) -> None:
    node = doc
    for part in path[:-1]:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[path[-1]] = value


@st.composite
def experiment_documents(draw: st.DrawFn) -> dict[str, Any]:
    """A shipped experiment file (demo off) with a few keys set to random values, removed,
    or added; or a document made from the schema's keys alone."""
    if draw(st.integers(0, 4)) == 0:
        doc = {}
        for section in draw(st.lists(st.sampled_from(sorted(TOP_LEVEL)), max_size=8)):
            keys = SECTION_KEYS.get(section)
            doc[section] = (draw(st.dictionaries(st.sampled_from(keys), VALUES, max_size=4))
                            if keys and draw(st.integers(0, 5)) else draw(VALUES))
        return doc
    doc = json.loads(json.dumps(BASES[draw(st.sampled_from(sorted(BASES)))]))
    for _ in range(draw(st.integers(1, 4))):
        path = draw(key_paths(doc))
        if draw(st.integers(0, 5)) == 0:
            node = doc.get(path[0]) if len(path) > 1 else doc
            if isinstance(node, dict):
                node.pop(path[-1], None)
        else:
            value = draw(st.one_of(VALUES, st.lists(st.sampled_from(PLAUSIBLE), max_size=3)))
            _set(doc, path, value)
    return doc


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if "workspace" not in p.parts)


def _plan(path: Path, overrides: list[str], strict: bool, root: Path) -> list | None:
    """load + expand with the promise checked; the specs, or None after a named error."""
    before = _tree(root)
    try:
        specs = expand(load_experiment(path, overrides), strict=strict)
        labels = [spec.label for spec in specs]
    except EcgcoreError as exc:
        message = str(exc)
        event(f"refused: {message.split(': ', 1)[-1][:40]}")
        assert message and "\n" not in message, repr(message)
        # It names the file, a [section], a key (config.split.val), an override or the value.
        assert any(mark in message for mark in (str(path), "[", "config.", "--set", "'")), message
        return None
    finally:
        assert _tree(root) == before
    assert len(labels) == len(specs) and all(len(spec.hash) == 16 for spec in specs)
    event("planned" if specs else "planned, no runs")
    return specs


@pytest.fixture()
def experiment_dir(workspace: Path, tmp_path: Path) -> Path:
    return tmp_path


def _smoke_with(**changes: Any) -> dict[str, Any]:
    return {**BASES["smoke"], **changes}


# Found by this test (before spec._check_types): a string seed raised ValueError from int(),
# a table in a grid list TypeError "unhashable type: 'dict'" (in the planner and in the
# [datasets] check), a [source] without dataset KeyError 'dataset'.
@fuzz(700)
@given(experiment_documents(), st.booleans())
@example(_smoke_with(grid={**BASES["smoke"]["grid"], "seed": ["small_cnn"]}), False)
@example(_smoke_with(grid={**BASES["smoke"]["grid"], "arch": [{}]}), False)
@example({"target": {"dataset": "t"}, "datasets": {"d": {"dataset": "d"}},
          "grid": {"arch": ["small_cnn"], "strategy": ["scratch"], "source": [{}]}}, False)
@example(_smoke_with(source={"task": "shared"}), False)
# Found by this test (after the typed run config): a [split] naming train_n beside the grid's
# train_fraction 0.4 raised SplitConfig's ValueError from the planner.
@example(_smoke_with(split={"method": "patient", "val": 0.2, "train_n": 5}), False)
def test_random_experiment_files_plan_or_raise_experiment_error(experiment_dir: Path,
                                                               doc: dict, strict: bool) -> None:
    path = experiment_dir / "fuzz.toml"
    path.write_text(toml_document(doc), encoding="utf-8")
    _plan(path, [], strict, experiment_dir)
    path.unlink()


@fuzz(150)
@given(st.one_of(st.text(max_size=200), st.binary(max_size=200)))
def test_arbitrary_bytes_as_experiment_file(experiment_dir: Path, content: str | bytes) -> None:
    path = experiment_dir / "fuzz.toml"
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8", "replace"))
    _plan(path, [], False, experiment_dir)
    path.unlink()


@st.composite
def overrides(draw: st.DrawFn) -> str:
    """`--set KEY=VALUE` as a user might type it, right or wrong."""
    path = ".".join(draw(key_paths(BASES["smoke"])))
    key = draw(st.one_of(st.just(path), st.sampled_from(["", " ", ".", "grid..arch", "a.b.c.d",
                                                         "train.epochs.x", "grid.arch."]),
                         st.text(max_size=10)))
    value = draw(st.one_of(st.just(toml_value(draw(VALUES))), st.text(max_size=12),
                           st.sampled_from(["", "[", "]", "{", "3", "[\"scratch\"]", "nan", "inf",
                                            "1979-05-27", "true", "'x'", "\"unterminated"])))
    return draw(st.sampled_from([f"{key}={value}", key, f"{key}=={value}", f"={value}"]))


@fuzz(300)
@given(st.sampled_from(sorted(BASES)), st.lists(overrides(), min_size=1, max_size=4), st.booleans())
@example("avetisyan2024", ["0\n0=[]"], False)  # a key with a line break: the message stays one line
def test_random_overrides_plan_or_raise_experiment_error(experiment_dir: Path, base: str,
                                                        sets: list[str], strict: bool) -> None:
    path = experiment_dir / f"{base}.toml"
    path.write_text(toml_document(BASES[base]), encoding="utf-8")
    _plan(path, sets, strict, experiment_dir)
