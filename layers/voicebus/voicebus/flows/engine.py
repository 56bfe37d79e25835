"""What a webhook means for a call's flow: the commands to send and where the call is afterwards.

Pure logic, no I/O: the runner reads the call's `flow` lane, asks `FlowEngine.decide`,
writes the new state, then sends. The rules, in order:

1. call.hangup ends a running flow; nothing is sent.
2. Nothing is sent to a call that has hung up, or whose flow has ended.
3. A call with no flow starts one on an incoming call.initiated (chosen by the
   called number, else the connection, else `main`); nothing else starts a flow.
4. The event that moved the flow to where it is, delivered again (an EventBridge
   retry after a failed send, or a redelivery once the idempotency record has
   expired), is decided again from the position it carried: the same commands,
   which the sender gives the same command_ids, so Telnyx runs them once.
5. Any other event fires a transition only if its client_state names the current
   position (flow, step, attempt and seq): a late event for an earlier step or
   attempt is stale and ignored.
6. The current step says what the event does (see the step models).

Every command one webhook sends gets its step's name as command_id discriminator:
a webhook enters each step at most once (loops of steps that move on at once are
refused at load), so two commands of the same action never share an id.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from pydantic import JsonValue

from voicebus.calls.events import CallPayload, WebhookData
from voicebus.commands.validation import CallCommand
from voicebus.flows.loader import FlowCatalog
from voicebus.flows.models import Flow
from voicebus.flows.position import (
    FlowPosition,
    FlowState,
    FlowStatus,
    StoredFlowState,
    position_from_client_state,
)
from voicebus.flows.steps import (
    AnswerStep,
    FlowStep,
    MenuStep,
    PlayStep,
    RecordStep,
    SetClientStateStep,
    SpeakStep,
    StepKind,
)

FLOW_EVENTS = frozenset(
    {
        "call.initiated",
        "call.answered",
        "call.speak.ended",
        "call.playback.ended",
        "call.gather.ended",
        "call.dtmf.received",
        "call.recording.saved",
        "call.hangup",
    }
)
"""The events that can move a flow; the call-control function hears all of them."""

INTERRUPTED = frozenset({"call_hangup", "cancelled", "cancelled_amd"})
"""How a prompt or gather ends when the call (or answering machine detection) cut it short: no transition."""


class DecisionKind(StrEnum):
    STARTED = "started"
    ADVANCED = "advanced"
    FINISHING = "finishing"  # a record step's finish key: record_stop sent, waiting for the recording
    ENDED = "ended"
    REPLAYED = "replayed"
    IGNORED = "ignored"


@dataclass(frozen=True)
class PlannedCommand:
    """A command to send, and the step it belongs to."""

    step: str
    command: CallCommand

    @property
    def discriminator(self) -> str:
        """Part of the command_id: tells apart the commands of one webhook (one per step)."""
        return self.step


@dataclass(frozen=True)
class Decision:
    """What to do with one event. `state` is the flow lane afterwards (None: the event changes nothing)."""

    kind: DecisionKind
    reason: str
    state: FlowState | None = None
    commands: tuple[PlannedCommand, ...] = ()

    @property
    def writes_state(self) -> bool:
        """A replay sends again what the stored state already records: nothing to write."""
        return self.state is not None and self.kind is not DecisionKind.REPLAYED

    @property
    def client_state(self) -> dict[str, JsonValue] | None:
        """What every command of this decision carries as client_state."""
        return self.state.client_state() if self.state is not None else None


def _ignored(reason: str) -> Decision:
    return Decision(DecisionKind.IGNORED, reason)


class FlowEngine:
    """Decides transitions for the flows of one catalog."""

    def __init__(self, catalog: FlowCatalog) -> None:
        self.catalog = catalog

    def decide(self, data: WebhookData, current: StoredFlowState | None, *, call_hung_up: bool = False) -> Decision:
        """The decision for one webhook, given the call's stored flow state and whether it has hung up."""
        event = data.event_type
        if event not in FLOW_EVENTS:
            return _ignored(f"{event} does not move flows")
        if event == "call.hangup":
            if current is None or current.status is FlowStatus.ENDED:
                return _ignored("no flow is running on this call")
            ended = _state_of(current).model_copy(update={"status": FlowStatus.ENDED})
            return Decision(DecisionKind.ENDED, f"the call hung up at {current.describe()}", ended)
        if call_hung_up:
            return _ignored("the call has hung up")
        if current is None:
            return self._start(data)
        if current.status is FlowStatus.ENDED:
            return _ignored("the flow has ended")
        carried = position_from_client_state(data.payload.client_state)
        if current.event_id == data.id:
            return self._replay(data, carried, current)
        if carried is None:
            return _ignored(f"the event carries no flow position; the flow is at {current.describe()}")
        if not carried.same_visit(current):
            return _ignored(f"stale: the event answers {carried.describe()}, the flow is at {current.describe()}")
        return self._advance(data, _state_of(current))

    # ------------------------------------------------------------------ starting and replaying

    def _start(self, data: WebhookData) -> Decision:
        payload = data.payload
        if data.event_type != "call.initiated":
            return _ignored("no flow is running on this call")
        if payload.direction != "incoming":
            return _ignored(f"only incoming calls start a flow (direction {payload.direction!r})")
        flow = self.catalog.choose(payload.to, payload.connection_id)
        reason = f"incoming call to {payload.to} starts flow {flow.name!r}"
        return self._enter(flow, flow.entry, None, 1, DecisionKind.STARTED, reason)

    def _replay(self, data: WebhookData, carried: FlowPosition | None, current: StoredFlowState) -> Decision:
        if data.event_type == "call.initiated":
            again = self._start(data)
        elif carried is not None:
            again = self._advance(data, FlowState.model_validate(carried.model_dump()))
        else:
            return _ignored("a redelivered event without its flow position")
        stored = _state_of(current)
        if again.state is None or (again.state.position(), again.state.status) != (stored.position(), stored.status):
            return _ignored(f"a redelivered event that no longer leads to {current.describe()}")
        reason = f"redelivered: the commands that moved the flow to {current.describe()}, with the same command_ids"
        return Decision(DecisionKind.REPLAYED, reason, stored, again.commands)

    # ------------------------------------------------------------------ transitions

    def _advance(self, data: WebhookData, current: FlowState) -> Decision:
        flow = self.catalog.get(current.flow)
        if flow is None:
            return _ignored(f"flow {current.flow!r} is no longer deployed")
        step = flow.steps.get(current.step)
        if step is None:
            return _ignored(f"flow {current.flow!r} no longer has a step {current.step!r}")
        event, payload = data.event_type, data.payload
        match step:
            case AnswerStep() if event == "call.answered":
                return self._follow(flow, step, current, "the call was answered")
            case SpeakStep() if event == "call.speak.ended":
                return self._ended_prompt(flow, step, current, payload, "speaking")
            case PlayStep() if event == "call.playback.ended":
                return self._ended_prompt(flow, step, current, payload, "playback")
            case MenuStep() if event == "call.gather.ended":
                return self._menu(flow, step, current, payload)
            case RecordStep() if event == "call.dtmf.received":
                return self._finish_key(step, current, payload.digit)
            case RecordStep() if event == "call.recording.saved":
                return self._follow(flow, step, current, f"recording {payload.recording_id} saved")
        return _ignored(f"step {current.step!r} ({step.type}) does not move on at {event}")

    def _ended_prompt(
        self, flow: Flow, step: SpeakStep | PlayStep, current: FlowState, payload: CallPayload, what: str
    ) -> Decision:
        if payload.status in INTERRUPTED:
            return _ignored(f"{what} was cut short ({payload.status})")
        return self._follow(flow, step, current, f"{what} ended ({payload.status})")

    def _follow(self, flow: Flow, step: FlowStep, current: FlowState, why: str) -> Decision:
        following = step.following()
        if following is None:
            return _ignored(f"{why}; step {current.step!r} has no next, the flow stays there")
        return self._enter(flow, following, current, 1, DecisionKind.ADVANCED, why)

    def _menu(self, flow: Flow, step: MenuStep, current: FlowState, payload: CallPayload) -> Decision:
        status, digits = payload.status, payload.digits or ""
        if status in INTERRUPTED:
            return _ignored(f"the gather was cut short ({status})")
        if status == "valid" and digits in step.branches:
            return self._enter(flow, step.branches[digits], current, 1, DecisionKind.ADVANCED, f"pressed {digits}")
        why = "no input" if status == "timeout" or not digits else f"{digits!r} is not a choice"
        if current.attempt < step.max_attempts:
            attempt = current.attempt + 1
            reason = f"{why}: menu again, attempt {attempt} of {step.max_attempts}"
            return self._enter(flow, current.step, current, attempt, DecisionKind.ADVANCED, reason)
        reason = f"{why} after {step.max_attempts} attempts"
        return self._enter(flow, step.on_exhausted, current, 1, DecisionKind.ADVANCED, reason)

    def _finish_key(self, step: RecordStep, current: FlowState, digit: str | None) -> Decision:
        if not digit or step.finish_on_key is None or digit not in step.finish_on_key:
            return _ignored(f"{digit!r} does not finish the recording")
        if current.status is FlowStatus.FINISHING:
            return _ignored("the recording is already being stopped")
        state = current.model_copy(update={"status": FlowStatus.FINISHING, "rejected": None})
        stop = PlannedCommand(current.step, step.stop_command())
        return Decision(DecisionKind.FINISHING, f"pressed {digit}: stop the recording", state, (stop,))

    def _enter(
        self,
        flow: Flow,
        name: str,
        current: FlowPosition | None,
        attempt: int,
        kind: DecisionKind,
        reason: str,
    ) -> Decision:
        """Enter step `name`, then every step that moves on at once after it; one command per step."""
        seq = current.seq if current is not None else 0
        data: dict[str, JsonValue] = dict(current.data) if current is not None else {}
        entered: list[tuple[str, FlowStep, int]] = []
        while True:
            step = flow.steps[name]
            seq += 1
            entered.append((name, step, attempt))
            if isinstance(step, SetClientStateStep):
                data.update(step.values)
            following = step.following()
            if step.kind is not StepKind.CONTINUES or following is None:
                break
            name, attempt = following, 1
        state = FlowState(flow=flow.name, step=name, attempt=attempt, seq=seq, data=data)
        carried = state.client_state()
        commands = tuple(
            PlannedCommand(step_name, step.command(step_attempt, carried)) for step_name, step, step_attempt in entered
        )
        return Decision(kind, reason, state, commands)


def _state_of(stored: StoredFlowState) -> FlowState:
    """The stored lane without its bookkeeping: what a transition starts from."""
    return FlowState.model_validate(stored.model_dump(exclude={"event_id"}))
