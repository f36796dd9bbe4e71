"""The trainer: one readable loop (`loop.fit`) made of one training epoch (`epoch`), the
optimizer a strategy's plan asks for (`optimizers`) and the loop's state with its
last.pt/best.pt (`state`); its settings (`TrainConfig`), device choice, batches from a
TaskDataset, LR schedules, callbacks, and torchrun support.

    from ecgcore.train import TrainConfig, fit, predict
    result = fit(model, dataset, TrainConfig(epochs=10, crop_seconds=2.5),
                 plan_fn=strategy.plan, checkpoint_dir=run_dir / "checkpoints")
    scores = predict(model, dataset, dataset.split.test, config)
"""

from ecgcore.train.callbacks import Callback, Callbacks, ProgressBar
from ecgcore.train.config import TrainConfig
from ecgcore.train.device import select_device
from ecgcore.train.loop import FitResult, fit, macro_auc, predict

__all__ = ["Callback", "Callbacks", "FitResult", "ProgressBar", "TrainConfig", "fit", "macro_auc",
           "predict", "select_device"]
