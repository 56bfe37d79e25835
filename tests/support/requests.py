"""Signed webhook requests for tests, built the way Telnyx sends them."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

from voicebus.ingress.signature import sign
from voicebus_cli.testkey import TestKeyPair
from voicebus_cli.webhooks import api_gateway_event, compact
from voicebus_cli.webhooks import envelope as webhook_envelope


def envelope(event_type: str = "call.answered", **payload: Any) -> dict[str, Any]:
    return webhook_envelope(
        event_type,
        {"call_control_id": "v3:test-call", "call_session_id": "session-1", "call_leg_id": "leg-1", **payload},
        occurred_at=datetime(2026, 11, 21, 10, 0, tzinfo=UTC),
    )


def signed_event(
    key: TestKeyPair, body: bytes | dict[str, Any], *, timestamp: int | None = None, base64_body: bool = False
) -> dict[str, Any]:
    raw = body if isinstance(body, bytes) else compact(body)
    headers = sign(raw, key.signing_key, int(time.time()) if timestamp is None else timestamp)
    return api_gateway_event(raw, headers, base64_body=base64_body)


def answer(result: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """A handler's (status, JSON body)."""
    return int(result["statusCode"]), json.loads(result["body"])
