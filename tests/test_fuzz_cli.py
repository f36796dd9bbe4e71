"""Property-based fuzzing of the command line: random argv for every registered command.

The promise (RELIABILITY.md): whatever arguments `python -m ecgcore` gets — unknown
options, bad numbers, missing files, paths with spaces, quotes, newlines or unicode —
it either does its job (exit 0) or exits non-zero with ONE line on stderr naming the
input and the reason (argparse's usage errors: its usage text and one error line).
No traceback, nothing written outside the workspace. Runs in-process (main(argv)); no
example can start training, a worker loop or a download: their argv are made invalid
(see `_never_long_work`).
"""

from __future__ import annotations

import argparse
import os
import signal
from pathlib import Path

import pytest
from hypothesis import event, example, given
from hypothesis import strategies as st

from ecgcore.cli import COMMANDS, build_parser, main
from ecgcore.download.catalogue import CATALOGUE, CHECKPOINT_CATALOGUE
from test_fuzz_wfdb import fuzz

TMP = "{TMP}"  # replaced by the test's folder (the current directory during the test)
PATHS = ["{TMP}/missing.toml", "{TMP}/missing.hea", "{TMP}/a b/c d.hea", "{TMP}/é\u202e.toml",
         "{TMP}/x\n.hea", "{TMP}/quote\".toml", "{TMP}/garbage.toml", "{TMP}/garbage.hea",
         "{TMP}/empty_dir", "{TMP}/empty_dir/", "/dev/null", "/nonexistent/x.toml", "missing.csv",
         "-", "", " ", "..", "garbage.toml"]
NUMBERS = ["abc", "", "1e999", "-1", "0", "nan", "inf", "-inf", "1.5", "99999999999999999999",
           "0x10", "--", "1,5", " 3"]
IDS = ["run-does-not-exist", "job-0", "20260101-000000-abcdef", "../../etc/passwd", "' OR 1=1 --",
       "%s", "\x00"]


def _actions(command: str) -> list[argparse.Action]:
    """The arguments the command's parser knows (options, --help and positionals)."""
    parser = build_parser()
    subs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return list(subs.choices[command]._actions)


ACTIONS = {name: _actions(name) for name in COMMANDS}
OPTIONS = {name: sorted(s for a in actions for s in a.option_strings) for name, actions in ACTIONS.items()}
TOKENS = st.one_of(st.sampled_from(PATHS), st.sampled_from(NUMBERS), st.sampled_from(IDS),
                   st.sampled_from(["--unknown", "-x", "--json", "--set", "train.epochs=abc", "=",
                                    "KEY=VALUE", "fs=500", "--option", "ptbxl_superdiagnostic"]),
                   st.text(max_size=10).filter(lambda t: "\x00" not in t))


def _never_long_work(command: str, argv: list[str]) -> list[str]:
    """Arguments that make sure this example cannot start long work: demo-data gets an
    unparsable --scale, worker a --slots below 1, download (and download-checkpoint) no catalogue
    entry (only --list may succeed); run/submit/predict/explain only ever see files that are not valid."""
    if command == "demo-data":
        return [*argv, "--scale", "not-a-number"]
    if command == "worker":
        return [*argv, "--slots", "0"]
    if command == "download":
        return [t for t in argv if t not in CATALOGUE]
    if command == "download-checkpoint":
        return [t for t in argv if t not in CHECKPOINT_CATALOGUE]
    return argv


def _values(action: argparse.Action) -> st.SearchStrategy[str]:
    """Values for one argument: its choices, numbers for int/float, paths for Path, ids
    and text otherwise; always with some that are wrong."""
    if action.choices:
        return st.sampled_from([*map(str, action.choices), "not-a-choice"])
    if action.type in (int, float):
        return st.sampled_from(["1", "2", "0.5", "100", *NUMBERS])
    if action.type is Path:
        return st.sampled_from(PATHS)
    return st.one_of(st.sampled_from([*IDS, *PATHS, "ptbxl_superdiagnostic", "fs=500", "ig"]),
                     st.text(max_size=8))


@st.composite
def parsed_lines(draw: st.DrawFn, command: str) -> list[str]:
    """argv that mostly parses: each option with a value of its kind, the positionals."""
    argv = [command]
    for action in ACTIONS[command]:
        if isinstance(action, argparse._HelpAction):
            continue
        if action.option_strings:
            if not action.required and draw(st.integers(0, 2)):
                continue
            argv.append(draw(st.sampled_from(action.option_strings)))
            if action.nargs != 0 and (action.nargs != "?" or draw(st.booleans())):
                argv.append(draw(_values(action)))
        else:
            count = {None: 1, "?": draw(st.integers(0, 1)), "+": draw(st.integers(1, 2)),
                     "*": draw(st.integers(0, 2))}.get(action.nargs, 1)
            argv += [draw(_values(action)) for _ in range(count)]
    return argv


@st.composite
def command_lines(draw: st.DrawFn) -> list[str]:
    command = draw(st.sampled_from(sorted(COMMANDS)))
    if draw(st.booleans()):
        return _never_long_work(command, draw(parsed_lines(command)))
    tokens = draw(st.lists(st.one_of(st.sampled_from(OPTIONS[command]), TOKENS, TOKENS), max_size=7))
    head = draw(st.sampled_from([[command], [command], [command.upper()], [], ["--json", command]]))
    return _never_long_work(command, [*head, *tokens])


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if "workspace" not in p.parts)


@pytest.fixture()
def cli_dir(workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The test folder as the current directory, with a garbage file and an empty folder."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "garbage.toml").write_bytes(b"\x00\xff[[[ = \n")
    (tmp_path / "garbage.hea").write_text("rec 12 500 abc\n")
    (tmp_path / "empty_dir").mkdir()
    return tmp_path


def _handlers() -> dict[int, object]:
    return {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGPIPE)}


# Found by this test: an input with a line break gave a two-line error message.
@fuzz(600)
@given(command_lines())
@example(["predict", "--run", "{TMP}/x\n.hea", "{TMP}/missing.hea"])
def test_random_argv_exits_cleanly_with_one_line(cli_dir: Path, capsys: pytest.CaptureFixture,
                                                 argv: list[str]) -> None:
    argv = [a.replace(TMP, str(cli_dir)) for a in argv]
    before, handlers = _tree(cli_dir), _handlers()
    capsys.readouterr()
    try:
        code = main(argv)
        usage_error = False
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        code, usage_error = exc.code, True
    finally:
        for signum, handler in handlers.items():  # main() and job-run install handlers
            signal.signal(signum, handler)
    out, err = capsys.readouterr()
    event(f"{argv[0] if argv else '-'}: {'usage error' if usage_error else 'handler'} exit {code}")
    assert "Traceback" not in out + err
    assert _tree(cli_dir) == before, f"{argv} wrote outside the workspace"
    if code == 0:
        return
    assert err.strip(), f"{argv} exited {code} without saying why"
    if usage_error:  # argparse's usage and its error line (which repeats the arguments raw)
        assert code == 2 and "error:" in err
    else:
        assert err.startswith("error: ") and err.rstrip("\n").count("\n") == 0, (argv, err)
    assert os.getcwd() == str(cli_dir)
