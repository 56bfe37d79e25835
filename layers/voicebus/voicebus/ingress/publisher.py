"""Putting verified webhooks on the bus: one entry per webhook, the body unchanged."""

from __future__ import annotations

from typing import TYPE_CHECKING

from voicebus.bus import TELNYX_SOURCE, put_entry
from voicebus.ingress.envelope import WebhookSummary

if TYPE_CHECKING:
    from mypy_boto3_events import EventBridgeClient


class WebhookPublisher:
    """Puts webhooks on one bus through a client created once per container."""

    def __init__(self, client: EventBridgeClient, bus_name: str) -> None:
        self._client = client
        self._bus_name = bus_name

    def publish(self, webhook: WebhookSummary, body_text: str) -> None:
        """Put the body, unchanged, as the Detail of one entry typed by the event type."""
        put_entry(self._client, self._bus_name, TELNYX_SOURCE, webhook.event_type, body_text)
