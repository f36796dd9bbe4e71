"""Downloads against a local mirror on 127.0.0.1 serving real files in the sources' layouts.

The mirror (`Mirror`) is a threaded http.server whose handler answers Range requests and
can be told to corrupt a file (once, or always) and to cut a transfer after N bytes.
Trees are built in tmp_path from the real records in ../shared/data: LUDB with its own
published SHA256SUMS.txt lines, Challenge 2021 records, PTB-XL label files, and a
Zenodo-style record JSON (md5) for CODE-15%.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import shutil
import socket
import subprocess
import sys
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pandas as pd
import pytest

from ecgcore import workspace as ws
from ecgcore.cli import main
from ecgcore.data.sources import detect_layout, open_dataset
from ecgcore.download.catalogue import CATALOGUE
from ecgcore.download.listing import parse_sha256sums, project_url, unsafe_reason
from ecgcore.errors import EcgcoreError

REPO = Path(__file__).resolve().parents[1]
LUDB_FILES = ("ludb.csv", "data/1.hea", "data/1.dat", "data/2.hea", "data/2.dat", "data/3.hea",
              "data/3.dat")
CHALLENGE_FILES = {"training/georgia/g1": ("G12EC", ("E00001", "E00002", "E00003")),
                   "training/cpsc_2018/g1": ("CPSC_CPSC-Extra", ("A0001",))}


class _Handler(BaseHTTPRequestHandler):
    server: Mirror

    def log_message(self, format: str, *args: object) -> None:  # quiet test output
        pass

    def do_GET(self) -> None:
        mirror = self.server
        path = unquote(urlsplit(self.path).path)
        byte_range = self.headers.get("Range")
        with mirror.lock:
            mirror.requests.append((path, byte_range))
            corrupt = path in mirror.corrupt_always or path in mirror.corrupt_once
            mirror.corrupt_once.discard(path)
            cut_after = mirror.cut_once.pop(path, None)
            stall_after = mirror.stall_once.pop(path, None)
        file = mirror.root / path.lstrip("/")
        if not file.is_file():
            self.send_error(404)
            return
        data = bytearray(file.read_bytes())
        if corrupt:
            data[len(data) // 2] ^= 0xFF
        start = int(byte_range.removeprefix("bytes=").split("-")[0]) if byte_range else 0
        if start >= len(data) > 0:
            self.send_error(416)
            return
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        body = bytes(data[start:])
        if stall_after is not None:  # send part of it, then hold the line until the test ends
            self.wfile.write(body[:stall_after])
            self.wfile.flush()
            mirror.released.wait(60)
            return
        if cut_after is not None:  # announce everything, send part of it, hang up
            self.wfile.write(body[:cut_after])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(body)


class Mirror(ThreadingHTTPServer):
    """A local file server in a source's layout; `requests` logs (path, Range header)."""

    daemon_threads = True

    def __init__(self, root: Path) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.root = root
        self.lock = threading.Lock()
        self.requests: list[tuple[str, str | None]] = []
        self.corrupt_once: set[str] = set()
        self.corrupt_always: set[str] = set()
        self.cut_once: dict[str, int] = {}
        self.stall_once: dict[str, int] = {}
        self.released = threading.Event()
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def file_requests(self) -> list[tuple[str, str | None]]:
        """Requests for data files (not listings)."""
        return [r for r in self.requests if not r[0].endswith(("SHA256SUMS.txt", "/4916206"))]

    def __enter__(self) -> Mirror:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.released.set()
        self.shutdown()
        self.server_close()


def sha256sums(folder: Path, paths: list[str]) -> str:
    return "".join(f"{hashlib.sha256((folder / p).read_bytes()).hexdigest()} {p}\n" for p in paths)


def build_ludb_tree(shared_data: Path, root: Path) -> Path:
    """files/ludb/1.0.1/ with three records and the lines of LUDB's own SHA256SUMS.txt for them."""
    source = shared_data / "ecg" / "ludb"
    folder = root / "files" / "ludb" / "1.0.1"
    for rel in LUDB_FILES:
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / rel, folder / rel)
    published = [line for line in (source / "SHA256SUMS.txt").read_text().splitlines()
                 if line.split(" ", 1)[1] in LUDB_FILES]
    assert len(published) == len(LUDB_FILES)
    (folder / "SHA256SUMS.txt").write_text("\n".join(published) + "\n")
    return folder


