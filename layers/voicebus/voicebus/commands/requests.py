"""Commands from the user's own systems: `call.command` events on the bus, answered on the bus.

Any system may put an event with Source `voicebus` and DetailType `call.command`
(detail `{"call_control_id", "action", "params", "client_state"?, "request_id"?}`):
a supervisor tool switching roles, a CRM starting a recording. The command is
validated (`voicebus.commands.validation`), sent with a command_id derived from the
EventBridge event id, and the outcome is put back as `call.command.succeeded` or
`call.command.failed` (with the reason), so the requester learns what happened.
Each answered request is also logged on the call (`CallStore.record_command`).
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

import boto3
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, Field, JsonValue

from voicebus import config
from voicebus.bus import put_entry
from voicebus.calls.commands_log import CommandEntry, CommandOutcomeKind, CommandSource
from voicebus.calls.consumer import Handler
from voicebus.calls.events import occurred_key
from voicebus.calls.items import EventRef
from voicebus.calls.store import CallStore
from voicebus.commands.effects import feature_change
from voicebus.commands.sender import CommandOutcome, CommandSender
from voicebus.commands.validation import parse_command
from voicebus.errors import PermanentError

if TYPE_CHECKING:
    from mypy_boto3_events import EventBridgeClient

COMMAND_SOURCE = "voicebus"
COMMAND_DETAIL_TYPE = "call.command"
SUCCEEDED = "call.command.succeeded"
FAILED = "call.command.failed"


class CommandRequest(BaseModel):
    """What a requester puts in the event's detail."""

    call_control_id: str = Field(min_length=1)
    action: str = Field(min_length=1)
    params: dict[str, JsonValue] = Field(default_factory=dict)
    client_state: JsonValue = None
    request_id: str | None = None  # the requester's own id, echoed in the answer


class CommandRequestEvent(EventBridgeModel):
    detail: CommandRequest


class CommandRequestProcessor:
    """Validates, sends and answers one request; built once per container."""

    def __init__(
        self,
        sender: CommandSender,
        store: CallStore,
        events: EventBridgeClient,
        bus_name: str,
        metrics: Metrics,
    ) -> None:
        self._sender = sender
        self._store = store
        self._events = events
        self._bus_name = bus_name
        self._metrics = metrics

    def process(self, event: CommandRequestEvent, context: LambdaContext) -> dict[str, Any]:
        request = event.detail
        answer: dict[str, Any] = {
            "request_id": request.request_id,
            "call_control_id": request.call_control_id,
            "action": request.action,
        }
        params: dict[str, Any] = dict(request.params)
        try:
            command = parse_command(request.action, request.params)
            params = command.body()
            outcome = self._sender.send(
                request.call_control_id,
                command,
                webhook_id=event.id,  # the EventBridge event id: a redelivered request keeps its command_id
                client_state=request.client_state,
                remaining_ms=context.get_remaining_time_in_millis,
            )
        except PermanentError as error:  # invalid params, or a request Telnyx refused: retrying cannot help
            self._log(event, params, None, str(error))
            return self._answer(FAILED, {**answer, "reason": str(error)})
        self._log(event, params, outcome, outcome.reason)
        answer["command_id"] = outcome.command_id
        if outcome.rejected:
            return self._answer(FAILED, {**answer, "reason": outcome.reason})
        change = feature_change(command)
        if change is not None:
            feature, fields = change
            ref = EventRef(event.id, COMMAND_DETAIL_TYPE, occurred_key(event.time))
            self._store.advance_lane(request.call_control_id, feature.value, fields, ref)
        return self._answer(SUCCEEDED, answer)

    def _log(
        self, event: CommandRequestEvent, params: dict[str, Any], outcome: CommandOutcome | None, reason: str | None
    ) -> None:
        """The request on the call's command log: what was asked (secrets redacted) and how it ended."""
        request = event.detail
        accepted = outcome is not None and outcome.accepted
        entry = CommandEntry(
            action=request.action,
            trigger_id=event.id,
            occurred_at=occurred_key(event.time),
            outcome=CommandOutcomeKind.ACCEPTED if accepted else CommandOutcomeKind.REJECTED,
            source=CommandSource.REQUEST,
            command_id=outcome.command_id if outcome is not None else None,
            reason=reason,
            request_id=request.request_id,
            attempts=outcome.attempts if outcome is not None else None,
            params=params,
        )
        self._store.record_command(request.call_control_id, entry)

    def _answer(self, detail_type: str, detail: dict[str, Any]) -> dict[str, Any]:
        put_entry(self._events, self._bus_name, COMMAND_SOURCE, detail_type, json.dumps(detail))
        self._metrics.add_metric(
            name="CommandsSucceeded" if detail_type == SUCCEEDED else "CommandsFailed", unit=MetricUnit.Count, value=1
        )
        return {"outcome": detail_type, **detail}


def build_command_handler() -> Handler:
    """The command function's Lambda handler: parse, dedupe on the event id, process."""
    logger = Logger()
    metrics = Metrics()
    dynamodb = boto3.client("dynamodb")  # one client for the store and the idempotency layer
    processor = CommandRequestProcessor(
        CommandSender.from_environment(),
        CallStore.from_env(dynamodb, os.environ),
        boto3.client("events"),
        config.require("EVENT_BUS_NAME"),
        metrics,
    )
    idempotency = IdempotencyConfig(event_key_jmespath="id", expires_after_seconds=6 * 3600)
    persistence = DynamoDBPersistenceLayer(table_name=config.require("IDEMPOTENCY_TABLE_NAME"), boto3_client=dynamodb)

    @idempotent_function(data_keyword_argument="event", config=idempotency, persistence_store=persistence)  # type: ignore[untyped-decorator]
    def process_once(event: CommandRequestEvent, context: LambdaContext) -> dict[str, Any]:
        return processor.process(event, context)

    @logger.inject_lambda_context(correlation_id_path="id", clear_state=True)
    @metrics.log_metrics
    def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        idempotency.register_lambda_context(context)
        request = parse(event=event, model=CommandRequestEvent)
        logger.append_keys(call_control_id=request.detail.call_control_id, action=request.detail.action)
        result: dict[str, Any] = process_once(event=request, context=context)
        logger.info("command request answered", extra={"outcome": result["outcome"]})
        return result

    return lambda_handler
