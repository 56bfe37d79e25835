"""The webhook ingress: size check, signature, envelope, put on the bus, and the HTTP answer.

Order matters: the size check is free, the signature proves the sender before a
single byte of JSON is parsed, and only a verified, well-formed webhook that every
consumer can parse and store reaches the bus (`envelope`, `limits`). Every refusal
is a 4xx with a short JSON reason and nothing published; a failed put is a 5xx so
that Telnyx retries, and only a put that can succeed is tried: what EventBridge would
refuse for good (its JSON limits) is refused here with 400, never retried by Telnyx.
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from voicebus.bus import EntryRefusedError, PublishError
from voicebus.ingress.envelope import summarize
from voicebus.ingress.limits import JsonLimitError
from voicebus.ingress.publisher import WebhookPublisher
from voicebus.ingress.settings import IngressSettings
from voicebus.ingress.signature import SignatureVerificationError, WebhookVerifier, decode_public_key

if TYPE_CHECKING:
    from mypy_boto3_events import EventBridgeClient

WEBHOOK_PATH = "/webhooks/telnyx"


@dataclass(frozen=True)
class IngressAnswer:
    """The HTTP answer to one webhook request."""

    status: int
    body: dict[str, str] = field(default_factory=dict)


class WebhookIngress:
    """Turns one HTTP request into at most one bus event, and says how it went."""

    def __init__(
        self,
        verifier: WebhookVerifier,
        publisher: WebhookPublisher,
        max_body_bytes: int,
        logger: Logger,
        metrics: Metrics,
    ) -> None:
        self._verifier = verifier
        self.publisher = publisher
        self._max_body_bytes = max_body_bytes
        self._logger = logger
        self._metrics = metrics

    @classmethod
    def from_settings(
        cls,
        config: IngressSettings,
        client: EventBridgeClient,
        logger: Logger,
        metrics: Metrics,
        clock: Callable[[], float] = time.time,
    ) -> WebhookIngress:
        """Build once per container with the handler's own logger and metrics (`clock`: for tests)."""
        verifier = WebhookVerifier(decode_public_key(config.public_key_b64), config.tolerance_seconds, clock)
        publisher = WebhookPublisher(client, config.event_bus_name)
        return cls(verifier, publisher, config.max_body_bytes, logger, metrics)

    def receive(self, body: str | None, is_base64_encoded: bool, headers: Mapping[str, str]) -> IngressAnswer:
        """Verify, check and publish one webhook; never raises for bad input."""
        raw = self._raw_body(body or "", is_base64_encoded)
        if raw is None:
            return self._reject(400, "malformed_body", "the body does not decode to bytes")
        if len(raw) > self._max_body_bytes:
            return self._reject(413, "body_too_large", f"the body is larger than {self._max_body_bytes} bytes")
        try:
            self._verifier.verify(raw, headers)
        except SignatureVerificationError as exc:
            return self._reject(401, exc.reason.value, exc.message)
        try:
            text = raw.decode("utf-8")
            webhook = summarize(text)
        except UnicodeDecodeError:
            return self._reject(400, "malformed_body", "the body is not UTF-8")
        except JsonLimitError as exc:  # refused before the put: EventBridge or a consumer would refuse it for good
            return self._reject(400, exc.reason.value, str(exc))

        self._logger.append_keys(
            webhook_id=webhook.id,
            event_type=webhook.event_type,
            call_control_id=webhook.call_control_id,
            call_session_id=webhook.call_session_id,
        )
        try:
            self.publisher.publish(webhook, text)
        except EntryRefusedError as exc:  # the entry itself is wrong: a retry by Telnyx would loop forever
            return self._reject(400, "refused_by_bus", str(exc))
        except PublishError as exc:
            self._logger.error("webhook not published; Telnyx will retry", extra={"error": str(exc)})
            self._metrics.add_metric(name="PutEventsFailed", unit=MetricUnit.Count, value=1)
            return IngressAnswer(503, {"error": "unavailable", "message": "the event could not be queued; retry"})
        self._metrics.add_metric(name="WebhookAccepted", unit=MetricUnit.Count, value=1)
        # DEBUG, not INFO: formatting one JSON line costs ~40 us, a third of the handler's own
        # CPU (bench/ingress_cost.py prints it). WebhookAccepted counts them; LogLevel=DEBUG shows them.
        self._logger.debug("webhook accepted")
        return IngressAnswer(200, {"status": "accepted", "id": webhook.id})

    @staticmethod
    def _raw_body(body: str, is_base64_encoded: bool) -> bytes | None:
        """The bytes Telnyx signed: API Gateway may hand them over base64-encoded."""
        try:
            if is_base64_encoded:
                return base64.b64decode(body, validate=True)
            return body.encode("utf-8")
        except (binascii.Error, ValueError):  # UnicodeEncodeError is a ValueError
            return None

    def _reject(self, status: int, reason: str, message: str) -> IngressAnswer:
        self._logger.warning("webhook rejected", extra={"reason": reason, "status": status})
        self._metrics.add_dimension(name="Reason", value=reason)
        self._metrics.add_metric(name="WebhookRejected", unit=MetricUnit.Count, value=1)
        return IngressAnswer(status, {"error": reason, "message": message})
