"""The package's shape: no import cycles, the engine never imports the app's views or
Streamlit, and the installed package runs from any folder.

The import graph is read from the source with `ast` (nothing is imported), so a cycle is
found even where Python's import order happens to hide it today.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "ecgcore"
IN_CI = os.environ.get("CI", "").lower() == "true"


@dataclass(frozen=True)
class Edge:
    """`source` imports `target` at `line`; `local` when the import runs inside a function."""

    source: str
    target: str
    line: int
    local: bool

    def describe(self) -> str:
        where = " (inside a function)" if self.local else ""
        return f"{self.source}:{self.line} -> {self.target}{where}"


def package_modules(package: Path = PACKAGE) -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its `__init__.py`)."""
    modules: dict[str, Path] = {}
    for path in sorted(package.rglob("*.py")):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _absolute(module: str | None, level: int, importer: str, is_package: bool) -> str:
    """The absolute name of `from <level dots><module> import …` written in `importer`."""
    if level == 0:
        return module or ""
    base = importer.split(".") if is_package else importer.split(".")[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([module] if module else []))


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def module_imports(name: str, path: Path, modules: dict[str, Path]) -> list[Edge]:
    """The imports of one module that name a module of the package.

    `import a.b` and `from a.b import name` are edges to `a.b`. `from a.b import c`, where
    `a.b.c` is a module, is an edge to `a.b.c` alone: Python resolves a submodule without
    reading `a.b`'s names, and initialising the parent package first is what every
    `import a.b.c` does, so counting it would flag every package whose `__init__` re-exports
    its modules. Imports under `if TYPE_CHECKING:` never run and are left out."""
    is_package = path.name == "__init__.py"
    edges: list[Edge] = []

    def visit(node: ast.AST, local: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for orelse in child.orelse:
                    visit(orelse, local)
                continue
            inside = local or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                edges.extend(Edge(name, alias.name, child.lineno, inside) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                target = _absolute(child.module, child.level, name, is_package)
                submodules = [f"{target}.{alias.name}" for alias in child.names
                              if f"{target}.{alias.name}" in modules]
                names = [alias for alias in child.names if f"{target}.{alias.name}" not in modules]
                edges.extend(Edge(name, sub, child.lineno, inside) for sub in submodules)
                if names:
                    edges.append(Edge(name, target, child.lineno, inside))
            visit(child, inside)

    visit(ast.parse(path.read_text(), filename=str(path)), False)
    return [edge for edge in edges if edge.target in modules and edge.target != name]


def import_graph(package: Path = PACKAGE) -> dict[str, list[Edge]]:
    modules = package_modules(package)
    return {name: module_imports(name, path, modules) for name, path in modules.items()}


def cycles(graph: dict[str, list[Edge]]) -> list[frozenset[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []
    for start in graph:
        if start in index:
            continue
        work: list[tuple[str, Iterator[Edge]]] = [(start, iter(graph[start]))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, edges = work[-1]
            edge = next(edges, None)
            if edge is not None:
                if edge.target not in index:
                    index[edge.target] = low[edge.target] = len(index)
                    stack.append(edge.target)
                    on_stack.add(edge.target)
                    work.append((edge.target, iter(graph[edge.target])))
                elif edge.target in on_stack:
                    low[node] = min(low[node], index[edge.target])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(frozenset(component))
    return found


def describe_cycle(graph: dict[str, list[Edge]], component: frozenset[str]) -> str:
    lines = [edge.describe() for name in sorted(component) for edge in graph[name] if edge.target in component]
    return "cycle among " + ", ".join(sorted(component)) + ":\n    " + "\n    ".join(lines)


# Cycles present when this test was written, each to be removed by issue 13's refactor; an
# entry no longer needed fails the test, so the list only shrinks.
KNOWN_CYCLES: dict[frozenset[str], str] = {}


def test_import_graph_sees_module_and_function_imports(tmp_path: Path) -> None:
    """The walker itself, on a made-up package: relative, submodule and function-local
    imports become edges, TYPE_CHECKING imports do not, and both cycles are found."""
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("from pkg.sub import helper\n")  # a module: an edge to it alone
    (pkg / "sub" / "__init__.py").write_text("from . import helper\n")
    (pkg / "sub" / "helper.py").write_text("from pkg import names\n")  # a name of pkg: an edge to pkg
    (pkg / "a.py").write_text("def f():\n    from pkg import b\n")
    (pkg / "b.py").write_text("from typing import TYPE_CHECKING\nimport pkg.a\nif TYPE_CHECKING:\n    import pkg.c\n")
    (pkg / "c.py").write_text("from .b import x\n")
    graph = import_graph(pkg)
    assert {(e.target, e.local) for e in graph["pkg.a"]} == {("pkg.b", True)}
    assert {e.target for e in graph["pkg.b"]} == {"pkg.a"}
    assert {e.target for e in graph["pkg.c"]} == {"pkg.b"}
    assert {e.target for e in graph["pkg.sub"]} == {"pkg.sub.helper"}
    assert sorted(map(sorted, cycles(graph))) == [["pkg", "pkg.sub.helper"], ["pkg.a", "pkg.b"]]


def test_no_import_cycles() -> None:
    """No cycle in ecgcore's imports, counting imports inside functions too (a lazy import
    that closes a loop hides the cycle, it does not remove it)."""
    graph = import_graph()
    found = set(cycles(graph))
    new = [describe_cycle(graph, c) for c in found if c not in KNOWN_CYCLES]
    gone = [", ".join(sorted(c)) for c in KNOWN_CYCLES if c not in found]
    assert not new, "import cycles:\n" + "\n".join(new)
    assert not gone, "no longer a cycle, remove from KNOWN_CYCLES: " + "; ".join(gone)


# The engine: everything but the app's views and the command line that fronts both.
FRONT_ENDS = ("ecgcore.views", "ecgcore.cli", "ecgcore.cli_registry", "ecgcore.cli_queue", "ecgcore.cli_compare",
              "ecgcore.__main__")
# Engine modules that import a view when this test was written (issue 13 moves the code
# they use into the engine); an entry no longer needed fails the test.
KNOWN_VIEW_IMPORTS: set[tuple[str, str]] = set()


def _is_front_end(module: str) -> bool:
    return any(module == front or module.startswith(front + ".") for front in FRONT_ENDS)


def _streamlit_imports(path: Path) -> list[int]:
    lines = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level:
            names = [node.module or ""]
        else:
            continue
        if any(name.split(".")[0] == "streamlit" for name in names):
            lines.append(node.lineno)
    return lines


def test_engine_imports_neither_views_nor_streamlit() -> None:
    """The engine (data, models, transfer, train, evaluate, runs, jobs, experiments,
    download, explain and the top-level helpers) runs without the app: it imports nothing
    from ecgcore.views and never Streamlit."""
    graph = import_graph()
    modules = package_modules()
    engine = [name for name in graph if not _is_front_end(name)]
    assert {"ecgcore.data", "ecgcore.train", "ecgcore.jobs", "ecgcore.explain"} <= set(engine)
    found = {(name, edge.target): edge for name in engine for edge in graph[name]
             if edge.target.startswith("ecgcore.views")}
    new = [edge.describe() for key, edge in sorted(found.items()) if key not in KNOWN_VIEW_IMPORTS]
    gone = sorted(f"{a} -> {b}" for a, b in KNOWN_VIEW_IMPORTS - set(found))
    streamlit = [f"{name}:{line}" for name in engine for line in _streamlit_imports(modules[name])]
    assert not new, "engine modules import views:\n" + "\n".join(new)
    assert not gone, "no longer imported, remove from KNOWN_VIEW_IMPORTS: " + "; ".join(gone)
    assert not streamlit, "engine modules import streamlit: " + ", ".join(streamlit)


def _without_checkout_on_path() -> dict[str, str]:
    """This environment without PYTHONPATH: the child finds ecgcore only if it is installed."""
    return {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}


def test_python_m_ecgcore_runs_outside_the_checkout(tmp_path: Path) -> None:
    """`pip install -e .` (the README's test command) makes `python -m ecgcore` work from
    any folder, not only the repository root."""
    done = subprocess.run([sys.executable, "-m", "ecgcore", "--help"], cwd=tmp_path, capture_output=True,
                          text=True, env=_without_checkout_on_path(), timeout=120)
    assert done.returncode == 0, done.stderr
    assert "demo-data" in done.stdout and "job-run" in done.stdout


def _console_script() -> str | None:
    found = shutil.which("ecgcore")
    if found:
        return found
    beside = Path(sysconfig.get_path("scripts")) / "ecgcore"
    return str(beside) if beside.is_file() else None


def test_ecgcore_console_command(tmp_path: Path) -> None:
    """The `ecgcore` command runs the same main as `python -m ecgcore`."""
    script = _console_script()
    if script is None:
        if IN_CI:
            pytest.fail("the `ecgcore` command is not installed (pip install -e .)")
        pytest.skip("the `ecgcore` command is not installed (pip install -e .)")
    done = subprocess.run([script, "--help"], cwd=tmp_path, capture_output=True, text=True,
                          env=_without_checkout_on_path(), timeout=120)
    module = subprocess.run([sys.executable, "-m", "ecgcore", "--help"], cwd=tmp_path, capture_output=True,
                            text=True, env=_without_checkout_on_path(), timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout == module.stdout


def _build_wheel(tmp_path: Path) -> tuple[Path, Path]:
    """A wheel of this checkout built from a copy (the build writes build/ beside the
    sources); returns the wheel and the copy."""
    pytest.importorskip("setuptools", reason="building the wheel needs setuptools (requirements-dev.txt)")
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md", "requirements.txt"):
        shutil.copy2(REPO / name, source / name)
    for folder in ("ecgcore", "experiments"):
        shutil.copytree(REPO / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__"))
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                           "--no-index", "-q", "-w", str(tmp_path / "dist"), str(source)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    [wheel] = (tmp_path / "dist").glob("ecgcore-*.whl")
    return wheel, source


def test_installed_copy_runs_from_any_folder_with_its_presets(tmp_path: Path) -> None:
    """`pip install .` installs a copy without the checkout: the wheel carries every
    package, the presets (found by `package_paths.preset`) and the console command, and
    its children get no checkout on their path or as their folder."""
    wheel, source = _build_wheel(tmp_path)
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:  # a pure-Python wheel unpacked is its install
        archive.extractall(site)
        entry_points = archive.read(next(n for n in archive.namelist() if n.endswith("entry_points.txt")))
    assert "ecgcore = ecgcore.cli:main" in entry_points.decode()
    shipped = {p.relative_to(site).as_posix() for p in (site / "ecgcore").rglob("*.py")}
    assert shipped == {p.relative_to(source).as_posix() for p in (source / "ecgcore").rglob("*.py")}
    assert sorted(p.name for p in (site / "ecgcore" / "presets").glob("*.toml")) == \
        sorted(p.name for p in (source / "experiments").glob("*.toml"))
    probe = ("import json, ecgcore, ecgcore.package_paths as p\n"
             "from ecgcore.views.launch.quickstart import QUICKSTART, grid_summary\n"
             "print(json.dumps({'file': ecgcore.__file__, 'root': str(p.source_root()), 'cwd': str(p.child_cwd()),"
             " 'quickstart': str(QUICKSTART), 'name': grid_summary().name,"
             " 'pythonpath': p.child_env({}).get('PYTHONPATH')}))")
    env = {**_without_checkout_on_path(), "PYTHONPATH": str(site)}
    done = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True,
                          env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    facts = json.loads(done.stdout)
    assert facts == {"file": str(site / "ecgcore" / "__init__.py"), "root": "None", "cwd": "None",
                     "quickstart": str(site / "ecgcore" / "presets" / "quickstart.toml"), "name": "quickstart",
                     "pythonpath": None}


def test_a_checkout_puts_itself_on_the_childs_path() -> None:
    """Run from this checkout, children of `python -m ecgcore` import this same code."""
    from ecgcore import package_paths

    assert package_paths.source_root() == REPO
    assert package_paths.preset("smoke.toml") == REPO / "experiments" / "smoke.toml"
    env = package_paths.child_env({"PYTHONPATH": "/elsewhere", "KEEP": "1"})
    assert env == {"PYTHONPATH": os.pathsep.join([str(REPO), "/elsewhere"]), "KEEP": "1"}
    assert package_paths.child_env({})["PYTHONPATH"] == str(REPO)
