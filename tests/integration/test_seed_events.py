"""Seed actions and events recorded in full: commands without webhooks, recording errors as the spec
sends them, recording transcripts' ids, and which side spoke in a live transcript.

Each runs the stack's functions (moto server as AWS, the Telnyx stand-in for commands).
"""

from __future__ import annotations

import copy
import json
import logging
import uuid
from typing import Any

import boto3
import pytest

from tests.integration.test_consumers import ObservedFunctions
from tests.support.bus import command_request
from tests.support.calls import CallScript, as_bus_event
from tests.support.routing import targets
from voicebus.calls.records import Feature
from voicebus.calls.store import CallStore
from voicebus_cli.local.provision import ProvisionedStack
from voicebus_cli.local.telnyx_api import TelnyxApiStandIn
from voicebus_cli.webhooks import BUS_EVENTS_DIR

pytestmark = pytest.mark.integration

RECORDING_ID = "428c31b6-7af4-4bcb-b7f5-5013ef9657c1"


def deliver(functions: dict[str, Any], event: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Hand the event to every function a rule targets, as EventBridge would."""
    return {function: functions[function].invoke(event) for function in sorted(targets(event))}


# ---------------------------------------------------------------- commands Telnyx sends no webhook about
@pytest.mark.parametrize(
    ("action", "params", "feature", "expected"),
    [
        ("record_pause", {}, Feature.RECORDING, {"state": "paused"}),
        ("record_pause", {"recording_id": RECORDING_ID}, Feature.RECORDING, {"state": "paused", "recording_id": RECORDING_ID}),  # noqa: E501
        ("record_resume", {}, Feature.RECORDING, {"state": "resumed"}),
        ("transcription_stop", {}, Feature.TRANSCRIPTION, {"state": "stopped"}),
    ],
)  # fmt: skip
def test_an_accepted_command_without_a_webhook_sets_its_lane(
    consumers: dict[str, Any],
    telnyx_api: TelnyxApiStandIn,
    call_store: CallStore,
    action: str,
    params: dict[str, Any],
    feature: Feature,
    expected: dict[str, Any],
) -> None:
    call_control_id = f"v3:{uuid.uuid4()}"

    result = consumers["CommandFunction"].invoke(
        command_request(call_control_id, action, params, at="2026-11-21T10:00:00Z")
    )

    assert result["outcome"] == "call.command.succeeded"
    [sent] = telnyx_api.take_requests()
    assert (sent.action, sent.call_control_id) == (action, call_control_id)
    record = call_store.get_call(call_control_id)
    assert record is not None
    assert record.features[feature].model_extra == expected


def test_pause_then_resume_leaves_the_recording_resumed_and_a_refused_command_changes_nothing(
    consumers: dict[str, Any], telnyx_api: TelnyxApiStandIn, call_store: CallStore
) -> None:
    from voicebus_cli.local.telnyx_api import Fault

    call_control_id = f"v3:{uuid.uuid4()}"
    command = consumers["CommandFunction"]
    command.invoke(command_request(call_control_id, "record_pause", {}, at="2026-11-21T10:00:00Z"))
    command.invoke(command_request(call_control_id, "record_resume", {}, at="2026-11-21T10:00:05Z"))
    telnyx_api.fail_next(Fault.call_ended())
    refused = command.invoke(command_request(call_control_id, "record_pause", {}, at="2026-11-21T10:00:09Z"))

    assert refused["outcome"] == "call.command.failed"
    record = call_store.get_call(call_control_id)
    assert record is not None
    assert record.features[Feature.RECORDING].model_extra == {"state": "resumed"}


# ---------------------------------------------------------------- call.recording.error as the spec sends it
class Records(logging.Handler):
    """The records a function's Powertools logger handled (its service's `logging` logger), whatever its stream."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def spec_recording_error(call_control_id: str) -> dict[str, Any]:
    """The committed sample (the spec's shape: a reason and no recording_id), on a call of its own."""
    event: dict[str, Any] = copy.deepcopy(json.loads((BUS_EVENTS_DIR / "call.recording.error.json").read_text()))
    data = event["detail"]["data"]
    data["id"] = str(uuid.uuid4())
    data["payload"]["call_control_id"] = call_control_id
    assert "recording_id" not in data["payload"]
    return event


