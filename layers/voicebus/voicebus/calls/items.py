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
# DynamoDB's own limits on what an attribute may hold (its "Data types" and "Quotas" pages):
# maps and lists nest at most 32 levels (counting the attribute itself), numbers carry at
# most 38 significant digits between 1E-130 and 9.9999999999999999999999999999999999999E+125.
MAX_NESTING = 32
MAX_NUMBER_DIGITS = 38
SMALLEST_NUMBER = Decimal("1E-130")
LARGEST_NUMBER = Decimal("9.9999999999999999999999999999999999999E+125")
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


def unstorable_reason(value: Any, levels: int = MAX_NESTING) -> str | None:
    """Why DynamoDB would refuse `value` inside `levels` levels of maps and lists, or None when it can hold it.

    One iterative pass (no recursion, so a value nested thousands deep is judged, not a
    RecursionError): nesting, empty map keys, lone UTF-16 surrogates (not UTF-8, so never
    sent), numbers beyond DynamoDB's digits or range, and anything that is not JSON.
    """
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if not _utf8(item):
                return "it holds a lone UTF-16 surrogate"
        elif isinstance(item, bool) or item is None:
            continue
        elif isinstance(item, int | float | Decimal):
            reason = _number_problem(item)
            if reason:
                return reason
        elif isinstance(item, dict | list):
            if depth > levels:
                return f"it nests deeper than {levels} levels"
            if isinstance(item, dict):
                for key in item:
                    if not isinstance(key, str) or not key:
                        return "it has an empty map key"
                    if not _utf8(key):
                        return "it holds a lone UTF-16 surrogate"
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
        else:
            return f"it holds a {type(item).__name__}, not a JSON value"
    return None


def _utf8(text: str) -> bool:
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _number_problem(number: int | float | Decimal) -> str | None:
    """As boto3 serialises numbers: an int by all its digits, a float by its shortest repr (`to_attribute`)."""
    if isinstance(number, int):
        if -(10**MAX_NUMBER_DIGITS) < number < 10**MAX_NUMBER_DIGITS:
            return None
        return f"it holds a number of more than {MAX_NUMBER_DIGITS} digits"
    decimal = Decimal(str(number)) if isinstance(number, float) else number
    if not decimal.is_finite():
        return "it holds a number that is not finite"
    if decimal and not SMALLEST_NUMBER <= abs(decimal) <= LARGEST_NUMBER:
        return "it holds a number outside DynamoDB's range (1E-130 to 1E+126)"
    if len(decimal.as_tuple().digits) > MAX_NUMBER_DIGITS:
        return f"it holds a number of more than {MAX_NUMBER_DIGITS} digits"
    return None


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
