"""The app's views of foundation-model checkpoints as sources.

Compare: runs grouped, named and coloured by source kind (none / own pretraining /
checkpoint), old runs read by `source_kind_of`, and the answer panel speaking of source
kinds with the same statistics as before. Launch: registered checkpoints offered as sources
(their input contract, licence, provenance, SHA-256), the form's choices with a checkpoint
becoming an experiment config whose plan starts from it, and a measured cost estimate at the
checkpoint's contract shape.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_compare_stats import labels, predictions, run_table

from ecgcore.foundation import RegisteredCheckpoint
from ecgcore.models import MODELS
from ecgcore.runs import RunStore
from ecgcore.views import compare
from ecgcore.views.compare.compare_figures import KIND_COLOURS, KIND_SYMBOLS
from ecgcore.views.compare.grid import grid_statistics, run_ids_needed
from ecgcore.views.launch import (
    ClassPlan,
    LaunchChoices,
    Throughput,
    choice_problems,
    experiment_config,
    launch_problems,
    plan_launch,
)
from ecgcore.views.launch.checkpoint_sources import card
from ecgcore.views.launch.estimate import JOB_OVERHEAD_SECONDS
from ecgcore.views.launch.measured_speed import ModelSpeed, speed_throughput

ARCH = "net1d_small"


# ---------------------------------------------------------------- Compare


def _finish(store: RunStore, config: dict, auc: float, **results: object) -> str:
    run = store.create(config)
    store.finish(run.run_id, {"n_train": 100, "classes": ["a"], "best_epoch": 1, "epochs_run": 1,
                              "train_seconds": 1.0, "device": "cpu",
                              "test": {"macro_auc": auc, "macro_auc_ci": [auc - 0.05, auc + 0.05],
                                       "per_class_auc": {"a": auc}, "macro_auprc": 0.5, "f1_weighted": 0.5},
                              **results})
    return run.run_id


def test_runs_table_reads_the_source_kind_of_new_old_and_running_runs(workspace: Path) -> None:
    store = RunStore(workspace)
    base = {"kind": "target", "target": "t", "arch": ARCH, "train_fraction": 1.0, "seed": 0, "device": "cpu"}
    scratch = _finish(store, {**base, "strategy": "scratch", "source": None}, 0.7)
    # written before source kinds existed: a source dataset and no `source_kind`
    old = _finish(store, {**base, "strategy": "finetune", "source": "src"}, 0.75)
    probe = _finish(store, {**base, "strategy": "embedding_probe", "source": "demo_net1d"}, 0.8,
                    source_kind="checkpoint",
                    source_checkpoint={"name": "demo_net1d", "sha256": "ab" * 32, "model": "demo_net1d",
                                       "arch": ARCH, "licence": "MIT", "commercial_use": True})
    running = store.create({**base, "strategy": "finetune", "source": "demo_net1d", "seed": 1,
                            "source_checkpoint": {"name": "demo_net1d", "sha256": "ab" * 32, "arch": ARCH}}).run_id
    table = compare.runs_table(store).set_index("run_id")
    assert table.loc[scratch, "source_kind"] == "none" and table.loc[scratch, "source"] == compare.NO_SOURCE
    assert table.loc[old, "source_kind"] == "pretraining"
    assert table.loc[probe, "source_kind"] == "checkpoint" and table.loc[probe, "source"] == "demo_net1d"
    assert table.loc[running, "status"] == "running" and table.loc[running, "source_kind"] == "checkpoint"
    shown = compare.apply_filters(table.reset_index(), compare.RunFilters(source_kinds=("checkpoint",)))
    assert sorted(shown.run_id) == sorted([probe, running])
    assert compare.filter_options(table.reset_index())["source_kinds"] == ["checkpoint", "none", "pretraining"]


def _grid_rows() -> tuple[list[dict], dict[str, dict]]:
    """Three seeds at fractions 0.1 and 1.0 of: scratch, finetune after own pretraining on
    `src`, and the checkpoint demo_net1d probed frozen and fine-tuned; the checkpoint's probe
    is far ahead of scratch at 0.1."""
    truth = labels(n=240, seed=6)
    rng = np.random.default_rng(8)
    rows, preds = [], {}
    settings = (("scratch", None, "none", lambda f: 0.05 + 0.45 * f),
                ("finetune", "src", "pretraining", lambda f: 0.4),
                ("embedding_probe", "demo_net1d", "checkpoint", lambda f: 0.6),
                ("finetune", "demo_net1d", "checkpoint", lambda f: 0.5))
    for fraction in (0.1, 1.0):
        for seed in (0, 1, 2):
            for strategy, source, kind, strength in settings:
                run_id = f"{strategy}-{source}-{fraction}-{seed}"
                preds[run_id] = predictions(truth, strength(fraction), rng)
                rows.append({"run_id": run_id, "strategy": strategy, "train_fraction": fraction, "seed": seed,
                             "source": source or compare.NO_SOURCE, "source_kind": kind, "arch": ARCH,
                             "n_train": int(540 * fraction), "macro_auc": 0.5, "macro_auc_low": 0.4,
                             "macro_auc_high": 0.6})
    return rows, preds


def test_data_efficiency_keeps_sources_apart_names_the_checkpoint_and_colours_by_kind() -> None:
    rows, _ = _grid_rows()
    curve = compare.data_efficiency(run_table(rows))
    # finetune from own pretraining and from the checkpoint are two settings, not pooled seeds
    assert sorted(set(curve.line)) == ["embedding_probe · checkpoint demo_net1d", "finetune · checkpoint demo_net1d",
                                       "finetune · pretrained on src", "scratch"]
    assert (curve.n_seeds == 3).all() and len(curve) == 8
    fig = compare.data_efficiency_figure(curve)
    lines = {t.name: t for t in fig.data if t.mode == "lines+markers"}
    kind_of = {"scratch": "none", "finetune · pretrained on src": "pretraining",
               "embedding_probe · checkpoint demo_net1d": "checkpoint", "finetune · checkpoint demo_net1d": "checkpoint"}
    for name, kind in kind_of.items():
        assert lines[name].line.color in KIND_COLOURS[kind], name
        assert lines[name].marker.symbol == KIND_SYMBOLS[kind]
    checkpoint_colours = {lines[n].line.color for n, k in kind_of.items() if k == "checkpoint"}
    assert len(checkpoint_colours) == 2, "two checkpoint lines, two warm hues"
    assert "warm = checkpoint" in fig.layout.legend.title.text
    macro = compare.macro_auc_figure(run_table(rows[:4]), {})
    assert list(macro.data[0].marker.symbol) == [KIND_SYMBOLS[r["source_kind"]] for r in
                                                 sorted(rows[:4], key=lambda r: r["macro_auc"])]

    # Without a checkpoint among the sources the names are as before.
    plain = compare.data_efficiency(run_table([r for r in rows if r["source_kind"] != "checkpoint"]))
    assert sorted(set(plain.line)) == ["finetune", "scratch"]


def test_answer_speaks_of_source_kinds_with_the_same_statistics() -> None:
    from ecgcore.views.compare.answer import answer

    rows, preds = _grid_rows()
    curve = compare.data_efficiency(run_table(rows))
    needed = run_ids_needed(curve)
    stats = grid_statistics(curve, {r: preds[r] for r in needed}, n_boot=200)
    table = stats.comparisons
    assert len(table) == 6 and (table.n_seeds == 3).all()
    np.testing.assert_allclose(table.p_holm, compare.holm(table.p_value))  # one Holm family, every source
    assert set(zip(table.source_kind, table.source)) == {("checkpoint", "demo_net1d"), ("pretraining", "src")}
    sentences = answer(stats)
    texts = [s.text for s in sentences]
    sourced = {run_id for row in table.to_dict("records") for run_id in row["run_ids"]}
    assert set(sentences[0].run_ids) == sourced and sourced  # what the sources sentence rests on
    assert texts[0] == ("Sources, each against scratch of the same architecture at each fraction: the checkpoint "
                        "demo_net1d (embedding_probe, finetune); own pretraining on src (finetune). They are not "
                        "tested against each other here (a head to head does that).")
    probe = table[(table.strategy == "embedding_probe") & (table.train_fraction == 0.1)].iloc[0]
    assert probe["diff"] > 0.1 and probe.p_holm < 0.05
    first_probe = next(t for t in texts if "probed frozen (embedding_probe)" in t)
    assert first_probe.startswith("At 10 % of the target (54 training records) the checkpoint demo_net1d, probed "
                                  f"frozen (embedding_probe), beats scratch by {abs(probe['diff']):.2f} macro AUC "
                                  "(95 % CI ")
    assert "3 seeds each" in first_probe and "over 6 comparisons" in first_probe
    own = [i for i, t in enumerate(texts) if "own pretraining on src, fine-tuned (finetune)," in t]
    checkpoint = [i for i, t in enumerate(texts) if "the checkpoint demo_net1d," in t and i > 0]
    assert own and checkpoint and max(checkpoint) < min(own), "the checkpoint is spoken of first"
    assert any(t.startswith("The checkpoint demo_net1d, probed frozen (embedding_probe) at 10 % of the target "
                            "reaches") for t in texts), "label efficiency names the source too"


# ---------------------------------------------------------------- Launch


def _register_demo_net1d(folder: Path) -> RegisteredCheckpoint:
    """A demo_net1d file in ECGFounder's published format, registered like a download."""
    import torch

    from ecgcore.foundation import FOUNDATION_MODELS, add_checkpoint
    from ecgcore.models import create_model

    entry = FOUNDATION_MODELS["demo_net1d"]
    torch.manual_seed(0)
    model = create_model(entry.arch, n_leads=len(entry.contract.leads), n_classes=3,
                         n_samples=entry.contract.n_samples)
    path = folder / "demo_net1d.pth"
    torch.save(entry.export(model), path)
    return add_checkpoint(path, "demo_net1d")


