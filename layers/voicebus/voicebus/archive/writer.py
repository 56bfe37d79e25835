"""Archiving call recordings and transcripts into S3, streamed, checksummed and exactly once.

A recording can be hundreds of MB, so its body goes from the HTTP response to
S3 part by part and is never held whole: it is read and hashed in order on the
calling thread while up to `concurrency` parts upload at once, straight into a
multipart upload under the final key. S3 checks every part against the SHA-256
sent with it and keeps the composite SHA-256 of the parts as the object's
checksum. The SHA-256 of the whole recording is only known at the end, after S3
has fixed the object's metadata, so it is stored as the object's `sha256` tag
(and returned, for the call's record). A recording of one part is one PutObject
carrying its full SHA-256 both as S3's checksum and as `sha256` metadata.

Exactly once: an object under the key with a SHA-256 checksum, a known `sha256`
and the announced size is recognised before any download and is not written
again, so a versioned bucket gets no new version when Telnyx or EventBridge
delivers the webhook twice. Otherwise the recording is streamed and compared
with what is there (S3's checksum, or the recorded `sha256`): the same bytes
abort the upload, other bytes become a new version. Writes are conditional
(If-None-Match / If-Match), so a writer that slips in between is compared too.
A failure aborts the upload: no parts are left, and nothing new is under the key;
the one exception, a recording completed but not yet tagged, is recognised by its
checksum on the retry, tagged then, and not written again.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit, urlunsplit

import urllib3
from botocore.exceptions import BotoCoreError, ClientError
from urllib3.exceptions import HTTPError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef

logger = logging.getLogger(__name__)

MIB = 1024 * 1024
# S3's limits: every part but the last is at least 5 MiB, at most 5 GiB, 10,000 parts.
MIN_PART_SIZE = 5 * MIB
MAX_PART_SIZE = 5 * 1024 * MIB
MAX_PARTS = 10_000
DEFAULT_PART_SIZE = 8 * MIB
# Parts uploading at once; memory is this many parts whatever the recording's size.
DEFAULT_CONCURRENCY = 4
# One read from the socket; the part buffer fills from these.
READ_CHUNK_SIZE = 1 * MIB
DEFAULT_CONNECT_TIMEOUT = 5.0
# Per socket read, not for the whole body: a slow but alive download still completes.
DEFAULT_READ_TIMEOUT = 30.0

# The recording's SHA-256 (hex): metadata of a one-part object, tag of a multipart one.
SHA256_METADATA_KEY = "sha256"
SHA256_TAG_KEY = "sha256"
# S3 verifies each part (and a one-part object) against the SHA-256 sent with it.
CHECKSUM_ALGORITHM: Final = "SHA256"
EXTERNAL_SCHEMES = frozenset({"s3", "gs"})
# What an expired or revoked presigned link answers.
EXPIRED_LINK_STATUSES = frozenset({403, 404})
TRANSCRIPT_FORMATS = frozenset({"json", "txt"})

# S3 counts user metadata keys and values together against a 2 KB limit.
_MAX_METADATA_BYTES = 2048
_MAX_KEY_BYTES = 1024
_MAX_COMPONENT_CHARS = 200
_METADATA_KEY = re.compile(r"[a-z0-9][a-z0-9-]*")
_METADATA_VALUE = re.compile(r"[\x20-\x7e]*")
_UNSAFE_COMPONENT_CHARS = re.compile(r"[^A-Za-z0-9._-]")
_FORMAT = re.compile(r"[a-z0-9]{1,10}")
# What S3 answers a conditional write that lost a race.
_CONDITIONAL_WRITE_CONFLICTS = frozenset({"PreconditionFailed", "ConditionalRequestConflict", "412", "409"})
_MISSING_OBJECT_CODES = frozenset({"404", "NoSuchKey", "NotFound"})
# A write that loses the race is compared with the winner and tried again, this many times in all.
_WRITE_ATTEMPTS = 3


class ArchiveError(RuntimeError):
    """The recording is not archived (or not yet tagged) and no upload is left behind; fail and be retried."""


class KeyComponentError(ValueError):
    """An id cannot be made into one safe component of an S3 key."""


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
            raise ValueError("url must be http(s); record s3:// and gs:// locations instead of archiving them")
        _check_key(self.key)
        _check_metadata(self.metadata)


@dataclass(frozen=True)
class ArchivedObject:
    """An object in the archive, and whether this call wrote it."""

    bucket: str
    key: str
    version_id: str | None
    size: int
    sha256: str
    uploaded: bool

    @property
    def s3_uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


@dataclass(frozen=True)
class _Digest:
    """What this call computed over the bytes it read: their SHA-256, and S3's composite of its parts."""

    sha256: str
    composite: str | None = None

    @property
    def full_checksum(self) -> str:
        """The SHA-256 as S3 shows a full-object checksum: base64."""
        return _b64(bytes.fromhex(self.sha256))


