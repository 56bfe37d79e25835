"""Downloading a recording from Telnyx: one streamed GET, hashed and counted as it is read.

The body is never held whole: `DownloadBody.fill` reads it into the caller's part
buffers. A presigned link that has expired (403/404) is refreshed once through
the source's `refresh` callback. Transport failures become `ArchiveError`, with
the link's query string (a credential) left out of every message.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

import urllib3
from urllib3.exceptions import HTTPError

from voicebus.archive.keys import check_key, check_metadata
from voicebus.errors import PermanentError, RetryableError

MIB = 1024 * 1024
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


class UnsupportedLocationError(PermanentError, ValueError):
    """The link is not http(s): Telnyx custom storage (s3://, gs://) is recorded, never copied."""


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
        if urlsplit(self.url).scheme.lower() not in {"http", "https"}:
            raise UnsupportedLocationError(
                "url must be http(s); record s3:// and gs:// locations instead of archiving them"
            )
        check_key(self.key)
        check_metadata(self.metadata)


def http_pool(
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT, read_timeout: float = DEFAULT_READ_TIMEOUT
) -> urllib3.PoolManager:
    """The download pool: retries connecting, never retries a read (the body is streamed once)."""
    return urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=connect_timeout, read=read_timeout),
        retries=urllib3.Retry(total=3, connect=2, read=0, status=0, other=0, redirect=3),
    )


def is_external_location(url: str) -> bool:
    """True for Telnyx custom storage (`s3://`, `gs://`): recorded as it is, never copied."""
    parts = urlsplit(url.strip())
    return parts.scheme.lower() in EXTERNAL_SCHEMES and bool(parts.netloc)


def open_download(http: urllib3.PoolManager, source: RecordingSource) -> DownloadBody:
    """GET the recording; on an expired link, GET once more from `refresh()`."""
    url = source.url
    response = _get(http, url, source.key)
    if response.status in EXPIRED_LINK_STATUSES and source.refresh is not None:
        DownloadBody(response, url, source.key).discard()
        try:
            url = source.refresh()
        except Exception as exc:
            raise ArchiveError(f"{source.key}: refreshing the expired download link failed: {exc}") from exc
        if urlsplit(url).scheme.lower() not in {"http", "https"}:
            raise ArchiveError(f"{source.key}: the refreshed download link is not http(s)")
        response = _get(http, url, source.key)
    if response.status != 200:
        DownloadBody(response, url, source.key).discard()
        raise ArchiveError(f"{source.key}: downloading {_redact(url)} answered HTTP {response.status}")
    return DownloadBody(response, url, source.key)


def _get(http: urllib3.PoolManager, url: str, key: str) -> urllib3.BaseHTTPResponse:
    with _reading(url, key):
        return http.request(
            "GET",
            url,
            headers={"Accept-Encoding": "identity"},
            preload_content=False,
            decode_content=False,
        )


class DownloadBody:
    """A response body read part by part, hashed and counted on the way."""

    def __init__(self, response: urllib3.BaseHTTPResponse, url: str, key: str) -> None:
        self._response = response
        self._url = url
        self._key = key
        self.sha256 = hashlib.sha256()
        self.size = 0
        self.content_length = _content_length(response)

    def fill(self, part: bytearray) -> int:
        """Read into `part` until it is full or the body ends; returns how many bytes it holds."""
        filled = 0
        with memoryview(part) as view, _reading(self._url, self._key):
            while filled < len(part):
                with view[filled : filled + READ_CHUNK_SIZE] as window:
                    count = self._response.readinto(window)
                    if count == 0:
                        break
                    self.sha256.update(window[:count])
                filled += count
        self.size += filled
        return filled

    def check_complete(self) -> None:
        """urllib3 already refuses a short body; this also catches a miscounted one."""
        if self.content_length is not None and self.size != self.content_length:
            raise ArchiveError(
                f"{self._key}: received {self.size} bytes, Content-Length announced {self.content_length}"
            )

    def discard(self) -> None:
        """Give the connection back to the pool; close it first unless the body was read to the end."""
        if self._response.length_remaining != 0:
            self._response.close()
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
