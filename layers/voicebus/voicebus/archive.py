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

import dataclasses
import hashlib
import logging
import re
import uuid
from collections.abc import Callable, Iterator, Mapping
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
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef, CopySourceTypeDef

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
# Every part carries a CRC32 that S3 checks on arrival, as boto3's upload_file does;
# declaring it at CreateMultipartUpload also spares S3 a full-object checksum at the end.
PART_CHECKSUM_ALGORITHM: Final = "CRC32"
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
        body = self._open(source)
        try:
            length = body.content_length
            if existing and existing.sha256 and length is not None and existing.size == length:
                return existing.archived(self._bucket, source.key)
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
        sha256 = hashlib.sha256(data).hexdigest()
        existing = self._head(key)
        if existing and existing.sha256 == sha256:
            return existing.archived(self._bucket, key)
        return self._put(key, data, sha256, content_type, metadata or {}, existing)

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
        part = bytearray(self._part_size)
        filled = body.fill(part)
        if filled == self._part_size:
            return self._transfer_in_parts(body, source, existing, part)
        # The whole recording fits in one part: one PutObject, no staging.
        del part[filled:]
        body.check_complete()
        sha256 = body.sha256.hexdigest()
        if existing and existing.sha256 == sha256:
            return existing.archived(self._bucket, source.key)
        return self._put(source.key, part, sha256, source.content_type, source.metadata, existing)

    def _transfer_in_parts(
        self, body: _Body, source: RecordingSource, existing: _ExistingObject | None, part: bytearray
    ) -> ArchivedObject:
        # A key of its own, whatever the final key's length; the metadata says which recording it is.
        staging_key = f"{STAGING_PREFIX}{uuid.uuid4().hex}"
        upload_id = self._create_upload(staging_key, source.content_type, source.metadata)
        try:
            parts = self._upload_parts(body, source.key, staging_key, upload_id, part)
            body.check_complete()
            sha256 = body.sha256.hexdigest()
            if existing and existing.sha256 == sha256:
                # The same bytes are archived already: no new version, not even a staged one.
                self._abort_quietly(staging_key, upload_id)
                return existing.archived(self._bucket, source.key)
            with _s3_call(f"CompleteMultipartUpload of {source.key} into {staging_key}"):
                staged = self._s3.complete_multipart_upload(
                    Bucket=self._bucket,
                    Key=staging_key,
                    UploadId=upload_id,
                    MultipartUpload={"Parts": [part.completed() for part in parts]},
                )
        except BaseException:
            self._abort_quietly(staging_key, upload_id)
            raise
        staged_source: CopySourceTypeDef = {"Bucket": self._bucket, "Key": staging_key}
        if staged.get("VersionId"):
            staged_source["VersionId"] = staged["VersionId"]
        try:
            return self._assemble(source, staged_source, parts, sha256, existing)
        finally:
            self._delete_quietly(staged_source)

    def _upload_parts(self, body: _Body, key: str, staging_key: str, upload_id: str, part: bytearray) -> list[_Part]:
        """Upload `part`, refill it from the body, repeat: that one buffer is all the recording held."""
        parts: list[_Part] = []
        offset = 0
        while part:
            number = len(parts) + 1
            if number > MAX_PARTS:
                raise ArchiveError(f"{key}: the body needs more than {MAX_PARTS} parts; raise part_size")
            with _s3_call(f"UploadPart {number} of {key} into {staging_key}"):
                # botocore takes a bytearray as it is (validate.py); the stubs only list bytes.
                answer = self._s3.upload_part(
                    Bucket=self._bucket,
                    Key=staging_key,
                    UploadId=upload_id,
                    PartNumber=number,
                    Body=part,  # type: ignore[arg-type]
                    ChecksumAlgorithm=PART_CHECKSUM_ALGORITHM,
                )
            parts.append(_Part(number, offset, len(part), answer["ETag"], answer.get("ChecksumCRC32")))
            offset += len(part)
            if len(part) < self._part_size:
                break
            del part[body.fill(part) :]
        return parts

    def _assemble(
        self,
        source: RecordingSource,
        staged: CopySourceTypeDef,
        parts: list[_Part],
        sha256: str,
        existing: _ExistingObject | None,
    ) -> ArchivedObject:
        """Create the final object with its sha256 and copy the staged parts into it, server-side."""
        metadata = {**source.metadata, SHA256_METADATA_KEY: sha256}
        upload_id = self._create_upload(source.key, source.content_type, metadata)
        try:
            copied: list[CompletedPartTypeDef] = []
            for part in parts:
                with _s3_call(f"UploadPartCopy {part.number} of {source.key}"):
                    answer = self._s3.upload_part_copy(
                        Bucket=self._bucket,
                        Key=source.key,
                        UploadId=upload_id,
                        PartNumber=part.number,
                        CopySource=staged,
                        CopySourceRange=f"bytes={part.offset}-{part.offset + part.size - 1}",
                    )
                result = answer["CopyPartResult"]
                copied.append(
                    dataclasses.replace(part, etag=result["ETag"], crc32=result.get("ChecksumCRC32")).completed()
                )
            completed = self._s3.complete_multipart_upload(
                Bucket=self._bucket,
                Key=source.key,
                UploadId=upload_id,
                MultipartUpload={"Parts": copied},
                **_condition(existing),
            )
        except (BotoCoreError, ClientError) as exc:
            self._abort_quietly(source.key, upload_id)
            if isinstance(exc, ClientError) and _error_code(exc) in _CONDITIONAL_WRITE_CONFLICTS:
                return self._settle_conflict(source.key, sha256)
            raise ArchiveError(f"CompleteMultipartUpload of {source.key} failed: {_describe(exc)}") from exc
        except BaseException:
            self._abort_quietly(source.key, upload_id)
            raise
        size = sum(part.size for part in parts)
        return ArchivedObject(self._bucket, source.key, completed.get("VersionId"), size, sha256, uploaded=True)

    def _put(
        self,
        key: str,
        data: bytes | bytearray,
        sha256: str,
        content_type: str,
        metadata: Mapping[str, str],
        existing: _ExistingObject | None,
    ) -> ArchivedObject:
        try:
            answer = self._s3.put_object(
                Bucket=self._bucket,
                Key=key,
                Body=data,  # type: ignore[arg-type]  # a bytearray part, taken as it is by botocore
                ContentType=content_type,
                Metadata={**metadata, SHA256_METADATA_KEY: sha256},
                **self._encryption,
                **_condition(existing),
            )
        except (BotoCoreError, ClientError) as exc:
            if isinstance(exc, ClientError) and _error_code(exc) in _CONDITIONAL_WRITE_CONFLICTS:
                return self._settle_conflict(key, sha256)
            raise ArchiveError(f"PutObject of {key} failed: {_describe(exc)}") from exc
        return ArchivedObject(self._bucket, key, answer.get("VersionId"), len(data), sha256, uploaded=True)

    def _settle_conflict(self, key: str, sha256: str) -> ArchivedObject:
        """Another writer got there first, between our HeadObject and our write: fine if it wrote these bytes."""
        winner = self._head(key)
        if winner and winner.sha256 == sha256:
            return winner.archived(self._bucket, key)
        raise ArchiveError(f"{key} was written concurrently with other content; retry to compare again")

    # ------------------------------------------------------------------ S3 plumbing

    def _head(self, key: str) -> _ExistingObject | None:
        try:
            head = self._s3.head_object(Bucket=self._bucket, Key=key)
        except (BotoCoreError, ClientError) as exc:
            if isinstance(exc, ClientError) and _error_code(exc) in _MISSING_OBJECT_CODES:
                return None
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
                Bucket=self._bucket,
                Key=key,
                ContentType=content_type,
                Metadata=dict(metadata),
                ChecksumAlgorithm=PART_CHECKSUM_ALGORITHM,
                **self._encryption,
            )
        return created["UploadId"]

    def _abort_quietly(self, key: str, upload_id: str) -> None:
        """Often called while another error propagates: log a failed abort rather than mask that error."""
        try:
            self._s3.abort_multipart_upload(Bucket=self._bucket, Key=key, UploadId=upload_id)
        except (BotoCoreError, ClientError) as exc:
            logger.warning("AbortMultipartUpload of %s (upload %s) failed: %s", key, upload_id, _describe(exc))

    def _delete_quietly(self, staged: CopySourceTypeDef) -> None:
        """Remove the staged object for good (by version); a leftover costs storage, it is not an error."""
        try:
            if "VersionId" in staged:
                self._s3.delete_object(Bucket=staged["Bucket"], Key=staged["Key"], VersionId=staged["VersionId"])
            else:
                self._s3.delete_object(Bucket=staged["Bucket"], Key=staged["Key"])
        except (BotoCoreError, ClientError) as exc:
            logger.warning("deleting the staged %s failed: %s", staged["Key"], _describe(exc))


@dataclass(frozen=True)
class _Part:
    """One uploaded part: where it sits in the recording, and what S3 answered for it."""

    number: int
    offset: int
    size: int
    etag: str
    crc32: str | None

    def completed(self) -> CompletedPartTypeDef:
        """The part as CompleteMultipartUpload lists it: with its CRC32, which S3 then requires."""
        listed: CompletedPartTypeDef = {"PartNumber": self.number, "ETag": self.etag}
        if self.crc32:
            listed["ChecksumCRC32"] = self.crc32
        return listed


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


def _condition(existing: _ExistingObject | None) -> dict[str, Any]:
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
