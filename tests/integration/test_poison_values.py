"""Values that poison a call: whatever the ingress answers 200 is processed by every consumer, every time.

Each webhook goes through the ingress handler (signed as Telnyx signs) and, when
accepted, from the bus (a catch-all rule into SQS, moto server) to every function a
rule of template.yaml targets, as EventBridge would hand it over.
"""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import pytest

from tests.support.bus import BusTap
from tests.support.requests import answer, envelope, signed_event
from tests.support.routing import targets
from voicebus.calls.store import CallStore
from voicebus.ingress.envelope import MAX_ID_CHARS
from voicebus_cli.local.functions import LoadedFunction
from voicebus_cli.testkey import TestKeyPair

pytestmark = pytest.mark.integration


def b64(json_text: str) -> str:
    """client_state as another system may have set it: base64 of any JSON text, lone surrogates included."""
    return base64.b64encode(json_text.encode("utf-8", "surrogatepass")).decode("ascii")


def nested(levels: int, inner: str = "1") -> str:
    return '{"a":' * levels + inner + "}" * levels


def play(
    ingress: LoadedFunction, bus_tap: BusTap, consumers: dict[str, LoadedFunction], key: TestKeyPair, body: bytes
) -> tuple[int, dict[str, Any], dict[str, Any]]:
    """The ingress's answer, and each targeted function's result for what reached the bus (exceptions propagate)."""
    status, reply = answer(ingress.invoke(signed_event(key, body)))
    results: dict[str, Any] = {}
    for event in bus_tap.drain():
        event.setdefault("account", "123456789012")  # moto's SQS target leaves it out; EventBridge always sets it
        for function in sorted(targets(event)):
            results[f"{event['detail-type']}->{function}"] = consumers[function].invoke(event)
    return status, reply, results


def webhook(event_type: str, call_control_id: str, **payload: Any) -> bytes:
    document = envelope(event_type, call_control_id=call_control_id, **payload)
    return json.dumps(document, separators=(",", ":")).encode("utf-8")


POISON_CLIENT_STATES = {
    "integer of 41 digits": ("1" + "0" * 40, "38 digits"),
    "1e200": ("1e200", "range"),
    "1e-200": ("1e-200", "range"),
    "lone surrogate": ('"\\ud800"', "surrogate"),
    "600 levels": ("[" * 600 + "]" * 600, "levels"),
    "33 levels (DynamoDB's limit is 32)": (nested(33), "levels"),
    "empty map key": ('{"":1}', "empty map key"),
    "an integer Python will not convert": ("9" * 5000, "Python cannot decode it"),
    "nested past Python's parser": ("[" * 40_000 + "]" * 40_000, "Python cannot decode it"),
}


@pytest.mark.parametrize(("json_text", "fragment"), POISON_CLIENT_STATES.values(), ids=POISON_CLIENT_STATES.keys())
def test_a_poison_client_state_never_fails_an_event_of_its_call(
    ingress: LoadedFunction,
    bus_tap: BusTap,
    consumers: dict[str, LoadedFunction],
    call_store: CallStore,
    test_key: TestKeyPair,
    json_text: str,
    fragment: str,
) -> None:
    call = f"v3:poison-{uuid.uuid4()}"
    raw = b64(json_text)
    for event_type in ("call.answered", "call.speak.ended", "call.dtmf.received", "call.hangup"):
        status, _, results = play(ingress, bus_tap, consumers, test_key, webhook(event_type, call, client_state=raw))
        assert status == 200, event_type
        assert results, event_type  # every function ran and returned: none raised
        assert all("refused" not in result for result in results.values()), results

    record = call_store.get_call(call)
    assert record is not None and record.client_state is not None and record.status is not None
    assert record.status.value == "hung_up"
    lane = record.client_state
    assert (lane.raw, lane.kind, lane.value) == (raw, "json", None)  # the raw string always, no value
    assert lane.unstorable is not None and fragment in lane.unstorable


