"""Where a call is in its flow: the token every command's client_state carries, and the `flow` lane.

Telnyx echoes the last client_state on the call's later webhooks, so each event
says which step (and which visit of it) it answers. An event fires a transition
only when that token is the call's current position: a late `call.speak.ended`
from a prompt that has since been replaced names an older visit and is ignored.
`seq` counts the steps entered, so a second visit of the same step (back to the
menu after the opening hours) is not mistaken for the first.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError

from voicebus.calls import client_state

ENVELOPE_KEY = "voicebus"
"""The member of the client_state envelope that holds the flow's position (see `voicebus.flows.envelope`)."""


class FlowStatus(StrEnum):
    ACTIVE = "active"
    FINISHING = "finishing"  # a record step was asked to stop; waiting for call.recording.saved
    HANDED_OVER = "handed_over"  # a transfer bridged or a refer completed: the flow only waits for the hang-up
    ENDED = "ended"  # the call hung up: nothing more is sent


class FlowPosition(BaseModel):
    """A flow, a step, the attempt at it (menus retry) and how many steps the call has entered."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    flow: str = Field(min_length=1)
    step: str = Field(min_length=1)
    attempt: int = Field(default=1, ge=1)
    seq: int = Field(default=1, ge=1)
    data: dict[str, JsonValue] = Field(default_factory=dict)
    """Values set by `set_client_state` steps, carried on every later command."""

    def client_state(self) -> dict[str, JsonValue]:
        """What commands carry as client_state: `{"flow", "step", "attempt", "seq"}`, plus `data` when set."""
        value: dict[str, JsonValue] = {"flow": self.flow, "step": self.step, "attempt": self.attempt, "seq": self.seq}
        if self.data:
            value["data"] = dict(self.data)
        return value

    def same_visit(self, other: FlowPosition) -> bool:
        return (self.flow, self.step, self.attempt, self.seq) == (other.flow, other.step, other.attempt, other.seq)

    def describe(self) -> str:
        return f"{self.flow}/{self.step} attempt {self.attempt} (seq {self.seq})"


class RejectedCommand(BaseModel):
    """A command Telnyx refused with a 422 (typically: the call has already ended)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    step: str
    action: str
    command_id: str | None = None
    reason: str | None = None


class FlowState(FlowPosition):
    """The call's `flow` lane: its position, whether the flow still runs, and a refused command if any.

    Also what only the lane holds (client_state stays small): the flow variables
    (`${vars.name}`: invoke results, digits gathered), the call's parties, and the
    deadline of the step it waits on (`deadline`, UTC ISO 8601; None: no limit).
    """

    status: FlowStatus = FlowStatus.ACTIVE
    rejected: RejectedCommand | None = None
    vars: dict[str, JsonValue] = Field(default_factory=dict)
    parties: dict[str, str] = Field(default_factory=dict)
    deadline: str | None = None

    def lane_fields(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)

    def position(self) -> FlowPosition:
        return FlowPosition(flow=self.flow, step=self.step, attempt=self.attempt, seq=self.seq, data=self.data)


class StoredFlowState(FlowState):
    """The lane as read back: also which event's transition wrote it (to recognise a redelivery)."""

    event_id: str


def position_from_client_state(raw: str | None) -> FlowPosition | None:
    """The flow position an event's client_state names; None when it carries none (or someone else's state).

    Reads the envelope (`voicebus.flows.envelope`) and, for calls that started before it,
    a bare position.
    """
    if not raw:
        return None
    decoded = client_state.decode(raw)
    if decoded.kind is not client_state.ClientStateKind.JSON or not isinstance(decoded.value, dict):
        return None
    return position_from_value(decoded.value)


def position_from_value(value: Any) -> FlowPosition | None:
    """The position in a decoded client_state: the envelope's `voicebus` member, or a bare position."""
    if not isinstance(value, dict):
        return None
    inner = value.get(ENVELOPE_KEY, value)
    try:
        return FlowPosition.model_validate(inner)
    except ValidationError:
        return None
