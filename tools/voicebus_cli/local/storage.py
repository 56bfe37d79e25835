"""A stand-in for Telnyx's recording storage on 127.0.0.1: any size, deterministic bytes, chosen misbehaviour.

Bodies are generated on the fly: the format's header (an ID3 tag and an MPEG frame
header for mp3, RIFF/WAVE for wav, so the archiver's magic-byte check passes), then
one repeating pseudo-random block, so a 256 MB recording costs this server a few
hundred KB. The block's length is prime, so the content never lines up with S3 part
boundaries: parts swapped or dropped change the SHA-256. `expected_sha256` hashes
the same stream. The misbehaviours are those of issue 11 and of a flaky network:
expired links, cut and stalled bodies, HTML error pages, redirects, endless bodies.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import struct
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
    HTML = "html"  # 200 with an HTML error page (as `content_type`, text/html unless given)
    REDIRECT = "redirect"  # 302 to `redirect_to`
    ENDLESS = "endless"  # 200, chunked, the recording's bytes without end until the client hangs up


AUDIO_FORMATS = ("mp3", "wav")
CONTENT_TYPES = {"mp3": "audio/mpeg", "wav": "audio/wav"}
HTML_PAGE = (
    b"<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>"
    b"<body><h1>502 Bad Gateway</h1><p>The recording could not be served.</p></body></html>\n"
)
# ID3v2.4 header with an empty tag, then an MPEG-1 Layer III frame header (128 kbit/s, 44.1 kHz).
_MP3_HEADER = b"ID3\x04\x00\x00\x00\x00\x00\x00\xff\xfb\x90\x64"


def audio_header(fmt: str | None, size: int) -> bytes:
    """The first bytes of a recording of `size` bytes in `fmt`: what real files of that format start with."""
    if fmt is None:
        return b""
    if fmt == "mp3":
        return _MP3_HEADER
    if fmt == "wav":  # PCM, 2 channels, 8 kHz, 16 bit: Telnyx's dual-channel telephony recording
        riff = min(max(size - 8, 0), 0xFFFFFFFF)
        data = min(max(size - 44, 0), 0xFFFFFFFF)
        fmt_chunk = struct.pack("<HHIIHH", 1, 2, 8000, 8000 * 2 * 2, 4, 16)
        return (
            b"RIFF"
            + struct.pack("<I", riff)
            + b"WAVE"
            + b"fmt "
            + struct.pack("<I", 16)
            + fmt_chunk
            + (b"data" + struct.pack("<I", data))
        )
    raise ValueError(f"unknown audio format {fmt!r}; one of {AUDIO_FORMATS}")


def guess_format(name: str) -> str:
    """`wav` when the name has a `wav` token (`rec.wav`, `wav-1`), else `mp3` (the demo's format)."""
    return "wav" if "wav" in re.split(r"[^a-z0-9]+", name.lower()) else "mp3"


def _block(seed: str) -> bytes:
    return hashlib.shake_256(seed.encode("utf-8")).digest(BLOCK_BYTES)


def recording_bytes(
    size: int | None, seed: str, chunk_bytes: int = SEND_CHUNK_BYTES, fmt: str | None = None
) -> Iterator[memoryview]:
    """The recording's content, `chunk_bytes` at a time: `fmt`'s header, then the block repeated, cut at `size`.

    `size=None` never ends (an endless body); `fmt=None` leaves the header out (raw bytes).
    """
    header = audio_header(fmt, size or 0)[: size if size is not None else None]
    if header:
        yield memoryview(header)
    if size is not None:
        size -= len(header)
    block = _block(seed)
    repeats = -(-(chunk_bytes + BLOCK_BYTES) // BLOCK_BYTES)
    window = memoryview(block * repeats)
    offset = 0
    while size is None or offset < size:
        count = chunk_bytes if size is None else min(chunk_bytes, size - offset)
        start = offset % BLOCK_BYTES
        yield window[start : start + count]
        offset += count


def expected_sha256(size: int, seed: str, fmt: str | None = None) -> str:
    """The SHA-256 of what the server sends for `size`, `seed` and `fmt`."""
    digest = hashlib.sha256()
    for chunk in recording_bytes(size, seed, chunk_bytes=4 * 1024 * 1024, fmt=fmt):
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
    fmt: str = "mp3"
    # What the server says it sends; the format's own type unless published otherwise.
    content_type: str = "audio/mpeg"

    def sha256(self) -> str:
        return expected_sha256(self.size, self.seed, self.fmt)

    def content(self) -> bytes:
        """The whole body, for small recordings in tests."""
        return b"".join(bytes(chunk) for chunk in recording_bytes(self.size, self.seed, fmt=self.fmt))


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
    redirect_to: str | None = None


class StorageServer:
    """Serves published recordings from a background thread on an ephemeral loopback port."""

    def __init__(self, host: str = "127.0.0.1", fmt: str | None = None) -> None:
        """`fmt`: the format recordings are published in unless `publish` is told (else guessed from the name)."""
        self._host = host
        self._fmt = fmt
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
        fmt: str | None = None,
        content_type: str | None = None,
        redirect_to: str | None = None,
    ) -> PublishedRecording:
        """Answer for `/recordings/<name>`; the seed (the name by default) decides the bytes.

        `fmt` (mp3 or wav; guessed from the name when None, see `guess_format`) decides
        the header and the content type served. HTML serves `HTML_PAGE` (its size is the
        page's), REDIRECT answers 302 to `redirect_to`, ENDLESS never stops sending.
        """
        fmt = fmt or self._fmt or guess_format(name)
        if fmt not in AUDIO_FORMATS:
            raise ValueError(f"fmt must be one of {AUDIO_FORMATS}, got {fmt!r}")
        if behaviour is Behaviour.REDIRECT and not redirect_to:
            raise ValueError("a REDIRECT needs redirect_to")
        if behaviour is Behaviour.HTML:
            size, content_type = len(HTML_PAGE), content_type or "text/html; charset=utf-8"
        path = f"/recordings/{quote(name, safe='')}"
        # A query string like a presigned URL's: it is a credential, and must never appear in errors.
        signature = secrets.token_hex(16)
        url = f"{self.base_url}{path}?X-Amz-Expires=600&X-Amz-Signature={signature}"
        recording = PublishedRecording(
            path, url, size, seed or name, behaviour, fmt, content_type or CONTENT_TYPES[fmt]
        )
        route = _Route(
            recording,
            cut_at=size // 2 if cut_at is None else cut_at,
            slow_chunks=slow_chunks,
            slow_delay=slow_delay,
            stall_seconds=stall_seconds,
            pause_at=pause_at,
            on_pause=on_pause,
            redirect_to=redirect_to,
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
            if behaviour is Behaviour.REDIRECT:
                assert route.redirect_to is not None
                self.send_response(302)
                self.send_header("Location", route.redirect_to)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return None
            size = route.recording.size
            self.send_response(200)
            self.send_header("Content-Type", route.recording.content_type)
            if behaviour in (Behaviour.CHUNKED, Behaviour.ENDLESS):
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
            if behaviour is Behaviour.HTML:
                self.wfile.write(HTML_PAGE)
                storage._count_sent(recording.path, len(HTML_PAGE))
                return
            if behaviour in (Behaviour.CHUNKED, Behaviour.ENDLESS):
                size = None if behaviour is Behaviour.ENDLESS else recording.size
                for chunk in recording_bytes(size, recording.seed, fmt=recording.fmt):
                    self.wfile.write(f"{len(chunk):x}\r\n".encode("ascii") + chunk + b"\r\n")
                    storage._count_sent(recording.path, len(chunk))
                self.wfile.write(b"0\r\n\r\n")
                return
            if behaviour is Behaviour.SLOW:
                piece = max(1, -(-recording.size // route.slow_chunks))
                chunks = recording_bytes(recording.size, recording.seed, chunk_bytes=piece, fmt=recording.fmt)
                for index, chunk in enumerate(chunks):
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
            recording = route.recording
            for chunk in recording_bytes(recording.size, recording.seed, fmt=recording.fmt):
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
