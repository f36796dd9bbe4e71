"""Where this package runs from: a source checkout or an installed copy.

Processes the engine starts (the background worker, job processes on Ray nodes, the app's
downloads) run `python -m ecgcore …`. Installed (`pip install .`), that works from any
folder. Run from a checkout that is not installed (`streamlit run app.py` in the clone), the
child needs the checkout on its path, and the presets live in the checkout's experiments/;
an installed copy carries them as ecgcore/presets/ (setup.py maps the folder).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def source_root() -> Path | None:
    """The checkout this package is imported from (an editable install counts), or None
    when it is an installed copy: a checkout holds pyproject.toml beside the package."""
    root = PACKAGE_DIR.parent
    return root if (root / "pyproject.toml").is_file() and (root / "experiments").is_dir() else None


def presets_dir() -> Path:
    """The folder of the experiment presets (quickstart.toml, smoke.toml, …)."""
    root = source_root()
    return root / "experiments" if root is not None else PACKAGE_DIR / "presets"


def preset(name: str) -> Path:
    """One experiment preset by file name, e.g. `preset("quickstart.toml")`."""
    return presets_dir() / name


def child_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a `python -m ecgcore …` child: `base` (default os.environ) with
    the checkout first on PYTHONPATH when running from one, so the child imports this same
    code whatever its working folder; an installed copy needs nothing added."""
    env = dict(os.environ if base is None else base)
    root = source_root()
    if root is not None:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(root), env.get("PYTHONPATH", "")) if p)
    return env


def child_cwd() -> Path | None:
    """The working folder for a child: the checkout when running from one (as before), else
    None (the caller's own folder)."""
    return source_root()
