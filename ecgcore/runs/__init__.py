"""The run store: one folder per run (the truth) plus an SQLite index (a cache of the folders).

```python
from ecgcore.runs import RunStore, config_hash
store = RunStore()                       # $ECGCORE_HOME
run = store.create(config)               # runs/<run_id>/config.json, status "running"
run.append_history({"epoch": 1, "train_loss": 0.4, ...})
run.write_predictions(ids, y_true, y_score, classes); run.save_model(checkpoint)
store.finish(run.run_id, results)        # results.json, status "done"
store.find_done(config_hash(config))     # reuse a finished run with the same config
```
"""

from ecgcore.runs.folder import (
    HISTORY_COLUMNS,
    PREDICTION_KEYS,
    RUN_FILES,
    RunFolder,
)
from ecgcore.runs.hashing import NON_RESULT_KEYS, canonical_json, config_hash
from ecgcore.runs.store import (
    INDEX_COLUMNS,
    LIST_COLUMNS,
    RESULT_KEYS,
    STATUSES,
    TEST_KEYS,
    RunStore,
)

__all__ = [
    "HISTORY_COLUMNS", "INDEX_COLUMNS", "LIST_COLUMNS", "NON_RESULT_KEYS", "PREDICTION_KEYS",
    "RESULT_KEYS", "RUN_FILES", "STATUSES", "TEST_KEYS", "RunFolder", "RunStore",
    "canonical_json", "config_hash",
]
