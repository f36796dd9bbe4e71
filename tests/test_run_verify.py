"""Checksums recorded when a run finishes (checksums.json, written last), checking run
folders and the store against them, the `verify` command, and a failed model write (a
real EFBIG from RLIMIT_FSIZE) that leaves the previous file intact and no temp file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from test_runs import CLASSES, CONFIG, finished_run, results_for, tiny_checkpoint

from ecgcore.errors import EcgcoreError
from ecgcore.runs import RunStore
from ecgcore.runs.verify_runs import MANIFEST_FILE, file_digest, read_manifest

ROOT = Path(__file__).resolve().parents[1]


def _full_run(store: RunStore) -> str:
    run = store.create(dict(CONFIG))
    run.append_history({"epoch": 0, "train_loss": 0.7, "val_loss": 0.6, "val_macro_auc": 0.7, "lr": 1e-3,
                        "seconds": 1.0})
    run.write_predictions(["a", "b"], np.array([[1, 0, 0], [0, 1, 1]]), np.full((2, 3), 0.5), CLASSES)
    run.save_model(tiny_checkpoint())
    store.finish(run.run_id, results_for(run.run_id))
    return run.run_id


def _cli(home: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ecgcore", *args], check=False, cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "ECGCORE_HOME": str(home)}, timeout=120)


def test_finish_records_every_final_file_and_the_folder_verifies(workspace: Path) -> None:
    store = RunStore()
    run = store.get(_full_run(store))
    manifest = read_manifest(run.path)
    assert manifest is not None and manifest["run_id"] == run.run_id
    assert sorted(manifest["files"]) == ["config.json", "history.csv", "model.pt", "predictions.npz",
                                         "results.json"], "log.txt grows after finishing: not covered"
    for name, recorded in manifest["files"].items():
        assert recorded == file_digest(run.path / name), name
    assert manifest["created"] == run.results()["finished"]
    run.log("a note appended after finishing")
    assert run.verify() == [], "log.txt may grow"
    assert store.verify_all() == {run.run_id: []}


@pytest.mark.parametrize("damage, expected", [
    (lambda p: p.joinpath("model.pt").write_bytes(p.joinpath("model.pt").read_bytes()[:-7]), "model.pt has"),
    (lambda p: p.joinpath("history.csv").write_text(
        p.joinpath("history.csv").read_text().replace("0.7", "0.9")), "history.csv changed after"),
    (lambda p: p.joinpath("predictions.npz").unlink(), "predictions.npz is missing"),
    (lambda p: p.joinpath(MANIFEST_FILE).write_text("{"), "not valid JSON"),
    (lambda p: p.joinpath(MANIFEST_FILE).unlink(), "finished but has no checksums.json"),
])
def test_any_change_after_finishing_is_a_problem(workspace: Path, damage, expected: str) -> None:
    store = RunStore()
    run_id = _full_run(store)
    other = _full_run(store)
    damage(store.get(run_id).path)
    problems = store.get(run_id).verify()
    assert len(problems) == 1 and expected in problems[0], problems
    report = store.verify_all()
    assert report[other] == [] and report[run_id] == problems


def test_unfinished_and_failed_runs_claim_nothing_and_finished_runs_are_never_rewritten(workspace: Path) -> None:
    store = RunStore()
    running = store.create({**CONFIG, "seed": 10})
    failed = store.create({**CONFIG, "seed": 11})
    store.fail(failed.run_id, "OSError: disk full")
    assert running.verify() == [] and failed.verify() == []
    assert not running.manifest_path.exists() and not failed.manifest_path.exists()

    done = finished_run(store)
    with pytest.raises(EcgcoreError, match="already finished"):
        store.finish(done, results_for(done, auc=0.99))
    with pytest.raises(EcgcoreError, match="already finished"):
        store.fail(done, "late failure")
    assert store.get(done).results()["test"]["macro_auc"] == 0.81 and store.get(done).verify() == []

    # A manifest on a run that is not done is itself a problem.
    failed.manifest_path.write_text(store.get(done).manifest_path.read_text())
    assert any("says status 'failed'" in p for p in failed.verify())


def test_store_level_problems_and_index_repair(workspace: Path) -> None:
    """The index is checked against the folders; a run finished on disk whose process died
    before updating the index (still "running" there) is repaired by `status`."""
    store = RunStore()
    done = finished_run(store)
    gone = finished_run(store, {**CONFIG, "seed": 20})
    for path in (store.runs_dir / gone).iterdir():
        path.unlink()
    (store.runs_dir / gone).rmdir()
    report = store.verify_all()
    assert report[done] == [] and "no run folder" in report[gone][0]

    # Finished on disk, index still "running": the folder wins.
    run = store.create({**CONFIG, "seed": 21})
    results = {**results_for(run.run_id), "run_id": run.run_id, "status": "done", "finished": "x"}
    run.write_results(results)
    run.write_manifest("x")
    assert store._index_row(run.run_id)["status"] == "running"
    assert store.status(run.run_id) == "done"
    assert store._index_row(run.run_id)["status"] == "done"
    assert store.find_done(store._index_row(run.run_id)["config_hash"]) is None, "no model.pt: not reusable"


def test_verify_command_exit_codes_and_json(workspace: Path) -> None:
    store = RunStore()
    good, bad = _full_run(store), _full_run(store)
    first = _cli(workspace, "verify")
    assert first.returncode == 0, first.stderr
    assert f"{good}: ok" in first.stdout and "2 run(s) checked, 0 with problems" in first.stderr
    (store.runs_dir / bad / "results.json").write_text(
        (store.runs_dir / bad / "results.json").read_text().replace('"done"', '"done" '))
    listed = _cli(workspace, "verify", "--json")
    assert listed.returncode == 1
    rows = {row["run_id"]: row for row in json.loads(listed.stdout)}
    assert rows[good] == {"run_id": good, "status": "done", "ok": True, "problems": []}
    assert not rows[bad]["ok"] and "results.json has" in rows[bad]["problems"][0]
    one = _cli(workspace, "verify", good)
    assert one.returncode == 0 and one.stdout.strip() == f"{good}: ok (done)"
    unknown = _cli(workspace, "verify", "no-such-run")
    assert unknown.returncode == 2 and "unknown run id 'no-such-run'" in unknown.stderr


_FULL_DISK = """
import resource, sys, torch
from pathlib import Path
from ecgcore.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from ecgcore.errors import EcgcoreError
path = Path(sys.argv[1])
big = Checkpoint({"w": torch.ones(400_000)}, "tiny", {}, ["a"], ["A"], {})
resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))   # the disk is 'full' past 200 kB
try:
    save_checkpoint(big, path)
except EcgcoreError as exc:
    print(exc)
print(load_checkpoint(path).state_dict["w"].shape[0])
"""


def test_a_model_write_that_hits_a_full_disk_fails_clearly_and_keeps_the_old_file(tmp_path: Path) -> None:
    """A real OS-level fault: RLIMIT_FSIZE makes the write fail with EFBIG (Python ignores
    SIGXFSZ), as a full disk would with ENOSPC."""
    from ecgcore.checkpoint import Checkpoint, save_checkpoint

    path = tmp_path / "model.pt"
    save_checkpoint(Checkpoint({"w": torch.zeros(10)}, "tiny", {}, ["a"], ["A"], {}), path)
    before = file_digest(path)
    done = subprocess.run([sys.executable, "-c", _FULL_DISK, str(path)], check=False, cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    message, kept = done.stdout.strip().splitlines()
    assert str(path) in message and "File too large" in message and "unchanged" in message
    assert kept == "10" and file_digest(path) == before, "the previous file is intact"
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"], "no partial temp file left"

