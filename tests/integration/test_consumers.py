"""The event-family functions against moto server: what each event leaves in DynamoDB."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities.typing import LambdaContext

from tests.support.calls import BASE_TIME, CallScript, as_bus_event
from tests.support.routing import recorders, targets
from voicebus.calls.client_state import encode
from voicebus.calls.consumer import Handler, build_handler
from voicebus.calls.events import TelnyxBusEvent
from voicebus.calls.items import unattributed_pk
from voicebus.calls.recorder import CallEventRecorder, RecordedEvent
from voicebus.calls.records import CallStatus, Feature
from voicebus.calls.store import CallStore
from voicebus.errors import PermanentError, RetryableError
from voicebus_cli.local.functions import LoadedFunction, LocalContext, environment
from voicebus_cli.local.provision import ProvisionedStack
from voicebus_cli.local.storage import StorageServer
from voicebus_cli.local.telnyx_api import TelnyxApiStandIn
from voicebus_cli.webhooks import BUS_EVENTS_DIR, bus_event, raw_body, webhook_event_files

pytestmark = pytest.mark.integration

BUS_FILES = sorted(BUS_EVENTS_DIR.glob("*.json"))


def deliver(consumers: dict[str, LoadedFunction], event: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Hand the event to every function a rule targets, as EventBridge would: each one's result."""
    return {function: consumers[function].invoke(event) for function in sorted(targets(event))}


def local_recording_urls(event: dict[str, Any], storage: StorageServer) -> dict[str, Any]:
    """The sample's Telnyx links point at example.com: serve the same recording from the local stand-in."""
    payload = event["detail"]["data"]["payload"]
    for fmt in list(payload.get("recording_urls") or {}):
        published = storage.publish(f"{payload['recording_id']}.{fmt}.{uuid.uuid4().hex}", 64 * 1024)
        payload["recording_urls"][fmt] = published.url
    return event


def test_bus_events_are_derived_from_the_webhook_samples() -> None:
    webhooks = {path.name: path for path in webhook_event_files() if not path.name.endswith(".base64-body.json")}
    assert {path.name for path in BUS_FILES} == set(webhooks)
    for path in BUS_FILES:
        expected = bus_event(raw_body(json.loads(webhooks[path.name].read_text())))
        assert json.loads(path.read_text()) == expected, f"{path.name}: run `python -m voicebus_cli derive-bus-events`"


@pytest.mark.parametrize("path", BUS_FILES, ids=[path.name for path in BUS_FILES])
def test_each_bus_event_is_recorded_by_its_function(
    path: Path, consumers: dict[str, LoadedFunction], call_store: CallStore, storage: StorageServer
) -> None:
    event = local_recording_urls(json.loads(path.read_text()), storage)
    data = event["detail"]["data"]

    results = deliver(consumers, event)

    assert results
    for result in results.values():
        assert (result["event_id"], result["event_type"]) == (data["id"], data["event_type"])
    # Every function it reaches acts on it; exactly one, its family's, records it.
    assert {name for name, result in results.items() if result["recorded"]} == recorders(event)
    assert len(recorders(event)) == 1
    call_control_id = data["payload"].get("call_control_id")
    if call_control_id:
        assert data["id"] in {entry.event_id for entry in call_store.timeline(call_control_id)}
        record = call_store.get_call(call_control_id)
        assert record is not None
        assert record.call_session_id == data["payload"]["call_session_id"]


