"""The few facts the ingress needs from a webhook body, checked without a schema library.

Consumers parse the full envelope with pydantic (`voicebus.calls.events`); the ingress
needs `data.id` and `data.event_type` to route, and the call ids to log. It also checks
the fields those models type, with the same types, so that a body it answers 200 is one
every consumer can parse and store (`tests/unit/test_ingress_envelope.py` keeps the two
in step); `voicebus.ingress.limits` checks the JSON values themselves.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from voicebus.ingress.limits import JsonLimitError, LimitReason, loads


class WebhookEnvelopeError(JsonLimitError):
    """The body is not a Telnyx webhook envelope (API version 2) that voicebus can carry."""

    def __init__(self, message: str, reason: LimitReason = LimitReason.MALFORMED) -> None:
        super().__init__(reason, message)


@dataclass(frozen=True, slots=True)
class WebhookSummary:
    """What the ingress routes and logs by; the body itself travels unchanged."""

    id: str
    event_type: str
    call_control_id: str | None
    call_session_id: str | None


# EventBridge caps DetailType at 128 characters; Telnyx event types are far shorter.
_MAX_FIELD_CHARS = 128
# Telnyx ids are under 100 characters; these become DynamoDB keys (at most 2,048 / 1,024 bytes).
MAX_ID_CHARS = 256
# `voicebus.calls.events.CallPayload`'s text fields ("from" also by its Python name).
PAYLOAD_TEXT_FIELDS = frozenset(
    {
        "call_control_id", "call_leg_id", "call_session_id", "connection_id", "conference_id", "client_state",
        "from", "from_", "to", "direction", "status", "hangup_cause", "hangup_source", "sip_hangup_cause",
        "digits", "digit", "recording_id", "channels", "stream_id", "stream_url", "stream_type", "failure_reason",
    }
)  # fmt: skip
PAYLOAD_TIME_FIELDS = frozenset({"recording_started_at", "recording_ended_at"})
# Read from the payload's extra fields as objects (the live transcript's `transcription_data`).
PAYLOAD_OBJECT_FIELDS = frozenset({"transcription_data"})
PAYLOAD_ID_FIELDS = frozenset({"call_control_id", "call_leg_id", "call_session_id", "conference_id", "recording_id"})
# ISO 8601 as both pydantic and datetime.fromisoformat read it (Telnyx: 2026-11-21T10:00:00.123456Z).
_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:\d{2})?", re.ASCII)


def summarize(text: str) -> WebhookSummary:
    """Parse `text` as a webhook envelope and pull out the routing facts; `JsonLimitError` if refused."""
    envelope = loads(text)
    if not isinstance(envelope, dict):
        raise WebhookEnvelopeError("the body is not a JSON object")
    data = envelope.get("data")
    if not isinstance(data, dict):
        raise WebhookEnvelopeError("the body has no `data` object (is the webhook API version set to 2?)")
    webhook_id = _required_text(data, "id")
    event_type = _required_text(data, "event_type")
    payload = data.get("payload", {})
    _check_fields(envelope, data, payload)
    return WebhookSummary(
        id=webhook_id,
        event_type=event_type,
        call_control_id=payload.get("call_control_id"),
        call_session_id=payload.get("call_session_id"),
    )


def _required_text(data: dict[str, Any], field: str) -> str:
    value = data.get(field)
    if not isinstance(value, str) or not value.strip():
        raise WebhookEnvelopeError(f"`data.{field}` is missing or not a non-empty string")
    if len(value) > _MAX_FIELD_CHARS:
        raise WebhookEnvelopeError(f"`data.{field}` is longer than {_MAX_FIELD_CHARS} characters")
    return value


def _check_fields(envelope: dict[str, Any], data: dict[str, Any], payload: Any) -> None:
    """The fields the consumers' models type: refused here, or they would fail every consumer."""
    if envelope.get("meta") is not None and not isinstance(envelope["meta"], dict):
        _invalid("meta", "an object")
    if "record_type" in data and not isinstance(data["record_type"], str):
        _invalid("data.record_type", "a string")
    if not isinstance(payload, dict):
        _invalid("data.payload", "an object")
    occurred_at = data.get("occurred_at")
    if occurred_at is not None:
        _time("data.occurred_at", occurred_at)
    elif payload.get("occurred_at"):  # consumers fall back to it
        _time("data.payload.occurred_at", payload["occurred_at"])
    for name in PAYLOAD_TEXT_FIELDS.intersection(payload):
        value = payload[name]
        if value is not None and not isinstance(value, str):
            _invalid(f"data.payload.{name}", "a string")
    for name in PAYLOAD_ID_FIELDS.intersection(payload):
        if payload[name] is not None and len(payload[name]) > MAX_ID_CHARS:
            message = f"`data.payload.{name}` is longer than {MAX_ID_CHARS} characters"
            raise WebhookEnvelopeError(message, LimitReason.FIELD)
    for name in PAYLOAD_TIME_FIELDS.intersection(payload):
        if payload[name] is not None:
            _time(f"data.payload.{name}", payload[name])
    for name in PAYLOAD_OBJECT_FIELDS.intersection(payload):
        if payload[name] is not None and not isinstance(payload[name], dict):
            _invalid(f"data.payload.{name}", "an object")
    urls = payload.get("recording_urls")
    if urls is not None and (
        not isinstance(urls, dict) or not all(url is None or isinstance(url, str) for url in urls.values())
    ):
        _invalid("data.payload.recording_urls", "an object of strings")


def _time(field: str, value: Any) -> None:
    if isinstance(value, str) and _TIME.fullmatch(value):
        try:
            datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            return
    _invalid(field, "an ISO 8601 time")


def _invalid(field: str, expected: str) -> None:
    raise WebhookEnvelopeError(f"`{field}` is not {expected}", LimitReason.FIELD)