def test_a_large_client_state_keeps_its_raw_string_only(
    ingress: LoadedFunction,
    bus_tap: BusTap,
    consumers: dict[str, LoadedFunction],
    call_store: CallStore,
    test_key: TestKeyPair,
) -> None:
    call = f"v3:poison-{uuid.uuid4()}"
    raw = b64(json.dumps({"blob": "x" * 100_000}))
    status, _, _ = play(ingress, bus_tap, consumers, test_key, webhook("call.answered", call, client_state=raw))

    assert status == 200
    record = call_store.get_call(call)
    assert record is not None and record.client_state is not None
    assert (record.client_state.raw, record.client_state.value) == (raw, None)
    assert "larger than" in (record.client_state.unstorable or "")


def test_a_storable_client_state_is_still_stored_decoded(
    ingress: LoadedFunction,
    bus_tap: BusTap,
    consumers: dict[str, LoadedFunction],
    call_store: CallStore,
    test_key: TestKeyPair,
) -> None:
    call = f"v3:fine-{uuid.uuid4()}"
    value = {"n": 10**37, "small": 1e-130, "deep": json.loads(nested(30)), "emoji": "\U0001f600"}
    raw = b64(json.dumps(value))
    play(ingress, bus_tap, consumers, test_key, webhook("call.answered", call, client_state=raw))

    record = call_store.get_call(call)
    assert record is not None and record.client_state is not None
    assert (record.client_state.kind, record.client_state.value, record.client_state.unstorable) == (
        "json",
        value,
        None,
    )


def body(
    payload: str, event_type: str = '"call.answered"', event_id: str | None = None, occurred_at: str | None = None
) -> bytes:
    """A webhook body written as text (values json.dumps would never write): `payload` and the fields as JSON text."""
    event_id = event_id or json.dumps(str(uuid.uuid4()))
    occurred_at = occurred_at or '"2026-11-21T10:00:00.000000Z"'
    return (
        f'{{"data":{{"record_type":"event","event_type":{event_type},"id":{event_id},'
        f'"occurred_at":{occurred_at},"payload":{payload}}}}}'
    ).encode()


REFUSED = {
    "nesting of 255 levels": (body('{"call_control_id":"v3:p","x":' + "[" * 255 + "]" * 255 + "}"), "nested_too_deep"),
    "nesting of 1,100 levels": (
        body('{"call_control_id":"v3:p","x":' + "[" * 1100 + "]" * 1100 + "}"),
        "nested_too_deep",
    ),
    "nesting of 12,000 levels (Python's parser gives up)": (
        body('{"call_control_id":"v3:p","x":' + "[" * 12_000 + "]" * 12_000 + "}"),
        "nested_too_deep",
    ),
    "33 levels in a stored field": (
        body('{"call_control_id":"v3:p","stream_params":' + nested(31) + "}", '"streaming.failed"'),
        "nested_too_deep",
    ),
    "Infinity in a stored field": (
        body('{"call_control_id":"v3:p","stream_params":{"a":Infinity}}', '"streaming.failed"'),
        "malformed_body",
    ),
    "NaN": (body('{"call_control_id":"v3:p","x":NaN}'), "malformed_body"),
    "1e400 (parsed as infinity)": (body('{"call_control_id":"v3:p","x":1e400}'), "number_out_of_range"),
    "1e-200": (body('{"call_control_id":"v3:p","x":1e-200}'), "number_out_of_range"),
    "a number of 40 digits in a stored field": (
        body('{"call_control_id":"v3:p","stream_params":{"a":' + "1" * 40 + "}}", '"streaming.failed"'),
        "number_out_of_range",
    ),
    "an integer beyond 64 bits (EventBridge's limit)": (
        body('{"call_control_id":"v3:p","x":9223372036854775808}'),
        "number_out_of_range",
    ),
    "an integer of 5,000 digits (Python's conversion limit)": (
        body('{"call_control_id":"v3:p","x":' + "9" * 5000 + "}"),
        "number_out_of_range",
    ),
    "a 2,100-character call_control_id": (body(json.dumps({"call_control_id": "c" * 2100})), "invalid_field"),
    "a lone surrogate in the call_control_id": (body('{"call_control_id":"v3:\\ud800"}'), "invalid_unicode"),
    "a lone surrogate in data.id": (body("{}", event_id='"id-\\udfff"'), "invalid_unicode"),
    "a lone surrogate in event_type": (body("{}", event_type='"call.answered\\ud800"'), "invalid_unicode"),
    "an empty key in a stored field": (
        body('{"call_control_id":"v3:p","stream_params":{"":1}}', '"streaming.failed"'),
        "empty_key",
    ),
    "a call_control_id that is a number": (body('{"call_control_id":5}'), "invalid_field"),
    "an occurred_at that is no time": (body("{}", occurred_at='"yesterday"'), "invalid_field"),
    "a payload that is null": (body("null"), "invalid_field"),
    "transcription_data that is not an object": (
        body('{"call_control_id":"v3:p","transcription_data":"hello"}', '"call.transcription"'),
        "invalid_field",
    ),
    "recording_urls that are not strings": (
        body('{"call_control_id":"v3:p","recording_urls":{"mp3":1}}', '"call.recording.saved"'),
        "invalid_field",
    ),
}


