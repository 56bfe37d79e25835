"""`client_state`: the base64 string Telnyx echoes on every later webhook of a call.

voicebus writes JSON into it (a flow's position, the user's own data) and reads
back whatever arrives: JSON when it decodes as JSON, text otherwise, and the raw
value kept untouched when it is not valid base64 at all.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from voicebus.errors import PermanentError

# Telnyx documents no maximum; client_state rides on every webhook of the call, so
# voicebus keeps it small and refuses larger values before a command is sent.
MAX_CLIENT_STATE_BYTES = 4096


class ClientStateError(PermanentError, ValueError):
    """A value cannot be sent as client_state (too large, or not JSON-serialisable)."""


class ClientStateKind(StrEnum):
    JSON = "json"
    TEXT = "text"
    INVALID = "invalid"  # not base64, or not UTF-8 once decoded: kept raw only


@dataclass(frozen=True)
class DecodedClientState:
    raw: str
    kind: ClientStateKind
    value: Any  # the JSON value, the text, or None when invalid


def encode(value: Any) -> str:
    """Base64 of compact JSON, on one line (Telnyx truncates at a newline)."""
    try:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise ClientStateError(f"client_state must be JSON-serialisable: {exc}") from None
    encoded = base64.b64encode(text.encode("utf-8")).decode("ascii")
    if len(encoded) > MAX_CLIENT_STATE_BYTES:
        raise ClientStateError(
            f"client_state is {len(encoded)} bytes once encoded; voicebus allows {MAX_CLIENT_STATE_BYTES}"
        )
    return encoded


def decode(raw: str) -> DecodedClientState:
    """Decode what Telnyx echoed back, never failing: bad input is kept as it came."""
    try:
        text = base64.b64decode(raw, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return DecodedClientState(raw, ClientStateKind.INVALID, None)
    try:
        return DecodedClientState(raw, ClientStateKind.JSON, json.loads(text))
    except json.JSONDecodeError:
        return DecodedClientState(raw, ClientStateKind.TEXT, text)
