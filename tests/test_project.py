"""The set-up promises: README's test command is what CI runs; torch pinned exactly."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _bash_blocks(text: str) -> list[str]:
    return [b.strip() for b in re.findall(r"```bash\n(.*?)```", text, flags=re.S)]


def test_readme_has_exactly_two_setup_commands_and_ci_runs_the_test_one() -> None:
    readme = (ROOT / "README.md").read_text()
    setup = readme.split("## Set-up", 1)[1].split("\n## ", 1)[0]
    blocks = _bash_blocks(setup)
    assert len(blocks) == 2
    app_cmd, test_cmd = blocks
    assert app_cmd.endswith("streamlit run app.py")
    assert "pytest" in test_cmd
    ci = (ROOT / ".ci" / "run").read_text()
    assert test_cmd in ci.splitlines()


def test_torch_is_pinned_exactly_and_installed_first() -> None:
    reqs = (ROOT / "requirements.txt").read_text().splitlines()
    pins = [line for line in reqs if line and not line.startswith("#")]
    assert pins[0] == "torch==2.13.0"
    assert all("==" in line for line in pins), "every runtime dependency is pinned"


def test_streamlit_binds_to_localhost_with_xsrf_on() -> None:
    config = (ROOT / ".streamlit" / "config.toml").read_text()
    assert 'address = "127.0.0.1"' in config
    assert "enableXsrfProtection = true" in config
    assert re.search(r"maxUploadSize = \d+", config)
