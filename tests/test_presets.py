"""The paper presets and the PTB-XL benchmark preset: each lists its runs without the real
data (`run --dry-run --json`), as many as its grid means, with the protocol settings the
papers publish; the engine features they need (named datasets, protocols, per-dataset
settings, grid over source/target/task/train_n, exclude_sources, results that name their
protocol) work end to end on tiny demo data."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from ecgcore.cli import main
from ecgcore.data.sources import open_dataset
from ecgcore.errors import EcgcoreError
from ecgcore.experiments import plan_experiment, run_experiment
from ecgcore.experiments.execute import without_sources
from ecgcore.experiments.spec import ExperimentError, load_experiment
from ecgcore.data.labels import resolve
from ecgcore.runs import RunStore

ROOT = Path(__file__).resolve().parents[1]
PRESETS = ROOT / "experiments"
ARCHS_ND = ["resnet1d18", "resnet1d50", "resnet1d101", "lstm_nd", "gru_nd", "bilstm_nd"]


def dry_run(preset: str, capsys: pytest.CaptureFixture[str], *overrides: str) -> list[dict]:
    """`python -m ecgcore run PRESET --dry-run --json` (the CLI's own entry, in this process;
    the workspace fixture has no datasets)."""
    args = ["run", str(PRESETS / preset), "--dry-run", "--json"]
    for override in overrides:
        args += ["--set", override]
    capsys.readouterr()
    code = main(args)
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out)


def kinds(listing: list[dict]) -> Counter:
    return Counter((s["kind"], s["config"].get("protocol"), s["config"].get("strategy"))
                   for s in listing)


def test_ptbxl_benchmark_lists_six_tasks_by_six_models(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    listing = dry_run("ptbxl_benchmark.toml", capsys)
    assert len(listing) == 6 * 6 and {s["kind"] for s in listing} == {"target"}
    assert all(s["missing_datasets"] == ["ptbxl"] for s in listing), "not found, listed per run"
    assert len({s["config_hash"] for s in listing}) == 36
    config = listing[0]["config"]
    assert config["protocol"] == "ptbxl_benchmark" and config["prep"]["fs"] == 100.0
    assert (config["split"]["method"], config["split"]["train_folds"], config["split"]["val_folds"],
            config["split"]["test_folds"]) == ("official", [1, 2, 3, 4, 5, 6, 7, 8], [9], [10])
    assert (config["train"]["crop_seconds"], config["train"]["eval_aggregate"]) == (2.5, "max")
    assert (config["train"]["batch_size"], config["train"]["epochs"], config["train"]["schedule"],
            config["train"]["precision"]) == (128, 50, "fastai_onecycle", "float32")
    clip = {s["config"]["arch"]: s["config"]["train"]["grad_clip"] for s in listing}
    assert clip["lstm"] == clip["lstm_bidir"] == 0.25 and clip["xresnet1d101"] is None
    lr = {s["config"]["arch"]: s["config"]["train"]["lr"] for s in listing}
    assert lr == {"xresnet1d101": 0.01, "inception1d": 0.01, "resnet1d_wang": 0.01, "fcn_wang": 0.01,
                  "lstm": 0.001, "lstm_bidir": 0.001}, "the benchmark's configs: 1e-3 for recurrent models"
    assert {s["config"]["data"]["task"] for s in listing} == {
        f"ptbxl_{t}" for t in ("all", "diagnostic", "subdiagnostic", "superdiagnostic", "form", "rhythm")}


def test_nguyen_grid_lists_pairs_models_and_both_protocols(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    listing = dry_run("nguyen2025_grid.toml", capsys)
    pairs = 3 * 4  # sources x the other targets of five
    seeds = {"paper_exact": 1, "ours": 3}
    expected = Counter()
    for protocol, n_seeds in seeds.items():
        expected[("pretrain", protocol, None)] = 3 * 6 * n_seeds
        expected[("target", protocol, "finetune")] = pairs * 6 * n_seeds
        expected[("target", protocol, "scratch")] = 5 * 6 * n_seeds  # one per target, any source
    assert kinds(listing) == expected and len(listing) == 480
    targets = [s for s in listing if s["kind"] == "target"]
    assert {s["config"]["arch"] for s in targets} == set(ARCHS_ND)
    assert all(s["config"]["source"]["dataset"] != s["config"]["data"]["dataset"]
               for s in targets if s["config"]["source"]), "no dataset fine-tunes on itself"

    def config_of(protocol: str, target: str) -> dict:
        return next(s["config"] for s in targets if s["config"]["protocol"] == protocol
                    and s["config"]["data"]["dataset"] == target)

    paper = config_of("paper_exact", "cpsc2018")
    assert (paper["prep"]["resample"], paper["prep"]["normalize"], paper["prep"]["min_seconds"]) == \
        ("decimate", "minmax", 10.0)
    assert (paper["split"]["method"], paper["split"]["test"], paper["split"]["seed"],
            paper["split"]["stratify"]) == ("paper", 0.33, 1, True)
    assert (paper["train"]["optimizer"], paper["train"]["lr"], paper["train"]["batch_size"],
            paper["train"]["epochs"]) == ("adam", 0.01, 256, 100)
    assert config_of("paper_exact", "georgia")["split"]["stratify"] is False
    assert config_of("paper_exact", "ptb")["prep"]["normalize"] == "none"
    assert config_of("paper_exact", "code_test")["prep"]["crop"] == "centre"
    ours = config_of("ours", "ptb")
    assert (ours["split"]["method"], ours["prep"]["normalize"], ours["train"]["early_stopping_patience"]) \
        == ("auto", "standard", 10)
    assert config_of("ours", "ptbxl")["split"]["method"] == "official"


def test_size_sweep_lists_sizes_first_n_and_stratified(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    listing = dry_run("nguyen2025_size_sweep.toml", capsys)
    sizes = [2000, 4000, 6000, 8000, 10000, 12000]
    assert kinds(listing) == Counter({
        ("pretrain", "paper_exact", None): 1, ("pretrain", "ours", None): 3,
        ("target", "paper_exact", "scratch"): 6, ("target", "paper_exact", "finetune"): 6,
        ("target", "ours", "scratch"): 18, ("target", "ours", "finetune"): 18})
    targets = [s["config"] for s in listing if s["kind"] == "target"]
    assert sorted({c["train_n"] for c in targets}) == sizes
    assert all(c["split"]["train_n"] == c["train_n"] for c in targets)
    methods = {c["protocol"]: c["split"]["train_fraction_method"] for c in targets}
    assert methods == {"paper_exact": "first_n", "ours": "stratified"}
    assert {c["arch"] for c in targets} == {"resnet1d18"}


def test_avetisyan_lists_conditions_strategies_without_ptbxl_in_source(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    listing = dry_run("avetisyan2024.toml", capsys)
    tasks, archs = 8, 3
    assert kinds(listing) == Counter({
        ("pretrain", "avetisyan2024", None): tasks * archs,
        ("target", "avetisyan2024", "scratch"): tasks * archs,
        ("target", "avetisyan2024", "source_only"): tasks * archs,
        ("target", "avetisyan2024", "finetune"): tasks * archs})
    pretrain = [s["config"] for s in listing if s["kind"] == "pretrain"]
    assert all(c["data"]["exclude_sources"] == ["PTB-XL"] for c in pretrain)
    binary = [c for c in pretrain if "," not in c["data"]["task"]]
    assert len(binary) == 7 * archs
    assert {s["config"]["arch"] for s in listing} == {
        "ecglib_resnet1d18", "ecglib_resnet1d50", "ecglib_densenet1d121"}, "ecglib's own models"
    # ecglib's preprocessing order (z-score the whole record, then cut/pad), upstream too
    assert all(s["config"]["prep"]["normalize_before_crop"] is True
               and s["config"]["prep"]["normalize"] == "zscore" for s in listing)
    for config in (s["config"] for s in listing if s["kind"] == "target"):
        assert config["data"]["options"] == {"fs": 500} and config["prep"]["fs"] == 500.0
        if config["source"]:
            assert config["source"]["task"] == config["data"]["task"], "source and target tasks pair"


def test_dry_run_resolves_a_folder_given_by_set(tmp_path: Path) -> None:
    """The command itself, as a user types it: a folder given by --set resolves."""
    folder = tmp_path / "my-ptbxl"
    folder.mkdir()
    args = [sys.executable, "-m", "ecgcore", "run", str(PRESETS / "ptbxl_benchmark.toml"),
            "--dry-run", "--json", "--set", f"target.dataset={folder}",
            "--set", 'grid.arch=["lstm"]', "--set", 'grid.task=["ptbxl_rhythm"]']
    done = subprocess.run(args, capture_output=True, text=True, cwd=ROOT, timeout=300,
                          env={**os.environ, "ECGCORE_HOME": str(tmp_path / "home")})
    assert done.returncode == 0, done.stderr
    listing = json.loads(done.stdout)
    assert len(listing) == 1 and listing[0]["missing_datasets"] == []
    assert listing[0]["config"]["data"]["dataset"] == str(folder.resolve())


def test_a_real_run_needs_the_data(workspace: Path) -> None:
    with pytest.raises(ExperimentError, match="'ptbxl' is neither a workspace dataset"):
        plan_experiment(PRESETS / "ptbxl_benchmark.toml")


@pytest.mark.parametrize("text, message", [
    ("[grid]\narch=['small_cnn']\nstrategy=['scratch']\ntarget=['nope']\n",
     r"\[grid\] target 'nope' is not a \[datasets\] entry"),
    ("[datasets.a]\ndataset='a'\n[grid]\narch=['small_cnn']\nstrategy=['scratch']\ntarget=['a']\n"
     "protocol=['x']\n", r"\[grid\] protocol 'x' is not a \[protocols\] entry"),
    ("[datasets.a]\ndatset='a'\n[grid]\narch=['small_cnn']\nstrategy=['scratch']\ntarget=['a']\n",
     r"\[datasets.a\] must be a table with a dataset"),
    ("[datasets.a]\ndataset='a'\n[protocols.p]\nsplt={}\n[grid]\narch=['small_cnn']\n"
     "strategy=['scratch']\ntarget=['a']\n", r"\[protocols.p\]: unknown key\(s\) splt"),
    ("[target]\ndataset='a'\n[grid]\narch=['small_cnn']\nstrategy=['scratch']\n"
     "train_fraction=[0.5]\ntrain_n=[10]\n", "gives train_fraction and train_n"),
    ("[target]\ndataset='a'\n[archs.lstm]\nprep={}\n[grid]\narch=['lstm']\nstrategy=['scratch']\n",
     r"\[archs.lstm\]: unknown key\(s\) prep"),
])
def test_bad_study_files_get_one_clear_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "study.toml"
    path.write_text(text)
    with pytest.raises(ExperimentError, match=message):
        load_experiment(path)


def test_a_mistyped_task_shows_in_the_dry_run(workspace: Path, tmp_path: Path) -> None:
    path = tmp_path / "typo.toml"
    path.write_text("[target]\ndataset='x'\ntask='ptbxl_al'\n[grid]\narch=['small_cnn']\n"
                    "strategy=['scratch']\n")
    with pytest.raises(ExperimentError, match="dataset 'x': unknown task 'ptbxl_al'; known: "):
        plan_experiment(path, strict=False)


def test_listed_snomed_tasks() -> None:
    task = resolve("snomed:164889003,427172004|17338001|164884008", recordset=None)  # type: ignore[arg-type]
    assert task.classes == ("164889003", "427172004|17338001|164884008")
    assert task.class_labels[0] == "AF"
    assert task.mapping["164884008"] == ("427172004|17338001|164884008",)  # PTB-XL's PVC code
    with pytest.raises(EcgcoreError, match="comma-separated SNOMED"):
        resolve("snomed:AFIB", recordset=None)  # type: ignore[arg-type]


def test_exclude_sources_leaves_out_a_challenge_source(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from ecgcore.data.synthetic import SITES, write_site

    write_site(SITES["target_challenge"], tmp_path / "chal", scale=0.04, workers=1)
    headers = sorted((tmp_path / "chal").rglob("*.hea"))[:3]
    for number, header in enumerate(headers, start=1):  # three records become "PTB-XL" (HR…)
        new = f"HR{number:05d}"
        text = header.read_text().replace(header.stem, new)
        for other in header.parent.glob(f"{header.stem}.*"):
            other.rename(other.with_name(new + other.suffix))
        (header.parent / f"{new}.hea").write_text(text)
    recordset = open_dataset(tmp_path / "chal")
    caplog.set_level(logging.DEBUG, logger="ecgcore")
    kept = without_sources(recordset, ["PTB-XL"])
    assert len(kept.table) == len(recordset.table) - 3
    assert not kept.table.index.str.startswith("HR").any() and "left out 3 records" in caplog.messages[0]
    assert len(without_sources(recordset, ["Georgia"]).table) == len(recordset.table)
    with pytest.raises(EcgcoreError, match=r"exclude_sources \['PTB_XL'\] name no source"):
        without_sources(recordset, ["PTB_XL"])


STUDY = """
name = "tiny_study"
[datasets.src]
dataset = "source_ptbxl"
task = "shared"
train_fraction = 0.5
[datasets.tgt]
dataset = "target_challenge"
task = "dataset_labels"
min_positives = 5
[prep]
fs = 50
seconds = 5
[train]
epochs = 1
batch_size = 32
[protocols.paper_exact]
prep = { resample = "decimate", normalize = "minmax" }
split = { method = "paper", test = 0.33, seed = 1 }
report = { test_every_epoch = true }
[protocols.ours]
prep = { normalize = "zscore" }
split = { method = "patient", val = 0.2, test = 0.3 }
[grid]
source = ["src"]
target = ["tgt"]
arch = ["small_cnn"]
strategy = ["finetune"]
train_n = [20]
"""


def test_protocols_run_end_to_end_and_results_name_them(workspace: Path) -> None:
    from ecgcore.data.synthetic import write_demo_data

    write_demo_data(workspace / "datasets", seed=0, scale=0.08, workers=1)
    path = workspace / "study.toml"
    path.write_text(STUDY)
    run_ids = run_experiment(path)
    assert len(run_ids) == 2 * (1 + 1)
    store = RunStore()
    results = [store.get(r).results() for r in run_ids]
    targets = {(r["protocol"], r["strategy"]): r for r in results if r["kind"] == "target"}
    assert set(targets) == {("paper_exact", "finetune"), ("ours", "finetune")}
    paper = targets[("paper_exact", "finetune")]
    assert paper["patients_may_leak"] is True and "patients may leak" in paper["split"]["notes"]
    assert paper["n_val"] == 0 and paper["split"]["method"] == "paper"
    n = round(paper["n_train"] / paper["train_fraction"]) + paper["n_test"]
    assert paper["n_test"] == -(-33 * n // 100)  # ceil(0.33 n), as scikit-learn's split
    assert paper["n_train"] == 20 == paper["train_n"]  # a size-sweep point: the first 20 ...
    assert 0 < paper["train_fraction"] < 1, "... placed on the data-efficiency axis by its share"
    by_epoch = paper["test_by_epoch"]  # the paper's best-test-epoch number, kept apart
    assert by_epoch["epochs"] == [0] and by_epoch["best_epoch"] == 0 and "optimistic" in by_epoch["note"]
    assert by_epoch["best_f1_weighted"] == pytest.approx(paper["test"]["f1_weighted"], abs=1e-5)
    ours = targets[("ours", "finetune")]
    assert "test_by_epoch" not in ours
    assert ours["patients_may_leak"] is False and ours["n_val"] > 0
    assert ours["test"]["macro_auc_ci"] is not None


@pytest.mark.parametrize("preset", ["ptbxl_benchmark.toml", "nguyen2025_grid.toml", "nguyen2025_size_sweep.toml",
                                    "avetisyan2024.toml"])
def test_paper_presets_train_in_float32_written_out(preset: str) -> None:
    """Precision is an explicit setting of every paper preset, not a default that a GPU
    could change: float32 in the file itself."""
    from ecgcore.experiments.spec import load_experiment

    assert load_experiment(PRESETS / preset)["train"]["precision"] == "float32"
