"""Putting verified webhooks on the custom EventBridge bus, one entry per webhook."""

from __future__ import annotations

from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from voicebus.ingress.envelope import WebhookSummary

if TYPE_CHECKING:
    from mypy_boto3_events import EventBridgeClient

TELNYX_SOURCE = "telnyx"
# One PutEvents entry holds at most 256 KiB, counting Source, DetailType and Detail
# together. Keeping the body 1 KiB under that leaves room for the other two.
EVENTBRIDGE_ENTRY_BYTES = 256 * 1024
MAX_WEBHOOK_BYTES = EVENTBRIDGE_ENTRY_BYTES - 1024


class PublishError(RuntimeError):
    """The event is not on the bus; the caller must make Telnyx retry."""


class WebhookPublisher:
    """Puts webhooks on one bus through a client created once per container."""

    def __init__(self, client: EventBridgeClient, bus_name: str) -> None:
        self._client = client
        self._bus_name = bus_name

    def publish(self, webhook: WebhookSummary, body_text: str) -> None:
        """Put the body, unchanged, as the Detail of one entry typed by the event type."""
        put_entry(self._client, self._bus_name, TELNYX_SOURCE, webhook.event_type, body_text)


def put_entry(client: EventBridgeClient, bus_name: str, source: str, detail_type: str, detail: str) -> None:
    """One PutEvents entry; `PublishError` unless EventBridge took it."""
    entry = {"EventBusName": bus_name, "Source": source, "DetailType": detail_type, "Detail": detail}
    try:
        response = client.put_events(Entries=[entry])  # type: ignore[list-item]
    except (BotoCoreError, ClientError) as exc:
        raise PublishError(f"PutEvents failed: {type(exc).__name__}") from exc
    if response.get("FailedEntryCount", 0):
        failed = response["Entries"][0]
        raise PublishError(
            f"PutEvents refused the entry: {failed.get('ErrorCode', 'unknown')} {failed.get('ErrorMessage', '')}"
        )
