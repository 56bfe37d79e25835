"""`client_state`: the base64 string Telnyx echoes on every later webhook of a call.

voicebus writes JSON into it (a flow's position, the user's own data) and reads
back whatever arrives: JSON when it decodes as JSON, text otherwise, and the raw
value kept untouched when it is not valid base64 at all. Whatever arrives, decoding
never fails and the call's `client_state` lane can always be written: the raw string
always, the decoded value only when DynamoDB can hold it (`unstorable` says why not).
A value one event cannot store would otherwise fail every later event of the call.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from voicebus.calls.items import MAX_NESTING, unstorable_reason
from voicebus.errors import PermanentError

# Telnyx documents no maximum; client_state rides on every webhook of the call, so
# voicebus keeps it small and refuses larger values before a command is sent.
MAX_CLIENT_STATE_BYTES = 4096
# A decoded value is stored next to its raw string only up to this size: another
# system may have set a far larger client_state, and a call's STATE item holds 400 KB.
MAX_STORED_DECODED_BYTES = 16 * 1024
# The lane is a map on the STATE item: the value sits one level inside it.
VALUE_LEVELS = MAX_NESTING - 1


class ClientStateError(PermanentError, ValueError):
    """A value cannot be sent as client_state (too large, not JSON, or not storable once echoed)."""


class ClientStateKind(StrEnum):
    JSON = "json"
    TEXT = "text"
    INVALID = "invalid"  # not base64, or not UTF-8 once decoded: kept raw only


@dataclass(frozen=True)
class DecodedClientState:
    raw: str
    kind: ClientStateKind
    value: Any  # the JSON value, the text, or None when invalid (or when Python cannot decode it)
    unstorable: str | None = None  # why the lane keeps the raw string only

    def lane_fields(self) -> dict[str, Any]:
        """What the call's `client_state` lane holds: always storable in DynamoDB."""
        fields: dict[str, Any] = {"raw": self.raw, "kind": self.kind.value}
        if self.unstorable is None:
            fields["value"] = self.value
        else:
            fields["unstorable"] = self.unstorable
        return fields


def encode(value: Any) -> str:
    """Base64 of compact JSON, on one line (Telnyx truncates at a newline).

    Refuses what the call could not store once Telnyx echoes it back (`unstorable_reason`).
    """
    try:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        raise ClientStateError(f"client_state must be JSON-serialisable: {exc}") from None
    reason = unstorable_reason(value, VALUE_LEVELS)
    if reason is not None:
        raise ClientStateError(f"client_state cannot be stored with the call: {reason}")
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
        value = json.loads(text)
    except json.JSONDecodeError:
        return _judged(DecodedClientState(raw, ClientStateKind.TEXT, text))
    except (ValueError, RecursionError) as exc:  # over Python's own limits: integer digits, nesting
        detail = "it nests too deep" if isinstance(exc, RecursionError) else str(exc)
        return DecodedClientState(raw, ClientStateKind.JSON, None, f"Python cannot decode it: {detail}")
    return _judged(DecodedClientState(raw, ClientStateKind.JSON, value))


def _judged(decoded: DecodedClientState) -> DecodedClientState:
    if len(decoded.raw) > MAX_STORED_DECODED_BYTES:
        reason: str | None = f"it is larger than {MAX_STORED_DECODED_BYTES} bytes"
    else:
        reason = unstorable_reason(decoded.value, VALUE_LEVELS)
    if reason is None:
        return decoded
    return DecodedClientState(decoded.raw, decoded.kind, decoded.value, reason)