def test_a_whole_call_leaves_the_expected_record(consumers: dict[str, LoadedFunction], call_store: CallStore) -> None:
    script = CallScript()
    for webhook in script.basic_call():
        deliver(consumers, as_bus_event(webhook))

    record = call_store.get_call(script.call_control_id)
    assert record is not None
    assert record.status is not None
    assert (record.status.value, record.status.hangup_cause, record.status.sip_hangup_cause) == (
        CallStatus.HUNG_UP,
        "normal_clearing",
        "200",
    )
    assert (record.from_number, record.to_number, record.direction) == ("+15550001111", "+15550002222", "incoming")
    assert record.initiated_at is not None and record.answered_at is not None and record.ended_at is not None
    assert record.initiated_at < record.answered_at < record.ended_at
    assert record.features[Feature.GATHER].model_extra == {"state": "ended", "status": "valid", "digits": "2"}
    playback = record.features[Feature.PLAYBACK].model_extra
    assert playback is not None
    assert playback["status"] == "completed"
    assert record.features[Feature.SPEAK].model_extra == {"state": "ended", "status": "completed"}
    assert record.client_state is not None
    assert (record.client_state.kind, record.client_state.value) == ("json", {"step": "voicemail"})
    [recording] = record.recordings
    assert (recording.recording_id, recording.status) == ("rec-1", "saved")
    assert recording.model_extra is not None and recording.model_extra["formats"] == ["mp3"]
    timeline = call_store.timeline(script.call_control_id)
    assert [entry.event_type for entry in timeline] == [w["data"]["event_type"] for w in script.webhooks]
    assert [leg.call_control_id for leg in call_store.calls_in_session(script.session)] == [script.call_control_id]


def test_client_state_is_kept_raw_and_decoded(consumers: dict[str, LoadedFunction], call_store: CallStore) -> None:
    cases = [(encode({"a": 1}), "json", {"a": 1}), ("aGVsbG8gd29ybGQ=", "text", "hello world"), ("%%", "invalid", None)]
    for raw, kind, value in cases:
        script = CallScript()
        deliver(consumers, as_bus_event(script.event("call.answered", client_state=raw)))
        record = call_store.get_call(script.call_control_id)
        assert record is not None and record.client_state is not None
        assert (record.client_state.raw, record.client_state.kind, record.client_state.value) == (raw, kind, value)


def test_streaming_failure_keeps_the_reason(consumers: dict[str, LoadedFunction], call_store: CallStore) -> None:
    script = CallScript()
    deliver(consumers, as_bus_event(script.event("streaming.started", stream_id="s-1", stream_url="wss://x")))
    deliver(
        consumers,
        as_bus_event(script.event("streaming.failed", stream_id="s-1", failure_reason="connection_failed")),
    )
    record = call_store.get_call(script.call_control_id)
    assert record is not None
    assert record.features[Feature.STREAMING].model_extra == {
        "state": "failed",
        "stream_id": "s-1",
        "failure_reason": "connection_failed",
    }


def test_a_late_older_event_never_moves_state_backwards(
    consumers: dict[str, LoadedFunction], call_store: CallStore
) -> None:
    script = CallScript()
    answered = script.event("call.answered")
    hangup = script.event("call.hangup", hangup_cause="normal_clearing")
    deliver(consumers, as_bus_event(hangup))

    result = deliver(consumers, as_bus_event(answered))["CallControlFunction"]

    assert "status" in result["lanes_stale"]
    record = call_store.get_call(script.call_control_id)
    assert record is not None and record.status is not None
    assert record.status.value == CallStatus.HUNG_UP
    assert record.answered_at == answered["data"]["occurred_at"]


def test_a_redelivered_event_is_not_processed_twice(
    consumers: dict[str, LoadedFunction], call_store: CallStore, stack: ProvisionedStack
) -> None:
    script = CallScript()
    event = as_bus_event(script.event("call.answered"))
    first = deliver(consumers, event)["CallControlFunction"]
    # Remove what the first delivery wrote: a second *processing* would write it again.
    boto3.client("dynamodb").update_item(
        TableName=stack.ref("CallsTable"),
        Key={"pk": {"S": f"CALL#{script.call_control_id}"}, "sk": {"S": "STATE"}},
        UpdateExpression="REMOVE #s",
        ExpressionAttributeNames={"#s": "status"},
    )

    second = deliver(consumers, event)["CallControlFunction"]

    assert second == first
    record = call_store.get_call(script.call_control_id)
    assert record is not None and record.status is None
    idempotency = boto3.client("dynamodb").scan(TableName=stack.ref("IdempotencyTable"))["Items"]
    assert len(idempotency) == 1


