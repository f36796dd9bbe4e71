"""Locked down by default (issue 8, item 4): each promise with a test that can fail.

Promises proved elsewhere (referenced, not repeated):
- oversized uploads refused, zip members with absolute paths / `..` / symlinks refused:
  tests/test_uploads.py::test_bad_uploads_are_refused_with_a_message;
  upload limit = Streamlit's maxUploadSize: tests/test_uploads.py::test_size_limit_matches_the_streamlit_upload_limit
- model files load with weights_only=True, a hostile pickle in a .pt is refused without
  running: tests/test_checkpoint.py::test_files_that_are_not_ours_are_refused
- unknown experiment keys refused: tests/test_experiment_files.py::test_bad_files_get_one_clear_line
- no page renders before the password when one is configured: tests/test_auth.py
"""

from __future__ import annotations

import ast
import json
import os
import socket
import sqlite3
import subprocess
import sys
import tomllib
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from ecgcore.data.synthetic import write_demo_data
from ecgcore.experiments.run_plan import expand
from ecgcore.experiments.spec import ExperimentError, load_experiment
from ecgcore.views.uploads.safety import MAX_UPLOAD_BYTES, MB
from conftest import TINY_RUN_SETTINGS
from browser import REPO, app_env, streamlit_server

CONFIG = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text())
PRODUCT_CODE = [*sorted((REPO / "ecgcore").rglob("*.py")), *sorted((REPO / "pages").rglob("*.py")),
                REPO / "app.py", REPO / "login_gate.py"]


# --- the server: loopback only, XSRF on, upload limit ---------------------------------------

def test_config_locks_the_server_down() -> None:
    server = CONFIG["server"]
    assert server["address"] == "127.0.0.1"
    assert server["enableXsrfProtection"] is True
    assert server.get("enableCORS", True) is True, "CORS protection must not be turned off"
    assert server["maxUploadSize"] * MB == MAX_UPLOAD_BYTES


def test_secrets_file_is_never_committed() -> None:
    ignored = subprocess.run(["git", "check-ignore", "-q", ".streamlit/secrets.toml"], cwd=REPO, check=False)
    assert ignored.returncode == 0, ".streamlit/secrets.toml must be in .gitignore"
    tracked = subprocess.run(["git", "ls-files", "--", "*secrets.toml"], cwd=REPO, capture_output=True,
                             text=True, check=True)
    assert tracked.stdout == ""


def _listening(port: int) -> list[str]:
    """Local addresses of the sockets listening on `port` (from /proc/net/tcp and tcp6)."""
    found = []
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        if not Path(table).exists():
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A = LISTEN
                raw = bytes.fromhex(address)
                words = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))  # host-order words
                found.append(socket.inet_ntop(socket.AF_INET if width == 8 else socket.AF_INET6, words))
    return found


def _outside_address() -> str | None:
    """One of this machine's non-loopback IPv4 addresses, if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("10.255.255.255", 1))  # no packet is sent for UDP connect
            address = probe.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") or address == "0.0.0.0" else address


def _put(url: str, headers: dict[str, str], body: bytes = b"x") -> int:
    boundary = "ecgcoreboundary"
    payload = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.csv\"\r\n"
               f"Content-Type: text/csv\r\n\r\n").encode() + body + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(url, data=payload, method="PUT", headers={
        "Content-Type": f"multipart/form-data; boundary={boundary}", **headers})
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status
    except urllib.error.HTTPError as error:
        return error.code


def test_server_listens_on_loopback_only_and_refuses_uploads_without_xsrf(tmp_path: Path) -> None:
    """`streamlit run app.py` with the repo's .streamlit/config.toml (no address on the command line)."""
    env = app_env(tmp_path / "ws", HOME=str(tmp_path))  # no ~/.streamlit settings of this machine
    with streamlit_server(env, tmp_path / "streamlit.log", args=()) as url:
        port = int(url.rsplit(":", 1)[1])
        addresses = _listening(port)
        assert addresses, f"nothing listens on port {port}"
        assert set(addresses) <= {"127.0.0.1", "::1"}, f"listening on {addresses}"
        outside = _outside_address()
        if outside is not None:
            with pytest.raises(OSError):
                socket.create_connection((outside, port), timeout=3).close()

        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=10) as reply:  # sets the XSRF cookie
            cookie = next(v.split(";")[0] for k, v in reply.headers.items()
                          if k.lower() == "set-cookie" and v.startswith("_streamlit_xsrf="))
        upload = f"{url}/_stcore/upload_file/some-session/some-file"
        assert _put(upload, {}) == 403  # no cookie, no token
        assert _put(upload, {"Cookie": cookie}) == 403  # cookie but no token header
        assert _put(upload, {"Cookie": cookie, "X-Xsrftoken": "2|00|00|0"}) == 403  # wrong token
        token = cookie.split("=", 1)[1]
        # Control: with the right token the request passes XSRF and fails on the session instead.
        assert _put(upload, {"Cookie": cookie, "X-Xsrftoken": token}) == 400


