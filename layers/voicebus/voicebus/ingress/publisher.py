"""Putting verified webhooks on the bus: one entry per webhook, the body unchanged, within Telnyx's budget.

Telnyx waits about 2 s for an answer, and a late answer is a failed delivery that
it retries anyway. So the put's worst case is fixed here, not left to botocore's
retry mode (whose backoff alone can wait a second or more): the client makes one
attempt per call with short timeouts, and the publisher tries `PUT_ATTEMPTS`
times back to back. A put whose answer was lost and is tried again reaches the
bus twice; consumers are idempotent on the webhook's `data.id`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from botocore.config import Config

from voicebus.bus import TELNYX_SOURCE, PublishError, put_entry
from voicebus.ingress.envelope import WebhookSummary

if TYPE_CHECKING:
    from mypy_boto3_events import EventBridgeClient

PUT_ATTEMPTS = 2
CONNECT_TIMEOUT_SECONDS = 0.25
READ_TIMEOUT_SECONDS = 0.45
WORST_CASE_PUT_SECONDS = PUT_ATTEMPTS * (CONNECT_TIMEOUT_SECONDS + READ_TIMEOUT_SECONDS)
"""1.4 s: the longest a hung EventBridge can hold the answer, under Telnyx's ~2 s."""


def events_client_config() -> Config:
    """For the ingress's EventBridge client: one attempt per call, short timeouts (the publisher retries)."""
    return Config(
        connect_timeout=CONNECT_TIMEOUT_SECONDS,
        read_timeout=READ_TIMEOUT_SECONDS,
        retries={"total_max_attempts": 1, "mode": "standard"},
    )


class WebhookPublisher:
    """Puts webhooks on one bus through a client created once per container (with `events_client_config`)."""

    def __init__(self, client: EventBridgeClient, bus_name: str, attempts: int = PUT_ATTEMPTS) -> None:
        self._client = client
        self._bus_name = bus_name
        self.attempts = attempts

    def publish(self, webhook: WebhookSummary, body_text: str) -> None:
        """Put the body, unchanged, as the Detail of one entry typed by the event type; `PublishError` if not.

        `EntryRefusedError` at once when EventBridge refuses the entry itself: no retry can help.
        """
        for attempt in range(1, self.attempts + 1):
            try:
                put_entry(self._client, self._bus_name, TELNYX_SOURCE, webhook.event_type, body_text)
            except PublishError:
                if attempt == self.attempts:
                    raise
            else:
                return
