"""How call items sit in DynamoDB: their keys, and values in DynamoDB's typed form and back.

`CallStore` (store.py) writes and reads them; the recorder keys each event's timeline
with `call_pk` / `unattributed_pk`; `EventRef` orders every write by the event behind it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

STATE_SK = "STATE"
UNATTRIBUTED_PREFIX = "UNATTRIBUTED#"
UNATTRIBUTED_SHARDS = 8
_SERIALIZER = TypeSerializer()
_DESERIALIZER = TypeDeserializer()


@dataclass(frozen=True)
class EventRef:
    """Which event a write comes from: its order among the call's events."""

    event_id: str
    event_type: str
    occurred_at: str  # events.occurred_key(): fixed-width UTC, compares as text


def call_pk(call_control_id: str) -> str:
    return f"CALL#{call_control_id}"


def unattributed_pk(occurred_at: str, event_id: str) -> str:
    """The timeline partition of an event with no call, conference or session id.

    Such events would otherwise all share one key (one hot partition): they are spread
    over the hour they occurred in (`occurred_at`'s first 13 characters, 2026-11-21T10)
    and UNATTRIBUTED_SHARDS shards chosen by a hash of the event id, so a duplicate lands
    on its original. Read an hour back with `CallStore.unattributed_timeline`.
    """
    shard = int.from_bytes(hashlib.sha256(event_id.encode()).digest()[:4], "big") % UNATTRIBUTED_SHARDS
    return f"{UNATTRIBUTED_PREFIX}{occurred_at[:13]}#{shard}"


def to_attribute(value: Any) -> dict[str, Any]:
    """DynamoDB's typed form; floats become Decimal as DynamoDB requires."""
    serialized: dict[str, Any] = _SERIALIZER.serialize(_decimals(value))  # type: ignore[assignment]
    return serialized


def _decimals(value: Any) -> Any:
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, dict):
        return {key: _decimals(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_decimals(item) for item in value]
    return value


def _plain(value: Any) -> Any:
    """Back from DynamoDB: Decimals to int or float."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | set):
        return [_plain(item) for item in value]
    return value


def from_item(raw: Mapping[str, Any]) -> dict[str, Any]:
    return {key: _plain(_DESERIALIZER.deserialize(value)) for key, value in raw.items()}
