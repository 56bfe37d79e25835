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
from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError, field_validator

from voicebus import config
from voicebus.bus import put_entry
from voicebus.calls.commands_log import CommandEntry, CommandOutcomeKind, CommandSource
from voicebus.calls.consumer import Handler
from voicebus.calls.events import occurred_key
from voicebus.calls.items import MAX_NESTING, EventRef, unstorable_reason
from voicebus.calls.store import CallStore
from voicebus.commands.effects import feature_change
from voicebus.commands.http import action_path
from voicebus.commands.sender import CommandOutcome, CommandSender
from voicebus.commands.validation import parse_command
from voicebus.errors import PermanentError
from voicebus.flows.outside import keep_flow_position

if TYPE_CHECKING:
    from mypy_boto3_events import EventBridgeClient

COMMAND_SOURCE = "voicebus"
COMMAND_DETAIL_TYPE = "call.command"
SUCCEEDED = "call.command.succeeded"
FAILED = "call.command.failed"


# Telnyx ids are under 100 characters; a longer one cannot be a call (and would not fit a DynamoDB key).
MAX_ID_CHARS = 256
MAX_REASON_CHARS = 1000  # an answer always fits its EventBridge entry


class CommandRequest(BaseModel):
    """What a requester puts in the event's detail."""

    model_config = ConfigDict(strict=True)

    call_control_id: str = Field(min_length=1, max_length=MAX_ID_CHARS)
    action: str = Field(min_length=1, max_length=64)
    params: dict[str, JsonValue] = Field(default_factory=dict)
    client_state: JsonValue = None
    request_id: str | None = Field(default=None, max_length=MAX_ID_CHARS)  # the requester's own, echoed back

    @field_validator("call_control_id")
    @classmethod
    def _one_path_segment(cls, value: str) -> str:
        """It becomes a URL path segment and a DynamoDB key: no dot-segment, no whitespace or control characters."""
        if not value.isprintable() or any(char.isspace() for char in value):
            raise ValueError("must hold no whitespace or control characters")
        try:
            action_path(value, "hangup")
        except ValueError as exc:
            raise ValueError(str(exc)) from None
        return value


class CommandRequestEvent(EventBridgeModel):
    """The event as EventBridge delivers it; its detail is checked by `CommandRequest`, answering what fails."""

    detail: dict[str, Any]


class CommandRequestError(PermanentError, ValueError):
    """The request itself is malformed: answered `call.command.failed`, never sent, never retried."""


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

    def refusal(self, event: CommandRequestEvent) -> dict[str, Any] | None:
        """The `call.command.failed` answer of a malformed request (put on the bus), or None to process it.

        Runs before the idempotency layer, which could not even serialise some of them (a
        detail nested a thousand levels): a redelivered malformed request is answered again.
        """
        try:
            parse_request(event)
        except CommandRequestError as error:
            return self._answer(FAILED, {**_echo(event.detail), "reason": str(error)[:MAX_REASON_CHARS]})
        return None

    def process(self, event: CommandRequestEvent, context: LambdaContext) -> dict[str, Any]:
        refused = self.refusal(event)
        if refused is not None:
            return refused
        request = CommandRequest.model_validate(event.detail)
        answer: dict[str, Any] = {
            "request_id": request.request_id,
            "call_control_id": request.call_control_id,
            "action": request.action,
        }
        params: dict[str, Any] = dict(request.params)
        try:
            command = parse_command(request.action, request.params)
            params = command.body()
            # --- flow lane (voicebus.flows.outside): a running IVR keeps its position next to your client_state
            kept = keep_flow_position(self._store, request.call_control_id, command, request.client_state)
            command, client_state = kept.command, kept.client_state
            # ---
            outcome = self._sender.send(
                request.call_control_id,
                command,
                webhook_id=event.id,  # the EventBridge event id: a redelivered request keeps its command_id
                client_state=client_state,
                remaining_ms=context.get_remaining_time_in_millis,
            )
        except PermanentError as error:  # invalid params, or a request Telnyx refused: retrying cannot help
            self._log(request, event, params, None, str(error))
            return self._answer(FAILED, {**answer, "reason": str(error)[:MAX_REASON_CHARS]})
        self._log(request, event, params, outcome, outcome.reason)
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
        self,
        request: CommandRequest,
        event: CommandRequestEvent,
        params: dict[str, Any],
        outcome: CommandOutcome | None,
        reason: str | None,
    ) -> None:
        """The request on the call's command log: what was asked (secrets redacted) and how it ended."""
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


def parse_request(event: CommandRequestEvent) -> CommandRequest:
    """The request in the event's detail; `CommandRequestError` naming each problem when it is malformed.

    Beyond its fields' types: nothing in it that DynamoDB (the command log) could not hold.
    """
    for name, value in event.detail.items():
        reason = unstorable_reason(value, MAX_NESTING - 1)
        if reason is not None:
            raise CommandRequestError(f"{name}: cannot be stored with the call ({reason})")
    try:
        return CommandRequest.model_validate(event.detail)
    except ValidationError as error:
        problems = [
            f"{'.'.join(str(part) for part in problem['loc']) or 'detail'}: {problem['msg']}"
            for problem in error.errors(include_url=False, include_input=False)
        ]
        raise CommandRequestError("; ".join(problems)) from None


def _echo(detail: dict[str, Any]) -> dict[str, Any]:
    """What a failed answer can echo of a malformed request: its fields when they are short strings."""

    def text(name: str) -> str | None:
        value = detail.get(name)
        return value if isinstance(value, str) and len(value) <= MAX_ID_CHARS and value.isprintable() else None

    return {
        "request_id": text("request_id"),
        "call_control_id": text("call_control_id") or "",
        "action": text("action") or "",
    }


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
        logger.append_keys(**{name: value for name, value in _echo(request.detail).items() if name != "request_id"})
        result = processor.refusal(request) or process_once(event=request, context=context)
        logger.info("command request answered", extra={"outcome": result["outcome"]})
        return result

    return lambda_handler
