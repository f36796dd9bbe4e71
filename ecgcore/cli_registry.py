"""The command line's one registry: each command module registers its commands here with
`@command(...)`; `ecgcore.cli` imports those modules (in the order `--help` lists them) and
builds the parser from `COMMANDS`. Kept apart from `ecgcore.cli` so that command modules
import the registry, never the module that imports them."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

Handler = Callable[[argparse.Namespace], int]
COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Handler]] = {}


def command(name: str, help_text: str, configure: Callable[[argparse.ArgumentParser], None]):
    """Decorator: register a CLI command (its argument set-up and its handler)."""

    def wrap(handler: Handler) -> Handler:
        if name in COMMANDS:
            raise ValueError(f"command {name!r} is registered twice")
        COMMANDS[name] = (help_text, configure, handler)
        return handler

    return wrap


def print_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")
