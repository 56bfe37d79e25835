"""Commands from outside a flow (`call.command` requests) that must not erase the flow's position.

Telnyx keeps a call's last client_state and echoes it on later webhooks. A request
that sets its own client_state while an IVR flow runs would otherwise replace the
flow's envelope, and every later flow event would be ignored as carrying no
position. So while a flow runs on the call (its `flow` lane, the truth, says so),
the request's client_state is sent inside the envelope, next to the flow's current
position: the flow keeps its place, and the requester's own value travels as `app`
(`voicebus.flows.envelope.unwrap(raw).app` gives it back, exactly as given).
A call with no running flow gets the requester's client_state unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from voicebus.calls.store import CallStore
from voicebus.commands.validation import CLIENT_STATE_UPDATE, CallCommand
from voicebus.flows.envelope import app_value, wrap
from voicebus.flows.position import FlowState, FlowStatus

RUNNING = frozenset({FlowStatus.ACTIVE, FlowStatus.FINISHING, FlowStatus.HANDED_OVER})


@dataclass(frozen=True)
class Wrapped:
    """The command to send and the client_state to give the sender (None: none)."""

    command: CallCommand
    client_state: Any


def running_flow(store: CallStore, call_control_id: str) -> FlowState | None:
    """The call's flow state when a flow still runs on it; None otherwise (no flow, ended, unreadable)."""
    lane = store.lanes(call_control_id, "flow").get("flow")
    if not isinstance(lane, dict):
        return None
    try:
        state = FlowState.model_validate(lane)
    except ValidationError:
        return None
    return state if state.status in RUNNING else None


def keep_flow_position(store: CallStore, call_control_id: str, command: CallCommand, requested: Any) -> Wrapped:
    """`command` and its client_state, wrapped in the flow's envelope while a flow runs on the call."""
    state = running_flow(store, call_control_id)
    if state is None:
        return Wrapped(command, requested)
    if command.action == CLIENT_STATE_UPDATE:  # the requester's state is the command's own param
        own = command.params.get("client_state")
        envelope = wrap(state.client_state(), call=call_control_id, app=app_value(own))
        return Wrapped(command.with_params(client_state=envelope), None)
    if not command.takes_client_state:
        return Wrapped(command, requested)
    return Wrapped(command, wrap(state.client_state(), call=call_control_id, app=app_value(requested)))
