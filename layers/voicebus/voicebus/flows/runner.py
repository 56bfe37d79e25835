"""Running flows on a call: read the `flow` lane, decide, write the new state, then send.

The state is written before the commands are sent, as a claim: if a later event
has already moved the flow, the write fails and nothing is sent. If a send then
fails in a way worth retrying, the error propagates, EventBridge delivers the
event again, and the engine recognises the event that wrote the lane and sends
the same commands with the same command_ids (Telnyx ignores any it already ran).

A 422 (typically: the call has already ended) is not retried: it is logged,
added to the lane as `rejected`, and the rest of that event's commands are not
sent, since each assumes the ones before it ran.

Every command sent is logged on the call as it is answered (`CallStore.record_command`),
one write each, so `voicebus call` shows what was sent even when a later send fails.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from voicebus.calls.commands_log import CommandEntry, CommandOutcomeKind, CommandSource
from voicebus.calls.events import TelnyxWebhook, occurred_key
from voicebus.calls.items import EventRef
from voicebus.calls.recorder import RecordedEvent
from voicebus.calls.store import CallStore
from voicebus.commands.effects import feature_change
from voicebus.commands.sender import CommandOutcome, CommandSender, CommandSendError
from voicebus.errors import PermanentError
from voicebus.flows.engine import FLOW_EVENTS, Decision, DecisionKind, FlowEngine, PlannedCommand
from voicebus.flows.loader import load_flows
from voicebus.flows.position import FlowState, RejectedCommand
from voicebus.flows.store import REJECTION_RANK, FlowStateStore


class FlowRunner:
    """The call-control function's `act`; built once per container."""

    def __init__(
        self,
        engine: FlowEngine,
        states: FlowStateStore,
        sender: CommandSender,
        logger: Logger | None = None,
        calls: CallStore | None = None,
    ) -> None:
        """`calls` logs each command sent on the call; None sends without logging (unit tests)."""
        self.engine = engine
        self.states = states
        self.sender = sender
        self.logger = logger or Logger(child=True)
        self.calls = calls

    @classmethod
    def from_environment(cls, flows_dir: Path, environ: Mapping[str, str] | None = None) -> FlowRunner:
        """Flows from `flows_dir` (placeholders from the environment), the Telnyx sender, the calls table."""
        catalog = load_flows(flows_dir, environ)
        calls = CallStore.from_env(boto3.client("dynamodb"), os.environ if environ is None else environ)
        return cls(FlowEngine(catalog), FlowStateStore(calls), CommandSender.from_environment(environ), calls=calls)

    def on_event(
        self, webhook: TelnyxWebhook, recorded: RecordedEvent, context: LambdaContext
    ) -> dict[str, Any] | None:
        """Advance the call's flow for one webhook; what happened, for the handler's result and the logs."""
        data = webhook.data
        call_control_id = data.payload.call_control_id
        if data.event_type not in FLOW_EVENTS or not call_control_id:
            return None
        view = self.states.read(call_control_id)
        decision = self.engine.decide(data, view.state, call_hung_up=view.hung_up)
        ref = EventRef(data.id, data.event_type, occurred_key(data.occurred))
        if decision.state is not None and decision.writes_state:
            claimed = self.states.write(call_control_id, decision.state, ref)
            if not claimed:
                decision = Decision(DecisionKind.IGNORED, "a later event moved the flow first")
        sent = self._send(call_control_id, decision, ref, context)
        for planned, outcome in sent:
            change = feature_change(planned.command) if outcome.accepted else None
            if change is not None:
                self.states.record_feature(call_control_id, change[0].value, change[1], ref)
        refused = next(((planned, outcome) for planned, outcome in sent if outcome.rejected), None)
        if refused is not None and decision.state is not None:
            self._record_refusal(call_control_id, decision.state, ref, *refused)
        summary = {
            "decision": decision.kind.value,
            "reason": decision.reason,
            "position": decision.client_state,
            "commands": [_describe(planned, outcome) for planned, outcome in sent],
        }
        self.logger.info("flow decision", extra={"flow": summary})
        return {"flow": summary}

    def _send(
        self, call_control_id: str, decision: Decision, ref: EventRef, context: LambdaContext
    ) -> list[tuple[PlannedCommand, CommandOutcome]]:
        """Send the decision's commands in order, stopping at the first that Telnyx refuses."""
        sent: list[tuple[PlannedCommand, CommandOutcome]] = []
        for seq, planned in enumerate(decision.commands):
            try:
                outcome = self.sender.send(
                    call_control_id,
                    planned.command,
                    webhook_id=ref.event_id,
                    client_state=decision.client_state if planned.command.takes_client_state else None,
                    discriminator=planned.discriminator,
                    remaining_ms=context.get_remaining_time_in_millis,
                )
            except CommandSendError as error:
                if isinstance(error, PermanentError):  # refused for good: log it; a retry is logged when it ends
                    self._log_command(call_control_id, ref, seq, planned, None, error)
                raise
            self._log_command(call_control_id, ref, seq, planned, outcome, None)
            sent.append((planned, outcome))
            if outcome.rejected:
                break
        return sent

    def _log_command(
        self,
        call_control_id: str,
        ref: EventRef,
        seq: int,
        planned: PlannedCommand,
        outcome: CommandOutcome | None,
        error: CommandSendError | None,
    ) -> None:
        if self.calls is None:
            return
        accepted = outcome is not None and outcome.accepted
        entry = CommandEntry(
            action=planned.command.action,
            trigger_id=ref.event_id,
            occurred_at=ref.occurred_at,
            outcome=CommandOutcomeKind.ACCEPTED if accepted else CommandOutcomeKind.REJECTED,
            source=CommandSource.FLOW,
            command_id=outcome.command_id if outcome is not None else error.command_id if error else None,
            step=planned.step,
            discriminator=planned.discriminator,
            reason=outcome.reason if outcome is not None else str(error),
            attempts=outcome.attempts if outcome is not None else None,
            seq=seq,
            params=planned.command.body(),
        )
        self.calls.record_command(call_control_id, entry)

    def _record_refusal(
        self, call_control_id: str, state: FlowState, ref: EventRef, planned: PlannedCommand, outcome: CommandOutcome
    ) -> None:
        refusal = RejectedCommand(
            step=planned.step, action=outcome.action, command_id=outcome.command_id, reason=outcome.reason
        )
        with_refusal = state.model_copy(update={"rejected": refusal})
        self.states.write(call_control_id, with_refusal, ref, rank=REJECTION_RANK)


def _describe(planned: PlannedCommand, outcome: CommandOutcome) -> dict[str, Any]:
    described: dict[str, Any] = {
        "step": planned.step,
        "action": outcome.action,
        "command_id": outcome.command_id,
        "status": outcome.status.value,
    }
    if outcome.reason is not None:
        described["reason"] = outcome.reason
    return described