@dataclass(frozen=True)
class _ExistingObject:
    """What HeadObject (and, for a multipart object, its tags) say about the object under the key."""

    version_id: str | None
    size: int
    etag: str
    # Hex, from the `sha256` metadata or tag: what the archiver recorded.
    sha256: str | None
    # S3's SHA-256 checksum, base64, without the `-<parts>` of a composite one.
    checksum: str | None
    # The tag set, when it was read (a multipart object without `sha256` metadata).
    tags: Mapping[str, str] | None = None

    def holds(self, digest: _Digest) -> bool:
        """Whether it has the bytes just read: by S3's checksum (whole, or of the same parts) or the recorded one."""
        if self.sha256 == digest.sha256:
            return True
        return self.checksum is not None and self.checksum in (digest.full_checksum, digest.composite)


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


def safe_component(value: str) -> str:
    """One key component: characters outside `A-Za-z0-9._-` become `_`, so no `/`, and never `.` or `..`."""
    if not value:
        raise KeyComponentError("is empty")
    if len(value) > _MAX_COMPONENT_CHARS:
        raise KeyComponentError(f"has {len(value)} characters, at most {_MAX_COMPONENT_CHARS} are kept in a key")
    component = _UNSAFE_COMPONENT_CHARS.sub("_", value)
    if not component.strip("."):
        raise KeyComponentError(f"{value!r} is only dots")
    return component


def recording_key(started_at: datetime, call_session_id: str, recording_id: str, fmt: str) -> str:
    """`recordings/YYYY/MM/DD/<call_session_id>/<recording_id>.<fmt>`, dated by the recording's start in UTC."""
    return f"{_dated('recordings', started_at, call_session_id)}/{safe_component(recording_id)}.{_format(fmt)}"


def transcript_key(
    started_at: datetime,
    call_session_id: str,
    *,
    recording_id: str | None = None,
    call_control_id: str | None = None,
    fmt: str = "json",
) -> str:
    """Where a transcript goes: next to its recording, or under `transcripts/` for a live call.

    With `recording_id`: `recordings/YYYY/MM/DD/<session>/<recording_id>.transcript.<fmt>`.
    With `call_control_id`: `transcripts/YYYY/MM/DD/<session>/<call_control_id>.<fmt>`.
    `fmt` is `json` or `txt`; `started_at` is the recording's or the call's start.
    """
    if fmt not in TRANSCRIPT_FORMATS:
        raise ValueError(f"transcript format must be one of {sorted(TRANSCRIPT_FORMATS)}, got {fmt!r}")
    if recording_id is not None and call_control_id is None:
        return f"{_dated('recordings', started_at, call_session_id)}/{safe_component(recording_id)}.transcript.{fmt}"
    if call_control_id is not None and recording_id is None:
        return f"{_dated('transcripts', started_at, call_session_id)}/{safe_component(call_control_id)}.{fmt}"
    raise ValueError("give exactly one of recording_id and call_control_id")


def recording_metadata(
    *,
    call_control_id: str,
    call_session_id: str,
    recording_id: str,
    started_at: datetime,
    ended_at: datetime,
    channels: str,
    fmt: str,
) -> dict[str, str]:
    """The metadata every archived recording carries, with the same keys and UTC ISO timestamps everywhere."""
    return {
        "call-control-id": _ascii(call_control_id),
        "call-session-id": _ascii(call_session_id),
        "recording-id": _ascii(recording_id),
        "recording-started-at": _utc(started_at).isoformat().replace("+00:00", "Z"),
        "recording-ended-at": _utc(ended_at).isoformat().replace("+00:00", "Z"),
        "channels": _ascii(channels),
        "format": _format(fmt),
    }