def test_a_recording_error_without_recording_id_is_recorded_counted_logged_and_reaches_the_flow(
    stack: ProvisionedStack, telnyx_api: TelnyxApiStandIn, call_store: CallStore
) -> None:
    functions = ObservedFunctions(stack, telnyx_api)
    call_control_id = f"v3:{uuid.uuid4()}"
    event = spec_recording_error(call_control_id)
    logged = Records()
    functions["RecordingFunction"]  # its init first: Powertools formats through its logger's first handler
    service = logging.getLogger(stack.functions["RecordingFunction"].environment["POWERTOOLS_SERVICE_NAME"])
    service.addHandler(logged)
    try:
        results = deliver(functions, event)
    finally:
        service.removeHandler(logged)

    # Recorded by the recording function, heard by call control (the flow) too.
    assert set(results) == {"RecordingFunction", "CallControlFunction"}
    assert results["RecordingFunction"]["recorded"] is True
    assert results["RecordingFunction"]["recording_error"] == "Internal server error"
    assert results["CallControlFunction"]["recorded"] is False
    record = call_store.get_call(call_control_id)
    assert record is not None
    assert record.features[Feature.RECORDING].model_extra == {"state": "error", "reason": "Internal server error"}
    assert sum(metric.get("RecordingErrors", 0) for metric in functions.metrics()) == 1
    [warning] = [record for record in logged.records if record.getMessage() == "Telnyx could not save a recording"]
    assert (warning.levelno, warning.__dict__["reason"]) == (logging.WARNING, "Internal server error")


def test_a_recording_transcript_keeps_the_specs_transcription_id(
    consumers: dict[str, Any], call_store: CallStore
) -> None:
    script = CallScript()
    event = script.event(
        "call.recording.transcription.saved",
        recording_id="rec-t",
        recording_transcription_id="rt-1",
        status="completed",
        transcription_text="Hi!",
    )

    consumers["RecordingFunction"].invoke(as_bus_event(event))

    record = call_store.get_call(script.call_control_id)
    assert record is not None
    lane = record.features[Feature.TRANSCRIPTION].model_extra
    assert lane == {
        "state": "recording_transcript_saved",
        "recording_id": "rec-t",
        "recording_transcription_id": "rt-1",
        "status": "completed",
    }


# ---------------------------------------------------------------- which side spoke
def read(uri: str) -> str:
    bucket, key = uri.removeprefix("s3://").split("/", 1)
    return str(boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read().decode())


def test_the_live_transcript_keeps_which_side_spoke(consumers: dict[str, Any], call_store: CallStore) -> None:
    script = CallScript()
    spoken = [("inbound", "I'd like to change my booking"), ("outbound", "Sure, which date?"), (None, "hm")]
    events = []
    for track, text in spoken:
        data = {"transcript": text, "is_final": True, "confidence": 0.9}
        if track:
            data["transcription_track"] = track
        events.append(as_bus_event(script.event("call.transcription", transcription_data=data)))
    events.append(as_bus_event(script.event("call.hangup", hangup_cause="normal_clearing")))

    for event in events:
        deliver(consumers, event)

    assert [item.get("track") for item in call_store.transcript_segments(script.call_control_id)] == [
        "inbound", "outbound", None,
    ]  # fmt: skip
    record = call_store.get_call(script.call_control_id)
    assert record is not None and record.transcript is not None
    document = json.loads(read(record.transcript["json"]))
    assert [(item["track"], item["text"]) for item in document["segments"]] == spoken
    assert (
        read(record.transcript["text"]) == "inbound: I'd like to change my booking\noutbound: Sure, which date?\nhm\n"
    )


# ---------------------------------------------------------------- the spec's prose limits, before the wire
@pytest.mark.parametrize(
    ("action", "params", "named"),
    [
        ("playback_start", {"audio_url": "https://example.test/a.mp3", "media_name": "hold"}, "media_name"),
        ("playback_start", {"audio_url": "https://example.test/a.mp3", "overlay": True, "target_legs": "both"},
         "target_legs"),
        ("fork_start", {"rx": "udp:192.0.2.1:9000"}, "tx"),
        ("transcription_start", {"transcription_engine": "Google",
                                 "transcription_engine_config": {"transcription_engine": "Azure", "region": "eastus"}},
         "transcription_engine_config.transcription_engine"),
    ],
)  # fmt: skip
def test_a_request_breaking_a_prose_limit_is_answered_failed_and_never_sent(
    consumers: dict[str, Any], telnyx_api: TelnyxApiStandIn, action: str, params: dict[str, Any], named: str
) -> None:
    result = consumers["CommandFunction"].invoke(
        command_request(f"v3:{uuid.uuid4()}", action, params, at="2026-11-21T10:00:00Z")
    )

    assert result["outcome"] == "call.command.failed"
    assert f"{named}: " in result["reason"]
    assert telnyx_api.take_requests() == []
