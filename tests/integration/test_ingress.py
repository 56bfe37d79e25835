"""The ingress against moto server: what reaches the bus, and what never does."""

from __future__ import annotations

import json
import logging
import socket
import time
from dataclasses import dataclass
from typing import Any

import pytest
from botocore.client import BaseClient

from tests.support.bus import BusTap
from tests.support.requests import answer, envelope, signed_event
from voicebus.bus import MAX_WEBHOOK_BYTES
from voicebus.ingress.publisher import WebhookPublisher
from voicebus.ingress.signature import SIGNATURE_HEADER, TIMESTAMP_HEADER
from voicebus_cli.local.functions import LoadedFunction
from voicebus_cli.local.provision import ProvisionedStack
from voicebus_cli.testkey import TestKeyPair
from voicebus_cli.webhooks import api_gateway_event, compact

TELNYX_ANSWER_BUDGET_SECONDS = 1.5
"""Telnyx waits about 2 s for an answer; the ingress keeps half a second for everything but the put."""

pytestmark = pytest.mark.integration


def test_signed_webhook_lands_on_the_stacks_bus_unchanged(
    ingress: LoadedFunction, test_key: TestKeyPair, stack: ProvisionedStack
) -> None:
    document = envelope("call.answered", client_state="e30=")
    this_webhook = {"detail": {"data": {"id": [document["data"]["id"]]}}}
    # A rule on each bus the put could name: the stack's own (by the name the template gives
    # it) and the account's default bus, where a put without a bus name would land.
    on_stack_bus = BusTap.on(stack.ref("EventBus"), f"{stack.stack.name}-own", this_webhook)
    on_default_bus = BusTap.on("default", f"{stack.stack.name}-default", this_webhook)

    status, body = answer(ingress.invoke(signed_event(test_key, document)))

    assert (status, body) == (200, {"status": "accepted", "id": document["data"]["id"]})
    [event] = on_stack_bus.drain()
    assert event["source"] == "telnyx"
    assert event["detail-type"] == "call.answered"
    assert event["detail"] == document
    assert on_default_bus.drain() == []


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


class Unresponsive:
    """An endpoint that accepts connections and never answers; counts the connections made."""

    def __init__(self) -> None:
        self._socket = socket.create_server(("127.0.0.1", 0), backlog=64)
        self.url = f"http://127.0.0.1:{self._socket.getsockname()[1]}"

    def connections(self) -> int:
        """Connections made so far: the kernel completed them and keeps them queued, unread."""
        self._socket.setblocking(False)
        count = 0
        while True:
            try:
                connection, _ = self._socket.accept()
            except BlockingIOError:
                return count
            connection.close()
            count += 1

    def close(self) -> None:
        self._socket.close()


def events_client(function: LoadedFunction) -> BaseClient:
    """The EventBridge client the ingress builds at cold start."""
    [client] = [
        value
        for value in vars(function.module).values()
        if isinstance(value, BaseClient) and value.meta.service_model.service_name == "events"
    ]
    return client


@dataclass(frozen=True)
class PutBudget:
    """What the ingress allows a put: attempts (the publisher's times the client's), and each one's timeouts."""

    attempts: int
    client_attempts: int
    connect_timeout: float
    read_timeout: float

    @classmethod
    def of(cls, function: LoadedFunction) -> PutBudget:
        config = events_client(function).meta.config  # botocore sets these at run time; the stubs omit them
        retries: dict[str, Any] = getattr(config, "retries")  # noqa: B009
        assert retries["mode"] == "standard", "worst_case_seconds is standard mode's bound"
        client_attempts = int(retries["total_max_attempts"])
        publisher: WebhookPublisher = function.module.ingress.publisher
        return cls(
            publisher.attempts * client_attempts,
            client_attempts,
            float(getattr(config, "connect_timeout")),  # noqa: B009
            float(getattr(config, "read_timeout")),  # noqa: B009
        )

    @property
    def worst_case_seconds(self) -> float:
        """Every attempt's timeouts, plus standard mode's waits between the client's own retries (if any):
        at most min(2 ** i, 20) s before retry i + 1. The publisher tries again at once."""
        waits = sum(min(2.0**retry, 20.0) for retry in range(self.client_attempts - 1))
        return self.attempts * (self.connect_timeout + self.read_timeout) + waits


def test_the_ingress_put_cannot_outlast_telnyxs_answer_budget(stack: ProvisionedStack) -> None:
    function = stack.functions["IngressFunction"]
    budget = PutBudget.of(LoadedFunction("IngressFunction", function.code_uri, function.handler, function.environment))

    assert budget.attempts >= 2, "one lost answer must not make Telnyx wait for its own retry"
    assert budget.worst_case_seconds <= TELNYX_ANSWER_BUDGET_SECONDS


def test_unresponsive_bus_answers_503_within_the_ingress_clients_timeouts(
    stack: ProvisionedStack, test_key: TestKeyPair
) -> None:
    # Telnyx waits about 2 s: the ingress's client timeouts and retries, not Telnyx, decide
    # how long a hung EventBridge holds the answer. This pins the answer to that config.
    endpoint = Unresponsive()
    function = stack.functions["IngressFunction"]
    env = {**function.environment, "AWS_ENDPOINT_URL": endpoint.url}
    try:
        broken = LoadedFunction("IngressFunction", function.code_uri, function.handler, env)
        budget = PutBudget.of(broken)

        started = time.monotonic()
        status, body = answer(broken.invoke(signed_event(test_key, envelope())))
        elapsed = time.monotonic() - started

        assert (status, body["error"]) == (503, "unavailable")
        assert endpoint.connections() == budget.attempts
        assert elapsed <= budget.worst_case_seconds, (
            f"answered after {elapsed:.2f} s; the client's config allows {budget.worst_case_seconds:.2f} s"
        )
    finally:
        endpoint.close()


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
