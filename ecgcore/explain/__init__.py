"""Attributions: which leads and samples drove a model's probability for one class.

```python
from ecgcore.explain import explain_file, list_methods
e = explain_file(run_id, "A0001.hea", "164889003", method="ig")   # gradcam | ig | occlusion
e.attribution       # (leads, samples) float32 at e.fs, aligned with e.signal (the model's input)
e.lead_importance   # {lead: share}, summing to 1
e.probability       # the run's probability for the class, as `predict` gives it
```

`attribute(model, x, target, method)` is the window-level primitive (x: (1, leads,
samples)); `explain_signal(run, signal, ...)` explains a `Signal` with a `LoadedRun`
(`ecgcore.views.scoring.load_run`), preprocessing it as the run's training data was.
Methods and their conventions are described in `methods.py`, windows in `record.py`.
"""

from ecgcore.explain.methods import (DEFAULT_IG_STEPS, METHODS, AttributionOptions, Method,
                                     attribute, attribution_context, list_methods)
from ecgcore.explain.explain_record import Explanation, explain_file, explain_signal

__all__ = ["DEFAULT_IG_STEPS", "METHODS", "AttributionOptions", "Explanation", "Method",
           "attribute", "attribution_context", "explain_file", "explain_signal", "list_methods"]
