"""Archiving call recordings and transcripts into S3, streamed, checksummed and exactly once.

A recording can be hundreds of MB, so its body goes from the HTTP response to
S3 one part at a time and is never held whole. Its SHA-256 is only known at the
end, yet S3 fixes an object's metadata when the upload is created; so a
recording larger than one part is streamed into a multipart upload under
`staging/`, and the final object is then assembled server-side (UploadPartCopy)
with the digest in its metadata. The final key therefore never holds an object
without its `sha256`, and a failure leaves nothing under it.

Exactly once: an object already archived with the same bytes is recognised by
its `sha256` metadata (and its size, before any download) and is not written
again, so a versioned bucket gets no new version when Telnyx or EventBridge
delivers the webhook twice. Writes are conditional (If-None-Match / If-Match),
so two concurrent deliveries cannot both add a version either.
"""

from __future__ import annotations

import hashlib
import logging
import re
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
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
# One read from the socket; the part buffer fills from these.
READ_CHUNK_SIZE = 1 * MIB
DEFAULT_CONNECT_TIMEOUT = 5.0
# Per socket read, not for the whole body: a slow but alive download still completes.
DEFAULT_READ_TIMEOUT = 30.0

SHA256_METADATA_KEY = "sha256"
# Where large recordings are streamed before the final object is assembled;
# reserved, and worth a lifecycle rule (a killed invocation cannot clean up).
STAGING_PREFIX = "staging/"
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


