"""Self-supervised pretraining streamed in shards runs under torchrun with the code of one
process: two CPU processes (gloo) each read their own shards, DDP keeps the encoders
equal, and both take the same number of steps."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from ecgcore.data.pipeline import TaskDataset

SCRIPT = '''
import json, os
from pathlib import Path
import torch
from ecgcore.data.pipeline import SplitConfig, build_dataset
from ecgcore.data.prepare.config import PrepConfig
from ecgcore.ssl.methods import method_config
from ecgcore.ssl.pretrain import pretrain_encoder
from ecgcore.train import TrainConfig
from ecgcore.train.callbacks import Callback

class Steps(Callback):
    def __init__(self):
        self.steps = 0
    def on_step(self, epoch, step, n_steps):
        self.steps += 1

torch.set_num_threads(1)
ds = build_dataset({data!r}, "ptbxl_superdiagnostic", PrepConfig(fs=100, seconds=10, normalize="standard"),
                   SplitConfig(method="patient", val=0.25, test=0.15, seed=0), {cache!r}, n_jobs=1)
steps = Steps()
method = method_config("simclr", {{"stream": True, "shard_size": 8, "buffer_shards": 2}})  # [pretrain] settings
done = pretrain_encoder("small_cnn", method, ds, TrainConfig(epochs=2, batch_size=4, crop_seconds=2.5), seed=0,
                        checkpoint_dir=Path({out!r}), callbacks=[steps])
rank = os.environ["RANK"]
torch.save(done.backbone.state_dict(), Path({out!r}) / f"rank{{rank}}.pt")
Path({out!r}, f"rank{{rank}}.json").write_text(json.dumps({{"steps": steps.steps, "notes": done.fit.notes}}))
'''


def test_streamed_simclr_pretraining_under_two_process_torchrun(superdiagnostic_ds: TaskDataset,
                                                                tmp_path: Path) -> None:
    ds = superdiagnostic_ds
    script, out = tmp_path / "run.py", tmp_path / "out"
    script.write_text(SCRIPT.format(data=ds.root, cache=str(Path(ds.cache_path).parents[1]), out=str(out)))
    root = str(Path(__file__).parents[1])
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           str(script)], capture_output=True, text=True, check=False, timeout=300, env=env, cwd=root)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]
    states = [torch.load(out / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert states[0].keys() == states[1].keys()
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])  # DDP kept the encoders equal
    assert ranks[0]["steps"] == ranks[1]["steps"] > 0  # every rank the same number of steps
    assert any("streamed in shards" in note for note in ranks[0]["notes"])