def build_challenge_tree(shared_data: Path, root: Path) -> Path:
    folder = root / "files" / "challenge-2021" / "1.0.3"
    paths = []
    for rel, (site, records) in CHALLENGE_FILES.items():
        (folder / rel).mkdir(parents=True)
        for record in records:
            for ext in (".hea", ".mat"):
                shutil.copyfile(shared_data / "ecg" / "cinc2021" / site / (record + ext),
                                folder / rel / (record + ext))
                paths.append(f"{rel}/{record}{ext}")
    (folder / "README.md").write_text("not part of the training set\n")
    (folder / "SHA256SUMS.txt").write_text(sha256sums(folder, [*paths, "README.md"]))
    return folder


def _download(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict, str]:
    code = main(["download", *argv, "--json"])
    out, err = capsys.readouterr()
    return code, json.loads(out) if out.strip() else {}, err


def test_catalogue_names_the_real_sources():
    assert set(CATALOGUE) == {"ptb-xl", "challenge2020", "challenge2021", "ludb", "ptbdb", "mimic-iv-ecg", "code15"}
    for entry in CATALOGUE.values():
        assert entry.version in entry.versions and entry.approx_size and entry.licence
    assert project_url(CATALOGUE["ptb-xl"], CATALOGUE["ptb-xl"].base_url, "1.0.3") == \
        "https://physionet.org/files/ptb-xl/1.0.3"
    assert CATALOGUE["challenge2021"].include == ("training/*",)
    assert "MD5" in CATALOGUE["code15"].checksums and "no SHA-256" in CATALOGUE["code15"].checksums


def test_listing_refuses_paths_outside_the_folder():
    digest = "ab" * 32
    text = "\n".join(f"{digest} {p}" for p in ("data/1.hea", "../escape.txt", "/etc/passwd",
                                               "a\\b.txt", "data/../../x", "ok name.txt")) + "\n"
    files = {f.path: f.unsafe for f in parse_sha256sums(text, "http://m/files/ludb/1.0.1")}
    assert files["data/1.hea"] == "" and files["ok name.txt"] == ""
    assert "'..'" in files["../escape.txt"] and "'..'" in files["data/../../x"]
    assert files["/etc/passwd"] == "absolute path" and "backslash" in files["a\\b.txt"]
    assert unsafe_reason("C:/x") == "absolute path"
    with pytest.raises(EcgcoreError, match="line 2: not '<sha256> <path>'.*base URL"):
        parse_sha256sums(f"{digest} a\n<html>login</html>\n", "http://m")


def test_ludb_download_checks_the_published_sums_and_a_second_run_fetches_nothing(
        shared_data: Path, tmp_path: Path, workspace: Path, capsys: pytest.CaptureFixture[str]):
    build_ludb_tree(shared_data, tmp_path / "mirror")
    dest = tmp_path / "ludb"
    with Mirror(tmp_path / "mirror") as mirror:
        base = f"{mirror.url}/files"
        code, result, err = _download(capsys, "ludb", "--to", str(dest), "--base-url", base, "--add")
        assert code == 0, err
        assert result["fetched"] == len(LUDB_FILES) and result["skipped"] == 0 and result["ok"]
        for rel in LUDB_FILES:
            assert (dest / rel).read_bytes() == (shared_data / "ecg" / "ludb" / rel).read_bytes()
        assert not list(dest.rglob("*.part"))
        assert "ludb: 100%" in err and f"{len(LUDB_FILES)}/{len(LUDB_FILES)} files" in err  # tqdm's bar
        assert result["added_as"] == "ludb"
        assert {e.name: e.path for e in ws.list_datasets()}["ludb"] == dest.resolve()
        recordset = open_dataset(dest)
        assert detect_layout(dest) == "ludb" and len(recordset) == 3

        mirror.requests.clear()
        code, again, err = _download(capsys, "ludb", "--to", str(dest), "--base-url", base)
        assert code == 0, err
        assert again["fetched"] == 0 and again["skipped"] == len(LUDB_FILES)
        assert mirror.file_requests() == []  # only the listing was asked for


