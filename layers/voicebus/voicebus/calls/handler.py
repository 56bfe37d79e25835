"""The shape every event-family function shares: parse, record, act.

A family function is three lines: it builds its handler (here, or with idempotency in
`voicebus.calls.consumer`), optionally with an `act` callback for the work beyond
recording (archiving, IVR steps). Its family (`EVENT_FAMILY`) says which events it
records: one that reaches it through a second rule only drives its `act`, so each
event type is written by one function and a stale lane write always means a late event.

Recording alone needs no idempotency record: the store's writes are conditional on
event order (a repeated event changes nothing) or rewrite the same item with the same
values (timeline, recordings). So the record-only families (`functions/recorder`) run
`build_handler` from this module, which never touches the idempotency table; the
families whose `act` has side effects that must not repeat (commands sent, uploads)
use `voicebus.calls.consumer.build_handler`, which skips a redelivered event's whole
invocation.

Errors decide by branch (voicebus.errors): a `PermanentError` is logged, counted
(`EventsRefused`) and answered with `refused`, since retrying the same event
cannot help; anything else propagates, so Lambda and EventBridge retry it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import boto3
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.typing import LambdaContext

from voicebus.calls.events import TelnyxBusEvent, TelnyxWebhook
from voicebus.calls.families import EventFamily, family_from_env, family_of
from voicebus.calls.recorder import CallEventRecorder, RecordedEvent
from voicebus.calls.store import CallStore
from voicebus.errors import PermanentError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

# The webhook's id: one id per Telnyx event, whatever the delivery attempt.
CORRELATION_ID_PATH = "detail.data.id"

# The work a family does beyond recording: archive a file, advance an IVR flow, ...
Act = Callable[[TelnyxWebhook, RecordedEvent, LambdaContext], dict[str, Any] | None]
Handler = Callable[[dict[str, Any], LambdaContext], dict[str, Any]]


class EventConsumer:
    """Built once per container; `handle` runs once per delivery (a redelivery records again, harmlessly)."""

    def __init__(
        self,
        recorder: CallEventRecorder,
        family: EventFamily,
        logger: Logger,
        metrics: Metrics,
        act: Act | None = None,
    ) -> None:
        self.recorder = recorder
        self.logger = logger
        self.metrics = metrics
        self.act = act
        self.family = family
        self._context: LambdaContext | None = None

    def records(self, event_type: str) -> bool:
        """Whether this function records `event_type` (else it only acts on it)."""
        return family_of(event_type) is self.family

    def handle(self, event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        self._context = context
        # An event this model refuses fails the invocation: after the retries it waits in the
        # failure queue (alarmed) for a fix and a redrive, rather than living only in a log line.
        webhook = parse(event=event, model=TelnyxBusEvent).detail
        payload = webhook.data.payload
        self.logger.append_keys(
            webhook_id=webhook.data.id,
            event_type=webhook.data.event_type,
            call_control_id=payload.call_control_id,
            call_session_id=payload.call_session_id,
        )
        return self.run(webhook)

    def run(self, webhook: TelnyxWebhook) -> dict[str, Any]:
        """Process one webhook; a subclass may guard it (idempotency)."""
        return self.process(webhook)

    def process(self, webhook: TelnyxWebhook) -> dict[str, Any]:
        data = webhook.data
        self.metrics.add_dimension(name="EventType", value=data.event_type)
        recorded = RecordedEvent.unrecorded(data)
        try:
            if self.records(data.event_type):
                recorded = self.recorder.record(data)
                self._count(recorded)
            outcome = None
            if self.act is not None:
                assert self._context is not None, "handle() registers the context before processing"
                outcome = self.act(webhook, recorded, self._context)
        except PermanentError as error:
            # The same event would fail the same way on every retry: answer it instead.
            return self._refuse(recorded, error)
        self.logger.info(
            "event recorded" if recorded.recorded else "event acted on (its family records it)",
            extra={"lanes_written": recorded.lanes_written, "lanes_stale": recorded.lanes_stale},
        )
        return {**_summary(recorded), **(outcome or {})}

    def _count(self, recorded: RecordedEvent) -> None:
        self.metrics.add_metric(name="EventsRecorded", unit=MetricUnit.Count, value=1)
        if recorded.lanes_stale:
            # An older event arrived after a newer one (or the same event again): expected, counted, not an error.
            self.metrics.add_metric(name="StaleLaneWrites", unit=MetricUnit.Count, value=len(recorded.lanes_stale))

    def _refuse(self, recorded: RecordedEvent, error: PermanentError) -> dict[str, Any]:
        self.logger.exception("event refused: retrying it cannot help", extra={"error_type": type(error).__name__})
        self.metrics.add_metric(name="EventsRefused", unit=MetricUnit.Count, value=1)
        return {**_summary(recorded), "refused": {"error": type(error).__name__, "reason": str(error)}}


def _summary(recorded: RecordedEvent) -> dict[str, Any]:
    return {
        "event_id": recorded.event_id,
        "event_type": recorded.event_type,
        "recorded": recorded.recorded,
        "lanes_written": recorded.lanes_written,
        "lanes_stale": recorded.lanes_stale,
    }


def store_from_env(client: DynamoDBClient | None = None) -> CallStore:
    """The container's call store (CALLS_TABLE_NAME, CALL_RECORD_RETENTION_DAYS)."""
    return CallStore.from_env(client or boto3.client("dynamodb"), os.environ)


def lambda_handler_for(consumer: EventConsumer) -> Handler:
    """The Lambda handler around a consumer: Powertools' log context and metrics flush."""

    @consumer.logger.inject_lambda_context(correlation_id_path=CORRELATION_ID_PATH, clear_state=True)
    @consumer.metrics.log_metrics
    def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        return consumer.handle(event, context)

    return lambda_handler


def build_handler(act: Act | None = None) -> Handler:
    """The Lambda handler of a family function without idempotency (EVENT_FAMILY; service from POWERTOOLS_SERVICE_NAME).

    For families whose work is safe to repeat: recording only, or an `act` that is itself idempotent.
    """
    consumer = EventConsumer(CallEventRecorder(store_from_env()), family_from_env(), Logger(), Metrics(), act)
    return lambda_handler_for(consumer)
