"""HTTP with the standard library only: fetch a small document, or stream one file into
`<name>.part`, resuming with a Range request after a cut. Errors are translated into
three clear kinds: offline (no connection at all), a refused request (HTTP status), and
a transfer that keeps breaking.

Written by hand on `urllib` (no extra dependency): what it adds is the resume logic.
`http.client` returns short reads silently when a server closes early, so the length
received is compared with the length announced.
"""

from __future__ import annotations

import http.client
import os
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

from ecgcore.errors import EcgcoreError

CHUNK = 256 * 1024
USER_AGENT = "ecgcore-download/1 (+python urllib)"


class OfflineError(EcgcoreError):
    """The host cannot be reached at all (connection refused, DNS failure, no route)."""


class TransferError(EcgcoreError):
    """A request was refused (HTTP status) or a transfer kept breaking after retries."""


class DownloadStopped(EcgcoreError):
    """The user stopped the download; `.part` files are kept for resuming."""


class StopSwitch:
    """A stop flag (a threading.Event, set e.g. by a signal handler) plus the connections in
    flight: `cut_connections()` shuts their sockets down, so a read stalled on a silent
    server ends at once instead of after the socket timeout."""

    def __init__(self, event: threading.Event | None = None) -> None:
        self.event = event or threading.Event()
        self._lock = threading.Lock()
        self._open: set[int] = set()

    def is_set(self) -> bool:
        return self.event.is_set()

    def set(self) -> None:
        self.event.set()

    @contextmanager
    def watching(self, reply: http.client.HTTPResponse) -> Iterator[None]:
        fd = reply.fileno()
        with self._lock:
            self._open.add(fd)
        try:
            yield
        finally:
            with self._lock:
                self._open.discard(fd)

    def cut_connections(self) -> None:
        with self._lock:
            for fd in self._open:
                try:  # shutdown acts on the connection shared by every descriptor of it
                    with socket.socket(fileno=os.dup(fd)) as sock:
                        sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


def _host(url: str) -> str:
    return urlsplit(url).netloc or url


def _offline(url: str, reason: object) -> OfflineError:
    return OfflineError(f"cannot reach {_host(url)} ({reason}): offline, or the host is down? "
                        f"Check the connection or pass --base-url for a mirror")


def open_url(url: str, offset: int = 0, timeout: float = 30.0) -> http.client.HTTPResponse:
    """GET `url` (from byte `offset` when > 0). HTTP 416 is returned to the caller as a
    TransferError whose message starts with 'HTTP 416'."""
    headers = {"User-Agent": USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        return urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        raise TransferError(f"HTTP {err.code} {err.reason} for {url}") from None
    except urllib.error.URLError as err:
        if isinstance(err.reason, (ConnectionRefusedError, socket.gaierror, TimeoutError,
                                   ConnectionAbortedError)) or "unreachable" in str(err.reason).lower():
            raise _offline(url, err.reason) from None
        raise TransferError(f"{url}: {err.reason}") from None
    except (TimeoutError, ConnectionRefusedError) as err:
        raise _offline(url, err) from None


def fetch_bytes(url: str, timeout: float = 30.0) -> bytes:
    """A whole small document (a listing)."""
    with open_url(url, timeout=timeout) as reply:
        try:
            return reply.read()
        except (http.client.HTTPException, OSError) as err:
            raise TransferError(f"{url}: transfer broke ({err})") from None


def _expected_end(reply: http.client.HTTPResponse, offset: int) -> int | None:
    """The file's full length from Content-Range (206) or offset + Content-Length."""
    content_range = reply.headers.get("Content-Range", "")
    if "/" in content_range and content_range.rsplit("/", 1)[1].strip().isdigit():
        return int(content_range.rsplit("/", 1)[1])
    length = reply.headers.get("Content-Length")
    return offset + int(length) if length and length.isdigit() else None


def _stopped() -> DownloadStopped:
    return DownloadStopped("download stopped; run it again to resume")


def _stream_once(url: str, part: Path, on_bytes: Callable[[int], None], stop: StopSwitch,
                 timeout: float) -> bool:
    """One request appending to `part` (unbuffered: what arrived is on disk); True when the
    body arrived whole."""
    if stop.is_set():
        raise _stopped()
    offset = part.stat().st_size if part.exists() else 0
    try:
        reply = open_url(url, offset, timeout)
    except TransferError as err:
        if offset and str(err).startswith("HTTP 416"):  # the .part is not a prefix of this file
            part.unlink()
            return False
        raise
    with reply, stop.watching(reply):
        if offset and reply.status != 206:  # the server ignored Range: start again from byte 0
            on_bytes(-offset)
            offset = 0
        end = _expected_end(reply, offset)
        received = offset
        with part.open("ab" if offset else "wb", buffering=0) as out:
            while True:
                if stop.is_set():
                    raise _stopped()
                try:
                    chunk = reply.read1(CHUNK)
                except (http.client.HTTPException, OSError):
                    chunk = b""
                if not chunk:
                    break
                out.write(chunk)
                received += len(chunk)
                on_bytes(len(chunk))
    if stop.is_set():
        raise _stopped()
    return end is None or received >= end


def fetch_to_part(url: str, part: Path, on_bytes: Callable[[int], None], stop: StopSwitch,
                  retries: int = 5, timeout: float = 30.0, backoff: float = 0.5) -> int:
    """Make `part` hold the whole body of `url`, resuming from its current size after each
    cut (up to `retries` times). Returns how many requests it took."""
    part.parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(1, retries + 2):
        if _stream_once(url, part, on_bytes, stop, timeout):
            return attempt
        if attempt <= retries:
            time.sleep(min(backoff * 2 ** (attempt - 1), 10.0))
    raise TransferError(f"{url}: the transfer broke {retries + 1} times; run again to resume "
                        f"from the {part.stat().st_size if part.exists() else 0} bytes kept in {part.name}")
