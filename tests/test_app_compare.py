"""The Compare page through AppTest: empty workspace, the populated store of
test_compare.py (really trained tiny runs), and a view restored from its URL."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest
from streamlit.testing.v1.element_tree import Block
from test_compare import trained_store

from ecgcore.views import compare
from ecgcore.data.labels import class_name
from ecgcore.runs import RunStore

REPO = Path(__file__).resolve().parents[1]
PAGE = "pages/compare.py"
CONTAINERS = ("compare-answer", "compare-per-class-auc", "compare-heatmap", "compare-macro", "compare-learning-curves",
              "compare-pretraining-curves", "compare-data-efficiency", "compare-convergence", "compare-head-to-head", "compare-calibration",
              "compare-roc")
FILTER_KEYS = ("source_kind", "source", "target", "arch", "strategy", "fraction", "seed", "state", "kind", "protocol")


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return trained_store(tmp_path_factory.getbasetemp())


@pytest.fixture()
def populated(home: Path, monkeypatch: pytest.MonkeyPatch) -> pd.DataFrame:
    monkeypatch.setenv("ECGCORE_HOME", str(home))
    return compare.runs_table(RunStore(home))


def _app(**params: str | list[str]) -> AppTest:
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=60)
    at.switch_page(PAGE)
    for key, value in params.items():
        at.query_params[key] = value
    return at.run()


def _block_keys(node: object) -> set[str]:
    """User keys of every container under `node` (element ids end with "-<key>")."""
    keys: set[str] = set()
    for child in getattr(node, "children", {}).values():
        if isinstance(child, Block):
            block_id = getattr(child.proto, "id", "")
            keys.update(key for key in CONTAINERS if block_id.endswith(f"-{key}"))
            keys |= _block_keys(child)
    return keys


def _values(array: dict | list) -> np.ndarray:
    """A plotly JSON array: a list, or plotly's typed form {"dtype", "bdata" (base64)}."""
    if isinstance(array, dict):
        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=array["dtype"])
    return np.asarray(array)


def _charts(at: AppTest) -> dict[str, dict]:
    """Plotly chart specs by their key (without Streamlit's id prefix)."""
    return {chart.proto.id.split("-", 2)[-1]: json.loads(chart.proto.spec) for chart in at.get("plotly_chart")}


def _container(node: object, key: str) -> Block:
    """The container with user key `key` under `node`."""
    for child in getattr(node, "children", {}).values():
        if isinstance(child, Block):
            if getattr(child.proto, "id", "").endswith(f"-{key}"):
                return child
            try:
                return _container(child, key)
            except KeyError:
                continue
    raise KeyError(key)


def test_empty_workspace_says_so(workspace: Path) -> None:
    at = _app()
    assert not at.exception
    assert at.title[0].value == "Compare"
    assert "No runs in this workspace yet" in at.info[0].value
    assert not at.get("plotly_chart")


def test_populated_workspace_draws_every_chart(populated: pd.DataFrame) -> None:
    at = _app()
    assert not at.exception
    assert {m.key for m in at.multiselect} == {*FILTER_KEYS, "runs"}
    assert {s.key for s in at.selectbox} == {"a", "b"} and at.radio(key="curve_x").value == "epoch"
    assert _block_keys(at._tree) == set(CONTAINERS)
    charts = _charts(at)
    assert set(charts) == {"per-class-auc-chart", "heatmap-chart", "macro-auc-chart", "learning-curves-chart",
                           "pretraining-loss-chart", "data-efficiency-chart", "head-to-head-chart", "reliability-chart",
                           "roc-chart"}
    pretraining = charts["pretraining-loss-chart"]  # the store's one (supervised) pretraining run, its own panel
    assert [a["text"] for a in pretraining["layout"]["annotations"]] == ["supervised (BCE on the labels)"]
    assert len(pretraining["data"]) == 2 * (populated.kind == "pretrain").sum()
    done = compare.finished(populated)
    bars = charts["per-class-auc-chart"]["data"]
    assert len(bars) == len(done), "one bar series per finished target run"
    codes = {c for trace in bars for c in (row[0] for row in trace["customdata"])}
    assert {name for trace in bars for name in trace["y"]} == {class_name(c) for c in codes}
    lines = [t["name"] for t in charts["data-efficiency-chart"]["data"] if t.get("mode") == "lines+markers"]
    assert sorted(lines) == ["finetune", "scratch"]
    table = at.dataframe[0].value
    assert len(table) == len(populated) and "7 of 7 runs match" in at.caption[0].value
    downloads = {button.proto.id.split("-", 2)[-1] for button in at.get("download_button")}
    assert {"runs-csv", "per-class-auc-html", "data-efficiency-html", "convergence-csv", "roc-html"} <= downloads
    convergence = _container(at._tree, "compare-convergence").dataframe[0].value
    assert set(convergence.run_id) == set(done.run_id)


