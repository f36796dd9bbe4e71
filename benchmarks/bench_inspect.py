"""Inspect page render time against the plain ECG figure build.

    python benchmarks/bench_inspect.py [--repeat 5] [--json] [--home DIR --run RUN_ID]

Without --home, a workspace in benchmarks/out/inspect_ws/ is made once (demo data at
scale 0.1 and one tiny run of experiments/smoke.toml: scratch small_cnn, 1 epoch, 12
classes) and reused. For one test record of the run it measures (seconds, median of
--repeat):
  (a) the plain figure: `ecg_paper_figure` of the record with its saliency band
      (the floor: what any page showing the trace pays), and the same plus
      `fig.to_json()` (what st.plotly_chart serialises)
  (b) the parts a first view needs besides the figure: reading the record from the
      target dataset, and the Integrated Gradients attribution for one class
  (c) the Inspect page, warm: an AppTest rerun of the page with the run, record and
      class in the URL, everything cached (what stepping filters or resizing costs)
  (d) the Inspect page, cold: the same after clearing Streamlit's caches (model load,
      dataset scan, predictions, attribution, figure)
and prints c/a (page overhead over the bare figure) and d/(a + b) (the page's cost over
the work it must do anyway).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from collections.abc import Callable
from statistics import median
from typing import Any

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks" / "out"
sys.path.insert(0, str(REPO))

TINY_RUN = ["--set", "train.epochs=1", "--set", 'grid.strategy=["scratch"]',
            "--set", "grid.train_fraction=[1.0]", "--set", "target.min_positives=5"]


def _workspace(home: Path) -> str:
    """The newest finished run in `home`, trained there first when there is none."""
    runs = sorted((home / "runs").glob("*/model.pt")) if (home / "runs").is_dir() else []
    if runs:
        return runs[-1].parent.name
    from ecgcore.data.synthetic import write_demo_data

    write_demo_data(home / "datasets", seed=0, scale=0.1)
    env = {**os.environ, "ECGCORE_HOME": str(home), "ECGCORE_AUTO_WORKER": "0"}
    done = subprocess.run([sys.executable, "-m", "ecgcore", "run", str(REPO / "experiments" / "smoke.toml"),
                           *TINY_RUN, "--json"], capture_output=True, text=True, cwd=REPO, env=env,
                          check=True)
    return json.loads(done.stdout)[-1]


def _median(fn: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return median(times)


def measure(run_id: str, repeat: int) -> dict[str, Any]:
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from ecgcore.views.explanations import explain_signal
    from ecgcore.views.figures.ecg_paper import ecg_paper_figure
    from ecgcore.views.run_records import load_run_predictions, open_target, read_test_record
    from ecgcore.views.scoring import load_run
    from ecgcore.views.record_report import saliency_on_signal

    preds = load_run_predictions(run_id)
    record_id = preds.record_ids[0]
    code = preds.classes[int(preds.y_true.sum(axis=0).argmax())]
    run = load_run(run_id)
    recordset = open_target(preds)
    record = read_test_record(recordset, record_id)
    explanation = explain_signal(run, record.signal, code, "ig", record=record_id)
    saliency = saliency_on_signal(explanation.attribution, explanation.leads, run.prep, record.signal)
    signal = record.signal

    def figure() -> Any:
        return ecg_paper_figure(signal.data, signal.fs, signal.leads, saliency=saliency, title=record_id)

    def page() -> AppTest:
        at = AppTest.from_file(str(REPO / "app.py"), default_timeout=300)
        at.switch_page("pages/inspect.py")
        at.query_params.update(run=run_id, record=record_id, cls=code)
        return at

    def cold() -> None:
        st.cache_data.clear()
        st.cache_resource.clear()
        at = page().run()
        assert not at.exception, at.exception

    first = page().run()  # imports and first caches; not counted
    assert not first.exception, first.exception
    assert any(c.proto.id.endswith("ecg") for c in first.get("plotly_chart")), "the page drew no ECG"
    numbers = {
        "run_id": run_id, "record": record_id, "class": code, "fs": signal.fs,
        "seconds": signal.seconds, "repeat": repeat,
        "figure": _median(figure, repeat),
        "figure_json": _median(lambda: figure().to_json(), repeat),
        "read_record": _median(lambda: read_test_record(recordset, record_id), repeat),
        "explain_ig": _median(lambda: explain_signal(run, signal, code, "ig", record=record_id), repeat),
        "page_warm": _median(lambda: first.run(), repeat),
        "page_cold": _median(cold, repeat),
    }
    numbers["warm_over_figure"] = numbers["page_warm"] / numbers["figure"]
    numbers["cold_over_work"] = numbers["page_cold"] / (numbers["figure"] + numbers["read_record"]
                                                        + numbers["explain_ig"])
    return numbers


def _table(n: dict[str, Any]) -> str:
    rows = [
        ("(a) figure: ecg_paper_figure with saliency", n["figure"]),
        ("    figure + fig.to_json()", n["figure_json"]),
        ("(b) read the record from the target dataset", n["read_record"]),
        ("    Integrated Gradients for one class", n["explain_ig"]),
        ("(c) Inspect page, warm (AppTest rerun, cached)", n["page_warm"]),
        ("(d) Inspect page, cold (caches cleared)", n["page_cold"]),
    ]
    head = (f"run {n['run_id']}, record {n['record']} ({n['fs']:g} Hz, {n['seconds']:.1f} s), class "
            f"{n['class']}; median of {n['repeat']}")
    lines = [head, f"{'what':<50}{'seconds':>10}"]
    lines += [f"{label:<50}{value:>10.3f}" for label, value in rows]
    lines.append(f"c/a = {n['warm_over_figure']:.1f}x (page rerun over the bare figure)   "
                 f"d/(a+b) = {n['cold_over_work']:.1f}x (cold page over figure + read + IG)")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--home", type=Path, default=None, help="a workspace with a finished run")
    parser.add_argument("--run", default=None, help="run id (default: the newest in --home)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    home = (args.home or OUT / "inspect_ws").resolve()
    home.mkdir(parents=True, exist_ok=True)
    os.environ["ECGCORE_HOME"] = str(home)
    os.environ.setdefault("ECGCORE_AUTO_WORKER", "0")
    run_id = args.run or _workspace(home)
    numbers = measure(run_id, args.repeat)
    print(json.dumps(numbers) if args.json else _table(numbers))


if __name__ == "__main__":
    main()
