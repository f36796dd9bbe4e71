"""What a model's prediction rests on, said the same way on every page and report.

Every prediction view (Predict, Inspect, the printable report) states the model's
provenance: the run id, the datasets it was trained on and whether each is real or the
embedded synthetic data, the task, and its test macro AUC with the bootstrap CI, beside
RESEARCH_USE. A model trained on synthetic data gets `Provenance.warning`.

Whether a dataset is synthetic is decided by the engine, never guessed by a page
(`ecgcore.runs.data_origin`): the runner records the answer in results.json
(`data_origin`) when the run finishes, so it holds even after the folder moves; for older
runs it is checked now from the dataset folders config.json names, and the line says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ecgcore.runs import RunStore
from ecgcore.runs.data_origin import DatasetOrigin, data_origin, dataset_origin

__all__ = ["RESEARCH_USE", "DatasetOrigin", "Provenance", "data_origin", "dataset_origin",
           "run_provenance"]

RESEARCH_USE = "Research use only, not for diagnosis."


@dataclass(frozen=True)
class Provenance:
    """A finished run as every prediction view introduces it."""

    run_id: str
    kind: str
    arch: str
    strategy: str
    task: str
    target: DatasetOrigin
    source: DatasetOrigin | None
    macro_auc: float | None
    macro_auc_ci: tuple[float, float] | None
    n_test: int | None
    recorded: bool  # data_origin read from results.json (else checked now from config.json)

    @property
    def datasets(self) -> list[DatasetOrigin]:
        return [d for d in (self.source, self.target) if d is not None]

    @property
    def synthetic(self) -> bool:
        """Any of the model's training data is synthetic."""
        return any(d.synthetic for d in self.datasets)

    @property
    def unknown(self) -> list[DatasetOrigin]:
        return [d for d in self.datasets if d.synthetic is None]

    def _trained(self) -> str:
        if self.kind == "pretrain":
            return f"pretrained on {self.target.label}"
        if self.source is not None:
            return f"{self.strategy} from {self.source.label} onto {self.target.label}"
        return f"{self.strategy} on {self.target.label}"

    def _score(self) -> str:
        if self.macro_auc is None:
            return "no test macro AUC recorded"
        text = f"test macro AUC {self.macro_auc:.3f}"
        extra = []
        if self.macro_auc_ci is not None:
            extra.append(f"95 % CI {self.macro_auc_ci[0]:.3f}–{self.macro_auc_ci[1]:.3f}")
        if self.n_test:
            extra.append(f"{self.n_test} test records")
        return f"{text} ({', '.join(extra)})" if extra else text

    def lines(self) -> list[str]:
        """The provenance as short sentences (the report prints one a line)."""
        lines = [f"Model: run {self.run_id}, {self.arch}, {self._trained()}",
                 f"Task {self.task}; {self._score()}"]
        if not self.recorded:
            lines.append("Real or synthetic: checked now (the run predates recording it)")
        return lines

    def line(self) -> str:
        """The provenance in one line (pages)."""
        return ". ".join(self.lines()) + "."

    @property
    def headline(self) -> str:
        """The warning in a few words, for the report's red box (empty when no warning)."""
        if any(d.synthetic for d in self.datasets):
            how = "only" if all(d.synthetic for d in self.datasets) else "partly"
            return f"Trained {how} on synthetic data: its calls mean nothing for a real patient."
        if self.unknown:
            return "Training data not checked to be real: read its calls with care."
        return ""

    @property
    def warning(self) -> str:
        """A prominent warning when the model learnt from synthetic data (or when that
        cannot be told); empty otherwise."""
        synthetic = [d.name for d in self.datasets if d.synthetic]
        if synthetic:
            everything = all(d.synthetic for d in self.datasets)
            how = "only on synthetic data" if everything else "partly on synthetic data"
            return (f"This model was trained {how} ({', '.join(synthetic)}: the embedded demo "
                    "data, not patients' ECGs). Its calls on a real patient's ECG mean nothing "
                    "clinically.")
        if self.unknown:
            names = ", ".join(f"{d.name} ({d.evidence})" for d in self.unknown)
            return f"Whether this model's training data is real could not be checked: {names}."
        return ""


def _ci(value: Any) -> tuple[float, float] | None:
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(
            isinstance(v, (int, float)) for v in value):
        return float(value[0]), float(value[1])
    return None


def run_provenance(run_id: str, store: RunStore | None = None) -> Provenance:
    """The provenance of a finished run from its results.json and config.json."""
    folder = (store or RunStore()).get(run_id)
    results = folder.results() or {}
    config = folder.run_config
    recorded = isinstance(results.get("data_origin"), Mapping)
    origin = results["data_origin"] if recorded else data_origin(config)
    test = results.get("test") or {}
    auc = test.get("macro_auc")
    n_test = results.get("n_test", test.get("n_records"))
    return Provenance(
        run_id=folder.run_id, kind=str(results.get("kind") or config.kind),
        arch=str(results.get("arch") or config.model.arch),
        strategy=str(results.get("strategy") or config.strategy_name),
        task=str(results.get("task") or config.data.task),
        target=DatasetOrigin.from_dict(origin.get("target") or {}),
        source=DatasetOrigin.from_dict(origin["source"]) if origin.get("source") else None,
        macro_auc=float(auc) if isinstance(auc, (int, float)) else None,
        macro_auc_ci=_ci(test.get("macro_auc_ci")),
        n_test=int(n_test) if isinstance(n_test, int) else None,
        recorded=recorded,
    )
