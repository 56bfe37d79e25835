"""The ingress against moto server: what reaches the bus, and what never does."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import pytest

from tests.support.bus import BusTap
from tests.support.requests import answer, envelope, signed_event
from voicebus.bus import MAX_WEBHOOK_BYTES
from voicebus.ingress.signature import SIGNATURE_HEADER, TIMESTAMP_HEADER
from voicebus_cli.local.functions import LoadedFunction
from voicebus_cli.local.provision import ProvisionedStack
from voicebus_cli.testkey import TestKeyPair
from voicebus_cli.webhooks import api_gateway_event, compact

pytestmark = pytest.mark.integration


def test_signed_webhook_lands_on_the_bus_unchanged(
    ingress: LoadedFunction, bus_tap: BusTap, test_key: TestKeyPair, stack: ProvisionedStack
) -> None:
    document = envelope("call.answered", client_state="e30=")
    status, body = answer(ingress.invoke(signed_event(test_key, document)))

    assert (status, body) == (200, {"status": "accepted", "id": document["data"]["id"]})
    [event] = bus_tap.drain()
    assert event["source"] == "telnyx"
    assert event["detail-type"] == "call.answered"
    assert event["detail"] == document
    assert stack.ref("EventBus") in event["resources"] or event.get("event-bus-name", stack.ref("EventBus"))


def test_base64_body_is_verified_on_its_decoded_bytes(
    ingress: LoadedFunction, bus_tap: BusTap, test_key: TestKeyPair
) -> None:
    document = envelope("call.hangup", hangup_cause="normal_clearing", caller_name="Zoë Ñúñez")
    status, _ = answer(ingress.invoke(signed_event(test_key, document, base64_body=True)))

    assert status == 200
    assert [event["detail"] for event in bus_tap.drain()] == [document]


def _tamper_body(event: dict[str, Any]) -> None:
    event["body"] = event["body"].replace("call.answered", "call.hangup")


def _add_whitespace(event: dict[str, Any]) -> None:
    event["body"] = event["body"].replace(",", ", ", 1)


def _drop_signature(event: dict[str, Any]) -> None:
    del event["headers"][SIGNATURE_HEADER]


def _drop_timestamp(event: dict[str, Any]) -> None:
    del event["headers"][TIMESTAMP_HEADER]


def _garble_signature(event: dict[str, Any]) -> None:
    event["headers"][SIGNATURE_HEADER] = "not base64!"


def _short_signature(event: dict[str, Any]) -> None:
    event["headers"][SIGNATURE_HEADER] = "c2hvcnQ="


def _text_timestamp(event: dict[str, Any]) -> None:
    event["headers"][TIMESTAMP_HEADER] = "yesterday"


def _shift_timestamp(event: dict[str, Any]) -> None:
    # Signed for one time, claimed for another: the signature covers the timestamp.
    event["headers"][TIMESTAMP_HEADER] = str(int(event["headers"][TIMESTAMP_HEADER]) + 1)


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (_tamper_body, "bad_signature"),
        (_add_whitespace, "bad_signature"),
        (_drop_signature, "missing_signature"),
        (_drop_timestamp, "missing_timestamp"),
        (_garble_signature, "malformed_signature"),
        (_short_signature, "malformed_signature"),
        (_text_timestamp, "malformed_timestamp"),
        (_shift_timestamp, "bad_signature"),
    ],
)
def test_forged_requests_get_401_and_never_reach_the_bus(
    ingress: LoadedFunction, bus_tap: BusTap, test_key: TestKeyPair, mutate: Any, reason: str
) -> None:
    event = signed_event(test_key, envelope("call.answered"))
    mutate(event)

    status, body = answer(ingress.invoke(event))

    assert (status, body["error"]) == (401, reason)
    assert bus_tap.drain() == []


@pytest.mark.parametrize(("offset", "reason"), [(-301, "stale_timestamp"), (301, "future_timestamp")])
def test_timestamps_outside_the_window_get_401(
    ingress: LoadedFunction, bus_tap: BusTap, test_key: TestKeyPair, offset: int, reason: str
) -> None:
    event = signed_event(test_key, envelope(), timestamp=int(time.time()) + offset)

    status, body = answer(ingress.invoke(event))

    assert (status, body["error"]) == (401, reason)
    assert bus_tap.drain() == []


def test_timestamps_inside_the_window_are_accepted_both_ways(
    ingress: LoadedFunction, bus_tap: BusTap, test_key: TestKeyPair
) -> None:
    for offset in (-290, 290):
        status, _ = answer(ingress.invoke(signed_event(test_key, envelope(), timestamp=int(time.time()) + offset)))
        assert status == 200
    assert len(bus_tap.drain()) == 2


def test_wrong_key_gets_401(ingress: LoadedFunction, bus_tap: BusTap) -> None:
    from nacl.signing import SigningKey

    from voicebus_cli.testkey import TestKeyPair as KeyPair

    stranger = KeyPair(SigningKey.generate(), "unused")
    status, body = answer(ingress.invoke(signed_event(stranger, envelope())))

    assert (status, body["error"]) == (401, "bad_signature")
    assert bus_tap.drain() == []


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b"not json at all", "not valid JSON"),
        (b"[1, 2, 3]", "not a JSON object"),
        (b'{"event_type": "call.answered"}', "no `data` object"),
        (b'{"data": {"event_type": "call.answered", "payload": {}}}', "`data.id`"),
        (b'{"data": {"id": "abc", "payload": {}}}', "`data.event_type`"),
        (b'{"data": {"id": "abc", "event_type": ""}}', "`data.event_type`"),
        (b'{"data": {"id": "abc", "event_type": "call.answered"}}\xff', "not UTF-8"),
    ],
)
def test_signed_but_malformed_bodies_get_400(
    ingress: LoadedFunction, bus_tap: BusTap, test_key: TestKeyPair, raw: bytes, fragment: str
) -> None:
    status, body = answer(ingress.invoke(signed_event(test_key, raw, base64_body=True)))

    assert status == 400
    assert body["error"] == "malformed_body"
    assert fragment in body["message"]
    assert bus_tap.drain() == []


def test_body_over_the_limit_gets_413_before_any_verification(
    ingress: LoadedFunction, bus_tap: BusTap, test_key: TestKeyPair
) -> None:
    document = envelope(padding="x" * MAX_WEBHOOK_BYTES)
    status, body = answer(ingress.invoke(signed_event(test_key, document)))

    assert (status, body["error"]) == (413, "body_too_large")
    assert bus_tap.drain() == []


def test_body_just_under_the_limit_fits_one_eventbridge_entry(
    ingress: LoadedFunction, bus_tap: BusTap, test_key: TestKeyPair
) -> None:
    document = envelope()
    room = MAX_WEBHOOK_BYTES - len(compact(document)) - len(',"padding":""')
    document["data"]["payload"]["padding"] = "x" * room
    assert len(compact(document)) == MAX_WEBHOOK_BYTES

    status, _ = answer(ingress.invoke(signed_event(test_key, document)))

    assert status == 200
    assert [event["detail"]["data"]["id"] for event in bus_tap.drain()] == [document["data"]["id"]]


def test_failed_put_answers_503_so_telnyx_retries(stack: ProvisionedStack, test_key: TestKeyPair) -> None:
    function = stack.functions["IngressFunction"]
    # A bus that does not exist: moto refuses the put, as AWS would.
    env = {**function.environment, "EVENT_BUS_NAME": "no-such-bus"}
    broken = LoadedFunction("IngressFunction", function.code_uri, function.handler, env)

    status, body = answer(broken.invoke(signed_event(test_key, envelope())))

    assert (status, body["error"]) == (503, "unavailable")


def test_unreachable_bus_answers_503_within_telnyx_budget(stack: ProvisionedStack, test_key: TestKeyPair) -> None:
    from voicebus_cli.local.moto_server import free_port

    function = stack.functions["IngressFunction"]
    env = {**function.environment, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}"}
    broken = LoadedFunction("IngressFunction", function.code_uri, function.handler, env)

    status, body = answer(broken.invoke(signed_event(test_key, envelope())))

    assert (status, body["error"]) == (503, "unavailable")


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("TELNYX_PUBLIC_KEY", "", "TELNYX_PUBLIC_KEY is not set"),
        ("TELNYX_PUBLIC_KEY", "not-base64!", "TELNYX_PUBLIC_KEY is not valid base64"),
        ("TELNYX_PUBLIC_KEY", "c2hvcnQ=", "TELNYX_PUBLIC_KEY decodes to 5 bytes"),
        ("EVENT_BUS_NAME", "", "EVENT_BUS_NAME is not set"),
        ("WEBHOOK_TOLERANCE_SECONDS", "five", "WEBHOOK_TOLERANCE_SECONDS must be an integer"),
        ("WEBHOOK_TOLERANCE_SECONDS", "0", "WEBHOOK_TOLERANCE_SECONDS must be between 1 and 3600"),
    ],
)
def test_bad_configuration_fails_at_cold_start_naming_the_variable(
    stack: ProvisionedStack, variable: str, value: str, message: str
) -> None:
    from voicebus.config import ConfigurationError

    function = stack.functions["IngressFunction"]
    env = {**function.environment, variable: value}

    with pytest.raises(ConfigurationError, match=message):
        LoadedFunction("IngressFunction", function.code_uri, function.handler, env)


def test_other_methods_get_405_and_other_paths_404(ingress: LoadedFunction, bus_tap: BusTap) -> None:
    get = api_gateway_event(b"", {}, method="GET")
    other = api_gateway_event(b"{}", {}, path="/webhooks/other")

    get_result = ingress.invoke(get)
    assert answer(get_result) == (
        405,
        {"error": "method_not_allowed", "message": "Telnyx webhooks are POSTed"},
    )
    assert get_result["headers"]["Allow"] == "POST"
    assert answer(ingress.invoke(other))[0] == 404
    assert bus_tap.drain() == []


class _FormattedLines(logging.Handler):
    """Keeps each record as the function's Powertools formatter renders it, at emit time."""

    def __init__(self, formatter: logging.Formatter) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(formatter)
        self.lines: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


