"""The archive's pure helpers: key layout, sanitising, location, format and source checks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import boto3
import pytest
from botocore.config import Config
from hypothesis import given
from hypothesis import strategies as st

from voicebus.archive.audio import FORMATS, NotAudioError
from voicebus.archive.download import (
    DEFAULT_MAX_BYTES,
    DownloadPolicy,
    RecordingSource,
    UnsupportedLocationError,
    is_external_location,
)
from voicebus.archive.keys import KeyComponentError, recording_key, recording_metadata, safe_component, transcript_key
from voicebus.archive.recordings import DEADLINE_MARGIN_SECONDS, transfer_deadline
from voicebus.archive.settings import download_policy
from voicebus.archive.writer import MIN_PART_SIZE, ArchiveWriter
from voicebus.config import ConfigurationError
from voicebus_cli.local.functions import LocalContext
from voicebus_cli.local.storage import HTML_PAGE, audio_header

STARTED = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)


def test_recording_key_layout() -> None:
    assert recording_key(STARTED, "session-1", "rec-1", "wav") == "recordings/2026/11/21/session-1/rec-1.wav"


def test_recording_key_is_dated_by_the_utc_day_of_the_start() -> None:
    # 00:30 in Berlin on 1 January is still 31 December in UTC.
    berlin = timezone(timedelta(hours=1))
    started = datetime(2027, 1, 1, 0, 30, tzinfo=berlin)

    assert recording_key(started, "s", "r", "mp3") == "recordings/2026/12/31/s/r.mp3"


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        recording_key(datetime(2026, 11, 21, 10, 0), "s", "r", "wav")


@pytest.mark.parametrize(("fmt", "expected"), [("wav", "wav"), ("MP3", "mp3"), (".wav", "wav")])
def test_formats_are_normalised(fmt: str, expected: str) -> None:
    assert recording_key(STARTED, "s", "r", fmt).endswith(f"/r.{expected}")


@pytest.mark.parametrize("fmt", ["", "wav/../x", "w a v", "toolongextension"])
def test_malformed_formats_are_refused(fmt: str) -> None:
    with pytest.raises(ValueError, match="format"):
        recording_key(STARTED, "s", "r", fmt)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("v3:abc-123_x.y", "v3_abc-123_x.y"),
        ("a/b", "a_b"),
        ("../etc/passwd", ".._etc_passwd"),
        ("a\\b", "a_b"),
        ("Zoë Ñ", "Zo___"),
        ("line\nbreak", "line_break"),
    ],
)
def test_components_lose_separators_and_unsafe_characters(value: str, expected: str) -> None:
    assert safe_component(value) == expected


@pytest.mark.parametrize("value", ["", ".", "..", "...", "x" * 201])
def test_empty_dot_only_or_overlong_components_are_refused(value: str) -> None:
    with pytest.raises(KeyComponentError):
        safe_component(value)


@given(session=st.text(min_size=1, max_size=60), recording=st.text(min_size=1, max_size=60))
def test_any_ids_give_a_key_of_exactly_the_expected_segments(session: str, recording: str) -> None:
    try:
        key = recording_key(STARTED, session, recording, "wav")
    except KeyComponentError:
        return  # ids made of dots only: refused rather than guessed
    segments = key.split("/")

    assert segments[:4] == ["recordings", "2026", "11", "21"]
    assert len(segments) == 6
    assert all(segment not in {"", ".", ".."} for segment in segments)
    assert segments[5].endswith(".wav")


def test_transcript_next_to_its_recording() -> None:
    assert (
        transcript_key(STARTED, "session-1", recording_id="rec-1")
        == "recordings/2026/11/21/session-1/rec-1.transcript.json"
    )
    assert (
        transcript_key(STARTED, "session-1", recording_id="rec-1", fmt="txt")
        == "recordings/2026/11/21/session-1/rec-1.transcript.txt"
    )


def test_live_call_transcript_under_transcripts() -> None:
    assert (
        transcript_key(STARTED, "session-1", call_control_id="v3:call/1")
        == "transcripts/2026/11/21/session-1/v3_call_1.json"
    )
    assert (
        transcript_key(STARTED, "session-1", call_control_id="v3:call-1", fmt="txt")
        == "transcripts/2026/11/21/session-1/v3_call-1.txt"
    )


def test_transcript_needs_exactly_one_id_and_a_known_format() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        transcript_key(STARTED, "s")
    with pytest.raises(ValueError, match="exactly one"):
        transcript_key(STARTED, "s", recording_id="r", call_control_id="c")
    with pytest.raises(ValueError, match="transcript format"):
        transcript_key(STARTED, "s", recording_id="r", fmt="pdf")


@pytest.mark.parametrize(
    ("url", "external"),
    [
        ("s3://my-bucket/recordings/a.wav", True),
        ("gs://my-bucket/a.mp3", True),
        ("S3://My-Bucket/a.wav", True),
        ("  gs://bucket/a.wav  ", True),
        ("https://s3.amazonaws.com/telnyx/a.wav?X-Amz-Signature=x", False),
        ("http://127.0.0.1/a.wav", False),
        ("s3:/no-bucket/a.wav", False),
        ("file:///tmp/a.wav", False),
        ("", False),
    ],
)
def test_external_locations_are_s3_or_gs_urls(url: str, external: bool) -> None:
    assert is_external_location(url) is external


def test_recording_metadata_uses_utc_timestamps() -> None:
    metadata = recording_metadata(
        call_control_id="v3:call-1",
        call_session_id="session-1",
        recording_id="rec-1",
        started_at=datetime(2026, 11, 21, 11, 0, tzinfo=timezone(timedelta(hours=1))),
        ended_at=datetime(2026, 11, 21, 10, 5, 30, tzinfo=UTC),
        channels="dual",
        fmt="WAV",
    )

    assert metadata == {
        "call-control-id": "v3:call-1",
        "call-session-id": "session-1",
        "recording-id": "rec-1",
        "recording-started-at": "2026-11-21T10:00:00Z",
        "recording-ended-at": "2026-11-21T10:05:30Z",
        "channels": "dual",
        "format": "wav",
    }


@pytest.mark.parametrize(
    "url",
    [
        "s3://bucket/a.wav",
        "gs://bucket/a.wav",
        "ftp://storage.example.test/a.wav",
        "file:///etc/passwd",
        "data:audio/wav;base64,UklGRg==",
        "http://storage.example.test/a.wav",  # plain http, to a host not named in http_hosts
        "http://localhost:9001/2018-06-01/runtime/invocation/next",
        "https:///no-host.wav",
    ],
)
def test_only_https_links_are_fetched_unless_a_host_is_named_for_http(url: str) -> None:
    policy = DownloadPolicy(http_hosts=frozenset({"127.0.0.1"}))

    with pytest.raises(UnsupportedLocationError, match="is not https"):
        policy.check_location(url, "the link")


@pytest.mark.parametrize("url", ["https://s3.amazonaws.com/r/a.wav?X-Amz-Signature=x", "http://127.0.0.1:8123/a.wav"])
def test_https_and_http_from_a_named_host_are_fetched(url: str) -> None:
    DownloadPolicy(http_hosts=frozenset({"127.0.0.1"})).check_location(url, "the link")


def test_without_named_hosts_plain_http_is_refused_even_on_loopback() -> None:
    with pytest.raises(UnsupportedLocationError):
        DownloadPolicy().check_location("http://127.0.0.1:8123/a.wav", "the link")


def test_the_refusal_never_shows_the_links_query_string() -> None:
    with pytest.raises(UnsupportedLocationError) as refused:
        DownloadPolicy().check_location("ftp://h.example.test/a.wav?X-Amz-Signature=secret", "the link")
    assert "secret" not in str(refused.value)


def test_the_policy_comes_from_the_environment() -> None:
    assert download_policy({}) == DownloadPolicy(max_bytes=DEFAULT_MAX_BYTES, http_hosts=frozenset())
    policy = download_policy({"RECORDING_MAX_BYTES": "2097152", "RECORDING_HTTP_HOSTS": " 127.0.0.1, ::1 "})
    assert policy == DownloadPolicy(max_bytes=2 * 1024 * 1024, http_hosts=frozenset({"127.0.0.1", "::1"}))
    with pytest.raises(ConfigurationError, match="RECORDING_MAX_BYTES"):
        download_policy({"RECORDING_MAX_BYTES": "10"})


def test_the_default_cap_holds_telnyxs_longest_recording() -> None:
    four_hours_of_16khz_16bit_stereo_wav = 14_400 * 16_000 * 2 * 2
    assert four_hours_of_16khz_16bit_stereo_wav < DEFAULT_MAX_BYTES < 1.2 * four_hours_of_16khz_16bit_stereo_wav


def test_source_takes_only_the_formats_telnyx_records() -> None:
    with pytest.raises(ValueError, match="content_type"):
        RecordingSource("https://example.test/a.ogg", "recordings/a.ogg", "audio/ogg")


@pytest.mark.parametrize(
    ("fmt", "head"),
    [
        ("mp3", audio_header("mp3", 1000)),
        ("mp3", b"\xff\xfb\x90\x64" + bytes(8)),  # an MPEG-1 Layer III frame, no ID3 tag
        ("mp3", b"\xff\xf3\x64\xc4" + bytes(8)),  # MPEG-2 Layer III (the low sample rates)
        ("wav", audio_header("wav", 1000)),
        ("wav", b"RF64\xff\xff\xff\xffWAVE"),
    ],
)
def test_audio_is_recognised_by_its_first_bytes(fmt: str, head: bytes) -> None:
    FORMATS[fmt].check_magic(head, "k")


@pytest.mark.parametrize(
    ("fmt", "head"),
    [
        ("mp3", HTML_PAGE),
        ("mp3", audio_header("wav", 1000)),
        ("mp3", b"\xff\xe8\x90\x64" + bytes(8)),  # sync bits, but the reserved MPEG version
        ("mp3", b"\xff\xfb\xf0\x64" + bytes(8)),  # sync bits, but the invalid bitrate index 1111
        ("mp3", b""),
        ("wav", audio_header("mp3", 1000)),
        ("wav", b"RIFF\x00\x00\x00\x00AVI "),
        ("wav", b'{"error": "not found"}'),
    ],
)
def test_anything_else_is_not_audio(fmt: str, head: bytes) -> None:
    with pytest.raises(NotAudioError):
        FORMATS[fmt].check_magic(head, "k")


@pytest.mark.parametrize(
    ("fmt", "content_type", "taken"),
    [
        ("mp3", "audio/mpeg", True),
        ("mp3", "audio/mpeg; charset=binary", True),
        ("wav", "audio/x-wav", True),
        ("wav", "binary/octet-stream", True),  # S3's type when the uploader gave none: the bytes decide
        ("wav", None, True),
        ("mp3", "text/html; charset=utf-8", False),
        ("mp3", "application/xml", False),
        ("mp3", "audio/wav", False),
        ("wav", "application/json", False),
    ],
)
def test_content_types(fmt: str, content_type: str | None, taken: bool) -> None:
    if taken:
        FORMATS[fmt].check_content_type(content_type, "k")
    else:
        with pytest.raises(NotAudioError, match="served as"):
            FORMATS[fmt].check_content_type(content_type, "k")


@pytest.mark.parametrize(("remaining_ms", "margin"), [(900_000, DEADLINE_MARGIN_SECONDS), (10_000, 1.0)])
def test_the_transfer_deadline_is_the_invocations_time_left_less_a_margin(remaining_ms: int, margin: float) -> None:
    context = LocalContext("RecordingFunction", timeout_ms=remaining_ms)

    assert transfer_deadline(context, now=100.0) == pytest.approx(100.0 + remaining_ms / 1000 - margin)  # type: ignore[arg-type]


@pytest.mark.parametrize("key", ["", "/recordings/a.wav", "k" * 1025])
def test_source_refuses_unusable_keys(key: str) -> None:
    with pytest.raises(ValueError, match="key"):
        RecordingSource("https://example.test/a.wav", key, "audio/wav")


@pytest.mark.parametrize(
    ("metadata", "problem"),
    [
        ({"Recording-Id": "r"}, "lower-case"),
        ({"recording_id": "r"}, "lower-case"),
        ({"sha256": "0" * 64}, "computed by the archiver"),
        ({"caller": "Zoë"}, "printable ASCII"),
        ({"note": "x" * 2000}, "S3 allows 2048"),
    ],
)
def test_source_refuses_metadata_s3_cannot_carry(metadata: dict[str, str], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        RecordingSource("https://example.test/a.wav", "recordings/a.wav", "audio/wav", metadata)


@pytest.mark.parametrize("part_size", [MIN_PART_SIZE - 1, 6 * 1024**3])
def test_part_size_must_be_one_s3_accepts(part_size: int) -> None:
    client = boto3.client("s3", region_name="us-east-1")

    with pytest.raises(ValueError, match="part_size"):
        ArchiveWriter(client, "archive", part_size=part_size)


@pytest.mark.parametrize(
    ("concurrency", "config"),
    [(0, Config()), (11, Config()), (17, Config(max_pool_connections=16))],
    ids=["none", "beyond-the-default-pool", "beyond-a-configured-pool"],
)
def test_concurrency_must_fit_the_clients_connection_pool(concurrency: int, config: Config) -> None:
    client = boto3.client("s3", region_name="us-east-1", config=config)

    with pytest.raises(ValueError, match="concurrency"):
        ArchiveWriter(client, "archive", concurrency=concurrency)


@pytest.mark.parametrize("single_request_bytes", [MIN_PART_SIZE - 1, 4 * MIN_PART_SIZE + 1])
def test_one_request_must_fit_between_a_part_and_the_parts_in_flight(single_request_bytes: int) -> None:
    # Below a part, a one-part body would still go in one request; above the parts in flight, memory would grow.
    client = boto3.client("s3", region_name="us-east-1")

    with pytest.raises(ValueError, match="single_request_bytes"):
        ArchiveWriter(
            client, "archive", part_size=MIN_PART_SIZE, concurrency=4, single_request_bytes=single_request_bytes
        )


def test_concurrency_up_to_a_configured_pool_is_accepted() -> None:
    client = boto3.client("s3", region_name="us-east-1", config=Config(max_pool_connections=16))

    ArchiveWriter(client, "archive", concurrency=16)
