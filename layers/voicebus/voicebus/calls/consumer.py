"""The shape every event-family function shares: parse, dedupe on `data.id`, record, act.

A family function is three lines: it builds its handler here, optionally with an
`act` callback for the work beyond recording (archiving, IVR steps). Duplicates are
caught twice: Powertools idempotency on the webhook's `data.id` skips the whole
invocation, and the store's conditional writes make a late or repeated event
harmless even after the idempotency record has expired.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.typing import LambdaContext

from voicebus import config
from voicebus.calls.events import TelnyxBusEvent, TelnyxWebhook
from voicebus.calls.recorder import CallEventRecorder, RecordedEvent
from voicebus.calls.store import CallStore

# The webhook's id: one id per Telnyx event, whatever the delivery attempt.
CORRELATION_ID_PATH = "detail.data.id"
IDEMPOTENCY_EXPIRY_SECONDS = 6 * 3600  # longer than Telnyx's retries and EventBridge's retry window

# The work a family does beyond recording: archive a file, advance an IVR flow, ...
Act = Callable[[TelnyxWebhook, RecordedEvent, LambdaContext], dict[str, Any] | None]
Handler = Callable[[dict[str, Any], LambdaContext], dict[str, Any]]


class EventConsumer:
    """Built once per container; `handle` runs once per event."""

    def __init__(self, recorder: CallEventRecorder, logger: Logger, metrics: Metrics, act: Act | None = None) -> None:
        self.recorder = recorder
        self.logger = logger
        self.metrics = metrics
        self.act = act
        self._context: LambdaContext | None = None
        self.idempotency = IdempotencyConfig(
            event_key_jmespath="data.id", expires_after_seconds=IDEMPOTENCY_EXPIRY_SECONDS
        )
        persistence = DynamoDBPersistenceLayer(table_name=config.require("IDEMPOTENCY_TABLE_NAME"))
        self._process_once = idempotent_function(
            data_keyword_argument="webhook", config=self.idempotency, persistence_store=persistence
        )(self._process)

    def handle(self, event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        self.idempotency.register_lambda_context(context)
        self._context = context
        webhook = parse(event=event, model=TelnyxBusEvent).detail
        payload = webhook.data.payload
        self.logger.append_keys(
            webhook_id=webhook.data.id,
            event_type=webhook.data.event_type,
            call_control_id=payload.call_control_id,
            call_session_id=payload.call_session_id,
        )
        result: dict[str, Any] = self._process_once(webhook=webhook)
        return result

    def _process(self, webhook: TelnyxWebhook) -> dict[str, Any]:
        recorded = self.recorder.record(webhook.data)
        self.metrics.add_dimension(name="EventType", value=recorded.event_type)
        self.metrics.add_metric(name="EventsRecorded", unit=MetricUnit.Count, value=1)
        if recorded.lanes_stale:
            # An older event arrived after a newer one: expected, counted, not an error.
            self.metrics.add_metric(name="StaleLaneWrites", unit=MetricUnit.Count, value=len(recorded.lanes_stale))
        outcome = None
        if self.act is not None:
            assert self._context is not None, "handle() registers the context before processing"
            outcome = self.act(webhook, recorded, self._context)
        self.logger.info(
            "event recorded",
            extra={"lanes_written": recorded.lanes_written, "lanes_stale": recorded.lanes_stale},
        )
        return {
            "event_id": recorded.event_id,
            "event_type": recorded.event_type,
            "lanes_written": recorded.lanes_written,
            "lanes_stale": recorded.lanes_stale,
            **(outcome or {}),
        }


def store_from_env() -> CallStore:
    """The container's call store (CALLS_TABLE_NAME, CALL_RECORD_RETENTION_DAYS)."""
    return CallStore.from_env(boto3.client("dynamodb"), os.environ)


def build_handler(act: Act | None = None) -> Handler:
    """The Lambda handler of one event-family function (service name from POWERTOOLS_SERVICE_NAME)."""
    logger = Logger()
    metrics = Metrics()
    consumer = EventConsumer(CallEventRecorder(store_from_env()), logger, metrics, act)

    @logger.inject_lambda_context(correlation_id_path=CORRELATION_ID_PATH, clear_state=True)
    @metrics.log_metrics
    def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        return consumer.handle(event, context)

    return lambda_handler
