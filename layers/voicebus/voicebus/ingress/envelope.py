"""The few facts the ingress needs from a webhook body, checked without a schema library.

Consumers parse the full envelope with pydantic (`voicebus.calls.events`); the ingress
only needs `data.id` and `data.event_type` to route, and the call ids to log.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from voicebus.errors import PermanentError


class WebhookEnvelopeError(PermanentError, ValueError):
    """The body is not a Telnyx webhook envelope (API version 2)."""


@dataclass(frozen=True, slots=True)
class WebhookSummary:
    """What the ingress routes and logs by; the body itself travels unchanged."""

    id: str
    event_type: str
    call_control_id: str | None
    call_session_id: str | None


def summarize(text: str) -> WebhookSummary:
    """Parse `text` as a webhook envelope and pull out the routing facts."""
    try:
        envelope = json.loads(text)
    except json.JSONDecodeError:
        raise WebhookEnvelopeError("the body is not valid JSON") from None
    if not isinstance(envelope, dict):
        raise WebhookEnvelopeError("the body is not a JSON object")
    data = envelope.get("data")
    if not isinstance(data, dict):
        raise WebhookEnvelopeError("the body has no `data` object (is the webhook API version set to 2?)")
    webhook_id = _required_text(data, "id")
    event_type = _required_text(data, "event_type")
    payload = data.get("payload")
    if not isinstance(payload, dict):
        payload = {}
    return WebhookSummary(
        id=webhook_id,
        event_type=event_type,
        call_control_id=_optional_text(payload, "call_control_id"),
        call_session_id=_optional_text(payload, "call_session_id"),
    )


# EventBridge caps DetailType at 128 characters; Telnyx event types are far shorter.
_MAX_FIELD_CHARS = 128


def _required_text(data: dict[str, Any], field: str) -> str:
    value = data.get(field)
    if not isinstance(value, str) or not value.strip():
        raise WebhookEnvelopeError(f"`data.{field}` is missing or not a non-empty string")
    if len(value) > _MAX_FIELD_CHARS:
        raise WebhookEnvelopeError(f"`data.{field}` is longer than {_MAX_FIELD_CHARS} characters")
    return value


def _optional_text(payload: dict[str, Any], field: str) -> str | None:
    value = payload.get(field)
    return value if isinstance(value, str) else None