def test_url_restores_filters_selection_and_pair(populated: pd.DataFrame) -> None:
    scratch = compare.finished(populated)
    scratch = scratch[(scratch.strategy == "scratch") & (scratch.train_fraction == 1.0)].sort_values("seed")
    chosen = scratch.to_dict("records")
    assert len(chosen) == 2, "seeds 0 and 1"
    full = [compare.run_label(row, full=True) for row in chosen]
    at = _app(strategy="scratch", fraction="1", runs=full, a=full[1], b=full[0])
    assert not at.exception
    assert at.multiselect(key="strategy").value == ["scratch"]
    assert at.multiselect(key="fraction").value == ["1"]
    assert at.multiselect(key="runs").value == [row["run_id"] for row in chosen]
    assert at.selectbox(key="a").value == chosen[1]["run_id"] and at.selectbox(key="b").value == chosen[0]["run_id"]
    charts = _charts(at)
    short = compare.run_labels(populated)
    assert [t["name"] for t in charts["per-class-auc-chart"]["data"]] == [short[r["run_id"]] for r in chosen]
    curve = [t for t in charts["data-efficiency-chart"]["data"] if t.get("mode") == "lines+markers"]
    assert [t["name"] for t in curve] == ["scratch"] and _values(curve[0]["x"]).tolist() == [1.0]
    assert "A − B" in [m.label for m in at.metric][2]

    # Widening a filter widens the table (the browser writes the new value into the URL; AppTest
    # has no frontend to do that, so the URL side is the browser test's).
    before = at.caption[0].value
    at.multiselect(key="strategy").select("finetune").run()
    assert not at.exception and at.multiselect(key="strategy").value == ["scratch", "finetune"]
    assert at.caption[0].value != before and "runs match the filters" in at.caption[0].value


def test_head_to_head_asks_for_two_different_runs(populated: pd.DataFrame) -> None:
    at = _app(kind="target", a="x", b="y")
    assert not at.exception
    at.selectbox(key="b").select(at.selectbox(key="a").value).run()
    assert "Pick two different runs." in [i.value for i in at.info]


def test_answer_panel_holm_column_and_reliability_diagram(populated: pd.DataFrame, home: Path) -> None:
    at = _app()
    assert not at.exception
    store = RunStore(home)
    curve = compare.data_efficiency(populated)
    ids = compare.run_ids_needed(curve)
    expected = compare.answer(compare.grid_statistics(curve, {r: compare.predictions(store, r) for r in ids}))
    panel = _container(at._tree, "compare-answer")
    texts = [m.value for m in panel.markdown]
    assert texts == [s.text for s in expected], "the page shows the engine's sentences, nothing of its own"
    assert texts[0].startswith("At 50 % of the target (")
    assert any(verdict in texts[0] for verdict in ("finetune beats scratch", "finetune trails scratch",
                                                   "no detectable difference between finetune and scratch"))
    assert "1 seed each, so seed-to-seed variance is not included" in texts[0]
    runs = [c.value for c in panel.caption if c.value.startswith("runs: ")]
    assert runs == ["runs: " + ", ".join(s.run_ids) for s in expected if s.run_ids]
    assert set(", ".join(runs).replace("runs: ", "").split(", ")) <= set(populated.run_id)
    table = panel.dataframe[0].value
    assert {"p", "p Holm", "n_seeds", "method"} <= set(table.columns) and len(table) == 2, "0.5 and 1.0"
    assert any("Holm over the 2 comparisons of this grid" in c.value for c in panel.caption)

    pair = _container(at._tree, "compare-head-to-head")
    assert {"p", "p Holm"} <= set(pair.dataframe[0].value.columns)
    assert any("Method: " in c.value and "bootstrap" in c.value for c in pair.caption)

    calibration = _container(at._tree, "compare-calibration").dataframe[0].value
    assert calibration.brier.notna().all() and set(calibration.source) == {"results.json"}
    reliability = _charts(at)["reliability-chart"]["data"]
    assert reliability[0]["name"] == "perfectly calibrated" and len(reliability) == 1 + len(calibration)


