"""The recording archiver against moto server and the local storage stand-in, over HTTP both ways."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.exceptions import ClientError

from voicebus.archive.download import ArchiveError, DownloadBody, DownloadPolicy, RecordingSource, http_pool
from voicebus.archive.keys import SHA256_METADATA_KEY, recording_key, recording_metadata, transcript_key
from voicebus.archive.writer import SHA256_TAG_KEY, ArchiveWriter
from voicebus_cli.local.storage import Behaviour, PublishedRecording, StorageServer

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

pytestmark = pytest.mark.integration

MIB = 1024 * 1024
PART = 5 * MIB
STARTED = datetime(2026, 11, 21, 10, 0, 0, tzinfo=UTC)
# The storage stand-in serves plain http on 127.0.0.1, as the local stack allows it.
LOCAL = DownloadPolicy(http_hosts=frozenset({"127.0.0.1"}))


@pytest.fixture(scope="module")
def storage() -> Iterator[StorageServer]:
    with StorageServer(fmt="wav") as server:  # the sources below archive audio/wav
        yield server


@pytest.fixture
def archiver(s3: S3Client, bucket: str) -> ArchiveWriter:
    """In parts beyond one part, so that recordings of a few MiB exercise the multipart upload."""
    return ArchiveWriter(s3, bucket, part_size=PART, single_request_bytes=PART, policy=LOCAL)


def source(recording: PublishedRecording, key: str, refresh: Callable[[], str] | None = None) -> RecordingSource:
    return RecordingSource(recording.url, key, "audio/wav", {"recording-id": "rec-1"}, refresh)


def stored_sha256(s3: S3Client, bucket: str, key: str) -> str:
    digest = hashlib.sha256()
    for chunk in s3.get_object(Bucket=bucket, Key=key)["Body"].iter_chunks(MIB):
        digest.update(chunk)
    return digest.hexdigest()


def versions(s3: S3Client, bucket: str, prefix: str) -> list[str]:
    listing = s3.list_object_versions(Bucket=bucket, Prefix=prefix)
    return [v["VersionId"] for v in listing.get("Versions", [])] + [
        m["VersionId"] for m in listing.get("DeleteMarkers", [])
    ]


def multipart_etag(content: bytes, part_size: int) -> str:
    """S3's ETag for a multipart object: MD5 of the parts' MD5s, then the part count."""
    digests = [
        hashlib.md5(content[start : start + part_size], usedforsecurity=False).digest()
        for start in range(0, len(content), part_size)
    ]
    return f'"{hashlib.md5(b"".join(digests), usedforsecurity=False).hexdigest()}-{len(digests)}"'


def composite_crc32(content: bytes, part_size: int) -> str:
    """S3's composite checksum: base64 of the CRC32 of the parts' CRC32s, big-endian (without the `-<parts>`)."""
    crcs = [
        zlib.crc32(content[start : start + part_size]).to_bytes(4, "big") for start in range(0, len(content), part_size)
    ]
    return base64.b64encode(zlib.crc32(b"".join(crcs)).to_bytes(4, "big")).decode()


def full_sha256(content: bytes) -> str:
    return base64.b64encode(hashlib.sha256(content).digest()).decode()


def s3_checksum(s3: S3Client, bucket: str, key: str, algorithm: str = "SHA256") -> str:
    """The checksum S3 keeps, without the `-<parts>` S3 appends to a composite one (moto leaves it out)."""
    head: dict[str, Any] = dict(s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED"))
    return str(head[f"Checksum{algorithm}"]).split("-")[0]


def tags(s3: S3Client, bucket: str, key: str, version_id: str | None) -> dict[str, str]:
    answer = s3.get_object_tagging(Bucket=bucket, Key=key, VersionId=version_id or "")
    return {tag["Key"]: tag["Value"] for tag in answer["TagSet"]}


def assert_nothing_left_but(s3: S3Client, bucket: str, key: str, expected_versions: list[str | None]) -> None:
    """No upload in progress (so no parts kept), and exactly these versions under the key."""
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert versions(s3, bucket, key) == expected_versions


def assert_nothing_left(s3: S3Client, bucket: str, key: str) -> None:
    assert_nothing_left_but(s3, bucket, key, [])


def test_recording_is_stored_with_its_sha256_metadata_and_content_type(
    archiver: ArchiveWriter, storage: StorageServer, s3: S3Client, bucket: str
) -> None:
    recording = storage.publish("small", 3 * MIB + 17)
    key = recording_key(STARTED, "session-1", "rec-small", "wav")
    metadata = recording_metadata(
        call_control_id="v3:call-1",
        call_session_id="session-1",
        recording_id="rec-small",
        started_at=STARTED,
        ended_at=datetime(2026, 11, 21, 10, 5, tzinfo=UTC),
        channels="dual",
        fmt="wav",
    )

    archived = archiver.archive(RecordingSource(recording.url, key, "audio/wav", metadata))

    head = s3.head_object(Bucket=bucket, Key=key)
    assert archived.uploaded
    assert archived.sha256 == recording.sha256() == stored_sha256(s3, bucket, key)
    assert head["Metadata"] == {**metadata, SHA256_METADATA_KEY: recording.sha256()}
    # One PutObject: S3 checked the whole body against its SHA-256 and keeps it as the checksum.
    assert s3_checksum(s3, bucket, key) == full_sha256(recording.content())
    assert head["ContentType"] == "audio/wav"
    assert (archived.size, archived.version_id) == (recording.size, head["VersionId"])
    assert archived.s3_uri == f"s3://{bucket}/recordings/2026/11/21/session-1/rec-small.wav"


@pytest.mark.parametrize(("size", "parts"), [(20 * MIB, 4), (10 * MIB + 1, 3), (PART + 1, 2)])
def test_large_recording_is_stored_in_parts_of_part_size(
    archiver: ArchiveWriter, storage: StorageServer, s3: S3Client, bucket: str, size: int, parts: int
) -> None:
    recording = storage.publish(f"large-{size}", size)
    key = "recordings/large.wav"

    archived = archiver.archive(source(recording, key))

    head = s3.head_object(Bucket=bucket, Key=key)
    attributes = s3.get_object_attributes(Bucket=bucket, Key=key, ObjectAttributes=["Checksum"])
    assert head["ETag"].endswith(f'-{parts}"')
    assert head["ETag"] == multipart_etag(recording.content(), PART)
    assert stored_sha256(s3, bucket, key) == recording.sha256() == archived.sha256
    # Straight to the final key: its metadata is fixed before the SHA-256 is known, so the tag carries it.
    assert head["Metadata"] == {"recording-id": "rec-1"}
    assert tags(s3, bucket, key, archived.version_id) == {SHA256_TAG_KEY: recording.sha256()}
    # S3 checked every part against its CRC32 and keeps the composite of them.
    assert attributes["Checksum"] == {
        "ChecksumCRC32": composite_crc32(recording.content(), PART),
        "ChecksumType": "COMPOSITE",
    }
    assert s3_checksum(s3, bucket, key, "CRC32") == composite_crc32(recording.content(), PART)
    assert (head["ContentType"], head["ContentLength"]) == ("audio/wav", size)
    assert_nothing_left_but(s3, bucket, key, [archived.version_id])


def _s3_operations(client: S3Client) -> list[str]:
    """The S3 operations `client` sends from now on, in order."""
    sent: list[str] = []
    client.meta.events.register("before-call.s3", lambda model, **_: sent.append(model.name))
    return sent


@pytest.mark.parametrize("size", [PART, 3 * PART + 17, 4 * PART], ids=["one-part", "three-parts", "the-budget"])
def test_a_recording_within_the_parts_in_flight_is_one_put_object(
    storage: StorageServer, s3: S3Client, bucket: str, size: int
) -> None:
    # By default, what `concurrency` parts would hold (4 x 5 MiB here) is read whole: one request, no tag.
    client = boto3.client("s3")
    sent = _s3_operations(client)
    recording = storage.publish(f"one-request-{size}", size)
    key = "recordings/one-request.wav"

    archived = ArchiveWriter(client, bucket, part_size=PART, policy=LOCAL).archive(source(recording, key))

    head = s3.head_object(Bucket=bucket, Key=key)
    assert sent == ["HeadObject", "PutObject"]
    assert archived.uploaded
    assert archived.sha256 == recording.sha256() == stored_sha256(s3, bucket, key)
    assert head["Metadata"] == {"recording-id": "rec-1", SHA256_METADATA_KEY: recording.sha256()}
    assert s3_checksum(s3, bucket, key) == full_sha256(recording.content())
    assert "-" not in head["ETag"]
    assert tags(s3, bucket, key, archived.version_id) == {}
    assert_nothing_left_but(s3, bucket, key, [archived.version_id])


@pytest.mark.parametrize(
    ("behaviour", "size"),
    [(Behaviour.NORMAL, 4 * PART + 1), (Behaviour.CHUNKED, 3 * PART + 17)],
    ids=["announced-past-the-budget", "size-not-announced"],
)
def test_a_recording_past_the_budget_or_of_unknown_size_goes_in_parts(
    storage: StorageServer, s3: S3Client, bucket: str, behaviour: Behaviour, size: int
) -> None:
    # Unannounced, reading it whole could take any amount of memory: it is streamed in parts.
    client = boto3.client("s3")
    sent = _s3_operations(client)
    recording = storage.publish(f"in-parts-{behaviour}-{size}", size, behaviour)
    key = "recordings/in-parts.wav"

    archived = ArchiveWriter(client, bucket, part_size=PART, policy=LOCAL).archive(source(recording, key))

    parts = -(-size // PART)
    assert sent == [
        "HeadObject",
        "CreateMultipartUpload",
        *["UploadPart"] * parts,
        "CompleteMultipartUpload",
        "PutObjectTagging",
    ]
    assert s3.head_object(Bucket=bucket, Key=key)["ETag"] == multipart_etag(recording.content(), PART)
    assert archived.sha256 == recording.sha256() == stored_sha256(s3, bucket, key)
    assert tags(s3, bucket, key, archived.version_id) == {SHA256_TAG_KEY: recording.sha256()}


def test_a_body_that_ends_on_a_part_boundary_reads_no_further_buffer(
    storage: StorageServer, s3: S3Client, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 3 parts exactly: the announced size says the body ended, so no fourth buffer is allocated to learn it.
    fills: list[int] = []
    fill = DownloadBody.fill

    def counted(body: DownloadBody, part: bytearray) -> int:
        fills.append(len(part))
        return fill(body, part)

    monkeypatch.setattr(DownloadBody, "fill", counted)
    client = boto3.client("s3")
    sent = _s3_operations(client)
    recording = storage.publish("boundary", 3 * PART)

    archiver = ArchiveWriter(client, bucket, part_size=PART, single_request_bytes=PART, policy=LOCAL)
    archived = archiver.archive(source(recording, "recordings/boundary.wav"))

    assert fills == [PART] * 3
    assert sent.count("UploadPart") == 3
    assert archived.sha256 == recording.sha256() == stored_sha256(s3, bucket, "recordings/boundary.wav")


def test_parts_upload_concurrently_never_more_than_concurrency_at_once(
    storage: StorageServer, s3: S3Client, bucket: str
) -> None:
    client = boto3.client("s3")
    concurrency = 3
    in_flight, peak, lock = [0], [0], threading.Lock()
    all_in_flight = threading.Event()

    def started(**_: Any) -> None:
        with lock:
            in_flight[0] += 1
            peak[0] = max(peak[0], in_flight[0])
            if in_flight[0] == concurrency:
                all_in_flight.set()
        # The first parts wait for each other, however slowly the body is read: they pile up
        # to `concurrency` if the archiver lets them. (The timeout only ends a failing run.)
        all_in_flight.wait(timeout=60)

    def finished(**_: Any) -> None:
        with lock:
            in_flight[0] -= 1

    client.meta.events.register("before-call.s3.UploadPart", started)
    client.meta.events.register("after-call.s3.UploadPart", finished)
    archiver = ArchiveWriter(client, bucket, part_size=PART, concurrency=concurrency, policy=LOCAL)
    recording = storage.publish("concurrent", 8 * PART + 3)

    archived = archiver.archive(source(recording, "recordings/concurrent.wav"))

    assert all_in_flight.is_set()
    assert peak[0] == concurrency
    head = s3.head_object(Bucket=bucket, Key="recordings/concurrent.wav")
    assert head["ETag"] == multipart_etag(recording.content(), PART)  # parts numbered in the body's order
    assert archived.sha256 == recording.sha256() == stored_sha256(s3, bucket, "recordings/concurrent.wav")
    assert_nothing_left_but(s3, bucket, "recordings/concurrent.wav", [archived.version_id])


@pytest.mark.parametrize("size", [2 * MIB, 11 * MIB])
def test_archiving_the_same_recording_again_adds_no_version(
    archiver: ArchiveWriter, storage: StorageServer, s3: S3Client, bucket: str, size: int
) -> None:
    recording = storage.publish(f"again-{size}", size)
    first = archiver.archive(source(recording, "recordings/again.wav"))

    second = archiver.archive(source(recording, "recordings/again.wav"))

    assert (first.uploaded, second.uploaded) == (True, False)
    assert second == dataclasses.replace(first, uploaded=False)
    assert_nothing_left_but(s3, bucket, "recordings/again.wav", [first.version_id])


def test_an_archived_recording_of_the_announced_size_is_not_downloaded_again(
    archiver: ArchiveWriter, storage: StorageServer, s3: S3Client, bucket: str
) -> None:
    # 32 MiB: well past what loopback socket buffers take in while nobody reads.
    recording = storage.publish("not-again", 32 * MIB)
    first = archiver.archive(source(recording, "recordings/not-again.wav"))
    sent_once = storage.bytes_sent(recording)

    second = archiver.archive(source(recording, "recordings/not-again.wav"))

    assert (first.uploaded, second.uploaded, second.version_id) == (True, False, first.version_id)
    assert sent_once == recording.size
    assert storage.bytes_sent(recording) - sent_once < recording.size // 2
    assert_nothing_left_but(s3, bucket, "recordings/not-again.wav", [first.version_id])


@pytest.mark.parametrize("size", [2 * MIB, 11 * MIB])
def test_unannounced_size_is_streamed_then_aborted_when_the_bytes_match(
    archiver: ArchiveWriter, storage: StorageServer, s3: S3Client, bucket: str, size: int
) -> None:
    # Chunked transfer announces no size, so equality is only known after hashing the body.
    recording = storage.publish(f"chunked-{size}", size, Behaviour.CHUNKED)
    first = archiver.archive(source(recording, "recordings/chunked.wav"))

    second = archiver.archive(source(recording, "recordings/chunked.wav"))

    assert storage.requests(recording) == 2
    assert (first.uploaded, second.uploaded, second.sha256) == (True, False, recording.sha256())
    assert_nothing_left_but(s3, bucket, "recordings/chunked.wav", [first.version_id])


def test_changed_bytes_under_the_same_key_become_a_new_version(
    archiver: ArchiveWriter, storage: StorageServer, s3: S3Client, bucket: str
) -> None:
    before = archiver.archive(source(storage.publish("take-1", 6 * MIB), "recordings/take.wav"))
    # A different size: an object with a sha256 and the announced size counts as the same recording.
    retake = storage.publish("take-2", 6 * MIB + 1)

    after = archiver.archive(source(retake, "recordings/take.wav"))

    assert after.uploaded
    assert after.sha256 == retake.sha256() != before.sha256
    assert stored_sha256(s3, bucket, "recordings/take.wav") == retake.sha256()
    assert set(versions(s3, bucket, "recordings/take.wav")) == {before.version_id, after.version_id}


def test_an_object_without_sha256_cannot_be_proven_equal_and_is_archived_anew(
    archiver: ArchiveWriter, storage: StorageServer, s3: S3Client, bucket: str
) -> None:
    recording = storage.publish("foreign", 2 * MIB)
    s3.put_object(Bucket=bucket, Key="recordings/foreign.wav", Body=recording.content())

    archived = archiver.archive(source(recording, "recordings/foreign.wav"))

    assert archived.uploaded
    assert len(versions(s3, bucket, "recordings/foreign.wav")) == 2
    head = s3.head_object(Bucket=bucket, Key="recordings/foreign.wav")
    assert head["Metadata"][SHA256_METADATA_KEY] == recording.sha256()


@pytest.mark.parametrize(
    ("cut_at", "single_request_bytes"),
    [(2 * MIB, PART), (7 * MIB, PART), (7 * MIB, None)],
    ids=["in-first-part", "after-a-part-was-uploaded", "in-one-request"],
)
def test_cut_connection_raises_and_leaves_nothing(
    storage: StorageServer, s3: S3Client, bucket: str, cut_at: int, single_request_bytes: int | None
) -> None:
    recording = storage.publish(f"cut-{cut_at}-{single_request_bytes}", 12 * MIB, Behaviour.CUT, cut_at=cut_at)
    archiver = ArchiveWriter(s3, bucket, part_size=PART, policy=LOCAL, single_request_bytes=single_request_bytes)

    with pytest.raises(ArchiveError, match="IncompleteRead") as raised:
        archiver.archive(source(recording, "recordings/cut.wav"))

    assert "recordings/cut.wav" in str(raised.value)
    assert "X-Amz-Signature" not in str(raised.value)  # a presigned URL's query is a credential
    assert_nothing_left(s3, bucket, "recordings/cut.wav")


@pytest.mark.parametrize("first", [Behaviour.EXPIRED_ONCE, Behaviour.NOT_FOUND])
def test_expired_link_is_refreshed_once_and_the_recording_archived(
    archiver: ArchiveWriter, storage: StorageServer, s3: S3Client, bucket: str, first: Behaviour
) -> None:
    expired = storage.publish(f"expiring-{first}", 6 * MIB, first, seed="same recording")
    fresh = storage.publish(f"fresh-{first}", 6 * MIB, seed="same recording")
    calls: list[str] = []

    def refresh() -> str:
        calls.append(fresh.url)
        return fresh.url

    archived = archiver.archive(source(expired, "recordings/refreshed.wav", refresh))

    assert (len(calls), storage.requests(expired), storage.requests(fresh)) == (1, 1, 1)
    assert archived.sha256 == fresh.sha256() == stored_sha256(s3, bucket, "recordings/refreshed.wav")


def test_a_failure_after_the_refresh_raises(
    archiver: ArchiveWriter, storage: StorageServer, s3: S3Client, bucket: str
) -> None:
    expired = storage.publish("expired-twice", MIB, Behaviour.FORBIDDEN)
    gone = storage.publish("gone", MIB, Behaviour.NOT_FOUND)
    calls: list[str] = []

    def refresh() -> str:
        calls.append(gone.url)
        return gone.url

    with pytest.raises(ArchiveError, match="HTTP 404"):
        archiver.archive(source(expired, "recordings/never.wav", refresh))

    assert (len(calls), storage.requests(expired), storage.requests(gone)) == (1, 1, 1)
    assert_nothing_left(s3, bucket, "recordings/never.wav")


def test_an_expired_link_without_refresh_raises(
    archiver: ArchiveWriter, storage: StorageServer, s3: S3Client, bucket: str
) -> None:
    expired = storage.publish("expired-no-refresh", MIB, Behaviour.EXPIRED_ONCE)

    with pytest.raises(ArchiveError, match="HTTP 403") as raised:
        archiver.archive(source(expired, "recordings/never.wav"))

    assert "X-Amz-Signature" not in str(raised.value)
    assert storage.requests(expired) == 1
    assert_nothing_left(s3, bucket, "recordings/never.wav")


def test_a_failing_refresh_raises_archive_error(archiver: ArchiveWriter, storage: StorageServer) -> None:
    expired = storage.publish("expired-refresh-fails", MIB, Behaviour.FORBIDDEN)

    def refresh() -> str:
        raise RuntimeError("Telnyx API unavailable")

    with pytest.raises(ArchiveError, match="Telnyx API unavailable"):
        archiver.archive(source(expired, "recordings/never.wav", refresh))


def test_slow_body_completes_when_each_read_is_within_the_read_timeout(
    s3: S3Client, bucket: str, storage: StorageServer
) -> None:
    # Eight pieces 0.15 s apart: the whole body takes longer than the read timeout, no single read does.
    recording = storage.publish("slow", MIB, Behaviour.SLOW, slow_chunks=8, slow_delay=0.15)
    archiver = ArchiveWriter(s3, bucket, part_size=PART, http=http_pool(read_timeout=0.6), policy=LOCAL)

    archived = archiver.archive(source(recording, "recordings/slow.wav"))

    assert archived.sha256 == recording.sha256() == stored_sha256(s3, bucket, "recordings/slow.wav")


@pytest.mark.parametrize("single_request_bytes", [PART, None], ids=["in-parts", "in-one-request"])
def test_stalled_body_times_out_and_leaves_nothing(
    s3: S3Client, bucket: str, storage: StorageServer, single_request_bytes: int | None
) -> None:
    recording = storage.publish("stall", 12 * MIB, Behaviour.STALL, cut_at=7 * MIB, stall_seconds=2.0)
    http = http_pool(read_timeout=0.3)
    archiver = ArchiveWriter(
        s3, bucket, part_size=PART, http=http, policy=LOCAL, single_request_bytes=single_request_bytes
    )

    with pytest.raises(ArchiveError, match="ReadTimeoutError"):
        archiver.archive(source(recording, "recordings/stall.wav"))

    assert_nothing_left(s3, bucket, "recordings/stall.wav")


def _once_a_part_is_uploaded(bucket: str, action: Callable[[S3Client, str, str], None]) -> Callable[[], None]:
    """A storage-server pause hook: wait until the archiver's upload holds a part, then act on it.

    The server sends nothing more until the hook returns, so the archiver cannot get
    further than that first part meanwhile.
    """

    def hook() -> None:
        client = boto3.client("s3")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            for upload in client.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
                parts = client.list_parts(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
                if parts.get("Parts"):
                    action(client, upload["Key"], upload["UploadId"])
                    return
            time.sleep(0.02)
        raise AssertionError("the archiver never uploaded a part")

    return hook


def test_s3_failure_mid_transfer_raises_and_leaves_nothing(
    archiver: ArchiveWriter, storage: StorageServer, s3: S3Client, bucket: str
) -> None:
    def lose_upload(client: S3Client, key: str, upload_id: str) -> None:
        client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)

    recording = storage.publish(
        "s3-fails", 12 * MIB, pause_at=7 * MIB, on_pause=_once_a_part_is_uploaded(bucket, lose_upload)
    )

    # Real S3 answers NoSuchUpload; moto 5.2 answers 500 for a part sent to an aborted upload.
    # Parts 2 and 3 both fail; which is reported first depends on botocore's jittered retries.
    with pytest.raises(ArchiveError, match=r"UploadPart [23] of recordings/s3-fails\.wav failed"):
        archiver.archive(source(recording, "recordings/s3-fails.wav"))

    assert_nothing_left(s3, bucket, "recordings/s3-fails.wav")


def test_a_concurrent_identical_archive_wins_without_a_second_version(
    archiver: ArchiveWriter, storage: StorageServer, s3: S3Client, bucket: str
) -> None:
    key = "recordings/raced.wav"
    recording = storage.publish("raced", 11 * MIB)
    content, sha256 = recording.content(), recording.sha256()

    def other_delivery(client: S3Client, _key: str, _upload_id: str) -> None:
        client.put_object(Bucket=bucket, Key=key, Body=content, Metadata={SHA256_METADATA_KEY: sha256})

    racing = storage.publish(
        "raced-again",
        11 * MIB,
        seed="raced",
        pause_at=7 * MIB,
        on_pause=_once_a_part_is_uploaded(bucket, other_delivery),
    )

    archived = archiver.archive(source(racing, key))

    [winner] = versions(s3, bucket, key)
    assert (archived.uploaded, archived.version_id, archived.sha256) == (False, winner, sha256)
    assert_nothing_left_but(s3, bucket, key, [winner])


def test_a_concurrent_different_write_gets_the_recording_as_a_newer_version(
    archiver: ArchiveWriter, storage: StorageServer, s3: S3Client, bucket: str
) -> None:
    key = "recordings/raced-other.wav"
    others: list[str] = []

    def other_content(client: S3Client, _key: str, _upload_id: str) -> None:
        written = client.put_object(Bucket=bucket, Key=key, Body=b"other", Metadata={SHA256_METADATA_KEY: "0" * 64})
        others.append(written["VersionId"])

    recording = storage.publish(
        "raced-other", 11 * MIB, pause_at=7 * MIB, on_pause=_once_a_part_is_uploaded(bucket, other_content)
    )

    # If-None-Match fails on completion; the winner is compared, found different, and kept as the older version.
    archived = archiver.archive(source(recording, key))

    assert archived.uploaded
    assert stored_sha256(s3, bucket, key) == recording.sha256() == archived.sha256
    assert s3.get_object(Bucket=bucket, Key=key, VersionId=others[0])["Body"].read() == b"other"
    assert set(versions(s3, bucket, key)) == {others[0], archived.version_id}
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_a_lost_tag_is_restored_without_a_new_version(
    archiver: ArchiveWriter, storage: StorageServer, s3: S3Client, bucket: str
) -> None:
    # As if the archiving call had died between completing the upload and tagging it.
    recording = storage.publish("untagged", 11 * MIB)
    first = archiver.archive(source(recording, "recordings/untagged.wav"))
    s3.delete_object_tagging(Bucket=bucket, Key="recordings/untagged.wav", VersionId=first.version_id or "")

    again = archiver.archive(source(recording, "recordings/untagged.wav"))

    # Without its SHA-256 recorded it cannot be recognised unread: it is streamed and compared by checksum.
    assert storage.bytes_sent(recording) == 2 * recording.size
    assert again == dataclasses.replace(first, uploaded=False)
    assert tags(s3, bucket, "recordings/untagged.wav", first.version_id) == {SHA256_TAG_KEY: recording.sha256()}
    assert_nothing_left_but(s3, bucket, "recordings/untagged.wav", [first.version_id])


def test_an_untagged_object_of_other_bytes_and_the_same_size_gets_a_new_version(
    archiver: ArchiveWriter, storage: StorageServer, s3: S3Client, bucket: str
) -> None:
    # Untagged, only S3's composite checksum can tell: other bytes give another one.
    key = "recordings/untagged-other.wav"
    first = archiver.archive(source(storage.publish("untagged-first", 11 * MIB), key))
    s3.delete_object_tagging(Bucket=bucket, Key=key, VersionId=first.version_id or "")
    other = storage.publish("untagged-other", 11 * MIB)

    again = archiver.archive(source(other, key))

    assert again.uploaded
    assert again.sha256 == other.sha256() != first.sha256
    assert stored_sha256(s3, bucket, key) == other.sha256()
    assert set(versions(s3, bucket, key)) == {first.version_id, again.version_id}


def test_a_failed_tagging_raises_and_the_retry_tags_the_same_version(
    storage: StorageServer, s3: S3Client, bucket: str
) -> None:
    client = boto3.client("s3")

    def refuse(**_: Any) -> None:
        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "injected"}}, "PutObjectTagging")

    client.meta.events.register("before-call.s3.PutObjectTagging", refuse, unique_id="refuse-tagging")
    archiver = ArchiveWriter(client, bucket, part_size=PART, single_request_bytes=PART, policy=LOCAL)
    recording = storage.publish("tag-fails", 11 * MIB)

    with pytest.raises(ArchiveError, match=r"PutObjectTagging of recordings/tag-fails\.wav failed: AccessDenied"):
        archiver.archive(source(recording, "recordings/tag-fails.wav"))
    [complete] = versions(s3, bucket, "recordings/tag-fails.wav")
    client.meta.events.unregister("before-call.s3.PutObjectTagging", unique_id="refuse-tagging")
    retried = archiver.archive(source(recording, "recordings/tag-fails.wav"))

    assert (retried.uploaded, retried.version_id, retried.sha256) == (False, complete, recording.sha256())
    assert tags(s3, bucket, "recordings/tag-fails.wav", complete) == {SHA256_TAG_KEY: recording.sha256()}
    assert_nothing_left_but(s3, bucket, "recordings/tag-fails.wav", [complete])


def test_the_same_bytes_in_other_parts_are_recognised_by_their_tag(
    storage: StorageServer, s3: S3Client, bucket: str
) -> None:
    first = ArchiveWriter(s3, bucket, part_size=6 * MIB, single_request_bytes=6 * MIB, policy=LOCAL).archive(
        source(storage.publish("reparted", 13 * MIB), "recordings/reparted.wav")
    )
    # Chunked, so the size is unknown and the body is streamed: 5 MiB parts give another composite checksum.
    chunked = storage.publish("reparted-chunked", 13 * MIB, Behaviour.CHUNKED, seed="reparted")

    again = ArchiveWriter(s3, bucket, part_size=PART, policy=LOCAL).archive(source(chunked, "recordings/reparted.wav"))

    assert (again.uploaded, again.version_id, again.sha256) == (False, first.version_id, first.sha256)
    assert_nothing_left_but(s3, bucket, "recordings/reparted.wav", [first.version_id])


@pytest.mark.parametrize("size", [MIB, 6 * MIB])
def test_kms_key_encrypts_the_archived_object(s3: S3Client, bucket: str, storage: StorageServer, size: int) -> None:
    key_id = boto3.client("kms").create_key(Description="voicebus archive test")["KeyMetadata"]["KeyId"]
    archiver = ArchiveWriter(s3, bucket, part_size=PART, single_request_bytes=PART, kms_key_id=key_id, policy=LOCAL)
    recording = storage.publish(f"kms-{size}", size)

    archiver.archive(source(recording, "recordings/kms.wav"))

    head = s3.head_object(Bucket=bucket, Key="recordings/kms.wav")
    assert head["ServerSideEncryption"] == "aws:kms"
    assert key_id in head["SSEKMSKeyId"]


def test_without_a_kms_key_the_bucket_default_applies(
    archiver: ArchiveWriter, storage: StorageServer, s3: S3Client, bucket: str
) -> None:
    archiver.archive(source(storage.publish("default-sse", 6 * MIB), "recordings/default-sse.wav"))

    head = s3.head_object(Bucket=bucket, Key="recordings/default-sse.wav")
    assert head.get("ServerSideEncryption") == "AES256"
    assert "SSEKMSKeyId" not in head


def test_archive_text_is_idempotent_and_new_text_is_a_new_version(
    archiver: ArchiveWriter, s3: S3Client, bucket: str
) -> None:
    key = transcript_key(STARTED, "session-1", call_control_id="v3:call-1", fmt="txt")
    text = "Agent: Grüß Gott, wie kann ich helfen?\nCaller: Señor, mi pedido…\n"

    first = archiver.archive_text(key, text, "text/plain; charset=utf-8", {"call-control-id": "v3:call-1"})
    again = archiver.archive_text(key, text, "text/plain; charset=utf-8", {"call-control-id": "v3:call-1"})
    changed = archiver.archive_text(key, text + "Agent: Bye.\n", "text/plain; charset=utf-8")

    stored = s3.get_object(Bucket=bucket, Key=key, VersionId=first.version_id or "")
    assert key == "transcripts/2026/11/21/session-1/v3_call-1.txt"
    assert (first.uploaded, again.uploaded, changed.uploaded) == (True, False, True)
    assert again.version_id == first.version_id != changed.version_id
    assert stored["Body"].read().decode("utf-8") == text
    assert stored["ContentType"] == "text/plain; charset=utf-8"
    assert stored["Metadata"] == {
        "call-control-id": "v3:call-1",
        SHA256_METADATA_KEY: hashlib.sha256(text.encode("utf-8")).hexdigest(),
    }
    assert s3_checksum(s3, bucket, key) == full_sha256((text + "Agent: Bye.\n").encode("utf-8"))
    assert len(versions(s3, bucket, key)) == 2