def test_corrupt_file_refetched_once_cut_transfer_resumed_and_corrupt_twice_reported(
        shared_data: Path, tmp_path: Path, workspace: Path, capsys: pytest.CaptureFixture[str]):
    folder = build_challenge_tree(shared_data, tmp_path / "mirror")
    prefix = "/files/challenge-2021/1.0.3/training/"
    dest = tmp_path / "cinc2021"
    with Mirror(tmp_path / "mirror") as mirror:
        mirror.corrupt_once.add(prefix + "georgia/g1/E00001.mat")
        mirror.corrupt_always.add(prefix + "cpsc_2018/g1/A0001.hea")
        mirror.cut_once[prefix + "georgia/g1/E00002.mat"] = 5000
        progress_file = tmp_path / "progress.json"
        code, result, err = _download(capsys, "challenge2021", "--to", str(dest), "--base-url",
                                      f"{mirror.url}/files", "--json-progress", str(progress_file),
                                      "--workers", "2")
        assert code == 2
        assert [f["path"] for f in result["failed"]] == ["training/cpsc_2018/g1/A0001.hea"]
        assert "corrupt twice" in err and "A0001.hea" in err and "sha256" in err
        assert not (dest / "training/cpsc_2018/g1/A0001.hea").exists()
        assert not list(dest.rglob("*.part"))  # the bad copy is not kept
        assert not (dest / "README.md").exists()  # outside training/: not part of the set
        paths = [p for p, _ in mirror.requests]
        assert paths.count(prefix + "georgia/g1/E00001.mat") == 2  # corrupt once: fetched again
        assert paths.count(prefix + "cpsc_2018/g1/A0001.hea") == 2  # fetched twice, then given up
        cut = [r for p, r in mirror.requests if p == prefix + "georgia/g1/E00002.mat"]
        assert cut == [None, "bytes=5000-"]  # resumed from where the cut left it
        for rel in ("georgia/g1/E00001.mat", "georgia/g1/E00002.mat"):
            assert (dest / "training" / rel).read_bytes() == (folder / "training" / rel).read_bytes()
        status = json.loads(progress_file.read_text())
        assert status["state"] == "failed" and "A0001.hea" in status["message"]
        assert status["files_total"] == 8 and status["files_failed"] == 1 and status["files_done"] == 7

        mirror.corrupt_always.clear()
        mirror.requests.clear()
        code, result, err = _download(capsys, "challenge2021", "--to", str(dest), "--base-url",
                                      f"{mirror.url}/files")
        assert code == 0, err
        assert [p for p, _ in mirror.file_requests()] == [prefix + "cpsc_2018/g1/A0001.hea"]
        assert result["skipped"] == 7 and result["fetched"] == 1
    assert result["root"] == str((dest / "training").resolve())
    assert len(open_dataset(dest / "training")) == 4


def test_resume_from_a_part_file_and_a_part_that_is_not_a_prefix(
        shared_data: Path, tmp_path: Path, workspace: Path, capsys: pytest.CaptureFixture[str]):
    folder = tmp_path / "mirror" / "files" / "ptb-xl" / "1.0.3"
    folder.mkdir(parents=True)
    names = ["scp_statements.csv", "RECORDS", "LICENSE.txt"]
    for name in names:
        shutil.copyfile(shared_data / "labels" / "ptbxl" / name, folder / name)
    digest = "0" * 64
    (folder / "SHA256SUMS.txt").write_text(sha256sums(folder, names) + f"{digest} ../escape.txt\n"
                                           f"{digest} /tmp/absolute.txt\n")
    dest = tmp_path / "ptbxl"
    dest.mkdir()
    good = (folder / "scp_statements.csv").read_bytes()
    (dest / "scp_statements.csv.part").write_bytes(good[:1000])  # an earlier run, cut short
    (dest / "RECORDS.part").write_bytes(b"x" * 500)  # not the start of this file
    shutil.copyfile(folder / "LICENSE.txt", dest / "LICENSE.txt.part")  # complete, never renamed
    with Mirror(tmp_path / "mirror") as mirror:
        code, result, err = _download(capsys, "ptb-xl", "--to", str(dest), "--base-url",
                                      f"{mirror.url}/files")
        requests = {p.rsplit("/", 1)[1]: [] for p, _ in mirror.requests}
        for p, r in mirror.requests:
            requests[p.rsplit("/", 1)[1]].append(r)
    assert requests["scp_statements.csv"] == ["bytes=1000-"]
    assert requests["RECORDS"] == ["bytes=500-", None]  # resumed, failed the check, fetched anew
    assert "LICENSE.txt" not in requests  # its .part was whole and right: just renamed
    for name in names:
        assert (dest / name).read_bytes() == (folder / name).read_bytes()
    # Paths that would land outside the folder are refused, never requested, and reported.
    assert code == 2
    assert sorted(f["path"] for f in result["failed"]) == ["../escape.txt", "/tmp/absolute.txt"]
    assert "refused" in err and not (tmp_path / "escape.txt").exists()
    assert not any("escape" in p or "absolute" in p for p in requests)
    assert (dest / "SHA256SUMS.txt").exists()  # the listing as published, kept for provenance


