"""Writing recordings and transcripts into S3: streamed, checksummed and exactly once.

A recording can be hundreds of MB, so its body goes from the HTTP response
(`voicebus.archive.download`) to S3 part by part and is never held whole: it is
read and hashed (SHA-256) in order on the calling thread while up to `concurrency`
parts upload at once, straight into a multipart upload under the final key. S3
checks every part against the CRC32 sent with it and keeps the composite of the
parts' CRC32s as the object's checksum (`voicebus.archive.checksums` says why
CRC32). The SHA-256 of the whole recording is only known at the end, after S3
has fixed the object's metadata, so it is stored as the object's `sha256` tag
(and returned, for the call's record).

Most recordings are small (ten minutes of telephony WAV is about 19 MB), and a
multipart upload costs four requests more than a PutObject. So a recording that
announces at most `single_request_bytes` (by default what the parts in flight
would hold: 4 x 8 MiB), or that ends within its first part, is read whole and
sent as one PutObject carrying its full SHA-256 both as S3's checksum and as
`sha256` metadata: the same memory, one request, no tag.

Exactly once: an object under the key with an S3 checksum, a known `sha256`
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

import hashlib
import logging
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import urllib3
from botocore.exceptions import BotoCoreError, ClientError

from voicebus.archive.checksums import Digest, ExistingObject, UploadedPart, b64, composite_checksum, part_crc32
from voicebus.archive.download import (
    MIB,
    ArchiveError,
    DownloadBody,
    DownloadPolicy,
    RecordingSource,
    http_pool,
    open_download,
)
from voicebus.archive.keys import SHA256_METADATA_KEY, check_key, check_metadata

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

logger = logging.getLogger(__name__)

# S3's limits: every part but the last is at least 5 MiB, at most 5 GiB, 10,000 parts.
MIN_PART_SIZE = 5 * MIB
MAX_PART_SIZE = 5 * 1024 * MIB
MAX_PARTS = 10_000
DEFAULT_PART_SIZE = 8 * MIB
# Parts uploading at once; memory is this many parts whatever the recording's size.
DEFAULT_CONCURRENCY = 4

# The recording's SHA-256 (hex): the tag of a multipart object, the metadata of a one-request one.
SHA256_TAG_KEY = SHA256_METADATA_KEY
# S3 verifies a one-request object against its full SHA-256, and each part against its CRC32.
CHECKSUM_ALGORITHM: Final = "SHA256"
PART_CHECKSUM_ALGORITHM: Final = "CRC32"

# What S3 answers a conditional write that lost a race.
_CONDITIONAL_WRITE_CONFLICTS = frozenset({"PreconditionFailed", "ConditionalRequestConflict", "412", "409"})
_MISSING_OBJECT_CODES = frozenset({"404", "NoSuchKey", "NotFound"})
# A write that loses the race is compared with the winner and tried again, this many times in all.
_WRITE_ATTEMPTS = 3


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


class ArchiveWriter:
    """Writes recordings (streamed from Telnyx) and transcripts into one bucket; built once per container.

    Memory stays at `concurrency` parts (plus one read chunk) whatever the
    recording's size; `single_request_bytes` (None: `part_size` x `concurrency`)
    must fit in that budget. The client's `max_pool_connections` (10 by default) must
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
        policy: DownloadPolicy | None = None,
        single_request_bytes: int | None = None,
    ) -> None:
        if not MIN_PART_SIZE <= part_size <= MAX_PART_SIZE:
            raise ValueError(f"part_size must be between {MIN_PART_SIZE} and {MAX_PART_SIZE} bytes, got {part_size}")
        connections = getattr(client.meta.config, "max_pool_connections", None) or 10
        if not 1 <= concurrency <= connections:
            raise ValueError(
                f"concurrency must be between 1 and the client's {connections} connections, got {concurrency}"
            )
        budget = part_size * concurrency
        single_request_bytes = budget if single_request_bytes is None else single_request_bytes
        if not part_size <= single_request_bytes <= budget:
            raise ValueError(
                f"single_request_bytes must be between part_size ({part_size}) and the {budget} bytes "
                f"of the parts in flight, got {single_request_bytes}"
            )
        self._single_request_bytes = single_request_bytes
        self._s3 = client
        self._bucket = bucket
        self._http = http or http_pool()
        self._policy = policy or DownloadPolicy()
        self._part_size = part_size
        self._concurrency = concurrency
        self._encryption: dict[str, Any] = (
            {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": kms_key_id} if kms_key_id else {}
        )

    def archive(self, source: RecordingSource, deadline: float | None = None) -> ArchivedObject:
        """Stream `source` under `source.key` unless the same bytes are there; the download ends by `deadline`."""
        existing = self._head(source.key)
        body = open_download(self._http, source, self._policy, deadline)
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
        check_key(key)
        check_metadata(metadata or {})
        data = text.encode("utf-8")
        digest = Digest(hashlib.sha256(data).hexdigest())
        return self._put(key, data, digest, content_type, metadata or {}, self._head(key))

    # ------------------------------------------------------------------ upload

    def _transfer(self, body: DownloadBody, source: RecordingSource, existing: ExistingObject | None) -> ArchivedObject:
        announced = body.content_length
        if announced is not None and announced <= self._single_request_bytes:
            # Small enough to read whole within the memory budget: one PutObject.
            first = bytearray(announced)
            filled = body.fill(first)
        else:
            first = bytearray(self._part_size)
            filled = body.fill(first)
            if filled == self._part_size and not body.finished:
                return self._transfer_in_parts(body, source, existing, first)
        del first[filled:]
        body.check_complete()
        digest = Digest(body.sha256.hexdigest())
        return self._put(source.key, first, digest, source.content_type, source.metadata, existing)

    def _transfer_in_parts(
        self, body: DownloadBody, source: RecordingSource, existing: ExistingObject | None, first: bytearray
    ) -> ArchivedObject:
        key = source.key
        upload_id = self._create_upload(key, source.content_type, source.metadata)
        try:
            parts = self._upload_parts(body, key, upload_id, first)
            body.check_complete()
            digest = Digest(body.sha256.hexdigest(), composite_checksum(parts))
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

    def _upload_parts(self, body: DownloadBody, key: str, upload_id: str, first: bytearray) -> list[UploadedPart]:
        """Read and hash the parts here, in order; upload them on up to `concurrency` threads.

        A buffer is refilled only once its part is uploaded, so at most `concurrency`
        buffers exist. Every started part is finished before this returns or raises
        (the executor's exit waits): S3 may keep a part that lands after an abort.
        """
        done: list[UploadedPart] = []
        spare: list[bytearray] = []
        running: dict[Future[UploadedPart], bytearray] = {}

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
                if len(part) < self._part_size or body.finished:
                    break
                collect(block=len(running) == self._concurrency)
                part = spare.pop() if spare else bytearray(self._part_size)
                del part[body.fill(part) :]
                number += 1
            while running:
                collect(block=True)
        return sorted(done, key=lambda uploaded: uploaded.number)

    def _upload_part(self, key: str, upload_id: str, number: int, data: bytearray) -> UploadedPart:
        """On a pool thread: the part's own CRC32 (S3 checks it) is computed here, beside the others."""
        crc32 = part_crc32(data)
        with _s3_call(f"UploadPart {number} of {key}"):
            # botocore takes a bytearray as it is (validate.py); the stubs only list bytes.
            answer = self._s3.upload_part(
                Bucket=self._bucket,
                Key=key,
                UploadId=upload_id,
                PartNumber=number,
                Body=data,  # type: ignore[arg-type]
                ChecksumAlgorithm=PART_CHECKSUM_ALGORITHM,
                ChecksumCRC32=b64(crc32),
            )
        return UploadedPart(number, answer["ETag"], crc32)

    def _complete(
        self,
        key: str,
        upload_id: str,
        parts: list[UploadedPart],
        digest: Digest,
        size: int,
        condition: Mapping[str, Any],
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
        digest: Digest,
        content_type: str,
        metadata: Mapping[str, str],
        existing: ExistingObject | None,
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
        digest: Digest,
        existing: ExistingObject | None,
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

    def _recognised(self, key: str, existing: ExistingObject, sha256: str) -> ArchivedObject:
        """The key holds these bytes already: nothing to write.

        A multipart object without its `sha256` tag (the archiving call failed between
        completing and tagging) gets it now, so the next delivery is recognised unread.
        """
        if existing.tags is not None and existing.tags.get(SHA256_TAG_KEY) != sha256:
            self._tag(key, existing.version_id, {**existing.tags, SHA256_TAG_KEY: sha256})
        return ArchivedObject(self._bucket, key, existing.version_id, existing.size, sha256, uploaded=False)

    # ------------------------------------------------------------------ S3 plumbing

    def _head(self, key: str) -> ExistingObject | None:
        try:
            head = self._s3.head_object(Bucket=self._bucket, Key=key, ChecksumMode="ENABLED")
        except (BotoCoreError, ClientError) as exc:
            if isinstance(exc, ClientError) and _error_code(exc) in _MISSING_OBJECT_CODES:
                return None
            raise ArchiveError(f"HeadObject of {key} failed: {_describe(exc)}") from exc
        # A one-request object's full SHA-256, or a multipart one's composite CRC32. A composite reads
        # `<base64>-<parts>` in S3 (moto 5.2's HeadObject leaves the count out).
        checksum = (head.get("ChecksumSHA256") or head.get("ChecksumCRC32") or "").split("-", 1)[0] or None
        sha256 = head.get("Metadata", {}).get(SHA256_METADATA_KEY)
        tags = None
        if sha256 is None and checksum is not None:
            tags = self._tags(key, head.get("VersionId"))
            sha256 = tags.get(SHA256_TAG_KEY)
        return ExistingObject(head.get("VersionId"), head["ContentLength"], head["ETag"], sha256, checksum, tags)

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
                ChecksumAlgorithm=PART_CHECKSUM_ALGORITHM,
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


@contextmanager
def _s3_call(description: str) -> Iterator[None]:
    try:
        yield
    except (BotoCoreError, ClientError) as exc:
        raise ArchiveError(f"{description} failed: {_describe(exc)}") from exc


def _condition(existing: ExistingObject | None) -> dict[str, Any]:
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