def _speed(arch: str, forward: float, train: float, samples: int = 2500) -> ModelSpeed:
    return ModelSpeed(arch, 12, samples, "cpu", 1000, forward, train, 8, 1, 0.0, "x", 2)


def fixed_rate(arch: str, device: str, samples: int, n_classes: int) -> Throughput:
    return Throughput(arch, 0.01, "test rate")


def _classes(home: Path, choices: LaunchChoices) -> ClassPlan:
    from ecgcore.data.sources import open_dataset
    from ecgcore.views.launch import class_plan

    target = open_dataset(home / "datasets" / choices.target)
    source = open_dataset(home / "datasets" / choices.source) if choices.source else None
    return class_plan(target, choices.target_task, source, choices.source_task, choices.min_positives)


def test_launch_with_a_checkpoint_plans_runs_that_start_from_it_and_prices_them_measured(
        demo_home: Path, tmp_path: Path) -> None:
    record = _register_demo_net1d(tmp_path)
    choices = LaunchChoices(target="target_challenge", source="source_ptbxl", min_positives=5, epochs=2,
                            archs=("small_cnn", ARCH), strategies=("scratch", "finetune", "embedding_probe"),
                            fractions=(0.5,), checkpoints=("demo_net1d",))
    contract = MODELS[ARCH].contract
    config = experiment_config(choices)
    assert config["grid"]["checkpoint"] == ["none", "demo_net1d"]
    assert config["archs"] == {ARCH: {"train": {"crop_seconds": contract.n_samples / contract.fs}}}, \
        "the contract's whole window"
    classes = _classes(demo_home, choices)
    assert launch_problems(choices, ["target_challenge", "source_ptbxl"], classes) == []
    asked: list[tuple] = []

    def speed(arch: str, device: str, samples: int, leads: int) -> ModelSpeed:
        asked.append((arch, device, samples, leads))
        return _speed(arch, forward=10.0, train=2.0)

    plan = plan_launch(choices, classes, jobs=[], throughput=fixed_rate, speed=speed)
    from_checkpoint = [s for s in plan.specs if s.run_config.source is not None
                       and s.run_config.source.checkpoint is not None]
    assert sorted(s.run_config.strategy_name for s in from_checkpoint) == ["embedding_probe", "finetune"]
    for spec in from_checkpoint:
        assert spec.run_config.source.checkpoint.to_dict() == {"name": "demo_net1d", "sha256": record.sha256,
                                                               "arch": ARCH}
        assert spec.run_config.model.arch == ARCH and spec.depends_on is None
        assert spec.run_config.prep.fs == contract.fs and spec.run_config.prep.window == contract.n_samples
    # own pretraining ("none") for both archs; scratch once per arch whatever the source
    assert sum(s.kind == "pretrain" for s in plan.specs) == 2 and len(plan.specs) == 10
    # frozen probes priced at the input they embed: the contract's shape for the foundation model
    assert sorted(asked) == [(ARCH, "cpu", contract.n_samples, len(contract.leads)), ("small_cnn", "cpu", 1000, 12)]
    probe = next(r for r, s in zip(plan.runs, plan.specs) if s in from_checkpoint
                 and s.run_config.strategy_name == "embedding_probe")
    kept = classes.target.n_records
    # one forward pass over train (0.55 x 0.5), validation (0.15) and test (0.3), at 2x the measured 1/10 s
    assert probe.seconds == pytest.approx(JOB_OVERHEAD_SECONDS + 2 * (kept * (0.55 * 0.5 + 0.15 + 0.3)) / 10)
    assert probe.low == pytest.approx(JOB_OVERHEAD_SECONDS + 1 * (kept * (0.55 * 0.5 + 0.15 + 0.3)) / 10)
    assert any("frozen probes priced as one encoder forward pass" in b for b in plan.basis)
    assert plan.warnings == ()

    # A model this slow is said to be slow, with its measured speed.
    slow = plan_launch(choices, classes, jobs=[], throughput=fixed_rate,
                       speed=lambda arch, *shape: _speed(arch, forward=0.05, train=0.01))
    assert len(slow.warnings) == 2 and all(w.startswith("Slow: the run ") for w in slow.warnings), "one per arch"
    said = next(w for w in slow.warnings if f"Measured: {ARCH} " in w)
    assert "0.05 samples/s forward, 0.01 samples/s forward + backward" in said and "embedding_probe" in said


