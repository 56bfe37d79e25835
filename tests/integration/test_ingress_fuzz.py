"""Hostile input: thousands of mutated requests; none is forged through, none gets a 5xx."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.bus import BusTap
from tests.support.report import figures
from tests.support.requests import envelope
from voicebus.ingress.signature import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from voicebus_cli.local.functions import LoadedFunction, LocalContext
from voicebus_cli.testkey import TestKeyPair
from voicebus_cli.webhooks import api_gateway_event, compact

pytestmark = pytest.mark.integration

FUZZ_CASES = 3000
REASONS = {
    401: {
        "missing_signature", "missing_timestamp", "malformed_signature", "malformed_timestamp",
        "stale_timestamp", "future_timestamp", "bad_signature",
    },
    400: {"malformed_body", "number_out_of_range", "nested_too_deep", "invalid_unicode", "empty_key", "invalid_field"},
    413: {"body_too_large"},
}  # fmt: skip

text_or_bytes = st.one_of(
    st.binary(max_size=64), st.text(max_size=64).map(lambda t: t.encode("utf-8", "surrogatepass"))
)


@st.composite
def mutated_requests(draw: st.DrawFn, key: TestKeyPair) -> tuple[dict[str, Any], bool, int]:
    """A request, whether it is exactly what the key holder signed, and its signature's age in seconds."""
    document = envelope(draw(st.sampled_from(["call.answered", "call.hangup", "streaming.failed", "x" * 129])))
    body = compact(document)
    now = int(time.time())
    signed_at = now + draw(st.sampled_from([0, -10, 10, -299, 299, -301, 301, -86400, 10**9]))
    headers = sign(body, key.signing_key, signed_at)
    genuine = len(document["data"]["event_type"]) <= 128  # longer ones are refused as malformed

    mutation = draw(
        st.sampled_from(
            ["none", "body_byte", "body_append", "body_replace", "sig_bytes", "sig_text", "ts_text", "ts_shift",
             "drop_header", "header_case", "resign_other_body", "base64_body", "garbage_base64", "huge"]
        )
    )  # fmt: skip
    base64_body = False
    if mutation == "body_byte" and body:
        index = draw(st.integers(0, len(body) - 1))
        body = body[:index] + bytes([(body[index] + draw(st.integers(1, 255))) % 256]) + body[index + 1 :]
        genuine = False
    elif mutation == "body_append":
        body += draw(text_or_bytes) or b" "
        genuine = False
    elif mutation == "body_replace":
        body = draw(text_or_bytes)
        genuine = False
    elif mutation == "sig_bytes":
        headers[SIGNATURE_HEADER] = base64.b64encode(draw(st.binary(min_size=0, max_size=80))).decode()
        genuine = False
    elif mutation == "sig_text":
        headers[SIGNATURE_HEADER] = draw(st.text(max_size=100))
        genuine = False
    elif mutation == "ts_text":
        headers[TIMESTAMP_HEADER] = draw(st.text(max_size=20))
        genuine = headers[TIMESTAMP_HEADER] == str(signed_at) and genuine
    elif mutation == "ts_shift":
        headers[TIMESTAMP_HEADER] = str(signed_at + draw(st.integers(-1000, 1000).filter(lambda n: n != 0)))
        genuine = False
    elif mutation == "drop_header":
        del headers[draw(st.sampled_from([SIGNATURE_HEADER, TIMESTAMP_HEADER]))]
        genuine = False
    elif mutation == "header_case":
        headers = {name.swapcase(): value for name, value in headers.items()}
    elif mutation == "resign_other_body":
        other = compact(envelope("call.bridged"))
        headers = sign(other, key.signing_key, signed_at)
        genuine = False
    elif mutation == "base64_body":
        base64_body = True
    elif mutation == "garbage_base64":
        event = api_gateway_event(body, headers, base64_body=True)
        event["body"] = draw(st.text(max_size=40))
        return event, False, now - signed_at
    elif mutation == "huge":
        body = b'{"data":{"id":"1","event_type":"call.answered","payload":{"x":"' + b"a" * 262_144 + b'"}}}'
        genuine = False
    try:
        event = api_gateway_event(body, headers, base64_body=base64_body)
    except UnicodeDecodeError:
        event = api_gateway_event(body, headers, base64_body=True)
    return event, genuine, now - signed_at