class RecordingArchiver:
    """Copies recordings from Telnyx into one bucket; built once per container.

    Memory stays at `concurrency` parts (plus one read chunk) whatever the
    recording's size. The client's `max_pool_connections` (10 by default) must
    allow `concurrency` connections: botocore would open the extra ones only to
    throw them away.
    """

    def __init__(
        self,
        client: S3Client,
        bucket: str,
        *,
        http: urllib3.PoolManager | None = None,
        part_size: int = DEFAULT_PART_SIZE,
        concurrency: int = DEFAULT_CONCURRENCY,
        kms_key_id: str | None = None,
    ) -> None:
        if not MIN_PART_SIZE <= part_size <= MAX_PART_SIZE:
            raise ValueError(f"part_size must be between {MIN_PART_SIZE} and {MAX_PART_SIZE} bytes, got {part_size}")
        connections = getattr(client.meta.config, "max_pool_connections", None) or 10
        if not 1 <= concurrency <= connections:
            raise ValueError(
                f"concurrency must be between 1 and the client's {connections} connections, got {concurrency}"
            )
        self._s3 = client
        self._bucket = bucket
        self._http = http or http_pool()
        self._part_size = part_size
        self._concurrency = concurrency
        self._encryption: dict[str, Any] = (
            {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": kms_key_id} if kms_key_id else {}
        )

    def archive(self, source: RecordingSource) -> ArchivedObject:
        """Stream `source` into the bucket under `source.key`, unless the same bytes are already there."""
        existing = self._head(source.key)
        body = self._open(source)
        try:
            length = body.content_length
            # Checksummed by S3 and its SHA-256 recorded: archived by this design, and finished.
            if existing and existing.checksum and existing.sha256 and existing.size == length:
                return self._recognised(source.key, existing, existing.sha256)
            if length is not None and length > self._part_size * MAX_PARTS:
                raise ArchiveError(f"{source.key}: {length} bytes need more than {MAX_PARTS} parts; raise part_size")
            return self._transfer(body, source, existing)
        finally:
            body.discard()

    def archive_text(
        self, key: str, text: str, content_type: str, metadata: Mapping[str, str] | None = None
    ) -> ArchivedObject:
        """Put a small text (a transcript) in one request; skipped when the same text is already there."""
        _check_key(key)
        _check_metadata(metadata or {})
        data = text.encode("utf-8")
        digest = _Digest(hashlib.sha256(data).hexdigest())
        return self._put(key, data, digest, content_type, metadata or {}, self._head(key))

    # ------------------------------------------------------------------ download

    def _open(self, source: RecordingSource) -> _Body:
        """GET the recording; on an expired link, GET once more from `refresh()`."""
        url = source.url
        response = self._get(url, source.key)
        if response.status in EXPIRED_LINK_STATUSES and source.refresh is not None:
            _Body(response, url, source.key).discard()
            try:
                url = source.refresh()
            except Exception as exc:
                raise ArchiveError(f"{source.key}: refreshing the expired download link failed: {exc}") from exc
            if urlsplit(url).scheme.lower() not in {"http", "https"}:
                raise ArchiveError(f"{source.key}: the refreshed download link is not http(s)")
            response = self._get(url, source.key)
        if response.status != 200:
            _Body(response, url, source.key).discard()
            raise ArchiveError(f"{source.key}: downloading {_redact(url)} answered HTTP {response.status}")
        return _Body(response, url, source.key)

    def _get(self, url: str, key: str) -> urllib3.BaseHTTPResponse:
        with _reading(url, key):
            return self._http.request(
                "GET",
                url,
                headers={"Accept-Encoding": "identity"},
                preload_content=False,
                decode_content=False,
            )

    # ------------------------------------------------------------------ upload

    def _transfer(self, body: _Body, source: RecordingSource, existing: _ExistingObject | None) -> ArchivedObject:
        first = bytearray(self._part_size)
        filled = body.fill(first)
        if filled == self._part_size:
            return self._transfer_in_parts(body, source, existing, first)
        # The whole recording fits in one part: one PutObject.
        del first[filled:]
        body.check_complete()
        digest = _Digest(body.sha256.hexdigest())
        return self._put(source.key, first, digest, source.content_type, source.metadata, existing)

    def _transfer_in_parts(
        self, body: _Body, source: RecordingSource, existing: _ExistingObject | None, first: bytearray
    ) -> ArchivedObject:
        key = source.key
        upload_id = self._create_upload(key, source.content_type, source.metadata)
        try:
            parts = self._upload_parts(body, key, upload_id, first)
            body.check_complete()
            digest = _Digest(body.sha256.hexdigest(), _composite(parts))
            archived = self._write_once(
                key,
                "CompleteMultipartUpload",
                digest,
                existing,
                write=lambda condition: self._complete(key, upload_id, parts, digest, body.size, condition),
                discard=lambda: self._abort(key, upload_id),
            )
        except BaseException:
            self._abort(key, upload_id)
            raise
        if archived.uploaded:
            # After the upload is complete, so a failure here leaves the object (and aborts nothing).
            self._tag(key, archived.version_id, {SHA256_TAG_KEY: digest.sha256})
        return archived

    def _upload_parts(self, body: _Body, key: str, upload_id: str, first: bytearray) -> list[_Part]:
        """Read and hash the parts here, in order; upload them on up to `concurrency` threads.

        A buffer is refilled only once its part is uploaded, so at most `concurrency`
        buffers exist. Every started part is finished before this returns or raises
        (the executor's exit waits): S3 may keep a part that lands after an abort.
        """
        done: list[_Part] = []
        spare: list[bytearray] = []
        running: dict[Future[_Part], bytearray] = {}

        def collect(*, block: bool) -> None:
            """Take in the finished parts (and raise the first failure), waiting for one if `block`."""
            finished, _ = wait(running, timeout=None if block else 0, return_when=FIRST_COMPLETED)
            for future in finished:
                done.append(future.result())
                spare.append(running.pop(future))

        with ThreadPoolExecutor(self._concurrency, thread_name_prefix="archive-part") as pool:
            part, number = first, 1
            while part:
                if number > MAX_PARTS:
                    raise ArchiveError(f"{key}: the body needs more than {MAX_PARTS} parts; raise part_size")
                running[pool.submit(self._upload_part, key, upload_id, number, part)] = part
                if len(part) < self._part_size:
                    break
                collect(block=len(running) == self._concurrency)
                part = spare.pop() if spare else bytearray(self._part_size)
                del part[body.fill(part) :]
                number += 1
            while running:
                collect(block=True)
        return sorted(done, key=lambda uploaded: uploaded.number)

    def _upload_part(self, key: str, upload_id: str, number: int, data: bytearray) -> _Part:
        """On a pool thread: the part's own SHA-256 (S3 checks it) is hashed here, beside the others."""
        sha256 = hashlib.sha256(data).digest()
        with _s3_call(f"UploadPart {number} of {key}"):
            # botocore takes a bytearray as it is (validate.py); the stubs only list bytes.
            answer = self._s3.upload_part(
                Bucket=self._bucket,
                Key=key,
                UploadId=upload_id,
                PartNumber=number,
                Body=data,  # type: ignore[arg-type]
                ChecksumAlgorithm=CHECKSUM_ALGORITHM,
                ChecksumSHA256=_b64(sha256),
            )
        return _Part(number, answer["ETag"], sha256)

    def _complete(
        self, key: str, upload_id: str, parts: list[_Part], digest: _Digest, size: int, condition: Mapping[str, Any]
    ) -> ArchivedObject:
        answer = self._s3.complete_multipart_upload(
            Bucket=self._bucket,
            Key=key,
            UploadId=upload_id,
            MultipartUpload={"Parts": [part.completed() for part in parts]},
            **condition,
        )
        return ArchivedObject(self._bucket, key, answer.get("VersionId"), size, digest.sha256, uploaded=True)

    def _put(
        self,
        key: str,
        data: bytes | bytearray,
        digest: _Digest,
        content_type: str,
        metadata: Mapping[str, str],
        existing: _ExistingObject | None,
    ) -> ArchivedObject:
        def put(condition: Mapping[str, Any]) -> ArchivedObject:
            answer = self._s3.put_object(
                Bucket=self._bucket,
                Key=key,
                Body=data,  # type: ignore[arg-type]  # a bytearray part, taken as it is by botocore
                ContentType=content_type,
                Metadata={**metadata, SHA256_METADATA_KEY: digest.sha256},
                # Both: the value spares botocore hashing again, the algorithm makes it S3's checksum.
                ChecksumAlgorithm=CHECKSUM_ALGORITHM,
                ChecksumSHA256=digest.full_checksum,
                **self._encryption,
                **condition,
            )
            return ArchivedObject(self._bucket, key, answer.get("VersionId"), len(data), digest.sha256, uploaded=True)

        return self._write_once(key, "PutObject", digest, existing, put)

    def _write_once(
        self,
        key: str,
        operation: str,
        digest: _Digest,
        existing: _ExistingObject | None,
        write: Callable[[Mapping[str, Any]], ArchivedObject],
        discard: Callable[[], None] = lambda: None,
    ) -> ArchivedObject:
        """Write unless the key holds these bytes; only over what was compared (nothing, or that very object).

        A write that lost a race to another writer is compared with the winner: the same
        bytes are discarded, other bytes become the newer version. (After a 409, S3 has
        dropped the upload itself; completing again fails and the invocation is retried.)
        """
        for _ in range(_WRITE_ATTEMPTS):
            if existing is not None and existing.holds(digest):
                discard()
                return self._recognised(key, existing, digest.sha256)
            try:
                return write(_condition(existing))
            except (BotoCoreError, ClientError) as exc:
                if not isinstance(exc, ClientError) or _error_code(exc) not in _CONDITIONAL_WRITE_CONFLICTS:
                    raise ArchiveError(f"{operation} of {key} failed: {_describe(exc)}") from exc
            existing = self._head(key)
        raise ArchiveError(f"{key} kept being written concurrently with other content; retry to compare again")

    def _recognised(self, key: str, existing: _ExistingObject, sha256: str) -> ArchivedObject:
        """The key holds these bytes already: nothing to write.

        A multipart object without its `sha256` tag (the archiving call failed between
        completing and tagging) gets it now, so the next delivery is recognised unread.
        """
        if existing.tags is not None and existing.tags.get(SHA256_TAG_KEY) != sha256:
            self._tag(key, existing.version_id, {**existing.tags, SHA256_TAG_KEY: sha256})
        return ArchivedObject(self._bucket, key, existing.version_id, existing.size, sha256, uploaded=False)

    # ------------------------------------------------------------------ S3 plumbing

    def _head(self, key: str) -> _ExistingObject | None:
        try:
            head = self._s3.head_object(Bucket=self._bucket, Key=key, ChecksumMode="ENABLED")
        except (BotoCoreError, ClientError) as exc:
            if isinstance(exc, ClientError) and _error_code(exc) in _MISSING_OBJECT_CODES:
                return None
            raise ArchiveError(f"HeadObject of {key} failed: {_describe(exc)}") from exc
        # A composite checksum reads `<base64>-<parts>` in S3 (moto 5.2's HeadObject leaves the count out).
        checksum = head.get("ChecksumSHA256", "").split("-", 1)[0] or None
        sha256 = head.get("Metadata", {}).get(SHA256_METADATA_KEY)
        tags = None
        if sha256 is None and checksum is not None:
            tags = self._tags(key, head.get("VersionId"))
            sha256 = tags.get(SHA256_TAG_KEY)
        return _ExistingObject(head.get("VersionId"), head["ContentLength"], head["ETag"], sha256, checksum, tags)

    def _tags(self, key: str, version_id: str | None) -> dict[str, str]:
        with _s3_call(f"GetObjectTagging of {key}"):
            answer = self._s3.get_object_tagging(Bucket=self._bucket, Key=key, **_version(version_id))
        return {tag["Key"]: tag["Value"] for tag in answer["TagSet"]}

    def _tag(self, key: str, version_id: str | None, tags: Mapping[str, str]) -> None:
        """Tag that very version: another writer may have added a newer one meanwhile."""
        with _s3_call(f"PutObjectTagging of {key}"):
            self._s3.put_object_tagging(
                Bucket=self._bucket,
                Key=key,
                Tagging={"TagSet": [{"Key": name, "Value": value} for name, value in tags.items()]},
                **_version(version_id),
            )

    def _create_upload(self, key: str, content_type: str, metadata: Mapping[str, str]) -> str:
        with _s3_call(f"CreateMultipartUpload of {key}"):
            created = self._s3.create_multipart_upload(
                Bucket=self._bucket,
                Key=key,
                ContentType=content_type,
                Metadata=dict(metadata),
                ChecksumAlgorithm=CHECKSUM_ALGORITHM,
                **self._encryption,
            )
        return created["UploadId"]

    def _abort(self, key: str, upload_id: str) -> None:
        """Often called while another error propagates: log a failed abort rather than mask that error."""
        try:
            self._s3.abort_multipart_upload(Bucket=self._bucket, Key=key, UploadId=upload_id)
        except (BotoCoreError, ClientError) as exc:
            # NoSuchUpload: gone already (aborted by someone else, or dropped by S3 after a 409).
            if not (isinstance(exc, ClientError) and _error_code(exc) == "NoSuchUpload"):
                logger.warning("AbortMultipartUpload of %s (upload %s) failed: %s", key, upload_id, _describe(exc))


@dataclass(frozen=True)
class _Part:
    """One uploaded part, and the SHA-256 S3 checked it against."""

    number: int
    etag: str
    sha256: bytes

    def completed(self) -> CompletedPartTypeDef:
        """The part as CompleteMultipartUpload lists it: with its checksum, which S3 then requires."""
        return {"PartNumber": self.number, "ETag": self.etag, "ChecksumSHA256": _b64(self.sha256)}


class _Body:
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


# ---------------------------------------------------------------------- helpers


@contextmanager
def _s3_call(description: str) -> Iterator[None]:
    try:
        yield
    except (BotoCoreError, ClientError) as exc:
        raise ArchiveError(f"{description} failed: {_describe(exc)}") from exc


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


def _composite(parts: list[_Part]) -> str:
    """S3's composite checksum of a multipart upload: the SHA-256 of the parts' SHA-256s, in order."""
    return _b64(hashlib.sha256(b"".join(part.sha256 for part in parts)).digest())


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode("ascii")


def _condition(existing: _ExistingObject | None) -> dict[str, Any]:
    """Write only over what was seen: nothing, or that very object."""
    return {"IfMatch": existing.etag} if existing else {"IfNoneMatch": "*"}


def _version(version_id: str | None) -> dict[str, Any]:
    return {"VersionId": version_id} if version_id else {}


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _describe(exc: BotoCoreError | ClientError) -> str:
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return f"{error.get('Code', 'unknown')} {error.get('Message', '')}".strip()
    return f"{type(exc).__name__}: {exc}"


def _redact(url: str) -> str:
    """A presigned URL's query string is a credential: never put it in a message."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def _check_key(key: str) -> None:
    if not key or key.startswith("/") or len(key.encode("utf-8")) > _MAX_KEY_BYTES:
        raise ValueError(f"an S3 key must be 1 to {_MAX_KEY_BYTES} bytes and not start with '/', got {key!r}")


def _check_metadata(metadata: Mapping[str, str]) -> None:
    """S3 sends metadata as HTTP headers: lower-case names, printable ASCII values, 2 KB in all."""
    total = len(SHA256_METADATA_KEY) + 64
    for name, value in metadata.items():
        if name == SHA256_METADATA_KEY:
            raise ValueError(f"metadata {SHA256_METADATA_KEY!r} is computed by the archiver, not given")
        if not _METADATA_KEY.fullmatch(name):
            raise ValueError(f"metadata name {name!r} must be lower-case letters, digits and '-'")
        if not _METADATA_VALUE.fullmatch(value):
            raise ValueError(f"metadata {name!r} must be printable ASCII")
        total += len(name) + len(value)
    if total > _MAX_METADATA_BYTES:
        raise ValueError(f"metadata takes {total} bytes with the sha256, S3 allows {_MAX_METADATA_BYTES}")


def _dated(prefix: str, started_at: datetime, call_session_id: str) -> str:
    day = _utc(started_at)
    return f"{prefix}/{day:%Y/%m/%d}/{safe_component(call_session_id)}"


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("a naive datetime has no date in UTC; give a timezone-aware one")
    return moment.astimezone(UTC)


def _format(fmt: str) -> str:
    normalized = fmt.strip().lower().lstrip(".")
    if not _FORMAT.fullmatch(normalized):
        raise ValueError(f"format must be a short extension such as 'mp3' or 'wav', got {fmt!r}")
    return normalized


def _ascii(value: str) -> str:
    if not _METADATA_VALUE.fullmatch(value):
        raise ValueError(f"{value!r} is not printable ASCII")
    return value
