"""Command ids that make a redelivered webhook harmless.

Telnyx ignores a command whose command_id it has already seen for the same call
within 60 s. Deriving the id from the triggering webhook's `data.id` and the
action means that when EventBridge or Telnyx delivers the same webhook again
(or the sender retries), the repeated command carries the same id and is
dropped by Telnyx, while every distinct command gets an id of its own.
"""

from __future__ import annotations

import json
import uuid

COMMAND_ID_NAMESPACE = uuid.UUID("0b6c5f52-3f0e-5a57-9a4e-6c1d2f7e8a90")
"""Fixed forever: changing it changes every id, which only matters within Telnyx's 60 s window."""


def command_id(webhook_id: str, action: str, discriminator: str = "") -> str:
    """A UUIDv5 of (webhook id, action, discriminator): the same inputs always give the same id.

    `discriminator` tells apart two commands of the same action triggered by one
    webhook (two `speak`s in a row, say); leave it empty otherwise. The parts are
    JSON-encoded together, so ("ab", "c") and ("a", "bc") cannot collide.
    """
    if not webhook_id:
        raise ValueError("webhook_id must be the triggering webhook's data.id, not empty")
    if not action:
        raise ValueError("action must not be empty")
    name = json.dumps([webhook_id, action, discriminator], separators=(",", ":"), ensure_ascii=False)
    return str(uuid.uuid5(COMMAND_ID_NAMESPACE, name))