def test_offline_gives_a_clear_message_and_a_non_zero_exit(tmp_path: Path, workspace: Path,
                                                          capsys: pytest.CaptureFixture[str]):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    progress_file = tmp_path / "progress.json"
    done = subprocess.run([sys.executable, "-m", "ecgcore", "download", "ludb", "--to",
                           str(tmp_path / "ludb"), "--base-url", f"http://127.0.0.1:{port}/files",
                           "--json-progress", str(progress_file)],
                          cwd=REPO, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: cannot reach 127.0.0.1:{port} (") and "refused" in last
    assert "offline" in last and "--base-url" in last
    status = json.loads(progress_file.read_text())
    assert status["state"] == "failed" and "cannot reach" in status["message"]
    # A host that does not resolve (DNS) says the same, in-process too.
    assert main(["download", "ludb", "--to", str(tmp_path / "ludb"), "--base-url",
                 "http://no-such-host.invalid/files"]) == 2
    assert "cannot reach no-such-host.invalid (" in capsys.readouterr().err


def test_code15_from_a_zenodo_record_checked_by_md5_and_unpacked(
        tmp_path: Path, workspace: Path, capsys: pytest.CaptureFixture[str]):
    from test_source_code15_sph import _write_part

    source = tmp_path / "source"
    source.mkdir()
    pd.DataFrame({"exam_id": [1001, 1002, 1003], "age": [63, 45, 71], "is_male": [True, False, True],
                  "patient_id": [501, 502, 503], "1dAVb": [True, False, False],
                  "RBBB": [False, False, True], "LBBB": False, "SB": False, "AF": [False, False, True],
                  "ST": False, "trace_file": "exams_part0.hdf5"}).to_csv(source / "exams.csv", index=False)
    _write_part(source / "exams_part0.hdf5", [1001, 1002, 1003])
    with zipfile.ZipFile(source / "exams_part0.zip", "w") as zf:
        zf.write(source / "exams_part0.hdf5", "exams_part0.hdf5")
    files_dir = tmp_path / "mirror" / "records" / "4916206" / "files"
    files_dir.mkdir(parents=True)
    for name in ("exams.csv", "exams_part0.zip"):
        shutil.copyfile(source / name, files_dir / name)
    dest = tmp_path / "code15"
    with Mirror(tmp_path / "mirror") as mirror:
        record = {"id": 4916206, "files": [
            {"key": name, "size": (files_dir / name).stat().st_size,
             "checksum": "md5:" + hashlib.md5((files_dir / name).read_bytes()).hexdigest(),
             "links": {"self": f"{mirror.url}/records/4916206/files/{name}"}}
            for name in ("exams.csv", "exams_part0.zip")]}
        (tmp_path / "mirror" / "api" / "records").mkdir(parents=True)
        (tmp_path / "mirror" / "api" / "records" / "4916206").write_text(json.dumps(record))
        mirror.cut_once["/records/4916206/files/exams_part0.zip"] = 20_000
        code, result, err = _download(capsys, "code15", "--to", str(dest), "--base-url", mirror.url)
        assert code == 0, err
        assert result["checksums"].startswith("MD5") and result["fetched"] == 2
        assert not (dest / "exams_part0.zip").exists()  # unpacked, then removed
        assert (dest / "exams_part0.hdf5").read_bytes() == (source / "exams_part0.hdf5").read_bytes()
        recordset = open_dataset(dest)
        assert detect_layout(dest) == "code15" and len(recordset) == 3

        mirror.requests.clear()
        code, again, err = _download(capsys, "code15", "--to", str(dest), "--base-url", mirror.url)
        assert code == 0 and again["skipped"] == 2 and mirror.file_requests() == []

        # A Zenodo record whose published md5 does not match what is served: reported, not kept.
        record["files"][0]["checksum"] = "md5:" + "0" * 32
        (tmp_path / "mirror" / "api" / "records" / "4916206").write_text(json.dumps(record))
        code, bad, err = _download(capsys, "code15", "--to", str(tmp_path / "other"), "--base-url",
                                   mirror.url)
    assert code == 2 and bad["failed"][0]["path"] == "exams.csv" and "md5" in err
    assert not (tmp_path / "other" / "exams.csv").exists()


def test_one_download_per_folder_at_a_time(tmp_path: Path, workspace: Path,
                                           capsys: pytest.CaptureFixture[str]):
    dest = tmp_path / "ludb"
    dest.mkdir()
    with (dest / ".ecgcore-download.lock").open("a") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a running download holds it
        assert main(["download", "ludb", "--to", str(dest), "--base-url", "http://127.0.0.1:9/x"]) == 2
    assert "another download is writing there now" in capsys.readouterr().err


def test_list_and_bad_input(capsys: pytest.CaptureFixture[str], tmp_path: Path):
    assert main(["download", "--list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [e["name"] for e in listed] == list(CATALOGUE)
    assert main(["download", "ludb"]) == 2
    assert "--to DIR" in capsys.readouterr().err
    assert main(["download", "ludb", "--to", str(tmp_path / "x"), "--version", "../1"]) == 2
    assert "not a version name" in capsys.readouterr().err
