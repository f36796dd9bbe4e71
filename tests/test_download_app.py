"""The Datasets page's download section, and background downloads (stop, resume), against
the local mirror of test_download.py serving real LUDB records."""

from __future__ import annotations

import json
import time
from pathlib import Path

from streamlit.testing.v1 import AppTest
from test_download import LUDB_FILES, Mirror, build_ludb_tree

from ecgcore import workspace as ws
from ecgcore.download import CATALOGUE, background

REPO = Path(__file__).resolve().parents[1]


def _wait(download_id: str, states: tuple[str, ...], timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = background.status(download_id)
        if info["state"] in states:
            return info
        time.sleep(0.2)
    raise AssertionError(f"download {download_id} still {info['state']} after {timeout} s: {info}")


def test_datasets_page_downloads_in_the_background_and_lists_the_dataset(
        shared_data: Path, tmp_path: Path, workspace: Path):
    build_ludb_tree(shared_data, tmp_path / "mirror")
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=60)
    at.switch_page("pages/datasets.py").run()
    assert not at.exception
    assert at.radio(key="dl_name").options == [
        f"{e.title} {e.version} ({e.approx_size})" for e in CATALOGUE.values()]
    assert at.button(key="dl_start").label == "Start download"
    with Mirror(tmp_path / "mirror") as mirror:
        at.radio(key="dl_name").set_value("ludb")
        at.text_input(key="dl_folder").input(str(tmp_path / "downloads" / "ludb"))
        at.text_input(key="dl_base_url").input(f"{mirror.url}/files")
        started = time.monotonic()
        at.button(key="dl_start").click().run()
        assert time.monotonic() - started < 15  # the script did not wait for the download
        assert not at.exception and not at.error
        [item] = background.list_downloads()
        assert item["dataset"] == "ludb" and item["to"] == str((tmp_path / "downloads" / "ludb").resolve())
        info = _wait(item["id"], ("done", "failed", "ended"))
        assert info["state"] == "done", info
        assert len([r for r in mirror.file_requests()]) == len(LUDB_FILES)
    at.run()
    assert not at.exception
    assert any("every file verified" in s.value and "**ludb**" in s.value for s in at.success)
    assert "ludb" in at.selectbox(key="dataset").options
    at.selectbox(key="dataset").set_value("ludb").run()
    assert not at.exception
    assert {m.label: m.value for m in at.metric}["Layout"] == "ludb"
    assert {m.label: m.value for m in at.metric}["Readable records"] == "3"


def test_a_background_download_stops_keeps_its_part_and_resumes(
        shared_data: Path, tmp_path: Path, workspace: Path):
    folder = build_ludb_tree(shared_data, tmp_path / "mirror")
    big = "/files/ludb/1.0.1/data/1.dat"
    size = (folder / "data" / "1.dat").stat().st_size
    dest = tmp_path / "ludb"
    with Mirror(tmp_path / "mirror") as mirror:
        mirror.stall_once[big] = 4000  # sends 4000 bytes, then holds the connection
        first = background.start_download("ludb", dest, base_url=f"{mirror.url}/files", add_as="ludb-bg")
        deadline = time.monotonic() + 30
        part = dest / "data" / "1.dat.part"
        while not (part.exists() and part.stat().st_size == 4000) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert part.exists() and part.stat().st_size == 4000
        background.stop_download(first)
        info = _wait(first, ("stopped", "failed", "ended", "done"))
        assert info["state"] == "stopped", info
        assert part.stat().st_size == 4000 and not (dest / "data" / "1.dat").exists()
        assert "ludb-bg" not in [e.name for e in ws.list_datasets()]

        second = background.start_download("ludb", dest, base_url=f"{mirror.url}/files",
                                           add_as="ludb-bg")
        info = _wait(second, ("done", "failed", "ended", "stopped"))
        assert info["state"] == "done", info
        assert [r for p, r in mirror.requests if p == big] == [None, "bytes=4000-"]
    assert (dest / "data" / "1.dat").stat().st_size == size
    assert {e.name: e.path for e in ws.list_datasets()}["ludb-bg"] == dest.resolve()
    assert json.loads((dest / ".ecgcore-download.json").read_text())["ok"]
    assert [d["id"] for d in background.list_downloads()] == [second, first]


def test_download_hint_keeps_its_globs(workspace: Path):
    """The catalogue's notes are engine text: escaped for Markdown, so '*' globs stay '*' (not italics)."""
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=60)
    at.switch_page("pages/datasets.py").run()
    assert not at.exception and at.radio(key="dl_name").value == "ptb-xl"
    hint = next(c.value for c in at.caption if "Licence" in c.value)
    assert "--include 'records100/\\*' --include '\\*.csv'" in hint, hint
