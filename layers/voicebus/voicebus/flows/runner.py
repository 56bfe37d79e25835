"""Running flows on a call: read the `flow` lane, decide, claim the new state, then send.

The state is written before the commands are sent, as a claim: a compare-and-set
on the position the decision started from (`FlowStateStore.write`). When another
event moved the flow in between, the claim fails, the lane is read again and the
event decided again (now stale, it sends nothing). If a send then fails in a way
worth retrying, the error propagates, EventBridge delivers the event again, and
the engine recognises the event that wrote the lane and sends the same commands
with the same command_ids (Telnyx ignores any it already ran).

Once the commands are sent, a step with a deadline gets its scheduled check
(`timeouts.StepTimeouts`) and the check of the step the flow left is deleted; a
redelivery schedules again (the same name: a no-op).

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
from botocore.exceptions import BotoCoreError, ClientError

from voicebus.calls.commands_log import CommandEntry, CommandOutcomeKind, CommandSource
from voicebus.calls.events import TelnyxWebhook, occurred_key
from voicebus.calls.items import EventRef
from voicebus.calls.recorder import RecordedEvent
from voicebus.calls.store import CallStore
from voicebus.commands.effects import feature_change
from voicebus.commands.sender import CommandOutcome, CommandSender, CommandSendError
from voicebus.errors import PermanentError
from voicebus.flows.engine import FLOW_EVENTS, Decision, DecisionKind, FlowEngine, PlannedCommand, flow_call_id
from voicebus.flows.invoke import LambdaInvoker
from voicebus.flows.loader import load_flows
from voicebus.flows.position import FlowState, FlowStatus, RejectedCommand
from voicebus.flows.store import FlowStateStore
from voicebus.flows.timeouts import StepTimeouts

MAX_CLAIMS = 4
"""Claims per event: each failed one means another event moved the flow, after which this one is stale."""


class FlowRunner:
    """The call-control function's `act`; built once per container."""

    def __init__(
        self,
        engine: FlowEngine,
        states: FlowStateStore,
        sender: CommandSender,
        logger: Logger | None = None,
        calls: CallStore | None = None,
        timeouts: StepTimeouts | None = None,
    ) -> None:
        """`calls` logs each command sent on the call; None sends without logging (unit tests).
        `timeouts` schedules step deadlines; None: steps wait without a time limit."""
        self.engine = engine
        self.states = states
        self.sender = sender
        self.logger = logger or Logger(child=True)
        self.calls = calls
        self.timeouts = timeouts

    @classmethod
    def from_environment(cls, flows_dir: Path, environ: Mapping[str, str] | None = None) -> FlowRunner:
        """Flows from `flows_dir` (placeholders from the environment), the Telnyx sender, the calls table."""
        catalog = load_flows(flows_dir, environ)
        calls = CallStore.from_env(boto3.client("dynamodb"), os.environ if environ is None else environ)
        engine = FlowEngine(catalog, LambdaInvoker.from_environment(environ))
        sender = CommandSender.from_environment(environ)
        timeouts = StepTimeouts.from_environment(environ)
        return cls(engine, FlowStateStore(calls), sender, calls=calls, timeouts=timeouts)

    def on_event(
        self, webhook: TelnyxWebhook, recorded: RecordedEvent, context: LambdaContext
    ) -> dict[str, Any] | None:
        """Advance the call's flow for one webhook; what happened, for the handler's result and the logs."""
        data = webhook.data
        call_control_id = flow_call_id(data)
        if data.event_type not in FLOW_EVENTS or not call_control_id:
            return None
        ref = EventRef(data.id, data.event_type, occurred_key(data.occurred))
        decision, read = self._decide_and_claim(call_control_id, webhook)
        sent = self._send(call_control_id, decision, ref, context)
        if decision.state is not None and self.timeouts is not None:  # the caller's prompt first, then the net
            self._guard(call_control_id, decision.state, read, context)
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
            "position": decision.state.client_state() if decision.state is not None else None,
            "commands": [_describe(planned, outcome) for planned, outcome in sent],
        }
        self.logger.info("flow decision", extra={"flow": summary})
        return {"flow": summary}

    def _decide_and_claim(self, call_control_id: str, webhook: TelnyxWebhook) -> tuple[Decision, FlowState | None]:
        """Decide, and claim the new state by compare-and-set; the decision and the state it replaced.

        A failed claim means another event moved the flow since it was read: read and decide
        again, so that the loser of two events racing for one position sends nothing.
        """
        data = webhook.data
        ref = EventRef(data.id, data.event_type, occurred_key(data.occurred))
        for _ in range(MAX_CLAIMS):
            view = self.states.read(call_control_id)
            decision = self.engine.decide(data, view.state, call_hung_up=view.hung_up)
            if decision.state is None or not decision.writes_state:
                return decision, view.state
            if self.states.write(call_control_id, decision.state, ref, read=view.state):
                return decision, view.state
        return Decision(DecisionKind.IGNORED, "other events kept moving the flow first"), None

    def _guard(self, call_control_id: str, state: FlowState, read: FlowState | None, context: LambdaContext) -> None:
        """Schedule the check of the new step's deadline; delete the one of the step the flow left."""
        assert self.timeouts is not None
        try:
            if state.deadline is not None and state.status in (FlowStatus.ACTIVE, FlowStatus.FINISHING):
                self.timeouts.schedule(call_control_id, state, context.invoked_function_arn)
            if read is not None and read.deadline is not None and (read.seq != state.seq or state.deadline is None):
                self.timeouts.cancel(call_control_id, read)
        except (ClientError, BotoCoreError) as error:
            # The time limit is a safety net: a Scheduler outage must not hold back the caller's next prompt.
            # A schedule left behind fires a stale check, which changes nothing.
            self.logger.warning(
                "step time limit not scheduled", extra={"error": str(error), "position": state.client_state()}
            )

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
        self.states.write(call_control_id, with_refusal, ref, read=state)


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