def test_logs_never_carry_signatures_or_bodies(ingress: LoadedFunction, test_key: TestKeyPair) -> None:
    document = envelope("call.answered", client_state="c2VjcmV0LXN0YXRl", to="+15550001111")
    event = signed_event(test_key, document)
    forged = json.loads(json.dumps(event))
    _tamper_body(forged)
    function_logger = ingress.module.logger
    capture = _FormattedLines(function_logger.registered_formatter)
    function_logger.addHandler(capture)
    level = function_logger.log_level
    function_logger.setLevel("DEBUG")  # the most verbose level logs accepted webhooks too
    try:
        ingress.invoke(event)
        ingress.invoke(forged)
    finally:
        function_logger.setLevel(level)
        function_logger.removeHandler(capture)

    lines = capture.lines
    accepted = next(line for line in lines if line["message"] == "webhook accepted")
    rejected = next(line for line in lines if line["message"] == "webhook rejected")
    assert accepted["call_control_id"] == "v3:test-call"
    assert accepted["webhook_id"] == document["data"]["id"]
    assert accepted["correlation_id"] == event["requestContext"]["requestId"]
    assert rejected["reason"] == "bad_signature"
    logs = "\n".join(json.dumps(line) for line in lines)
    for secret in (
        event["headers"][SIGNATURE_HEADER],
        "c2VjcmV0LXN0YXRl",
        "+15550001111",
        test_key.public_key_b64,
    ):
        assert secret not in logs
