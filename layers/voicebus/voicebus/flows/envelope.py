"""The client_state envelope: the flow's position and your own client_state, travelling together.

Telnyx echoes a call's client_state on its later webhooks, and keeps only the last
one set. A flow needs its position back on every event; your systems need theirs.
So, while a flow runs on a call, every command voicebus sends carries one JSON
envelope (base64, as Telnyx requires):

    {"voicebus": {"flow": "main", "step": "menu", "attempt": 1, "seq": 2},
     "call": "v3:...",            # the call the flow runs on (a transfer's far leg names the caller's)
     "app": "eyJjcm0iOiAxfQ=="}   # your client_state exactly as you gave it (base64 or opaque), if any

`app` is the client_state a `call.command` request asked for: its JSON value encoded
as voicebus always encodes client_state, or a string that is already base64 (or any
opaque string) as given, not re-encoded. `unwrap(raw).app` gives it back, so code
that reads webhooks calls `unwrap` first. The call's `flow` lane stays the truth
for the position: the envelope only tells which visit an event answers.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

from pydantic import JsonValue

from voicebus.calls import client_state
from voicebus.flows.position import ENVELOPE_KEY, FlowPosition, position_from_value

CALL_KEY = "call"
APP_KEY = "app"


@dataclass(frozen=True)
class Carried:
    """What an event's client_state says: the flow position, the flow's call, and the application's own value."""

    position: FlowPosition | None
    call: str | None
    app: str | None


def wrap(position: FlowPosition | dict[str, JsonValue], *, call: str | None, app: str | None) -> dict[str, JsonValue]:
    """The envelope (a JSON value, for `client_state.encode` or the sender's `client_state`)."""
    value = position.client_state() if isinstance(position, FlowPosition) else dict(position)
    envelope: dict[str, JsonValue] = {ENVELOPE_KEY: value}
    if call:
        envelope[CALL_KEY] = call
    if app is not None:
        envelope[APP_KEY] = app
    return envelope


def unwrap(raw: str | None) -> Carried:
    """Read an event's client_state: an envelope, a bare position (older calls), or the application's own value."""
    if not raw:
        return Carried(None, None, None)
    decoded = client_state.decode(raw)
    value = decoded.value
    if decoded.kind is client_state.ClientStateKind.JSON and isinstance(value, dict):
        if ENVELOPE_KEY in value:
            call = value.get(CALL_KEY)
            app = value.get(APP_KEY)
            return Carried(
                position_from_value(value),
                call if isinstance(call, str) else None,
                app if isinstance(app, str) else None,
            )
        position = position_from_value(value)
        if position is not None:
            return Carried(position, None, None)
    return Carried(None, None, raw)  # someone else's client_state: theirs to keep


def app_value(requested: Any) -> str | None:
    """A requester's client_state as Telnyx would carry it: a base64 (or opaque) string as is, else encoded JSON."""
    if requested is None:
        return None
    if isinstance(requested, str) and _is_base64(requested):
        return requested
    return client_state.encode(requested)


def _is_base64(text: str) -> bool:
    try:
        base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return False
    return bool(text)
