"""A stand-in for Telnyx's recording storage on 127.0.0.1: any size, deterministic bytes, chosen misbehaviour.

Bodies are generated on the fly from one repeating pseudo-random block, so a
256 MB recording costs this server a few hundred KB. The block's length is
prime, so the content never lines up with S3 part boundaries: parts swapped or
dropped change the SHA-256. `expected_sha256` hashes the same stream.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import quote, urlsplit

BLOCK_BYTES = 65_537  # prime: the pattern never aligns with a power-of-two part size
SEND_CHUNK_BYTES = 256 * 1024


class Behaviour(StrEnum):
    """How one path answers."""

    NORMAL = "normal"
    EXPIRED_ONCE = "expired_once"  # 403 on the first request (an expired presigned link), then normal
    FORBIDDEN = "forbidden"  # 403 every time
    NOT_FOUND = "not_found"  # 404 every time
    CUT = "cut"  # full Content-Length, then `cut_at` bytes, then the connection closes
    SLOW = "slow"  # the whole body, in `slow_chunks` pieces with `slow_delay` seconds between them
    STALL = "stall"  # `cut_at` bytes, then silence for `stall_seconds`, then the connection closes
    CHUNKED = "chunked"  # Transfer-Encoding: chunked, so the size is not announced


def _block(seed: str) -> bytes:
    return hashlib.shake_256(seed.encode("utf-8")).digest(BLOCK_BYTES)


def recording_bytes(size: int, seed: str, chunk_bytes: int = SEND_CHUNK_BYTES) -> Iterator[memoryview]:
    """The recording's content, `chunk_bytes` at a time: the block repeated and cut at `size`."""
    block = _block(seed)
    repeats = -(-(chunk_bytes + BLOCK_BYTES) // BLOCK_BYTES)
    window = memoryview(block * repeats)
    offset = 0
    while offset < size:
        count = min(chunk_bytes, size - offset)
        start = offset % BLOCK_BYTES
        yield window[start : start + count]
        offset += count


def expected_sha256(size: int, seed: str) -> str:
    """The SHA-256 of what the server sends for `size` and `seed`."""
    digest = hashlib.sha256()
    for chunk in recording_bytes(size, seed, chunk_bytes=4 * 1024 * 1024):
        digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class PublishedRecording:
    """A recording the server answers for, and the presigned-looking URL to fetch it."""

    path: str
    url: str
    size: int
    seed: str
    behaviour: Behaviour

    def sha256(self) -> str:
        return expected_sha256(self.size, self.seed)

    def content(self) -> bytes:
        """The whole body, for small recordings in tests."""
        return b"".join(bytes(chunk) for chunk in recording_bytes(self.size, self.seed))


@dataclass(frozen=True)
class _Route:
    recording: PublishedRecording
    cut_at: int
    slow_chunks: int
    slow_delay: float
    stall_seconds: float
    # Called once, from the serving thread, after this many body bytes were sent.
    pause_at: int | None
    on_pause: Callable[[], None] | None


class StorageServer:
    """Serves published recordings from a background thread on an ephemeral loopback port."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self._host = host
        self._routes: dict[str, _Route] = {}
        self._requests: Counter[str] = Counter()
        self._sent: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the storage server is not running")
        return f"http://{self._host}:{self._server.server_address[1]}"

    def start(self) -> StorageServer:
        server = _QuietServer((self._host, 0), _handler_for(self))
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="storage-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> StorageServer:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()

    def publish(
        self,
        name: str,
        size: int,
        behaviour: Behaviour = Behaviour.NORMAL,
        *,
        seed: str | None = None,
        cut_at: int | None = None,
        slow_chunks: int = 8,
        slow_delay: float = 0.15,
        stall_seconds: float = 2.0,
        pause_at: int | None = None,
        on_pause: Callable[[], None] | None = None,
    ) -> PublishedRecording:
        """Answer for `/recordings/<name>`; the seed (the name by default) decides the bytes."""
        path = f"/recordings/{quote(name, safe='')}"
        # A query string like a presigned URL's: it is a credential, and must never appear in errors.
        signature = secrets.token_hex(16)
        url = f"{self.base_url}{path}?X-Amz-Expires=600&X-Amz-Signature={signature}"
        recording = PublishedRecording(path, url, size, seed or name, behaviour)
        route = _Route(
            recording,
            cut_at=size // 2 if cut_at is None else cut_at,
            slow_chunks=slow_chunks,
            slow_delay=slow_delay,
            stall_seconds=stall_seconds,
            pause_at=pause_at,
            on_pause=on_pause,
        )
        with self._lock:
            self._routes[path] = route
        return recording

    def requests(self, recording: PublishedRecording | str) -> int:
        """How many requests reached this path (or this recording's path)."""
        path = recording if isinstance(recording, str) else recording.path
        with self._lock:
            return self._requests[path]

    def bytes_sent(self, recording: PublishedRecording) -> int:
        """Body bytes written to clients for this recording, over all its requests.

        A client that stops reading leaves the rest unsent (beyond the socket buffers),
        so this tells a skipped download from a full one.
        """
        with self._lock:
            return self._sent[recording.path]

    def _count_sent(self, path: str, count: int) -> None:
        with self._lock:
            self._sent[path] += count

    def _arrive(self, path: str) -> tuple[_Route | None, int]:
        with self._lock:
            self._requests[path] += 1
            return self._routes.get(path), self._requests[path]


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients that hang up mid-body are the point of some tests, not errors to print."""


def _handler_for(storage: StorageServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            """Silent: tests read request counts instead."""

        def do_HEAD(self) -> None:
            self._answer(send_body=False)

        def do_GET(self) -> None:
            self._answer(send_body=True)

        def _answer(self, *, send_body: bool) -> None:
            route, count = storage._arrive(urlsplit(self.path).path)
            if route is None:
                return self._refuse(404, "NoSuchKey")
            behaviour = route.recording.behaviour
            if behaviour is Behaviour.NOT_FOUND:
                return self._refuse(404, "NoSuchKey")
            if behaviour is Behaviour.FORBIDDEN or (behaviour is Behaviour.EXPIRED_ONCE and count == 1):
                return self._refuse(403, "AccessDenied: Request has expired")
            size = route.recording.size
            self.send_response(200)
            self.send_header("Content-Type", "audio/wav")
            if behaviour is Behaviour.CHUNKED:
                self.send_header("Transfer-Encoding", "chunked")
            else:
                self.send_header("Content-Length", str(size))
            self.end_headers()
            if not send_body:
                return None
            try:
                self._send_body(route)
            except OSError:
                self.close_connection = True  # the client hung up; nothing left to say
            return None

        def _send_body(self, route: _Route) -> None:
            recording = route.recording
            behaviour = recording.behaviour
            if behaviour is Behaviour.CHUNKED:
                for chunk in recording_bytes(recording.size, recording.seed):
                    self.wfile.write(f"{len(chunk):x}\r\n".encode("ascii") + chunk + b"\r\n")
                    storage._count_sent(recording.path, len(chunk))
                self.wfile.write(b"0\r\n\r\n")
                return
            if behaviour is Behaviour.SLOW:
                piece = max(1, -(-recording.size // route.slow_chunks))
                for index, chunk in enumerate(recording_bytes(recording.size, recording.seed, chunk_bytes=piece)):
                    if index:
                        time.sleep(route.slow_delay)
                    self.wfile.write(chunk)
                    storage._count_sent(recording.path, len(chunk))
                return
            limit = route.cut_at if behaviour in (Behaviour.CUT, Behaviour.STALL) else recording.size
            self._send_until(route, limit)
            if behaviour is Behaviour.STALL:
                time.sleep(route.stall_seconds)
            if behaviour in (Behaviour.CUT, Behaviour.STALL):
                self.close_connection = True

        def _send_until(self, route: _Route, limit: int) -> None:
            sent = 0
            paused = route.pause_at is None
            for chunk in recording_bytes(route.recording.size, route.recording.seed):
                if not paused and route.pause_at is not None and sent >= route.pause_at:
                    paused = True
                    if route.on_pause is not None:
                        route.on_pause()
                if sent >= limit:
                    return
                piece = chunk[: limit - sent]
                self.wfile.write(piece)
                sent += len(piece)
                storage._count_sent(route.recording.path, len(piece))

        def _refuse(self, status: int, message: str) -> None:
            body = f"<Error><Code>{status}</Code><Message>{message}</Message></Error>".encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

    return Handler
