"""Building signed Telnyx webhook requests as API Gateway (HTTP API, payload 2.0) events."""

from __future__ import annotations

import base64
import json
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

from nacl.signing import SigningKey

from voicebus.ingress.receiver import WEBHOOK_PATH
from voicebus.ingress.signature import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from voicebus_cli.testkey import ROOT

WEBHOOK_EVENTS_DIR = ROOT / "events" / "webhooks"


def envelope(
    event_type: str,
    payload: dict[str, Any],
    *,
    occurred_at: datetime,
    delivered_to: str = "https://example.test/webhooks/telnyx",
    attempt: int = 1,
) -> dict[str, Any]:
    """A Telnyx webhook body (API version 2) with a fresh `data.id`."""
    return {
        "data": {
            "record_type": "event",
            "event_type": event_type,
            "id": str(uuid.uuid4()),
            "occurred_at": occurred_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "payload": payload,
        },
        "meta": {"attempt": attempt, "delivered_to": delivered_to},
    }


def compact(document: Any) -> bytes:
    """JSON as Telnyx sends it: compact, UTF-8."""
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def api_gateway_event(
    body: bytes,
    headers: dict[str, str],
    *,
    base64_body: bool = False,
    method: str = "POST",
    path: str = WEBHOOK_PATH,
) -> dict[str, Any]:
    """An HTTP API payload 2.0 event, exactly what `sam local invoke -e` and Lambda take."""
    now = time.time()
    return {
        "version": "2.0",
        "routeKey": f"{method} {path}",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {
            "content-type": "application/json",
            "user-agent": "telnyx-webhooks",
            "host": "example.execute-api.us-east-1.amazonaws.com",
            **{name.lower(): value for name, value in headers.items()},
        },
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "example",
            "domainName": "example.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "example",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "192.0.2.10",
                "userAgent": "telnyx-webhooks",
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": f"{method} {path}",
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "body": base64.b64encode(body).decode("ascii") if base64_body else body.decode("utf-8"),
        "isBase64Encoded": base64_body,
    }


def raw_body(event: dict[str, Any]) -> bytes:
    """The bytes an API Gateway event carries, whichever way they are encoded."""
    body = str(event["body"])
    return base64.b64decode(body) if event.get("isBase64Encoded") else body.encode("utf-8")


def resign_event(event: dict[str, Any], signing_key: SigningKey, timestamp: int | None = None) -> dict[str, Any]:
    """The same request, signed again at `timestamp` (default now); the body is untouched."""
    headers = sign(raw_body(event), signing_key, int(time.time()) if timestamp is None else timestamp)
    resigned: dict[str, Any] = json.loads(json.dumps(event))
    resigned["headers"][SIGNATURE_HEADER] = headers[SIGNATURE_HEADER]
    resigned["headers"][TIMESTAMP_HEADER] = headers[TIMESTAMP_HEADER]
    return resigned


def webhook_event_files() -> list[Path]:
    return sorted(WEBHOOK_EVENTS_DIR.glob("*.json"))


BUS_EVENTS_DIR = ROOT / "events" / "bus"


def bus_event(body: bytes, *, region: str = "us-east-1", account: str = "123456789012") -> dict[str, Any]:
    """The EventBridge event a rule hands a function for this webhook body (`sam local invoke -e`)."""
    document = json.loads(body)
    data = document["data"]
    return {
        "version": "0",
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"voicebus-bus-event/{data['id']}")),
        "detail-type": data["event_type"],
        "source": "telnyx",
        "account": account,
        "time": (data.get("occurred_at") or "2026-01-01T00:00:00Z")[:19] + "Z",
        "region": region,
        "resources": [],
        "detail": document,
    }