def test_checkpoint_choices_that_cannot_run_are_refused(demo_home: Path, tmp_path: Path) -> None:
    _register_demo_net1d(tmp_path)
    datasets = ["target_challenge", "source_ptbxl"]
    alone = LaunchChoices(target="target_challenge", archs=(ARCH,), strategies=("scratch", "embedding_probe"),
                          checkpoints=("demo_net1d",))
    assert choice_problems(alone, datasets) == [], "a checkpoint is a source: no dataset needed"
    assert experiment_config(alone)["grid"]["checkpoint"] == ["demo_net1d"] and "source" not in experiment_config(alone)
    problems = choice_problems(LaunchChoices(target="target_challenge", archs=("small_cnn",),
                                             strategies=("scratch", "finetune"), checkpoints=("demo_net1d", "nope")),
                               datasets)
    assert any("Checkpoint nope is not registered; registered: demo_net1d." == p for p in problems)
    assert any(p.startswith("Checkpoint demo_net1d loads into the architecture net1d_small") for p in problems)
    assert any(p.startswith("small_cnn: no chosen checkpoint loads into it") for p in problems)
    with_source_only = choice_problems(LaunchChoices(target="target_challenge", source="source_ptbxl", archs=(ARCH,),
                                                     strategies=("source_only",), checkpoints=("demo_net1d",)),
                                       datasets)
    assert any("a checkpoint has none for the target's classes" in p for p in with_source_only)
    # Nothing chosen: as before.
    assert choice_problems(LaunchChoices(target="target_challenge", strategies=("finetune",)), datasets)[0] \
        .startswith("finetune start(s) from a pretrained source model")


