"""Config hashes: the identity of a run's *result*, so finished work can be found and reused.

Two configs that would produce the same numbers must get the same hash, whatever
the key order, whether a number was written `1` or `1.0`, and whatever machine
settings ride along (the device, worker counts, free-text notes). The hash is the
first 16 hex characters of the sha256 of a canonical JSON text: keys sorted, no
whitespace, integral floats written as integers, other floats rounded to 12
significant digits (so `0.1 + 0.2` and `0.3` agree), keys in `NON_RESULT_KEYS`
dropped at every depth.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from pathlib import PurePath
from typing import Any

import numpy as np

from ecgcore.errors import EcgcoreError

#: Keys that never change what a run computes, excluded from `config_hash` wherever
#: they appear (top level or nested): where it runs, how many helper processes it
#: uses, how chatty it is, and human notes.
NON_RESULT_KEYS: frozenset[str] = frozenset(
    {"device", "notes", "n_jobs", "num_workers", "progress", "verbose", "tags",
     "data_on_device", "cudnn_benchmark", "compile"}  # the trainer's SPEED_SETTINGS
)

HASH_LENGTH = 16
FLOAT_DIGITS = 12


def _normalise_float(value: float) -> int | float | str:
    """One spelling per number: integral floats become ints; non-finite become strings."""
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if value.is_integer():
        return int(value)
    return float(f"{value:.{FLOAT_DIGITS}g}")


def canonical(value: Any, where: str = "config") -> Any:
    """A plain JSON value with one spelling per meaning (`where` names the key in errors)."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return _normalise_float(value)
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise EcgcoreError(f"{where}: key {key!r} is not a string; configs are JSON objects")
            if key in NON_RESULT_KEYS:
                continue
            shown = key if key.isprintable() else repr(key)  # error messages stay one line
            out[key] = canonical(item, f"{where}.{shown}")
        return out
    if isinstance(value, np.ndarray):
        return [canonical(item, where) for item in value.tolist()]
    if isinstance(value, (list, tuple)):
        return [canonical(item, f"{where}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, (set, frozenset)):
        items = [canonical(item, where) for item in value]
        return sorted(items, key=lambda item: json.dumps(item, sort_keys=True))
    raise EcgcoreError(f"{where}: a {type(value).__name__} cannot be part of a run config (JSON values only)")


def canonical_json(config: Mapping[str, Any]) -> str:
    """The exact text that is hashed (useful to see why two hashes differ)."""
    return json.dumps(canonical(config), sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def config_hash(config: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of `config`, first 16 hex characters."""
    if not isinstance(config, Mapping):
        raise EcgcoreError(f"a run config must be a mapping, not {type(config).__name__}")
    return hashlib.sha256(canonical_json(config).encode("utf-8")).hexdigest()[:HASH_LENGTH]