def test_old_run_folders_without_new_keys(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs evaluated before calibration existed (no brier/ece) and a run without predictions.npz."""
    import shutil

    copy = tmp_path / "old"
    shutil.copytree(home, copy)
    monkeypatch.setenv("ECGCORE_HOME", str(copy))
    done = compare.finished(compare.runs_table(RunStore(copy)))
    for run_id in done.run_id:
        path = copy / "runs" / run_id / "results.json"
        results = json.loads(path.read_text())
        for key in ("brier", "per_class_brier", "ece", "ece_bins", "calibration_note"):
            results["test"].pop(key, None)
        path.write_text(json.dumps(results))
    lost = str(done.run_id.iloc[-1])
    (copy / "runs" / lost / "predictions.npz").unlink()
    at = _app()
    assert not at.exception
    calibration = _container(at._tree, "compare-calibration").dataframe[0].value.set_index("run_id")
    assert calibration.loc[lost, "source"] == "no predictions.npz"
    others = calibration.drop(index=lost)
    assert (others.source == "computed from predictions.npz").all() and others.brier.notna().all()
    assert _block_keys(at._tree) >= {"compare-answer", "compare-calibration"}


def test_one_run_label_on_compare_inspect_and_predict(populated: pd.DataFrame, home: Path) -> None:
    """Inspect's and Predict's run pickers name a run exactly as Compare's pickers do."""
    from ecgcore.views.run_records import run_choices

    full = compare.full_labels(populated)
    for need in ("predictions.npz", "model.pt"):
        choices = run_choices(RunStore(home), need=need)
        assert len(choices) == len(compare.finished(populated)) + 1, "the target runs and the pretraining"
        assert {r: full[r] for r in choices} == choices
    pretrain = populated[populated.kind == "pretrain"].iloc[0]
    assert full[pretrain.run_id].startswith(f"pretrain · small_cnn · {pretrain.target} · s0 · ")


def test_head_to_head_defaults_to_the_transfer_question(populated: pd.DataFrame) -> None:
    """Without a pair in the URL: finetune against scratch at the same fraction (and seed), not two
    fractions of one strategy."""
    at = _app()
    assert not at.exception
    rows = populated.set_index("run_id")
    a, b = (rows.loc[at.selectbox(key=k).value] for k in ("a", "b"))
    assert (a.strategy, b.strategy) == ("finetune", "scratch")
    assert a.train_fraction == b.train_fraction == 0.5, "the smallest fraction both have"
    assert a.seed == b.seed and a.arch == b.arch and a.target == b.target
    pair = _container(at._tree, "compare-head-to-head")
    assert any("finetune against scratch" in c.value for c in pair.caption)


def test_no_table_shows_none(populated: pd.DataFrame) -> None:
    """A missing value reads "—" or its reason, never "None" (protocol, std of one seed, …)."""
    at = _app()
    assert not at.exception
    for frame in at.dataframe:
        value = frame.value
        gaps = {c: int(value[c].isna().sum()) for c in value.columns if value[c].isna().any()}
        assert not gaps, f"{frame.proto.id}: missing values shown as None in {gaps}"
    runs = at.dataframe[0].value
    assert set(runs.protocol) == {"—"}
    assert "no source" in set(runs.n_leaked) and all(isinstance(v, str) for v in runs.n_leaked), "one type"
    seeds = _container(at._tree, "compare-macro").dataframe[0].value
    assert "one seed" in set(seeds.macro_auc_std), "the std of a single seed says why it is missing"
    assert set(seeds.protocol) == {"—"}


def test_head_to_head_default_reaches_beyond_the_newest_runs(home: Path, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """With more finished runs than the page draws one by one (the quickstart has 16, the newest
    8 of them transferred), the pair still answers the transfer question from every run in the
    filters, not just the newest ones."""
    import shutil

    copy = tmp_path / "many"
    shutil.copytree(home, copy)
    monkeypatch.setenv("ECGCORE_HOME", str(copy))
    store = RunStore(copy)
    done = compare.finished(compare.runs_table(store))
    model = done[(done.strategy == "finetune") & (done.train_fraction == 0.5)].iloc[0]
    source = store.get(model.run_id)
    for seed in range(10, 18):  # eight newer finetune seeds with no scratch twin
        folder = store.create({**source.config, "seed": seed})
        for name in ("predictions.npz", "history.csv"):
            shutil.copy(source.path / name, folder.path / name)
        results = {k: v for k, v in source.results().items() if k not in ("run_id", "status", "finished")}
        store.finish(folder.run_id, {**results, "seed": seed})
    at = _app()
    assert not at.exception
    rows = compare.runs_table(store).set_index("run_id")
    a, b = (rows.loc[at.selectbox(key=k).value] for k in ("a", "b"))
    assert (a.strategy, b.strategy, a.seed, b.seed) == ("finetune", "scratch", 0, 0)
    assert a.train_fraction == b.train_fraction == 0.5