def test_checkpoint_card_shows_contract_licence_provenance_sha_and_leakage() -> None:
    from ecgcore.foundation.catalogue import FOUNDATION_MODELS

    entry = FOUNDATION_MODELS["ecgfounder"]
    record = RegisteredCheckpoint(name="ecgfounder", model="ecgfounder", arch="ecgfounder", path="/x.pth",
                                  sha256="0123456789abcdef" * 4, size_bytes=1, added=0.0, licence=entry.licence,
                                  commercial_use=False, provenance=entry.provenance, pretrained_on=("HEEDB",),
                                  contract=entry.contract.to_dict())
    shown = card(record, target="HEEDB")
    assert shown.sha256_prefix == "0123456789ab" and "SHA-256 0123456789ab…" in shown.summary()
    assert "⚠ not for commercial use" in shown.summary() and shown.licence.startswith("⚠ not for commercial use: MIT")
    lines = shown.markdown_lines()
    assert "input: 500 Hz × 5000 samples (10 s)" in lines
    assert "input: 12 leads: I, II, III, aVR, aVL, aVF, V1, V2, V3, V4, V5, V6" in lines
    assert any(line.startswith("input: filtering: util.filter_bandpass") for line in lines)
    assert any(line.startswith("input: normalisation: z-score of the whole record") for line in lines)
    assert any("NEJM AI 2025" in line for line in lines) and shown.leakage and "HEEDB" in shown.leakage
    free = card(RegisteredCheckpoint(**{**record.to_dict(), "commercial_use": True, "pretrained_on": ("HEEDB",)}),
                target="target_challenge")
    assert "not for commercial use" not in free.summary() and free.leakage is None


def test_model_speed_is_measured_once_then_read_from_the_cache(workspace: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from ecgcore.views.launch import measured_speed as speed_module

    first = speed_module.measure_speed("small_cnn", 12, 250, budget_s=0.05)
    assert first.forward_per_second > first.train_per_second > 0 and first.n_params > 0
    monkeypatch.setattr(speed_module, "measure_speed", lambda *args, **kwargs: first)
    cached = speed_module.model_speed("small_cnn", 12, 250)
    assert cached == first and speed_module.speed_path("small_cnn", 12, 250, "cpu").is_file()

    def fail(*args: object, **kwargs: object) -> ModelSpeed:
        raise AssertionError("measured again")

    monkeypatch.setattr(speed_module, "measure_speed", fail)
    assert speed_module.model_speed("small_cnn", 12, 250) == first, "read from the cache"
    train = speed_throughput(_speed("x", forward=20.0, train=4.0), "train")
    assert train.seconds_per_sample == pytest.approx(2 / 4.0) and (train.low, train.high) == (0.25, 1.0)
    embed = speed_throughput(_speed("x", forward=20.0, train=4.0), "embed")
    assert embed.seconds_per_sample == pytest.approx(2 / 20.0) and embed.epoch_share == 1.0 and embed.rough
