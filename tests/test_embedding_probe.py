"""The embedding probe against scikit-learn itself: each class's setting is the argmin of the
validation log-loss over ecg-fix's grid, the folded final Linear gives scikit-learn's
probabilities, the fallbacks do what they say, and a run through the experiment runner
saves a model.pt that scores as the run did while a second run reads the cached embeddings."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import nn

from ecgcore.transfer.embedding_probe import (
    CHOSEN,
    DEFAULT,
    GRID,
    MAX_ITER,
    ONE_TRAIN_LABEL,
    ONE_VAL_LABEL,
    fit_probes,
    fold_into_linear,
)

ROOT = Path(__file__).resolve().parents[1]
SEED = 3


def features(n: int, dim: int, rng: np.random.Generator) -> np.ndarray:
    """Features on very different scales and offsets, so the scaler matters."""
    return (rng.normal(size=(n, dim)) * rng.uniform(0.1, 20, dim) + rng.uniform(-5, 5, dim)).astype(np.float32)


def sklearn_probe(setting, x: np.ndarray, y: np.ndarray):
    model = LogisticRegression(C=setting.C, class_weight=setting.class_weight, max_iter=MAX_ITER, random_state=SEED)
    return make_pipeline(StandardScaler(), model).fit(x, y) if setting.scale else model.fit(x, y)


@pytest.fixture(scope="module")
def problem() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    dim = 6
    x_train, x_val, x_test = features(120, dim, rng), features(60, dim, rng), features(40, dim, rng)
    w = rng.normal(size=(dim, 3)) / np.std(x_train, axis=0)[:, None]
    b = -(x_train @ w).mean(axis=0) + np.array([0.0, -1.5, 1.0])

    def labels(x: np.ndarray) -> np.ndarray:
        logits = x @ w + b + rng.normal(scale=1.5, size=(x.shape[0], 3))
        return (logits > 0).astype(np.uint8)

    return {"x_train": x_train, "y_train": labels(x_train), "x_val": x_val, "y_val": labels(x_val), "x_test": x_test}


def test_each_class_takes_the_validation_log_loss_argmin_and_the_folded_linear_is_sklearns(problem) -> None:
    probes = fit_probes(problem["x_train"], problem["y_train"], problem["x_val"], problem["y_val"], seed=SEED)
    layer = nn.Linear(problem["x_train"].shape[1], 3)
    fold_into_linear(layer, probes)
    with torch.no_grad():
        ours = torch.sigmoid(layer(torch.from_numpy(problem["x_test"]))).numpy()
    chosen = set()
    for c, probe in enumerate(probes):
        losses = []
        for setting in GRID:
            model = sklearn_probe(setting, problem["x_train"], problem["y_train"][:, c])
            losses.append(log_loss(problem["y_val"][:, c], model.predict_proba(problem["x_val"])[:, 1]))
        best = int(np.argmin(losses))  # the first minimum: ecg-fix's strict "<"
        assert probe.choice == CHOSEN and probe.setting == GRID[best], c
        assert probe.val_log_loss == pytest.approx(losses[best], rel=1e-12)
        reference = sklearn_probe(GRID[best], problem["x_train"], problem["y_train"][:, c])
        np.testing.assert_allclose(ours[:, c], reference.predict_proba(problem["x_test"])[:, 1], rtol=0, atol=1e-6)
        chosen.add(GRID[best])
    assert len(chosen) > 1, "the classes should not all land on one setting, or per-class choice is untested"


def test_fallbacks_for_one_label_value_in_train_or_validation(problem) -> None:
    y_train, y_val = problem["y_train"].copy(), problem["y_val"].copy()
    y_train[:, 0] = 0  # never positive in training: nothing to fit
    y_val[:, 1] = 1  # always positive in validation: log-loss cannot choose
    probes = fit_probes(problem["x_train"], y_train, problem["x_val"], y_val, seed=SEED)
    constant, default, normal = probes
    assert constant.choice == ONE_TRAIN_LABEL and constant.setting is None and not constant.weight.any()
    assert constant.bias == pytest.approx(np.log((0.5 / 121) / (1 - 0.5 / 121)))  # (0 + 0.5) / (120 + 1)
    assert default.choice == ONE_VAL_LABEL and default.setting == DEFAULT and default.val_log_loss is None
    reference = sklearn_probe(DEFAULT, problem["x_train"], y_train[:, 1])
    layer = nn.Linear(problem["x_train"].shape[1], 3)
    fold_into_linear(layer, probes)
    with torch.no_grad():
        ours = torch.sigmoid(layer(torch.from_numpy(problem["x_test"]))).numpy()
    np.testing.assert_allclose(ours[:, 1], reference.predict_proba(problem["x_test"])[:, 1], atol=1e-6)
    np.testing.assert_allclose(ours[:, 0], 0.5 / 121, rtol=1e-6)
    assert normal.choice == CHOSEN
    no_val = fit_probes(problem["x_train"], problem["y_train"], None, None, seed=SEED)
    assert {(p.setting, p.choice) for p in no_val} == {(DEFAULT, ONE_VAL_LABEL)}
    report = constant.report("164889003")
    assert report == {"class": "164889003", "scale": None, "C": None, "class_weight": None, "val_log_loss": None,
                      "choice": ONE_TRAIN_LABEL, "converged": True}


def test_probe_runs_save_a_model_that_scores_as_the_run_and_reuse_the_cache(demo_home: Path) -> None:
    """Through the experiment runner (pretraining, then two target runs at two training
    fractions): results record each class's choice, the second run reads the embeddings
    the first extracted, and model.pt reloaded by the views scores the test records as
    predictions.npz says."""
    from ecgcore.experiments import run_experiment
    from ecgcore.experiments.execute import prepare_data
    from ecgcore.runs import RunStore
    from ecgcore.views.scoring import load_run

    run_ids = run_experiment(ROOT / "experiments" / "smoke.toml",
                             ['grid.strategy=["embedding_probe"]', "grid.train_fraction=[0.4, 1.0]",
                              "pretrain.epochs=1"])
    store = RunStore()
    targets = [json.loads((store.get(r).path / "results.json").read_text()) for r in run_ids]
    targets = [r for r in targets if r["kind"] == "target"]
    assert [r["train_fraction"] for r in targets] == [0.4, 1.0]
    first, second = (r["phases"][0]["probe"] for r in targets)
    assert first["embeddings"]["key"] == second["embeddings"]["key"]
    assert not first["embeddings"]["from_cache"] and second["embeddings"]["from_cache"]
    assert [c["class"] for c in second["classes"]] == targets[1]["classes"]
    assert all(c["choice"] == CHOSEN or c["choice"] in (ONE_TRAIN_LABEL, ONE_VAL_LABEL) for c in second["classes"])
    assert targets[1]["n_train"] > targets[0]["n_train"] and targets[1]["epochs_run"] == 0
    assert targets[1]["training_notes"][0].startswith("embedding probe")

    run = load_run(targets[1]["run_id"])
    folder = store.get(targets[1]["run_id"])
    predictions = np.load(folder.path / "predictions.npz", allow_pickle=False)
    data = prepare_data(folder.run_config)  # the run's prepared target data, as the run read it
    position = {rid: i for i, rid in enumerate(data.record_ids)}
    rows = np.array([position[str(rid)] for rid in predictions["record_ids"]])
    with torch.no_grad():
        rescored = torch.sigmoid(run.model(torch.from_numpy(data.batch(rows)))).numpy()
    np.testing.assert_allclose(rescored, predictions["y_score"], atol=1e-5)