# --- nothing user-supplied is unpickled or evaluated ----------------------------------------

# Modules whose loaders run code from the bytes they read.
UNPICKLING_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "marshal", "shelve"}
# Calls that run code from a string. runpy only ever runs app.py (pages/__init__.py).
# (eval, exec, compile and __import__ as builtins; `model.eval()` and `re.compile` are fine.)
BUILTIN_EVALUATORS = {"eval", "exec", "compile", "__import__"}
EVALUATING_CALLS = {"import_module", "run_path", "run_module", "read_pickle", "literal_eval"}
ALLOWED = {
    ("pages/__init__.py", "run_path"): "runs the repo's own app.py, never a user path",
    ("ecgcore/data/sources/ptbxl.py", "literal_eval"): "parses a dict literal of numbers, no code",
}


def _keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _is_true(node: ast.expr | None) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def unsafe_loads(source: str) -> list[tuple[int, str]]:
    """(line, what) for every import or call in `source` that could unpickle or evaluate data."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names] + ([node.module] if isinstance(node, ast.ImportFrom) else [])
            found += [(node.lineno, f"import {n}") for n in names
                      if n and n.split(".")[0] in UNPICKLING_MODULES]
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        owner = getattr(func.value, "id", "") if isinstance(func, ast.Attribute) else ""
        if name in EVALUATING_CALLS or (name in BUILTIN_EVALUATORS and (isinstance(func, ast.Name) or owner == "builtins")):
            found.append((node.lineno, name))
        elif name == "load" and owner == "torch" and not _is_true(_keyword(node, "weights_only")):
            found.append((node.lineno, "torch.load without weights_only=True"))
        elif name == "load" and owner in {"np", "numpy"} and _keyword(node, "allow_pickle") is not None \
                and not (isinstance(_keyword(node, "allow_pickle"), ast.Constant)
                         and _keyword(node, "allow_pickle").value is False):
            found.append((node.lineno, "np.load with allow_pickle"))
        elif name in {"load", "loads"} and owner in {"joblib", "yaml", *UNPICKLING_MODULES}:
            found.append((node.lineno, f"{owner}.{name}"))
        elif name in {"Unpickler", "unsafe_load", "full_load"}:
            found.append((node.lineno, name))
    return found


def test_the_checker_catches_every_kind_of_unsafe_load() -> None:
    source = "\n".join([
        "import pickle", "from dill import loads", "torch.load(p)", "torch.load(p, weights_only=False)",
        "np.load(p, allow_pickle=True)", "joblib.load(p)", "eval(s)", "exec(s)",
        "importlib.import_module(name)", "yaml.load(s)", "pd.read_pickle(p)",
        # safe ones, not reported:
        "torch.load(p, weights_only=True)", "np.load(p)", "np.load(p, allow_pickle=False)",
        "json.loads(s)", "tomllib.loads(s)", "model.eval()", "re.compile(s)", "m.to(d).eval()",
    ])
    assert [line for line, _ in unsafe_loads(source)] == list(range(1, 12))


def test_product_code_never_unpickles_or_evaluates() -> None:
    assert len(PRODUCT_CODE) > 50
    problems = []
    for path in PRODUCT_CODE:
        relative = path.relative_to(REPO).as_posix()
        for line, what in unsafe_loads(path.read_text()):
            if (relative, what) not in ALLOWED:
                problems.append(f"{relative}:{line}: {what}")
    assert problems == []


def test_experiment_values_are_data_not_code(tmp_path: Path) -> None:
    """A value that looks like code is a string, refused by name (the schema), never run."""
    marker = tmp_path / "ran"
    hostile = (REPO / "experiments" / "smoke.toml").read_text().replace(
        'strategy = ["scratch", "finetune"]',
        f"strategy = [\"__import__('pathlib').Path('{marker}').touch()\"]")
    path = tmp_path / "hostile.toml"
    path.write_text(hostile)
    config = load_experiment(path)  # parsed as data
    assert config["grid"]["strategy"] == [f"__import__('pathlib').Path('{marker}').touch()"]
    with pytest.raises(ExperimentError, match="unknown strategy"):
        expand(config, strict=False)
    with pytest.raises(ExperimentError, match=r"unknown key\(s\) __class__"):
        load_experiment(path, ["__class__='os.system'"])
    with pytest.raises(ExperimentError, match=r"TrainConfig: unknown settings \['__class__'\]"):
        expand(load_experiment(path, ["train.__class__='os.system'", "grid.strategy=['scratch']"]),
               strict=False)
    assert not marker.exists()


# --- configs and logs never hold secrets -------------------------------------------------------

SECRETS = {"AWS_SECRET_ACCESS_KEY": "aws-secret-4f1c9e27b0", "ECGCORE_DB_PASSWORD": "db-pass-8e3a51d6c2",
           "HF_TOKEN": "hf-token-93b7c0e4a1"}
FILE_SECRET = "secrets-toml-2d6f8a4c1e"


def test_no_secret_reaches_run_files_job_rows_or_logs(tmp_path: Path) -> None:
    home = tmp_path / "ws"
    write_demo_data(home / "datasets", seed=0, scale=0.1)
    cwd = tmp_path / "deploy"  # a deployment folder with its Streamlit secrets
    (cwd / ".streamlit").mkdir(parents=True)
    (cwd / ".streamlit" / "secrets.toml").write_text(
        f'[password_gate]\nsha256 = "{FILE_SECRET}"\n[connections]\npassword = "{FILE_SECRET}"\n')
    env = {**os.environ, **SECRETS, "ECGCORE_HOME": str(home), "ECGCORE_AUTO_WORKER": "0",
           "PYTHONPATH": str(REPO)}

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "ecgcore", *args], capture_output=True, text=True,
                              cwd=cwd, env=env, timeout=600)

    submitted = cli("submit", str(REPO / "experiments" / "smoke.toml"), *TINY_RUN_SETTINGS, "--json")
    assert submitted.returncode == 0, submitted.stderr
    (job_id,) = json.loads(submitted.stdout)
    worker = cli("worker", "--once", "--slots", "1")
    assert worker.returncode == 0, worker.stderr
    listing = cli("jobs", "--json")
    (job,) = json.loads(listing.stdout)
    assert job["state"] == "done", job
    run = home / "runs" / job["run_id"]
    for name in ("config.json", "results.json", "log.txt", "model.pt"):
        assert (run / name).is_file(), name

    outputs = {"submit": submitted.stdout + submitted.stderr, "worker": worker.stdout + worker.stderr,
               "jobs --json": listing.stdout, "logs": cli("logs", job_id).stdout}
    with sqlite3.connect(home / "store.sqlite") as db:
        rows = [row for (table,) in db.execute("select name from sqlite_master where type='table'")
                for row in db.execute(f"select * from {table}")]  # noqa: S608 - names from sqlite itself
    outputs["store.sqlite rows"] = repr(rows)
    for path in home.rglob("*"):
        if path.is_file() and "datasets" not in path.relative_to(home).parts:
            outputs[str(path.relative_to(home))] = path.read_bytes().decode("latin-1")
    assert "config.json" in "".join(outputs) and outputs["logs"].strip()
    for secret in [*SECRETS.values(), FILE_SECRET]:
        leaks = [where for where, text in outputs.items() if secret in text]
        assert leaks == [], f"{secret} found in {leaks}"
