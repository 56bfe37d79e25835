"""Downloading a recording from Telnyx: one streamed GET, checked, hashed and counted as it is read.

The body is never held whole: `DownloadBody.fill` reads it into the caller's part
buffers. A presigned link that has expired (403/404) is refreshed once through
the source's `refresh` callback. Transport failures become `ArchiveError`, with
the link's query string (a credential) left out of every message.

What is taken (`DownloadPolicy`): only https links, and redirects only to https
(plain http only from the hosts named in `http_hosts`: the local storage stand-in,
never set in AWS); only a 200 whose content type and first bytes are the format's
(`voicebus.archive.audio`); at most `max_bytes`. Anything else is a
`RecordingRefusedError`: permanent, recorded on the recording as failed. The whole
transfer must end by a deadline (from the invocation's remaining time): one that
does not is an `ArchiveError`, retried like any cut transfer.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit

import urllib3
from urllib3.exceptions import HTTPError

from voicebus.archive.audio import MAGIC_BYTES, AudioFormat, RecordingRefusedError, format_for
from voicebus.archive.keys import check_key, check_metadata
from voicebus.errors import RetryableError

MIB = 1024 * 1024
# The longest recording Telnyx makes is 4 h (`max_length` <= 14400 s, also the longest call).
# The template does not fix the bitrate; the largest is WAV, 16-bit PCM, dual channel:
# 14400 s x 16,000 samples/s x 2 bytes x 2 channels = 921.6 MB at 16 kHz (460.8 MB at
# telephony's 8 kHz; mp3 is ~10x smaller). 1 GiB covers it with ~15 % to spare.
DEFAULT_MAX_BYTES = 1024 * MIB
DEFAULT_MAX_REDIRECTS = 3
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# One read from the socket; the part buffer fills from these.
READ_CHUNK_SIZE = 1 * MIB
DEFAULT_CONNECT_TIMEOUT = 5.0
# Per socket read, not for the whole body: a slow but alive download still completes.
DEFAULT_READ_TIMEOUT = 30.0
EXTERNAL_SCHEMES = frozenset({"s3", "gs"})
# What an expired or revoked presigned link answers.
EXPIRED_LINK_STATUSES = frozenset({403, 404})


class ArchiveError(RetryableError):
    """The recording is not archived (or not yet tagged) and no upload is left behind; fail and be retried."""


class UnsupportedLocationError(RecordingRefusedError, ValueError):
    """The link (or a redirect) is not https (ftp://, file://, plain http to another host): never fetched."""


class RecordingTooLargeError(RecordingRefusedError):
    """The body is (or announces) more than `max_bytes`: no recording Telnyx makes is that large."""


class TransferDeadlineError(ArchiveError):
    """The transfer did not end in the time the invocation had left: retried, as a cut transfer is."""


@dataclass(frozen=True)
class DownloadPolicy:
    """What a download may take: https links (plain http only from `http_hosts`), redirects, bytes."""

    max_bytes: int = DEFAULT_MAX_BYTES
    # Hosts that may be fetched over plain http: the local storage stand-in (127.0.0.1). Empty in AWS.
    http_hosts: frozenset[str] = frozenset()
    max_redirects: int = DEFAULT_MAX_REDIRECTS

    def check_location(self, url: str, what: str) -> None:
        """https anywhere, http only from `http_hosts`; anything else (ftp, file, data, ...) is refused."""
        parts = urlsplit(url)
        scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
        if host and (scheme == "https" or (scheme == "http" and host in self.http_hosts)):
            return
        allowed = f"https (or http from {sorted(self.http_hosts)})" if self.http_hosts else "https"
        raise UnsupportedLocationError(f"{what} {_redact(url)!r} is not {allowed}")


@dataclass(frozen=True)
class RecordingSource:
    """One recording to archive: where to download it, where to put it, what to record with it.

    `refresh` returns a fresh download URL (Telnyx's `download_urls`) when the
    webhook's presigned link has expired; it is called at most once.
    """

    url: str
    key: str
    content_type: str
    metadata: Mapping[str, str] = field(default_factory=dict)
    refresh: Callable[[], str] | None = None

    def __post_init__(self) -> None:
        format_for(self.content_type)  # mp3 or wav: what the body is checked against
        check_key(self.key)
        check_metadata(self.metadata)

    @property
    def audio(self) -> AudioFormat:
        return format_for(self.content_type)


def http_pool(
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT, read_timeout: float = DEFAULT_READ_TIMEOUT
) -> urllib3.PoolManager:
    """The download pool: retries connecting, never retries a read (the body is streamed once).

    It never follows a redirect itself: `open_download` checks each target first.
    """
    return urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=connect_timeout, read=read_timeout),
        retries=urllib3.Retry(total=3, connect=2, read=0, status=0, other=0, redirect=0),
    )