class ArchiveError(RuntimeError):
    """Nothing new is archived and no upload is left behind; the invocation should fail and be retried."""


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
class _ExistingObject:
    """What HeadObject says about an object already under the key."""

    version_id: str | None
    size: int
    etag: str
    sha256: str | None

    def archived(self, bucket: str, key: str) -> ArchivedObject:
        return ArchivedObject(bucket, key, self.version_id, self.size, self.sha256 or "", uploaded=False)


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
    if (recording_id is None) == (call_control_id is None):
        raise ValueError("give exactly one of recording_id and call_control_id")
    if fmt not in TRANSCRIPT_FORMATS:
        raise ValueError(f"transcript format must be one of {sorted(TRANSCRIPT_FORMATS)}, got {fmt!r}")
    if recording_id is not None:
        return f"{_dated('recordings', started_at, call_session_id)}/{safe_component(recording_id)}.transcript.{fmt}"
    assert call_control_id is not None  # noqa: S101 - narrowed by the check above
    return f"{_dated('transcripts', started_at, call_session_id)}/{safe_component(call_control_id)}.{fmt}"


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

    Memory stays at one part (plus one read chunk) whatever the recording's size.
    """

    def __init__(
        self,
        client: S3Client,
        bucket: str,
        *,
        http: urllib3.PoolManager | None = None,
        part_size: int = DEFAULT_PART_SIZE,
        kms_key_id: str | None = None,
    ) -> None:
        if not MIN_PART_SIZE <= part_size <= MAX_PART_SIZE:
            raise ValueError(f"part_size must be between {MIN_PART_SIZE} and {MAX_PART_SIZE} bytes, got {part_size}")
        self._s3 = client
        self._bucket = bucket
        self._http = http or http_pool()
        self._part_size = part_size
        self._encryption: dict[str, Any] = (
            {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": kms_key_id} if kms_key_id else {}
        )

    def archive(self, source: RecordingSource) -> ArchivedObject:
        """Stream `source` into the bucket under `source.key`, unless the same bytes are already there."""
        existing = self._head(source.key)
        response = self._open(source)
        with ExitStack() as cleanup:
            cleanup.callback(_discard, response)
            length = _content_length(response)
            if existing and existing.sha256 and length is not None and existing.size == length:
                return existing.archived(self._bucket, source.key)
            if length is not None and length > self._part_size * MAX_PARTS:
                raise ArchiveError(f"{source.key}: {length} bytes need more than {MAX_PARTS} parts; raise part_size")
            return self._transfer(response, source, existing, length)
        raise AssertionError("unreachable")  # pragma: no cover - ExitStack does not swallow exceptions

    def archive_text(
        self, key: str, text: str, content_type: str, metadata: Mapping[str, str] | None = None
    ) -> ArchivedObject:
        """Put a small text (a transcript) in one request; skipped when the same text is already there."""
        _check_key(key)
        _check_metadata(metadata or {})
        body = text.encode("utf-8")
        sha256 = hashlib.sha256(body).hexdigest()
        existing = self._head(key)
        if existing and existing.sha256 == sha256:
            return existing.archived(self._bucket, key)
        return self._put(key, body, sha256, content_type, metadata or {}, existing)

    # ------------------------------------------------------------------ download

    def _open(self, source: RecordingSource) -> urllib3.BaseHTTPResponse:
        """GET the recording; on an expired link, GET once more from `refresh()`."""
        response = self._get(source.url)
        if response.status in EXPIRED_LINK_STATUSES and source.refresh is not None:
            _discard(response)
            try:
                fresh_url = source.refresh()
            except Exception as exc:
                raise ArchiveError(f"{source.key}: refreshing the expired download link failed: {exc}") from exc
            if urlsplit(fresh_url).scheme.lower() not in {"http", "https"}:
                raise ArchiveError(f"{source.key}: the refreshed download link is not http(s)")
            response = self._get(fresh_url)
        if response.status != 200:
            _discard(response)
            raise ArchiveError(f"{source.key}: downloading {_redact(response.geturl() or '')} answered {response.status}")
        return response

    def _get(self, url: str) -> urllib3.BaseHTTPResponse:
        with _reading(url):
            return self._http.request(
                "GET",
                url,
                headers={"Accept-Encoding": "identity"},
                preload_content=False,
                decode_content=False,
            )

    def _fill(self, response: urllib3.BaseHTTPResponse, part: bytearray, digest: Any) -> int:
        """Read into `part` until it is full or the body ends; hash what was read."""
        filled = 0
        with memoryview(part) as view, _reading(response.geturl() or ""):
            while filled < len(part):
                window = view[filled : filled + READ_CHUNK_SIZE]
                count = response.readinto(window)
                if count == 0:
                    break
                digest.update(window[:count])
                filled += count
        return filled

    # ------------------------------------------------------------------ upload

    def _transfer(
        self,
        response: urllib3.BaseHTTPResponse,
        source: RecordingSource,
        existing: _ExistingObject | None,
        length: int | None,
    ) -> ArchivedObject:
        digest = hashlib.sha256()
        part = bytearray(self._part_size)
        filled = self._fill(response, part, digest)
        if filled < self._part_size:
            # The whole recording fits in one part: one PutObject, no staging.
            del part[filled:]
            _check_length(source.key, filled, length)
            sha256 = digest.hexdigest()
            if existing and existing.sha256 == sha256:
                return existing.archived(self._bucket, source.key)
            return self._put(source.key, part, sha256, source.content_type, source.metadata, existing)
        return self._transfer_in_parts(response, source, existing, length, part, digest)

    def _transfer_in_parts(
        self,
        response: urllib3.BaseHTTPResponse,
        source: RecordingSource,
        existing: _ExistingObject | None,
        length: int | None,
        part: bytearray,
        digest: Any,
    ) -> ArchivedObject:
        staging_key = f"{STAGING_PREFIX}{uuid.uuid4().hex}/{source.key}"
        with ExitStack() as undo:
            upload_id = self._create_upload(staging_key, source.content_type, source.metadata)
            undo.callback(self._abort_quietly, staging_key, upload_id)
            part_sizes: list[int] = []
            parts: list[CompletedPartTypeDef] = []
            while part:
                number = len(parts) + 1
                if number > MAX_PARTS:
                    raise ArchiveError(f"{source.key}: the body needs more than {MAX_PARTS} parts; raise part_size")
                with _s3_call(f"UploadPart {number} of {source.key}"):
                    answer = self._s3.upload_part(
                        Bucket=self._bucket, Key=staging_key, UploadId=upload_id, PartNumber=number, Body=part
                    )
                parts.append({"PartNumber": number, "ETag": answer["ETag"]})
                part_sizes.append(len(part))
                if len(part) < self._part_size:
                    break
                filled = self._fill(response, part, digest)
                del part[filled:]
            size = sum(part_sizes)
            _check_length(source.key, size, length)
            sha256 = digest.hexdigest()
            if existing and existing.sha256 == sha256:
                return existing.archived(self._bucket, source.key)  # undo aborts the staging upload

            with _s3_call(f"CompleteMultipartUpload of {staging_key}"):
                staged = self._s3.complete_multipart_upload(
                    Bucket=self._bucket, Key=staging_key, UploadId=upload_id, MultipartUpload={"Parts": parts}
                )
            undo.pop_all()
            undo.callback(self._delete_quietly, staging_key, staged.get("VersionId"))
            return self._assemble(source, staging_key, staged.get("VersionId"), part_sizes, sha256, existing)
        raise AssertionError("unreachable")  # pragma: no cover - ExitStack does not swallow exceptions

    def _assemble(
        self,
        source: RecordingSource,
        staging_key: str,
        staging_version: str | None,
        part_sizes: list[int],
        sha256: str,
        existing: _ExistingObject | None,
    ) -> ArchivedObject:
        """Copy the staged parts, server-side, into the final object created with its sha256."""
        metadata = {**source.metadata, SHA256_METADATA_KEY: sha256}
        copy_source: dict[str, str] = {"Bucket": self._bucket, "Key": staging_key}
        if staging_version:
            copy_source["VersionId"] = staging_version
        with ExitStack() as undo:
            upload_id = self._create_upload(source.key, source.content_type, metadata)
            undo.callback(self._abort_quietly, source.key, upload_id)
            parts: list[CompletedPartTypeDef] = []
            start = 0
            for number, part_size in enumerate(part_sizes, start=1):
                with _s3_call(f"UploadPartCopy {number} of {source.key}"):
                    answer = self._s3.upload_part_copy(
                        Bucket=self._bucket,
                        Key=source.key,
                        UploadId=upload_id,
                        PartNumber=number,
                        CopySource=copy_source,  # type: ignore[arg-type]
                        CopySourceRange=f"bytes={start}-{start + part_size - 1}",
                    )
                parts.append({"PartNumber": number, "ETag": answer["CopyPartResult"]["ETag"]})
                start += part_size
            try:
                completed = self._s3.complete_multipart_upload(
                    Bucket=self._bucket,
                    Key=source.key,
                    UploadId=upload_id,
                    MultipartUpload={"Parts": parts},
                    **_condition(existing),
                )
            except ClientError as exc:
                if _error_code(exc) in _CONDITIONAL_WRITE_CONFLICTS:
                    return self._settle_conflict(source.key, sha256)
                raise ArchiveError(f"CompleteMultipartUpload of {source.key} failed: {_describe(exc)}") from exc
            except BotoCoreError as exc:
                raise ArchiveError(f"CompleteMultipartUpload of {source.key} failed: {_describe(exc)}") from exc
            undo.pop_all()
        return ArchivedObject(self._bucket, source.key, completed.get("VersionId"), start, sha256, uploaded=True)

    def _put(
        self,
        key: str,
        body: bytes | bytearray,
        sha256: str,
        content_type: str,
        metadata: Mapping[str, str],
        existing: _ExistingObject | None,
    ) -> ArchivedObject:
        try:
            answer = self._s3.put_object(
                Bucket=self._bucket,
                Key=key,
                Body=body,
                ContentType=content_type,
                Metadata={**metadata, SHA256_METADATA_KEY: sha256},
                **self._encryption,
                **_condition(existing),
            )
        except ClientError as exc:
            if _error_code(exc) in _CONDITIONAL_WRITE_CONFLICTS:
                return self._settle_conflict(key, sha256)
            raise ArchiveError(f"PutObject of {key} failed: {_describe(exc)}") from exc
        except BotoCoreError as exc:
            raise ArchiveError(f"PutObject of {key} failed: {_describe(exc)}") from exc
        return ArchivedObject(self._bucket, key, answer.get("VersionId"), len(body), sha256, uploaded=True)

    def _settle_conflict(self, key: str, sha256: str) -> ArchivedObject:
        """Another writer got there first: fine if it wrote the same bytes."""
        winner = self._head(key)
        if winner and winner.sha256 == sha256:
            return winner.archived(self._bucket, key)
        raise ArchiveError(f"{key} was written concurrently with other content; retry to compare again")

    # ------------------------------------------------------------------ S3 plumbing

    def _head(self, key: str) -> _ExistingObject | None:
        try:
            head = self._s3.head_object(Bucket=self._bucket, Key=key)
        except ClientError as exc:
            if _error_code(exc) in _MISSING_OBJECT_CODES:
                return None
            raise ArchiveError(f"HeadObject of {key} failed: {_describe(exc)}") from exc
        except BotoCoreError as exc:
            raise ArchiveError(f"HeadObject of {key} failed: {_describe(exc)}") from exc
        return _ExistingObject(
            version_id=head.get("VersionId"),
            size=head["ContentLength"],
            etag=head["ETag"],
            sha256=head.get("Metadata", {}).get(SHA256_METADATA_KEY),
        )

    def _create_upload(self, key: str, content_type: str, metadata: Mapping[str, str]) -> str:
        with _s3_call(f"CreateMultipartUpload of {key}"):
            created = self._s3.create_multipart_upload(
                Bucket=self._bucket, Key=key, ContentType=content_type, Metadata=dict(metadata), **self._encryption
            )
        return created["UploadId"]

    def _abort_quietly(self, key: str, upload_id: str) -> None:
        """Called while another error propagates: log a failed abort rather than mask that error."""
        try:
            self._s3.abort_multipart_upload(Bucket=self._bucket, Key=key, UploadId=upload_id)
        except (BotoCoreError, ClientError) as exc:
            logger.warning("AbortMultipartUpload of %s (%s) failed: %s", key, upload_id, _describe(exc))

    def _delete_quietly(self, key: str, version_id: str | None) -> None:
        """Remove the staged copy for good (its version too); a leftover is only storage, never an error."""
        try:
            if version_id:
                self._s3.delete_object(Bucket=self._bucket, Key=key, VersionId=version_id)
            else:
                self._s3.delete_object(Bucket=self._bucket, Key=key)
        except (BotoCoreError, ClientError) as exc:
            logger.warning("deleting the staged %s failed: %s", key, _describe(exc))


# ---------------------------------------------------------------------- helpers


@contextmanager
def _s3_call(description: str) -> Iterator[None]:
    try:
        yield
    except (BotoCoreError, ClientError) as exc:
        raise ArchiveError(f"{description} failed: {_describe(exc)}") from exc


@contextmanager
def _reading(url: str) -> Iterator[None]:
    """Turn urllib3's transport errors (refused, timed out, cut short) into ArchiveError."""
    try:
        yield
    except (HTTPError, OSError) as exc:
        raise ArchiveError(f"downloading {_redact(url)} failed: {type(exc).__name__}: {exc}") from exc


def _discard(response: urllib3.BaseHTTPResponse) -> None:
    """Give the connection back; close it first unless the body was read to the end."""
    if response.length_remaining not in (None, 0) or not response.closed:
        response.close()
    response.release_conn()


def _content_length(response: urllib3.BaseHTTPResponse) -> int | None:
    """The body's size as announced, when it is announced for the bytes as sent."""
    encoding = response.headers.get("Content-Encoding", "identity").lower()
    text = response.headers.get("Content-Length")
    if encoding != "identity" or text is None or not text.strip().isdigit():
        return None
    return int(text)


def _check_length(key: str, size: int, expected: int | None) -> None:
    if expected is not None and size != expected:
        raise ArchiveError(f"{key}: received {size} bytes, Content-Length announced {expected}")


def _condition(existing: _ExistingObject | None) -> dict[str, str]:
    """Write only over what was seen: nothing, or that very object."""
    return {"IfMatch": existing.etag} if existing else {"IfNoneMatch": "*"}


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
    if key.startswith(STAGING_PREFIX):
        raise ValueError(f"keys under {STAGING_PREFIX} are reserved for uploads in progress")


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