@pytest.mark.parametrize(("raw", "reason"), REFUSED.values(), ids=REFUSED.keys())
def test_what_a_consumer_could_never_process_is_refused_with_a_reason_and_a_metric(
    ingress: LoadedFunction,
    bus_tap: BusTap,
    test_key: TestKeyPair,
    capsys: pytest.CaptureFixture[str],
    raw: bytes,
    reason: str,
) -> None:
    capsys.readouterr()
    status, reply = answer(ingress.invoke(signed_event(test_key, raw)))

    assert (status, reply["error"]) == (400, reason)
    assert reply["message"]
    assert bus_tap.drain() == []
    metrics = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert any(blob.get("Reason") == reason and blob.get("WebhookRejected") == [1.0] for blob in metrics), metrics


ACCEPTED = {
    "32 levels in all": body('{"call_control_id":"v3:edge","stream_params":' + nested(29) + "}", '"streaming.failed"'),
    "64-bit integers": body(
        '{"call_control_id":"v3:edge","stream_params":{"a":9223372036854775807,"b":-9223372036854775808}}',
        '"streaming.failed"',
    ),
    "decimals at DynamoDB's edges": body(
        '{"call_control_id":"v3:edge","stream_params":{"a":1e-130,"b":9.99e125,"c":0.0,"d":1e-400}}',
        '"streaming.failed"',
    ),
    "a surrogate pair and empty strings": body(
        '{"call_control_id":"v3:edge","stream_params":{"e":"\\ud83d\\ude00","f":""},"to":""}', '"streaming.failed"'
    ),
    f"ids of {MAX_ID_CHARS} characters": body(
        json.dumps({"call_control_id": "c" * MAX_ID_CHARS, "call_session_id": "s" * MAX_ID_CHARS})
    ),
    "occurred_at only in the payload": body(
        '{"call_control_id":"v3:edge","occurred_at":"2026-11-21T10:00:00+02:00"}', occurred_at="null"
    ),
}


@pytest.mark.parametrize("raw", ACCEPTED.values(), ids=ACCEPTED.keys())
def test_what_the_ingress_accepts_at_its_limits_every_consumer_processes(
    ingress: LoadedFunction,
    bus_tap: BusTap,
    consumers: dict[str, LoadedFunction],
    test_key: TestKeyPair,
    raw: bytes,
) -> None:
    status, _, results = play(ingress, bus_tap, consumers, test_key, raw)

    assert status == 200
    assert results and all("refused" not in result for result in results.values()), results


@pytest.mark.parametrize("code", ["MalformedDetail", "InvalidArgument"])
def test_an_entry_eventbridge_refuses_for_good_is_answered_400_not_503(
    ingress: LoadedFunction, test_key: TestKeyPair, capsys: pytest.CaptureFixture[str], code: str
) -> None:
    """EventBridge documents these codes as non-retryable: a 503 would have Telnyx retry the webhook forever."""
    from botocore.stub import Stubber

    client = ingress.module.ingress.publisher._client
    with Stubber(client) as stub:
        refused = {"FailedEntryCount": 1, "Entries": [{"ErrorCode": code, "ErrorMessage": "the detail is invalid"}]}
        stub.add_response("put_events", refused)
        capsys.readouterr()
        status, reply = answer(ingress.invoke(signed_event(test_key, webhook("call.answered", "v3:refused"))))
        stub.assert_no_pending_responses()  # one attempt: the same entry is not put again

    assert (status, reply["error"]) == (400, "refused_by_bus")
    assert code in reply["message"]
    metrics = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert any(blob.get("Reason") == "refused_by_bus" for blob in metrics), metrics
