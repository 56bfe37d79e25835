"""The recording function: recordings and their transcripts into S3, linked on the call."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from typing import Any

import boto3
import pytest

from tests.conftest import DUMMY_SECRET_ARN
from tests.support.calls import CallScript, as_bus_event
from voicebus.calls.store import CallStore
from voicebus_cli.local.functions import LoadedFunction
from voicebus_cli.local.provision import ProvisionedStack, provision
from voicebus_cli.local.storage import Behaviour, StorageServer
from voicebus_cli.local.telnyx_api import TelnyxApiStandIn
from voicebus_cli.local.template import Stack, load_template
from voicebus_cli.testkey import load_test_key

pytestmark = pytest.mark.integration


def saved(
    script: CallScript, recording_id: str, urls: Mapping[str, str | None], channels: str = "dual"
) -> dict[str, Any]:
    return as_bus_event(
        script.event(
            "call.recording.saved",
            recording_id=recording_id,
            channels=channels,
            recording_started_at="2026-11-21T09:59:30.000000Z",
            recording_ended_at="2026-11-21T10:00:00.000000Z",
            recording_urls=urls,
        )
    )


def stored(stack: ProvisionedStack, uri: str) -> tuple[bytes, dict[str, Any]]:
    bucket, key = uri.removeprefix("s3://").split("/", 1)
    obj = boto3.client("s3").get_object(Bucket=bucket, Key=key)
    return obj["Body"].read(), dict(obj)


def test_both_formats_are_archived_checked_and_linked(
    consumers: dict[str, Any], storage: StorageServer, call_store: CallStore, stack: ProvisionedStack
) -> None:
    script = CallScript()
    mp3 = storage.publish(f"mp3-{script.session}", 300_000)
    wav = storage.publish(f"wav-{script.session}", 12 * 1024 * 1024)  # more than one part

    consumers["RecordingFunction"].invoke(saved(script, "rec-a", {"mp3": mp3.url, "wav": wav.url}))

    [recording] = call_store.get_call(script.call_control_id).recordings  # type: ignore[union-attr]
    archive = recording.model_extra["archive"]  # type: ignore[index]
    for fmt, published in (("mp3", mp3), ("wav", wav)):
        body, obj = stored(stack, archive[fmt]["s3_uri"])
        assert hashlib.sha256(body).hexdigest() == published.sha256() == archive[fmt]["sha256"]
        assert archive[fmt]["size"] == published.size
        assert obj["Metadata"]["recording-id"] == "rec-a"
        assert obj["Metadata"]["channels"] == "dual"
        assert obj["Metadata"]["call-control-id"] == script.call_control_id
    key = archive["wav"]["s3_uri"].split("/", 3)[3]
    assert key == f"recordings/2026/11/21/{script.session}/rec-a.wav"
    uploads = boto3.client("s3").list_multipart_uploads(Bucket=stack.ref("ArchiveBucket"))
    assert uploads.get("Uploads", []) == []


def test_a_redelivery_does_not_upload_again(
    consumers: dict[str, Any], storage: StorageServer, stack: ProvisionedStack
) -> None:
    script = CallScript()
    mp3 = storage.publish(f"again-{script.session}", 200_000)
    event = saved(script, "rec-b", {"mp3": mp3.url, "wav": None})
    consumers["RecordingFunction"].invoke(event)
    # Past the idempotency window (records expired), the same event again: a late redelivery, a redrive.
    dynamodb = boto3.client("dynamodb")
    for item in dynamodb.scan(TableName=stack.ref("IdempotencyTable"))["Items"]:
        dynamodb.delete_item(TableName=stack.ref("IdempotencyTable"), Key={"id": item["id"]})
    result = consumers["RecordingFunction"].invoke(event)

    assert result["archived"]["mp3"]["sha256"] == mp3.sha256()
    versions = boto3.client("s3").list_object_versions(Bucket=stack.ref("ArchiveBucket"), Prefix="recordings/")
    assert len([v for v in versions.get("Versions", []) if v["Key"].endswith("rec-b.mp3")]) == 1


def test_an_expired_link_is_replaced_through_the_telnyx_api(
    consumers: dict[str, Any], storage: StorageServer, telnyx_api: TelnyxApiStandIn, stack: ProvisionedStack
) -> None:
    script = CallScript()
    expired = storage.publish(f"expired-{script.session}", 100_000, Behaviour.FORBIDDEN)
    fresh = storage.publish(f"fresh-{script.session}", 100_000, seed=expired.seed)
    telnyx_api.set_recording("rec-c", download_urls={"mp3": fresh.url})

    result = consumers["RecordingFunction"].invoke(saved(script, "rec-c", {"mp3": expired.url, "wav": None}))

    assert result["archived"]["mp3"]["sha256"] == expired.sha256()
    assert [(r.method, r.path) for r in telnyx_api.requests()] == [("GET", "/v2/recordings/rec-c")]


def test_custom_storage_locations_are_recorded_not_copied(
    consumers: dict[str, Any], call_store: CallStore, stack: ProvisionedStack
) -> None:
    script = CallScript()
    urls = {"mp3": "s3://my-telnyx-bucket/rec-d.mp3", "wav": "gs://my-gcs-bucket/rec-d.wav"}

    consumers["RecordingFunction"].invoke(saved(script, "rec-d", urls))

    [recording] = call_store.get_call(script.call_control_id).recordings  # type: ignore[union-attr]
    assert recording.model_extra["archive"] == {"mp3": {"external": urls["mp3"]}, "wav": {"external": urls["wav"]}}  # type: ignore[index]
    listed = boto3.client("s3").list_objects_v2(Bucket=stack.ref("ArchiveBucket"))
    assert listed.get("KeyCount", 0) == 0


def test_a_cut_transfer_fails_the_invocation_and_leaves_nothing(
    consumers: dict[str, Any], storage: StorageServer, stack: ProvisionedStack
) -> None:
    script = CallScript()
    cut = storage.publish(f"cut-{script.session}", 12 * 1024 * 1024, Behaviour.CUT)

    with pytest.raises(Exception, match=r"(?i)archive|connection|incomplete"):
        consumers["RecordingFunction"].invoke(saved(script, "rec-e", {"mp3": cut.url, "wav": None}))

    s3 = boto3.client("s3")
    assert s3.list_multipart_uploads(Bucket=stack.ref("ArchiveBucket")).get("Uploads", []) == []
    assert s3.list_objects_v2(Bucket=stack.ref("ArchiveBucket")).get("KeyCount", 0) == 0


def test_a_transcript_lands_next_to_its_recording_in_either_order(
    consumers: dict[str, Any], storage: StorageServer, call_store: CallStore, stack: ProvisionedStack
) -> None:
    script = CallScript()
    transcript = as_bus_event(
        script.event(
            "call.recording.transcription.saved",
            recording_id="rec-f",
            recording_transcription_id="t-1",
            status="completed",
            transcription_text="Hi, please call me back about my order.",
        )
    )
    mp3 = storage.publish(f"f-{script.session}", 50_000)
    recording = saved(script, "rec-f", {"mp3": mp3.url, "wav": None})

    consumers["RecordingFunction"].invoke(recording)
    consumers["RecordingFunction"].invoke(transcript)

    [item] = call_store.get_call(script.call_control_id).recordings  # type: ignore[union-attr]
    extra = item.model_extra or {}
    body, _ = stored(stack, extra["transcript"]["s3_uri"])
    assert body.decode() == "Hi, please call me back about my order."
    assert extra["transcript"]["s3_uri"].rsplit("/", 1)[0] == extra["archive"]["mp3"]["s3_uri"].rsplit("/", 1)[0]

    early = CallScript()
    consumers["RecordingFunction"].invoke(
        as_bus_event(early.event("call.recording.transcription.saved", recording_id="rec-g", transcription_text="x"))
    )
    [pending] = call_store.get_call(early.call_control_id).recordings  # type: ignore[union-attr]
    assert (pending.recording_id, pending.status) == ("rec-g", "pending")


def test_a_recording_error_marks_the_recording_failed(consumers: dict[str, Any], call_store: CallStore) -> None:
    script = CallScript()
    consumers["RecordingFunction"].invoke(
        as_bus_event(script.event("call.recording.error", recording_id="rec-h", reason="Internal server error"))
    )
    record = call_store.get_call(script.call_control_id)
    assert record is not None
    assert record.features["recording"].model_extra == {  # type: ignore[index]
        "state": "error",
        "reason": "Internal server error",
        "recording_id": "rec-h",
    }
    [recording] = record.recordings
    assert (recording.status, (recording.model_extra or {}).get("reason")) == ("error", "Internal server error")


# ---------------------------------------------------------------------- what is not archived (issue 11)


def archive_of(call_store: CallStore, script: CallScript) -> dict[str, Any]:
    [recording] = call_store.get_call(script.call_control_id).recordings  # type: ignore[union-attr]
    return dict((recording.model_extra or {})["archive"])


def assert_bucket_empty(stack: ProvisionedStack) -> None:
    s3 = boto3.client("s3")
    assert s3.list_multipart_uploads(Bucket=stack.ref("ArchiveBucket")).get("Uploads", []) == []
    assert s3.list_objects_v2(Bucket=stack.ref("ArchiveBucket")).get("KeyCount", 0) == 0


def test_links_that_are_not_https_are_recorded_failed_not_retried(
    consumers: dict[str, Any], call_store: CallStore, stack: ProvisionedStack
) -> None:
    script = CallScript()
    urls = {"mp3": "ftp://127.0.0.1/recordings/rec-i.mp3", "wav": "file:///etc/passwd"}

    result = consumers["RecordingFunction"].invoke(saved(script, "rec-i", urls))  # answered, so never retried

    archive = archive_of(call_store, script)
    assert result["archived"] == archive
    assert {fmt: where["status"] for fmt, where in archive.items()} == {"mp3": "failed", "wav": "failed"}
    assert "'ftp://127.0.0.1/recordings/rec-i.mp3' is not https" in archive["mp3"]["reason"]
    assert "'file:///etc/passwd' is not https" in archive["wav"]["reason"]
    assert_bucket_empty(stack)


def test_an_html_page_is_recorded_failed_beside_the_format_that_was_archived(
    consumers: dict[str, Any], storage: StorageServer, call_store: CallStore, stack: ProvisionedStack
) -> None:
    script = CallScript()
    page = storage.publish(f"page-{script.session}", 0, Behaviour.HTML)
    wav = storage.publish(f"wav-{script.session}", 100_000)

    consumers["RecordingFunction"].invoke(saved(script, "rec-j", {"mp3": page.url, "wav": wav.url}))

    archive = archive_of(call_store, script)
    assert archive["mp3"]["status"] == "failed"
    assert "served as 'text/html', not mp3 audio" in archive["mp3"]["reason"]
    assert archive["wav"]["sha256"] == wav.sha256()


def test_a_redirect_to_plain_http_elsewhere_is_recorded_failed_and_not_followed(
    consumers: dict[str, Any], storage: StorageServer, call_store: CallStore, stack: ProvisionedStack
) -> None:
    script = CallScript()
    elsewhere = storage.publish(f"elsewhere-{script.session}", 100_000)
    port = storage.base_url.rsplit(":", 1)[1]
    moved = storage.publish(
        f"moved-{script.session}", 0, Behaviour.REDIRECT, redirect_to=f"http://localhost:{port}{elsewhere.path}"
    )

    consumers["RecordingFunction"].invoke(saved(script, "rec-k", {"mp3": moved.url, "wav": None}))

    reason = archive_of(call_store, script)["mp3"]["reason"]
    assert f"redirect 1 of the link to 'http://localhost:{port}{elsewhere.path}' is not https" in reason
    assert storage.requests(elsewhere) == 0
    assert_bucket_empty(stack)


def test_an_endless_body_stops_at_recording_max_bytes_and_is_recorded_failed(
    moto_server: Any, storage: StorageServer, telnyx_api: TelnyxApiStandIn
) -> None:
    cap = 2 * 1024 * 1024
    parameters = {"TelnyxPublicKey": load_test_key().public_key_b64, "TelnyxApiKeySecretArn": DUMMY_SECRET_ARN}
    name = f"t{uuid.uuid4().hex[:10]}"
    stack = provision(Stack(load_template(), name, parameters={**parameters, "RecordingMaxBytes": str(cap)}))
    function = stack.functions["RecordingFunction"]
    recording = LoadedFunction(
        "RecordingFunction",
        function.code_uri,
        function.handler,
        {**function.environment, "TELNYX_API_KEY": telnyx_api.api_key, "TELNYX_BASE_URL": telnyx_api.base_url},
    )
    script = CallScript()
    endless = storage.publish(f"endless-{script.session}", 0, Behaviour.ENDLESS)

    recording.invoke(saved(script, "rec-l", {"mp3": endless.url, "wav": None}))

    store = CallStore(boto3.client("dynamodb"), stack.ref("CallsTable"))
    assert function.environment["RECORDING_MAX_BYTES"] == str(cap)
    assert f"the body goes on past the {cap} bytes allowed" in archive_of(store, script)["mp3"]["reason"]
    assert storage.bytes_sent(endless) < 64 * cap  # stopped near the cap (socket buffers hold a few MB more)
    assert_bucket_empty(stack)