def is_external_location(url: str) -> bool:
    """True for Telnyx custom storage (`s3://`, `gs://`): recorded as it is, never copied."""
    parts = urlsplit(url.strip())
    return parts.scheme.lower() in EXTERNAL_SCHEMES and bool(parts.netloc)


def open_download(
    http: urllib3.PoolManager,
    source: RecordingSource,
    policy: DownloadPolicy | None = None,
    deadline: float | None = None,
) -> DownloadBody:
    """GET the recording (following checked redirects); on an expired link, GET once more from `refresh()`.

    `deadline` is a `time.monotonic()` value by which the whole body must have been read.
    """
    policy = policy or DownloadPolicy()
    key = source.key
    url, response = _get(http, source.url, key, policy, deadline)
    if response.status in EXPIRED_LINK_STATUSES and source.refresh is not None:
        DownloadBody(response, url, key).discard()
        try:
            fresh = source.refresh()
        except Exception as exc:
            raise ArchiveError(f"{key}: refreshing the expired download link failed: {exc}") from exc
        url, response = _get(http, fresh, key, policy, deadline, what="the refreshed link")
    body = DownloadBody(response, url, key, source.audio, policy.max_bytes, deadline)
    try:
        if response.status != 200:
            raise ArchiveError(f"{key}: downloading {_redact(url)} answered HTTP {response.status}")
        source.audio.check_content_type(response.headers.get("Content-Type"), key)
        if body.content_length is not None and body.content_length > policy.max_bytes:
            raise RecordingTooLargeError(
                f"{key}: announces {body.content_length} bytes, more than the {policy.max_bytes} allowed"
            )
    except BaseException:
        body.discard()
        raise
    return body


def _get(
    http: urllib3.PoolManager,
    url: str,
    key: str,
    policy: DownloadPolicy,
    deadline: float | None,
    what: str = "the link",
) -> tuple[str, urllib3.BaseHTTPResponse]:
    """GET `url`, following up to `max_redirects` redirects, each target checked before it is asked."""
    for hop in range(policy.max_redirects + 1):
        policy.check_location(url, what)
        # Without a deadline, the pool's own timeouts (None here would mean none at all).
        timeout: dict[str, Any] = {} if deadline is None else {"timeout": _timeout(http, deadline, key)}
        with _reading(url, key):
            response = http.request(
                "GET",
                url,
                headers={"Accept-Encoding": "identity"},
                preload_content=False,
                decode_content=False,
                redirect=False,
                **timeout,
            )
        location = response.headers.get("Location")
        if response.status not in REDIRECT_STATUSES or not location:
            return url, response
        DownloadBody(response, url, key).discard()
        url, what = urljoin(url, location), f"redirect {hop + 1} of the link to"
    raise UnsupportedLocationError(f"{key}: more than {policy.max_redirects} redirects")


def _timeout(http: urllib3.PoolManager, deadline: float, key: str) -> urllib3.Timeout:
    """The pool's timeouts, shortened to what is left before the deadline."""
    left = _time_left(deadline, key)
    base = http.connection_pool_kw.get("timeout")
    connect = base.connect_timeout if isinstance(base, urllib3.Timeout) else None
    read = base.read_timeout if isinstance(base, urllib3.Timeout) else None
    return urllib3.Timeout(
        connect=min(connect, left) if isinstance(connect, (int, float)) else left,
        read=min(read, left) if isinstance(read, (int, float)) else left,
    )


def _time_left(deadline: float, key: str) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TransferDeadlineError(f"{key}: the download did not finish before the invocation's deadline")
    return left