def test_hostile_requests_are_refused_cleanly(ingress: LoadedFunction, bus_tap: BusTap, test_key: TestKeyPair) -> None:
    row = figures("ingress fuzz (hypothesis)")
    handler = ingress.module.lambda_handler
    context = LocalContext("IngressFunction")
    accepted_ids: list[str] = []

    @settings(max_examples=FUZZ_CASES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(case=mutated_requests(test_key))
    def run(case: tuple[dict[str, Any], bool, int]) -> None:
        event, genuine, age = case
        result = handler(event, context)  # any exception fails the test
        status = result["statusCode"]
        answer = json.loads(result["body"])
        row.tried += 1
        assert status < 500, answer
        if genuine and abs(age) <= 290:
            assert status == 200, f"refused a genuine, fresh request: {answer}"
        if status == 200:
            assert genuine, f"accepted a request its signer never sent: {event['headers']}"
            assert abs(age) <= 301, f"accepted a signature {age} s old"
            row.accepted += 1
            accepted_ids.append(answer["id"])
        else:
            assert answer["error"] in REASONS[status], answer
            assert answer["message"]
            row.rejected[answer["error"]] += 1

    run()
    delivered = [event["detail"]["data"]["id"] for event in bus_tap.drain()]
    assert sorted(delivered) == sorted(accepted_ids)
    assert row.tried >= FUZZ_CASES
    assert row.accepted > 0
    assert len(row.rejected) >= 6


# ------------------------------------------------------------ hostile values, genuinely signed
STORED_FIELDS = ("stream_params", "sip_notify_response", "to", "failure_reason", "status", "digits", "x_unknown")
EVENT_TYPES = ("streaming.failed", "call.refer.failed", "call.gather.ended", "call.answered", "siprec.failed")

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**45), max_value=10**45),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([1e-200, 1e200, 1e-130, 9.99e125, 2**63, -(2**63), 10**38]),
    st.text(st.characters(codec=None, exclude_categories=()), max_size=8),  # lone surrogates included
)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(st.text(max_size=3), children, max_size=3)
    ),
    max_leaves=12,
)


@st.composite
def hostile_webhooks(draw: st.DrawFn) -> bytes:
    """A webhook whose stored fields hold any JSON value, nested up to 40 levels, as text Telnyx could sign."""
    payload: dict[str, Any] = {"call_control_id": f"v3:fuzz-{draw(st.integers(0, 10**6))}"}
    for name in draw(st.lists(st.sampled_from(STORED_FIELDS), max_size=3, unique=True)):
        value = draw(json_values)
        for _ in range(draw(st.sampled_from([0, 0, 0, 28, 29, 30, 40]))):
            value = [value]
        payload[name] = value
    document = envelope(draw(st.sampled_from(EVENT_TYPES)), **payload)
    return json.dumps(document, separators=(",", ":")).encode("ascii")  # Infinity, NaN and \ud800 escapes as written


def test_a_genuine_webhook_answered_200_is_processed_by_every_consumer(
    ingress: LoadedFunction, bus_tap: BusTap, consumers: dict[str, LoadedFunction], test_key: TestKeyPair
) -> None:
    from tests.support.requests import signed_event
    from tests.support.routing import targets

    row = figures("ingress fuzz: hostile values, signed (hypothesis)")
    handler = ingress.module.lambda_handler
    context = LocalContext("IngressFunction")

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(body=hostile_webhooks())
    def run(body: bytes) -> None:
        result = handler(signed_event(test_key, body), context)
        status, answer = result["statusCode"], json.loads(result["body"])
        row.tried += 1
        assert status in (200, 400), answer
        if status == 400:
            assert answer["error"] in REASONS[400], answer
            row.rejected[answer["error"]] += 1
            assert bus_tap.drain() == []
            return
        row.accepted += 1
        for event in bus_tap.drain():
            event.setdefault("account", "123456789012")  # moto's SQS target leaves it out
            for function in sorted(targets(event)):
                outcome = consumers[function].invoke(event)  # raising would fail the event for good
                assert "refused" not in outcome, (function, outcome)

    run()
    assert row.accepted > 0 and row.rejected
