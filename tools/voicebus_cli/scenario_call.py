"""Playing Telnyx for a scenario: the webhooks of a call, each echoing the client_state Telnyx would echo.

Shared by `voicebus test-flows` (in process) and `voicebus play` (through `make local`):
both deliver what `ScenarioCall.webhook` builds and hand back, with `record`, the
commands that the webhook caused, so that the next webhook can echo their client_state.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from voicebus.calls import client_state
from voicebus_cli.scenarios import DEFAULT_LEG, Scenario, ScenarioError, ScenarioEvent, SentCommand, step_reference
from voicebus_cli.webhooks import envelope

STEP = timedelta(milliseconds=400)
LATE = timedelta(milliseconds=100)
START = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)

CAUSED_BY: Mapping[str, tuple[str, ...]] = {
    "call.answered": ("answer",),
    "call.speak.started": ("speak",),
    "call.speak.ended": ("speak",),
    "call.playback.started": ("playback_start",),
    "call.playback.ended": ("playback_start",),
    "call.gather.ended": ("gather_using_speak", "gather_using_audio", "gather", "gather_using_ai"),
    "call.recording.saved": ("record_start", "record_stop"),
    "call.recording.error": ("record_start",),
    "call.recording.transcription.saved": ("record_start",),
    "call.bridged": ("transfer", "bridge"),
    "call.refer.started": ("refer",),
    "call.refer.completed": ("refer",),
    "call.refer.failed": ("refer",),
    "call.streaming.started": ("streaming_start",),
    "call.streaming.stopped": ("streaming_stop", "streaming_start"),
    "call.streaming.failed": ("streaming_start",),
    "call.fork.started": ("fork_start",),
    "call.fork.stopped": ("fork_stop", "fork_start"),
    "call.transcription": ("transcription_start",),
    "call.siprec.started": ("siprec_start",),
    "call.siprec.stopped": ("siprec_stop", "siprec_start"),
    "call.siprec.failed": ("siprec_start",),
}
"""Which command a webhook answers; any other webhook carries the call's latest client_state."""
NEW_LEG_FROM = ("transfer",)
"""A far leg's webhooks carry the state of the command that dialled it (its `target_leg_client_state`, else its
client_state), until a command on that leg sets one."""


class ScenarioCall:
    """One played call: its legs' ids, the webhooks delivered so far and the commands they caused."""

    def __init__(self, scenario: Scenario, call_id: str, *, start: datetime = START, to_url: str = "") -> None:
        self.scenario = scenario
        self.call_id = call_id
        self.session = str(uuid.uuid5(uuid.NAMESPACE_URL, f"voicebus-scenario/{call_id}"))
        self.clock = start
        self.to_url = to_url or "https://example.test/webhooks/telnyx"
        self.delivered: list[dict[str, Any]] = []
        self.named: dict[str, dict[str, Any]] = {}
        self.sent: list[SentCommand] = []

    def call_control_id(self, leg: str) -> str:
        return f"v3:{self.call_id}" if leg == DEFAULT_LEG else f"v3:{self.call_id}-{leg}"

    def leg_of(self, call_control_id: str | None) -> str:
        prefix = f"v3:{self.call_id}"
        if call_control_id == prefix:
            return DEFAULT_LEG
        if call_control_id and call_control_id.startswith(prefix + "-"):
            return call_control_id[len(prefix) + 1 :]
        return f"? {call_control_id}"

    def webhook(self, event: ScenarioEvent) -> dict[str, Any]:
        """The webhook body for `event` (the very same body for `again`)."""
        again = event.again_of
        if again is not None:
            body = self.delivered[-1] if again is True else self.named[str(again)]
        else:
            assert event.send is not None
            body = self._new(event)
        self.delivered.append(body)
        if event.name is not None:
            self.named[event.name] = body
        return body

    def delivered_elsewhere(self, event: ScenarioEvent, body: dict[str, Any]) -> None:
        """A webhook that did not come from `webhook` (a fired step timeout), remembered like the others."""
        self.delivered.append(body)
        if event.name is not None:
            self.named[event.name] = body

    def record(self, commands: Sequence[SentCommand]) -> None:
        self.sent.extend(commands)

    # ------------------------------------------------------------------ building one

    def _new(self, event: ScenarioEvent) -> dict[str, Any]:
        assert event.send is not None
        if event.late and self.delivered:
            occurred = self.clock - LATE
        else:
            self.clock += STEP
            occurred = self.clock
        parties = self.scenario.call
        payload: dict[str, Any] = {
            "call_control_id": self.call_control_id(event.leg),
            "call_leg_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.call_control_id(event.leg)}/leg")),
            "call_session_id": self.session,
            "connection_id": parties.connection_id,
            "from": parties.from_,
            "to": parties.to,
        }
        if event.send == "call.initiated":
            incoming = event.leg == DEFAULT_LEG
            payload.update({"direction": "incoming" if incoming else "outgoing", "state": "parked"})
            if not incoming:
                payload["state"] = "bridging"
        state = self._client_state(event)
        if state is not None:
            payload["client_state"] = state
        payload.update(event.payload)
        return envelope(event.send, payload, occurred_at=occurred, delivered_to=self.to_url)

    def _client_state(self, event: ScenarioEvent) -> str | None:
        if event.sets_client_state:
            value = event.client_state
            return None if value is None else value if isinstance(value, str) else client_state.encode(value)
        if event.client_state_of is not None:
            return self._of_step(event.client_state_of)
        assert event.send is not None
        on_leg = [command for command in self.sent if command.leg == event.leg and command.client_state]
        causes = CAUSED_BY.get(event.send, ())
        for command in reversed(on_leg):
            if not causes or command.action in causes:
                return command.client_state
        if on_leg:
            return on_leg[-1].client_state
        if event.leg != DEFAULT_LEG:
            for command in reversed(self.sent):
                if command.action in NEW_LEG_FROM:
                    far = command.body.get("target_leg_client_state")
                    return far if isinstance(far, str) else command.client_state
        return None

    def _of_step(self, reference: str) -> str | None:
        step, index = step_reference(reference)
        commands = [command for command in self.sent if command.step == step]
        try:
            return commands[index].client_state
        except IndexError:
            sent = len(commands)
            raise ScenarioError(f"client_state_of: {reference}: step {step!r} has sent {sent} command(s)") from None
