"""The demo checkpoints of the embedded default: small foundation-model-shaped encoders
pretrained here on the synthetic source, written in their published file formats and
registered like any downloaded checkpoint.

No checkpoint can be downloaded on the embedded default, yet the checkpoint code path
(file format, converter, SHA-256 registry, input contract, probes) must run end to end.
So each demo checkpoint is made the way a foundation model is: a supervised pretraining
run on every label of the synthetic source (an ordinary run of the store, so its history
and data are on disk), its weights exported with `FoundationModel.export` to the file the
real model ships as (ECGFounder's `{"state_dict"}`, ECG-JEPA's `{"encoder"}`), and that
file registered with `add_checkpoint`, which converts and checks it as it would the real
one. The pretraining run's id is in the registry record's provenance.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from ecgcore import workspace
from ecgcore.checkpoint import write_torch_atomic
from ecgcore.data.pipeline import SplitConfig
from ecgcore.data.prepare import PrepConfig
from ecgcore.errors import EcgcoreError
from ecgcore.experiments.execute import execute
from ecgcore.experiments.run_plan import RunSpec, prepared_for
from ecgcore.foundation.catalogue import FOUNDATION_MODELS
from ecgcore.foundation.checkpoints import (
    RegisteredCheckpoint,
    add_checkpoint,
    get_checkpoint,
)
from ecgcore.models.registry import model_from
from ecgcore.runs import RunStore, config_hash
from ecgcore.runs.run_config import DataConfig, ModelConfig, RunConfig
from ecgcore.train import TrainConfig

log = logging.getLogger(__name__)

#: The synthetic site the demo checkpoints are pretrained on (never the target site).
DEMO_SOURCE = "source_ptbxl"


@dataclass(frozen=True)
class DemoRecipe:
    """How one demo checkpoint is pretrained: every label of the synthetic source with at
    least `min_positives` records, its own official folds, this training."""

    epochs: int
    lr: float
    batch_size: int = 64
    min_positives: int = 20
    seed: int = 0


DEMO_RECIPES: dict[str, DemoRecipe] = {
    "demo_net1d": DemoRecipe(epochs=12, lr=3e-3),
    "demo_vit": DemoRecipe(epochs=12, lr=1e-3),
}


def demo_pretraining(name: str, source_dataset: str) -> RunSpec:
    """The pretraining run a demo checkpoint is exported from (its input prepared by the
    architecture's input contract, as every run of that architecture)."""
    recipe, arch = DEMO_RECIPES[name], FOUNDATION_MODELS[name].arch
    config = RunConfig(
        kind="pretrain", experiment=f"demo checkpoint {name}", model=ModelConfig(arch), seed=recipe.seed,
        data=DataConfig(source_dataset, task="dataset_labels", min_positives=recipe.min_positives),
        prep=prepared_for(arch, PrepConfig()), split=SplitConfig(method="auto", seed=recipe.seed),
        train=TrainConfig(epochs=recipe.epochs, lr=recipe.lr, batch_size=recipe.batch_size, seed=recipe.seed))
    return RunSpec(config, config_hash(config.to_dict()))


def make_demo_checkpoint(name: str, source_dataset: str, store: RunStore | None = None) -> RegisteredCheckpoint:
    """Pretrain (or reuse the finished pretraining of) demo checkpoint `name`, write it in
    its model's published format under the workspace's checkpoints folder and register it."""
    if name not in DEMO_RECIPES:
        raise EcgcoreError(f"{name!r} is not a demo checkpoint; demo checkpoints: {', '.join(DEMO_RECIPES)}")
    store = store or RunStore()
    entry = FOUNDATION_MODELS[name]
    log.info("making demo checkpoint %s: %s pretrained on the synthetic source", name, entry.arch)
    run_id = execute(demo_pretraining(name, source_dataset), store)
    model = model_from(store.get(run_id).load_model())
    path = write_torch_atomic(entry.export(model), workspace.checkpoints_dir() / "files" / f"{name}.pt")
    record = add_checkpoint(path, model=name, name=name,
                            note=f"Exported from pretraining run {run_id} of this workspace.")
    log.info("registered demo checkpoint %s (sha256 %s, from run %s)", name, record.sha256[:12], run_id)
    return record


def ensure_demo_checkpoints(names: Iterable[str], source_dataset: str) -> None:
    """Make each named demo checkpoint that is not registered yet (other names are left
    alone: a real checkpoint must be downloaded and registered by the user)."""
    for name in dict.fromkeys(names):
        if name not in DEMO_RECIPES:
            continue
        try:
            get_checkpoint(name)
        except EcgcoreError:
            make_demo_checkpoint(name, source_dataset)
