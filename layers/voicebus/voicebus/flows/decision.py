"""What the engine decides for one event, and the one piece of I/O it may ask for (`Invoker`).

Kept apart from the engine so the runner, the scenario runner and the tests share
these types without importing how decisions are made.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from pydantic import JsonValue

from voicebus.commands.validation import CallCommand
from voicebus.flows.envelope import wrap
from voicebus.flows.position import FlowState


class DecisionKind(StrEnum):
    STARTED = "started"
    ADVANCED = "advanced"
    FINISHING = "finishing"  # a record step's finish key: record_stop sent, waiting for the recording
    HANDED_OVER = "handed_over"  # a transfer bridged, a refer completed
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
class InvokeRequest:
    """One `invoke` step's call: the function, what it is sent, and how long it may take."""

    step: str
    function: str
    payload: dict[str, JsonValue]
    timeout_millis: int


@dataclass(frozen=True)
class InvokeResult:
    """A function's answer: its JSON result, or why there is none (an error, a timeout, not an object)."""

    value: dict[str, JsonValue] | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.value is not None


Invoker = Callable[[InvokeRequest], InvokeResult]
"""Runs an `invoke` step's function (`voicebus.flows.invoke.LambdaInvoker` in the function, anything in tests)."""


@dataclass(frozen=True)
class Decision:
    """What to do with one event. `state` is the flow lane afterwards (None: the event changes nothing).

    `call_control_id` is the call the commands go to and whose lane is written (a
    transfer's far leg acts on the caller's call); `app` is the application's own
    client_state, carried on in the envelope.
    """

    kind: DecisionKind
    reason: str
    state: FlowState | None = None
    commands: tuple[PlannedCommand, ...] = ()
    call_control_id: str | None = None
    app: str | None = None
    invocations: tuple[InvokeRequest, ...] = field(default=())

    @property
    def writes_state(self) -> bool:
        """A replay sends again what the stored state already records: nothing to write."""
        return self.state is not None and self.kind is not DecisionKind.REPLAYED

    @property
    def client_state(self) -> dict[str, JsonValue] | None:
        """What every command of this decision carries as client_state: the envelope (position, call, app)."""
        if self.state is None:
            return None
        return wrap(self.state.client_state(), call=self.call_control_id, app=self.app)


def ignored(reason: str) -> Decision:
    return Decision(DecisionKind.IGNORED, reason)
