"""The commands sent to Telnyx for a call, and Telnyx's answers, as items on the call.

`CallStore.record_command` writes one item per command sent, keyed
`COMMAND#<occurred_at>#<command_id>` where `occurred_at` is the triggering event's
time: a redelivered event sends the same command_ids (`voicebus.commands.ids`), so its
commands rewrite the same items instead of adding new ones. A command that takes no
command_id gets a UUIDv5 of the same inputs, for the same reason.

Parameters are stored as sent, less secrets: any field named like a password, token,
secret, API key or credential (`sip_auth_password`, `stream_auth_token`, ...) is replaced
by `REDACTED`, at any depth. The log is for people reading a call, never for resending.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

COMMAND_SK_PREFIX = "COMMAND#"
REDACTED = "REDACTED"
_COMMAND_LOG_NAMESPACE = uuid.UUID("6f1c2b9e-8a47-5d1e-9c53-2b7f0e4d6a18")
_SECRET_NAME = re.compile(r"password|passwd|passphrase|token|secret|api_?key|credential|authorization", re.IGNORECASE)


class CommandOutcomeKind(StrEnum):
    ACCEPTED = "accepted"
    REJECTED = "rejected"  # Telnyx refused it (422 and other 4xx), or it failed validation before sending


class CommandSource(StrEnum):
    FLOW = "flow"  # the call-control function's IVR flow
    REQUEST = "request"  # a call.command event from the user's own systems


@dataclass(frozen=True)
class CommandEntry:
    """One command sent (or refused before sending) and how it ended."""

    action: str
    trigger_id: str  # the webhook's data.id, or the call.command event's id
    occurred_at: str  # the triggering event's time, `events.occurred_key()` form
    outcome: CommandOutcomeKind
    source: CommandSource
    command_id: str | None = None
    step: str | None = None
    discriminator: str = ""
    reason: str | None = None
    request_id: str | None = None
    attempts: int | None = None
    seq: int = 0  # its place among the commands one event sent
    params: Mapping[str, Any] = field(default_factory=dict)

    @property
    def item_id(self) -> str:
        """The command_id, or a UUIDv5 of what fixes one, so a redelivery maps to the same item."""
        if self.command_id:
            return self.command_id
        name = "\x1f".join((self.trigger_id, self.action, self.discriminator))
        return str(uuid.uuid5(_COMMAND_LOG_NAMESPACE, name))

    @property
    def sort_key(self) -> str:
        return f"{COMMAND_SK_PREFIX}{self.occurred_at}#{self.item_id}"

    def attributes(self) -> dict[str, Any]:
        """The item's attributes besides its key and TTL; None values are left out."""
        values: dict[str, Any] = {
            "action": self.action,
            "trigger_id": self.trigger_id,
            "occurred_at": self.occurred_at,
            "outcome": self.outcome.value,
            "source": self.source.value,
            "command_id": self.command_id,
            "step": self.step,
            "reason": self.reason,
            "request_id": self.request_id,
            "attempts": self.attempts,
            "seq": self.seq,
            "params": redact(self.params),
        }
        return {name: value for name, value in values.items() if value is not None}


def is_secret_name(name: str) -> bool:
    return _SECRET_NAME.search(name) is not None


def redact(value: Any) -> Any:
    """`value` with every field whose name looks secret replaced by REDACTED, at any depth."""
    if isinstance(value, Mapping):
        return {
            str(name): REDACTED if is_secret_name(str(name)) and item is not None else redact(item)
            for name, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(item) for item in value]
    return value
