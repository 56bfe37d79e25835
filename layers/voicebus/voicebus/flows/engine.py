"""What a webhook means for a call's flow: the commands to send and where the call is afterwards.

Pure logic, no I/O (an `invoke` step calls the `Invoker` it is given): the runner
reads the call's `flow` lane, asks `FlowEngine.decide`, claims the new state with a
compare-and-set on the lane, then sends. The rules, in order:

1. call.hangup of the call ends its flow; nothing is sent. A call.hangup of a
   transfer's far leg before it bridged is the transfer's failure.
2. Nothing is sent to a call that has hung up, or whose flow has ended or was handed over.
3. A call with no flow starts one on an incoming call.initiated (chosen by the
   called number, else the connection, else `main`); nothing else starts a flow.
4. The event that moved the flow to where it is, delivered again (an EventBridge
   retry after a failed send, or a redelivery once the idempotency record has
   expired), is decided again from the position it carried: the same commands,
   which the sender gives the same command_ids, so Telnyx runs them once.
5. Any other event fires a transition only if its client_state (the envelope,
   `voicebus.flows.envelope`) names the current position (flow, step, attempt and
   seq): a late event for an earlier step or attempt is stale and ignored.
6. The current step says what the event does (`transitions.py`): its success, its
   failure branch, or its time limit (`flow.step.timeout`, fired by the scheduled check).

Every command one webhook sends gets its step's name as command_id discriminator:
a webhook enters each step at most once (loops of steps that move on at once are
refused at load), so two commands of the same action never share an id.
"""

from __future__ import annotations

from voicebus.calls.events import WebhookData
from voicebus.flows.decision import Decision, DecisionKind, Invoker, PlannedCommand, ignored
from voicebus.flows.envelope import Carried, unwrap
from voicebus.flows.loader import FlowCatalog
from voicebus.flows.position import FlowState, FlowStatus, StoredFlowState
from voicebus.flows.transitions import TIMEOUT_EVENT, Transitions

__all__ = [
    "FLOW_EVENTS",
    "INTERRUPTED",
    "TIMEOUT_EVENT",
    "Decision",
    "DecisionKind",
    "FlowEngine",
    "Invoker",
    "PlannedCommand",
    "flow_call_id",
]

FLOW_EVENTS = frozenset(
    {
        "call.initiated",
        "call.answered",
        "call.bridged",
        "call.speak.ended",
        "call.playback.ended",
        "call.gather.ended",
        "call.dtmf.received",
        "call.recording.saved",
        "call.recording.error",
        "call.refer.completed",
        "call.refer.failed",
        "call.hangup",
        TIMEOUT_EVENT,
    }
)
"""The events that can move a flow; the call-control function hears all of them."""

INTERRUPTED = frozenset({"call_hangup", "cancelled", "cancelled_amd"})
"""How a prompt or gather ends when the call (or answering machine detection) cut it short."""


def flow_call_id(data: WebhookData) -> str | None:
    """The call whose flow this event concerns: the one its envelope names (a transfer's far leg
    names the caller's call; a call.recording.error may carry no call id), else its own."""
    carried = unwrap(data.payload.client_state)
    return carried.call or data.payload.call_control_id


class FlowEngine:
    """Decides transitions for the flows of one catalog."""

    def __init__(self, catalog: FlowCatalog, invoker: Invoker | None = None) -> None:
        """`invoker` runs `invoke` steps; without one they take their `on_error` branch."""
        self.catalog = catalog
        self.invoker = invoker

    def decide(
        self,
        data: WebhookData,
        current: StoredFlowState | None,
        *,
        call_hung_up: bool = False,
        invoker: Invoker | None = None,
    ) -> Decision:
        """The decision for one webhook, given the flow call's stored state and whether it has hung up."""
        event = data.event_type
        if event not in FLOW_EVENTS:
            return ignored(f"{event} does not move flows")
        carried = unwrap(data.payload.client_state)
        own_call = data.payload.call_control_id
        far_leg = carried.call is not None and own_call is not None and carried.call != own_call
        transitions = Transitions(self.catalog, invoker or self.invoker, data, carried.call or own_call, carried.app)
        if event == "call.hangup" and not far_leg:
            if current is None or current.status is FlowStatus.ENDED:
                return ignored("no flow is running on this call")
            ended = _state_of(current).model_copy(update={"status": FlowStatus.ENDED, "deadline": None})
            return Decision(DecisionKind.ENDED, f"the call hung up at {current.describe()}", ended)
        if call_hung_up:
            return ignored("the call has hung up")
        if current is None:
            return transitions.start() if not far_leg else ignored("no flow is running on the caller's call")
        if current.status is FlowStatus.ENDED:
            return ignored("the flow has ended")
        if current.status is FlowStatus.HANDED_OVER:
            return ignored(f"the call was handed over at {current.describe()}")
        if current.event_id == data.id:
            return self._replay(transitions, carried, current)
        if carried.position is None:
            return ignored(f"the event carries no flow position; the flow is at {current.describe()}")
        if not carried.position.same_visit(current):
            return ignored(
                f"stale: the event answers {carried.position.describe()}, the flow is at {current.describe()}"
            )
        return transitions.advance(_state_of(current), far_leg=far_leg)

    def _replay(self, transitions: Transitions, carried: Carried, current: StoredFlowState) -> Decision:
        stored = _state_of(current)
        if transitions.data.event_type == "call.initiated":
            again = transitions.start()
        elif carried.position is not None:
            before = stored.model_copy(update=carried.position.model_dump())
            own = transitions.data.payload.call_control_id
            again = transitions.advance(before, far_leg=carried.call is not None and carried.call != own)
        else:
            return ignored("a redelivered event without its flow position")
        if again.state is None or (again.state.position(), again.state.status) != (stored.position(), stored.status):
            return ignored(f"a redelivered event that no longer leads to {current.describe()}")
        reason = f"redelivered: the commands that moved the flow to {current.describe()}, with the same command_ids"
        return Decision(DecisionKind.REPLAYED, reason, stored, again.commands, again.call_control_id, again.app)


def _state_of(stored: StoredFlowState) -> FlowState:
    """The stored lane without its bookkeeping: what a transition starts from."""
    return FlowState.model_validate(stored.model_dump(exclude={"event_id"}))
