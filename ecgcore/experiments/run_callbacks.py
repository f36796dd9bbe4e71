"""Trainer callbacks that write into a run's folder while it trains: one history.csv row
per epoch, and (when the experiment asks) the test split scored after every epoch."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd
import torch

from ecgcore.data.pipeline import TaskDataset
from ecgcore.evaluate import macro_auc
from ecgcore.evaluate.metrics import binarize, f1_prevalence_weighted
from ecgcore.runs import RunFolder
from ecgcore.train import TrainConfig, predict
from ecgcore.train.callbacks import Callback

log = logging.getLogger(__name__)


class HistoryWriter(Callback):
    """One history.csv row per epoch, as soon as the epoch ends."""

    def __init__(self, folder: RunFolder) -> None:
        self.folder = folder

    def on_epoch_end(self, row: dict[str, Any]) -> None:
        self.folder.append_history(row)
        log.debug("epoch %s", ", ".join(f"{k}={v}" for k, v in row.items()))


class TestEveryEpoch(Callback):
    """Scores the test split after every epoch into test_by_epoch.csv (epoch, f1_weighted
    at 0.5, macro_auc). Nguyen & Do report the best test F1 over their epochs — model
    selection on the test set — so a paper-exact run can show that number beside its
    honest one (the last or best-validation epoch's, in `test`). The file is appended to,
    so a resumed run keeps its earlier epochs."""

    __test__ = False  # not a pytest test class, whatever its name says

    FILE = "test_by_epoch.csv"
    NOTE = ("best epoch chosen on the test set, as Nguyen & Do report it: optimistic; "
            "the run's own result is `test`")

    def __init__(self, model: torch.nn.Module, data: TaskDataset, config: TrainConfig,
                 folder: RunFolder) -> None:
        self.model, self.data, self.config, self.folder = model, data, config, folder

    def on_epoch_end(self, row: dict[str, Any]) -> None:
        test = self.data.split.test
        scores = predict(self.model, self.data, test, self.config)
        truth = self.data.y[test]
        f1 = f1_prevalence_weighted(truth, binarize(scores))
        path = self.folder.path / self.FILE
        line = f"{row['epoch']},{f1:.6f},{macro_auc(truth, scores):.6f}\n"
        with path.open("a", encoding="utf-8") as fh:
            if fh.tell() == 0:
                fh.write("epoch,f1_weighted,macro_auc\n")
            fh.write(line)

    @classmethod
    def summary(cls, folder: RunFolder) -> dict[str, Any]:
        """results.json's `test_by_epoch`: the best test F1 and its epoch, every epoch's numbers."""
        path = folder.path / cls.FILE
        if not path.is_file():
            return {"note": cls.NOTE, "epochs": []}
        table = pd.read_csv(path).drop_duplicates("epoch", keep="last").sort_values("epoch")
        best = table.loc[table["f1_weighted"].idxmax()]
        return {"note": cls.NOTE, "best_f1_weighted": float(best["f1_weighted"]),
                "best_epoch": int(best["epoch"]), "epochs": table["epoch"].astype(int).tolist(),
                "f1_weighted": table["f1_weighted"].astype(float).round(6).tolist(),
                "macro_auc": table["macro_auc"].astype(float).round(6).tolist()}
