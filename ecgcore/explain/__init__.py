"""Attributions: which leads and samples drove a model's probability for one class.

`attribute(model, x, target, method)` is the window-level primitive (x: (1, leads,
samples)); methods and their conventions are described in `methods.py`. A whole record
explained with a finished run (its preprocessing, its windows, its probability) is a view:
`ecgcore.views.explanations` (`explain_file`, `explain_signal`).
"""

from ecgcore.explain.methods import (DEFAULT_IG_STEPS, METHODS, AttributionOptions, Method,
                                     attribute, attribution_context, list_methods)

__all__ = ["DEFAULT_IG_STEPS", "METHODS", "AttributionOptions", "Method", "attribute",
           "attribution_context", "list_methods"]
