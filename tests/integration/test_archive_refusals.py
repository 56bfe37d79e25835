"""What the archiver refuses to take (issue 11): not audio, not https, too large, too slow.

Against moto server and the local storage stand-in over HTTP, as test_archive.py. A
refusal is a `RecordingRefusedError` (permanent: recorded as failed, never retried)
and leaves nothing in the bucket; a transfer past its deadline is an `ArchiveError`
(retried) and leaves nothing either.
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from tests.integration.test_archive import (
    LOCAL,
    MIB,
    PART,
    assert_nothing_left,
    source,
    stored_sha256,
)
from voicebus.archive.audio import NotAudioError, RecordingRefusedError
from voicebus.archive.download import (
    ArchiveError,
    RecordingSource,
    RecordingTooLargeError,
    TransferDeadlineError,
    UnsupportedLocationError,
)
from voicebus.archive.writer import ArchiveWriter
from voicebus_cli.local.storage import Behaviour, StorageServer

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

pytestmark = pytest.mark.integration

KEY = "recordings/refused.wav"


@pytest.fixture(scope="module")
def storage() -> Iterator[StorageServer]:
    with StorageServer(fmt="wav") as server:  # `source` archives audio/wav
        yield server


def writer(s3: S3Client, bucket: str, max_bytes: int = LOCAL.max_bytes) -> ArchiveWriter:
    # In parts beyond one part, so that the cuts below happen with parts uploaded.
    policy = dataclasses.replace(LOCAL, max_bytes=max_bytes)
    return ArchiveWriter(s3, bucket, part_size=PART, single_request_bytes=PART, policy=policy)


# ---------------------------------------------------------------------- not audio


@pytest.mark.parametrize(
    "content_type", ["text/html; charset=utf-8", "audio/wav"], ids=["served-as-html", "served-as-audio"]
)
def test_an_html_error_page_is_refused(s3: S3Client, bucket: str, storage: StorageServer, content_type: str) -> None:
    page = storage.publish(f"error-page-{len(content_type)}", 0, Behaviour.HTML, content_type=content_type)

    with pytest.raises(NotAudioError, match=r"served as 'text/html'|does not start like wav"):
        writer(s3, bucket).archive(source(page, KEY))

    assert_nothing_left(s3, bucket, KEY)


def test_another_format_is_refused_by_its_first_bytes(s3: S3Client, bucket: str, storage: StorageServer) -> None:
    mp3 = storage.publish("an-mp3", 2 * MIB, fmt="mp3", content_type="binary/octet-stream")

    with pytest.raises(NotAudioError, match="does not start like wav"):
        writer(s3, bucket).archive(source(mp3, KEY))

    assert_nothing_left(s3, bucket, KEY)


def test_a_generic_content_type_is_decided_by_the_bytes(s3: S3Client, bucket: str, storage: StorageServer) -> None:
    wav = storage.publish("generic-type", 6 * MIB, content_type="binary/octet-stream")

    archived = writer(s3, bucket).archive(source(wav, "recordings/generic.wav"))

    assert archived.sha256 == wav.sha256() == stored_sha256(s3, bucket, "recordings/generic.wav")


# ---------------------------------------------------------------------- locations and redirects


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/recordings/a.wav", "file:///etc/passwd"])
def test_links_that_are_not_https_are_refused_without_a_request(s3: S3Client, bucket: str, url: str) -> None:
    with pytest.raises(UnsupportedLocationError, match="is not https"):
        writer(s3, bucket).archive(RecordingSource(url, KEY, "audio/wav"))

    assert_nothing_left(s3, bucket, KEY)


def test_a_refreshed_link_that_is_not_https_is_refused_not_retried(
    s3: S3Client, bucket: str, storage: StorageServer
) -> None:
    expired = storage.publish("expired-to-ftp", MIB, Behaviour.FORBIDDEN)

    with pytest.raises(
        UnsupportedLocationError, match=re.escape("the refreshed link 'ftp://storage.example.test/a.wav'")
    ):
        writer(s3, bucket).archive(source(expired, KEY, refresh=lambda: "ftp://storage.example.test/a.wav"))

    assert_nothing_left(s3, bucket, KEY)


@pytest.mark.parametrize(
    "target", ["http://localhost:{port}{path}", "ftp://127.0.0.1{path}"], ids=["http-to-another-host", "ftp"]
)
def test_a_redirect_that_is_not_https_is_refused_and_not_followed(
    s3: S3Client, bucket: str, storage: StorageServer, target: str
) -> None:
    # Plain http is allowed from 127.0.0.1 (the stand-in), not from any other host, nor any other scheme.
    name = target.split(":", 1)[0] + "-" + str(len(target))
    real = storage.publish(f"target-{name}", 2 * MIB)
    port = storage.base_url.rsplit(":", 1)[1]
    redirect = storage.publish(
        f"redirect-{name}", 0, Behaviour.REDIRECT, redirect_to=target.format(port=port, path=real.path)
    )

    with pytest.raises(UnsupportedLocationError, match="redirect 1 of the link to") as refused:
        writer(s3, bucket).archive(source(redirect, KEY))

    assert (storage.requests(redirect), storage.requests(real)) == (1, 0)
    assert "X-Amz-Signature" not in str(refused.value)
    assert_nothing_left(s3, bucket, KEY)


def test_a_redirect_to_an_allowed_location_is_followed(s3: S3Client, bucket: str, storage: StorageServer) -> None:
    real = storage.publish("moved-here", 2 * MIB)
    redirect = storage.publish("moved", 0, Behaviour.REDIRECT, redirect_to=real.url)

    archived = writer(s3, bucket).archive(source(redirect, "recordings/moved.wav"))

    assert archived.sha256 == real.sha256() == stored_sha256(s3, bucket, "recordings/moved.wav")


def test_endless_redirects_are_refused(s3: S3Client, bucket: str, storage: StorageServer) -> None:
    name = "loop"
    loop = storage.publish(name, 0, Behaviour.REDIRECT, redirect_to=f"{storage.base_url}/recordings/{name}")

    with pytest.raises(UnsupportedLocationError, match="more than 3 redirects"):
        writer(s3, bucket).archive(source(loop, KEY))

    assert storage.requests(loop) == 4


# ---------------------------------------------------------------------- size


def test_an_endless_body_is_cut_at_the_cap_and_leaves_nothing(
    s3: S3Client, bucket: str, storage: StorageServer
) -> None:
    endless = storage.publish("endless", 0, Behaviour.ENDLESS)

    with pytest.raises(RecordingTooLargeError, match=f"past the {12 * MIB} bytes"):
        writer(s3, bucket, max_bytes=12 * MIB).archive(source(endless, KEY))  # two parts uploaded, then refused

    assert_nothing_left(s3, bucket, KEY)


def test_a_body_announced_over_the_cap_is_refused_before_it_is_read(
    s3: S3Client, bucket: str, storage: StorageServer
) -> None:
    huge = storage.publish("huge", 256 * MIB)

    with pytest.raises(RecordingTooLargeError, match=f"announces {256 * MIB} bytes"):
        writer(s3, bucket, max_bytes=8 * MIB).archive(source(huge, KEY))

    assert storage.bytes_sent(huge) < huge.size // 2
    assert_nothing_left(s3, bucket, KEY)


# ---------------------------------------------------------------------- time


def test_a_trickling_body_is_cut_at_the_deadline_and_retried(s3: S3Client, bucket: str, storage: StorageServer) -> None:
    # 40 pieces 0.1 s apart: every read is well inside the read timeout, the whole is not inside the deadline.
    trickle = storage.publish("trickle", MIB, Behaviour.SLOW, slow_chunks=40, slow_delay=0.1)

    with pytest.raises(TransferDeadlineError, match="did not finish before the invocation's deadline") as raised:
        writer(s3, bucket).archive(source(trickle, KEY), deadline=time.monotonic() + 1.0)

    assert isinstance(raised.value, ArchiveError) and not isinstance(raised.value, RecordingRefusedError)
    assert_nothing_left(s3, bucket, KEY)


def test_a_read_blocked_at_the_deadline_is_ended_there(s3: S3Client, bucket: str, storage: StorageServer) -> None:
    # 7 MiB (one part uploaded), then silence: the 30 s read timeout alone would wait for the server to hang up.
    stall = storage.publish("stall-at-deadline", 12 * MIB, Behaviour.STALL, cut_at=7 * MIB, stall_seconds=10.0)

    with pytest.raises(TransferDeadlineError):
        writer(s3, bucket).archive(source(stall, KEY), deadline=time.monotonic() + 2.0)

    assert_nothing_left(s3, bucket, KEY)