class DownloadBody:
    """A response body read part by part, checked (format, size, deadline), hashed and counted on the way.

    A deadline is kept by a timer that shuts the socket down when it passes, so even a
    read that keeps receiving a byte now and then ends there.
    """

    def __init__(
        self,
        response: urllib3.BaseHTTPResponse,
        url: str,
        key: str,
        audio: AudioFormat | None = None,
        max_bytes: int | None = None,
        deadline: float | None = None,
    ) -> None:
        self._response = response
        self._url = url
        self._key = key
        self._audio = audio
        self._max_bytes = max_bytes
        self._deadline = deadline
        self._expired = threading.Event()
        self._watchdog: threading.Timer | None = None
        if deadline is not None:
            self._watchdog = threading.Timer(max(0.0, deadline - time.monotonic()), self._expire)
            self._watchdog.daemon = True
            self._watchdog.start()
        self.sha256 = hashlib.sha256()
        self.size = 0
        self.content_length = _content_length(response)

    def fill(self, part: bytearray) -> int:
        """Read into `part` until it is full or the body ends; returns how many bytes it holds."""
        filled = 0
        with memoryview(part) as view, self._reading():
            while filled < len(part):
                with view[filled : filled + READ_CHUNK_SIZE] as window:
                    count = self._response.readinto(window)
                    if count == 0:
                        break
                    self.sha256.update(window[:count])
                filled += count
                self._check_size(self.size + filled)
        if self.size == 0 and self._audio is not None:
            self._audio.check_magic(bytes(part[: min(filled, MAGIC_BYTES)]), self._key)
        self.size += filled
        return filled

    def _check_size(self, size: int) -> None:
        if self._max_bytes is not None and size > self._max_bytes:
            raise RecordingTooLargeError(f"{self._key}: the body goes on past the {self._max_bytes} bytes allowed")

    @contextmanager
    def _reading(self) -> Iterator[None]:
        """Transport errors become ArchiveError; after the deadline, TransferDeadlineError."""
        try:
            with _reading(self._url, self._key):
                if self._deadline is not None:
                    _time_left(self._deadline, self._key)
                yield
        except ArchiveError as exc:
            if self._expired.is_set() and not isinstance(exc, TransferDeadlineError):
                raise TransferDeadlineError(
                    f"{self._key}: the download did not finish before the invocation's deadline"
                ) from exc
            raise

    def _expire(self) -> None:
        """On the timer's thread: end a read that would otherwise go on past the deadline."""
        self._expired.set()
        shutdown = getattr(self._response, "shutdown", None)  # urllib3 >= 2.3
        if shutdown is not None:
            # Already released or closed: nothing is left to interrupt.
            with suppress(ValueError, RuntimeError, OSError):
                shutdown()

    @property
    def finished(self) -> bool:
        """Every announced byte is read: no need for another buffer to learn that the body ended."""
        return self.content_length is not None and self.size >= self.content_length

    def check_complete(self) -> None:
        """urllib3 already refuses a short body; this also catches a miscounted one."""
        if self.content_length is not None and self.size != self.content_length:
            raise ArchiveError(
                f"{self._key}: received {self.size} bytes, Content-Length announced {self.content_length}"
            )

    def discard(self) -> None:
        """Give the connection back to the pool; close it first unless the body was read to the end."""
        if self._watchdog is not None:
            self._watchdog.cancel()
        if self._expired.is_set() or self._response.length_remaining != 0:
            self._response.close()
        else:
            # Nothing left (a redirect's empty body, a body read to the end): end the exchange so the
            # connection can serve the next request.
            with suppress(HTTPError, OSError):
                self._response.read()
        self._response.release_conn()


@contextmanager
def _reading(url: str, key: str) -> Iterator[None]:
    """Turn urllib3's transport errors (refused, timed out, cut short) into ArchiveError."""
    try:
        yield
    except (HTTPError, OSError) as exc:
        raise ArchiveError(f"{key}: downloading {_redact(url)} failed: {type(exc).__name__}: {exc}") from exc


def _content_length(response: urllib3.BaseHTTPResponse) -> int | None:
    """The body's size as announced, when it is announced for the bytes as sent."""
    encoding = response.headers.get("Content-Encoding", "identity").lower()
    text = response.headers.get("Content-Length")
    if encoding != "identity" or text is None or not text.strip().isdigit():
        return None
    return int(text)


def _redact(url: str) -> str:
    """A presigned URL's query string is a credential: never put it in a message."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