def test_events_without_a_call_join_their_conference_timeline(
    consumers: dict[str, LoadedFunction], stack: ProvisionedStack
) -> None:
    event = json.loads((BUS_EVENTS_DIR / "conference.speak.started.json").read_text())
    deliver(consumers, event)
    conference_id = event["detail"]["data"]["payload"]["conference_id"]
    items = boto3.client("dynamodb").query(
        TableName=stack.ref("CallsTable"),
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": f"CONFERENCE#{conference_id}"}},
    )["Items"]
    assert [item["event_type"]["S"] for item in items] == ["conference.speak.started"]


def test_a_malformed_bus_event_fails_the_invocation(consumers: dict[str, LoadedFunction]) -> None:
    event = as_bus_event(CallScript().event("call.answered"))
    del event["detail"]["data"]["id"]
    with pytest.raises(Exception, match="validation error"):
        consumers["CallControlFunction"].invoke(event)


def _emf_metrics(output: str) -> list[dict[str, Any]]:
    """The metric values of every EMF record (one JSON line per flush; a value may be a list of samples)."""
    records = []
    for line in output.splitlines():
        document = json.loads(line) if line.startswith("{") else {}
        if "_aws" in document:
            names = [m["Name"] for d in document["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]]
            values = {name: sum(v) if isinstance(v := document[name], list) else v for name in names}
            records.append(values | {"EventType": document.get("EventType")})
    return records


class ObservedFunctions(dict[str, LoadedFunction]):
    """The stack's functions, loaded on first use, their logs and EMF metrics kept per function."""

    def __init__(self, stack: ProvisionedStack, telnyx_api: TelnyxApiStandIn) -> None:
        super().__init__()
        self._stack = stack
        self._telnyx_env = {"TELNYX_API_KEY": telnyx_api.api_key, "TELNYX_BASE_URL": telnyx_api.base_url}
        self.output: dict[str, io.StringIO] = {}

    def __missing__(self, name: str) -> LoadedFunction:
        function = self._stack.functions[name]
        self.output[name] = io.StringIO()
        env = {**function.environment, **self._telnyx_env}
        loaded = LoadedFunction(name, function.code_uri, function.handler, env, stdout=self.output[name])
        self[name] = loaded
        return loaded

    def metrics(self) -> list[dict[str, Any]]:
        return [record for output in self.output.values() for record in _emf_metrics(output.getvalue())]


def test_an_in_order_call_never_counts_a_stale_lane_write(
    stack: ProvisionedStack, telnyx_api: TelnyxApiStandIn, call_store: CallStore
) -> None:
    """Events heard by two functions (speak/playback/recording ended, hang-up) are written once."""
    functions = ObservedFunctions(stack, telnyx_api)
    script = CallScript()
    webhooks = script.basic_call()
    shared = [w for w in webhooks if len(targets(as_bus_event(w))) > 1]
    assert {w["data"]["event_type"] for w in shared} >= {"call.speak.ended", "call.hangup"}

    results = [deliver(functions, as_bus_event(webhook)) for webhook in webhooks]

    assert all(result["lanes_stale"] == [] for by_function in results for result in by_function.values())
    metrics = functions.metrics()
    assert sum(record.get("StaleLaneWrites", 0) for record in metrics) == 0
    assert sum(record.get("EventsRecorded", 0) for record in metrics) == len(webhooks)
    recorded = sorted(record["EventType"] for record in metrics if "EventsRecorded" in record)
    assert recorded == sorted(w["data"]["event_type"] for w in webhooks)
    timeline = call_store.timeline(script.call_control_id)
    assert [entry.event_type for entry in timeline] == [w["data"]["event_type"] for w in webhooks]


# ---------------------------------------------------------------- errors: retry or record, by branch
class MalformedRecordingError(PermanentError):
    """Stands for any input that fails the same way every time."""


class TelnyxDownError(RetryableError):
    """Stands for a dependency that may be back on the next attempt."""


@pytest.fixture
def consumer_env(stack: ProvisionedStack) -> Iterator[dict[str, str]]:
    """MediaFunction's environment from the template, set while the test builds and runs a handler."""
    env = {"AWS_LAMBDA_FUNCTION_NAME": f"acting-{uuid.uuid4().hex[:6]}", **stack.functions["MediaFunction"].environment}
    with environment(env):
        yield env


class RaisingAct:
    def __init__(self, error: Exception) -> None:
        self.error = error
        self.calls = 0

    def __call__(self, webhook: Any, recorded: RecordedEvent, context: LambdaContext) -> dict[str, Any] | None:
        self.calls += 1
        raise self.error


def _invoke(handler: Handler, event: dict[str, Any]) -> Any:
    return handler(event, LocalContext(function_name="acting"))  # type: ignore[arg-type]


def test_a_permanent_error_is_answered_counted_and_not_retried(
    consumer_env: dict[str, str],
    call_store: CallStore,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    act = RaisingAct(MalformedRecordingError("recording rec-1 has no channels"))
    handler = build_handler(act=act)
    script = CallScript()
    event = as_bus_event(script.event("call.speak.started"))

    first = _invoke(handler, event)
    again = _invoke(handler, event)  # EventBridge would not redeliver, but a duplicate must not act twice

    assert first["refused"] == {"error": "MalformedRecordingError", "reason": "recording rec-1 has no channels"}
    assert first["recorded"] is True and first["lanes_written"] == ["speak"]
    assert again == first
    assert act.calls == 1
    record = call_store.get_call(script.call_control_id)
    assert record is not None and Feature.SPEAK in record.features
    refused = [r["EventsRefused"] for r in _emf_metrics(capsys.readouterr().out) if "EventsRefused" in r]
    assert refused == [1.0]
    [logged] = [record for record in caplog.records if record.getMessage().startswith("event refused")]
    assert logged.exc_info is not None and logged.exc_info[0] is MalformedRecordingError


@pytest.mark.parametrize("error", [TelnyxDownError("503 from Telnyx"), RuntimeError("a bug")])
def test_any_other_error_propagates_so_the_event_is_retried(consumer_env: dict[str, str], error: Exception) -> None:
    act = RaisingAct(error)
    handler = build_handler(act=act)
    event = as_bus_event(CallScript().event("call.speak.started"))

    for _ in range(2):
        with pytest.raises(type(error)):
            _invoke(handler, event)

    assert act.calls == 2  # the idempotency record is released, so the retry runs the work again


def test_an_event_of_another_family_is_acted_on_but_not_recorded(
    consumer_env: dict[str, str], call_store: CallStore
) -> None:
    seen: list[RecordedEvent] = []

    def act(webhook: Any, recorded: RecordedEvent, context: LambdaContext) -> dict[str, Any]:
        seen.append(recorded)
        return {"acted": True}

    script = CallScript()
    result = _invoke(build_handler(act=act), as_bus_event(script.event("call.hangup")))  # a media function

    assert (result["recorded"], result["lanes_written"], result["acted"]) == (False, [], True)
    assert [recorded.recorded for recorded in seen] == [False]
    assert call_store.get_call(script.call_control_id) is None
    assert call_store.timeline(script.call_control_id) == []


# ---------------------------------------------------------------- record-only functions, fewer writes
def test_a_record_only_function_records_a_redelivery_again_harmlessly(
    consumers: dict[str, LoadedFunction], call_store: CallStore, stack: ProvisionedStack
) -> None:
    """No idempotency record: the repeat runs, finds every lane already set by this event, changes nothing."""
    script = CallScript()
    script.event("call.answered")
    started = as_bus_event(script.event("call.speak.started", client_state=encode({"step": "menu"})))
    first = deliver(consumers, started)["MediaFunction"]
    before = call_store.get_call(script.call_control_id)

    second = deliver(consumers, started)["MediaFunction"]

    assert first["lanes_written"] == ["speak", "client_state"]
    assert (second["lanes_written"], second["lanes_stale"]) == ([], ["speak", "client_state"])
    assert call_store.get_call(script.call_control_id) == before
    assert [entry.event_id for entry in call_store.timeline(script.call_control_id)] == [
        started["detail"]["data"]["id"]
    ]
    idempotency = boto3.client("dynamodb").scan(TableName=stack.ref("IdempotencyTable"))["Items"]
    assert idempotency == []


def test_a_late_event_still_sets_its_identity_facts(
    consumers: dict[str, LoadedFunction], call_store: CallStore
) -> None:
    """call.initiated after call.answered: its status lane is stale, its initiated_at is still recorded."""
    script = CallScript()
    initiated = script.event("call.initiated", state="parked")
    answered = script.event("call.answered")
    deliver(consumers, as_bus_event(answered))

    result = deliver(consumers, as_bus_event(initiated))["CallControlFunction"]

    assert result["lanes_stale"] == ["status"]
    record = call_store.get_call(script.call_control_id)
    assert record is not None and record.status is not None
    assert record.status.value == CallStatus.ANSWERED
    assert (record.initiated_at, record.answered_at) == (
        initiated["data"]["occurred_at"],
        answered["data"]["occurred_at"],
    )


def test_an_event_newer_for_some_lanes_only_writes_those(call_store: CallStore) -> None:
    """One write per event when in order; when not, the lanes it is still newer for are written."""
    script = CallScript()
    early = script.event("call.speak.started", client_state=encode({"step": "menu"}))
    late = script.event("call.speak.ended", status="completed")
    later = script.event("call.dtmf.received", digit="1", client_state=encode({"step": "after"}))
    recorder = CallEventRecorder(call_store)
    for webhook in (late, later):
        recorder.record(TelnyxBusEvent.model_validate(as_bus_event(webhook)).detail.data)
    # speak.started is older than speak.ended (speak lane) and than dtmf's client_state.
    stale = recorder.record(TelnyxBusEvent.model_validate(as_bus_event(early)).detail.data)
    assert (stale.lanes_written, sorted(stale.lanes_stale)) == ([], ["client_state", "speak"])

    other = CallScript()
    first = other.event("call.speak.started", client_state=encode({"step": "menu"}))
    newer_speak = other.event("call.speak.ended", status="completed")
    recorder.record(TelnyxBusEvent.model_validate(as_bus_event(newer_speak)).detail.data)
    mixed = recorder.record(TelnyxBusEvent.model_validate(as_bus_event(first)).detail.data)
    assert (mixed.lanes_written, mixed.lanes_stale) == (["client_state"], ["speak"])
    record = call_store.get_call(other.call_control_id)
    assert record is not None and record.client_state is not None
    assert record.client_state.value == {"step": "menu"}
    assert record.features[Feature.SPEAK].model_extra == {"state": "ended", "status": "completed"}


def test_events_with_no_call_conference_or_session_are_spread_and_read_back_by_hour(
    consumers: dict[str, LoadedFunction], call_store: CallStore
) -> None:
    script = CallScript()
    events = []
    for index in range(24):
        webhook = script.event("call.machine.detection.ended", result="human")
        webhook["data"]["payload"] = {"result": "human", "index": index}  # no ids at all
        events.append(webhook)
        deliver(consumers, as_bus_event(webhook))

    keys = {unattributed_pk(w["data"]["occurred_at"], w["data"]["id"]) for w in events}
    assert len(keys) > 1, "one shared key would be a hot partition"
    assert all(key.startswith(f"UNATTRIBUTED#{BASE_TIME:%Y-%m-%dT%H}#") for key in keys)
    hour = call_store.unattributed_timeline(f"{BASE_TIME:%Y-%m-%dT%H}")
    ours = [entry.event_id for entry in hour if entry.event_id in {w["data"]["id"] for w in events}]
    assert ours == [w["data"]["id"] for w in events]
