"""Property: shuffled and duplicated deliveries of a call's events end in the in-order state.

Runs the real store against moto server: the conditional writes are DynamoDB's, not a fake's.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import boto3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.calls import BASE_TIME
from voicebus.calls.client_state import encode
from voicebus.calls.events import TelnyxBusEvent
from voicebus.calls.recorder import CallEventRecorder
from voicebus.calls.store import CallStore
from voicebus_cli.local.moto_server import MotoServer
from voicebus_cli.local.provision import provision
from voicebus_cli.local.template import Stack, load_template
from voicebus_cli.webhooks import bus_event, compact

pytestmark = pytest.mark.integration

FEATURE_EVENTS: list[tuple[str, dict[str, Any]]] = [
    ("call.playback.started", {"media_url": "https://x/a.mp3"}),
    ("call.playback.ended", {"status": "completed"}),
    ("call.speak.started", {}),
    ("call.speak.ended", {"status": "completed"}),
    ("call.gather.ended", {"digits": "1", "status": "valid"}),
    ("call.gather.ended", {"digits": "", "status": "timeout"}),
    ("call.dtmf.received", {"digit": "5"}),
    ("streaming.started", {"stream_id": "s1"}),
    ("streaming.failed", {"stream_id": "s1", "failure_reason": "connection_failed"}),
    ("call.fork.started", {"stream_type": "decrypted"}),
    ("call.refer.failed", {"sip_notify_response": 486}),
    ("siprec.started", {}),
    ("call.recording.saved", {"recording_id": "r1", "channels": "dual", "recording_urls": {"mp3": "https://x"}}),
    ("call.recording.error", {"recording_id": "r2", "reason": "storage_unavailable"}),
    ("call.hold", {}),
]


@st.composite
def calls(draw: st.DrawFn) -> list[tuple[str, int, dict[str, Any]]]:
    """(event_type, ms after start, payload) for one call; equal times are allowed on purpose."""
    middle = draw(st.lists(st.sampled_from(FEATURE_EVENTS), max_size=8))
    states = st.one_of(st.none(), st.builds(lambda step: encode({"step": step}), st.integers(0, 3)))
    events: list[tuple[str, dict[str, Any]]] = [("call.initiated", {}), ("call.answered", {})]
    if draw(st.booleans()):
        events.append(("call.bridged", {}))
    events += middle
    if draw(st.booleans()):
        events.append(("call.hangup", {"hangup_cause": "normal_clearing"}))
    offsets = sorted(draw(st.lists(st.integers(0, 40), min_size=len(events), max_size=len(events))))
    result = []
    for (event_type, payload), offset in zip(events, offsets, strict=True):
        state = draw(states)
        result.append((event_type, offset, {**payload, **({"client_state": state} if state else {})}))
    return result


@pytest.fixture(scope="module")
def store(moto_server: MotoServer) -> CallStore:
    parameters = {
        "TelnyxPublicKey": "x",
        "TelnyxApiKeySecretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:x",
    }
    stack = provision(Stack(load_template(), f"p{uuid.uuid4().hex[:8]}", parameters=parameters))
    return CallStore(boto3.client("dynamodb"), stack.ref("CallsTable"))


def _webhooks(call: list[tuple[str, int, dict[str, Any]]], call_control_id: str) -> list[TelnyxBusEvent]:
    parsed = []
    for index, (event_type, offset, payload) in enumerate(call):
        at = BASE_TIME + timedelta(milliseconds=offset)
        webhook = {
            "data": {
                "event_type": event_type,
                "id": f"evt-{index:02d}-{uuid.uuid4()}",
                "occurred_at": at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                "payload": {"call_control_id": call_control_id, "call_session_id": "s", **payload},
            }
        }
        parsed.append(TelnyxBusEvent.model_validate(bus_event(compact(webhook))))
    return parsed


def _with_call_id(event: TelnyxBusEvent, call_control_id: str) -> TelnyxBusEvent:
    copy = event.model_copy(deep=True)
    copy.detail.data.payload.call_control_id = call_control_id
    return copy


def _snapshot(store: CallStore, call_control_id: str) -> dict[str, Any]:
    record = store.get_call(call_control_id)
    assert record is not None
    state = record.model_dump(mode="json", exclude={"call_control_id"})
    timeline = [entry.model_dump() for entry in store.timeline(call_control_id)]
    return {"state": state, "timeline": timeline}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(call=calls(), data=st.data())
def test_any_delivery_order_with_duplicates_ends_in_the_in_order_state(
    store: CallStore, call: list[tuple[str, int, dict[str, Any]]], data: st.DataObject
) -> None:
    recorder = CallEventRecorder(store)
    in_order_id, shuffled_id = f"v3:in-order-{uuid.uuid4()}", f"v3:shuffled-{uuid.uuid4()}"
    events = _webhooks(call, in_order_id)
    duplicates = data.draw(st.lists(st.sampled_from(events), max_size=len(events)))
    delivery = data.draw(st.permutations(events + duplicates))

    for event in events:
        recorder.record(event.detail.data)
    for event in delivery:
        recorder.record(_with_call_id(event, shuffled_id).detail.data)

    assert _snapshot(store, shuffled_id) == _snapshot(store, in_order_id)
