"""The ingress checks the fields the consumers' models type, with the same types: the two stay in step."""

from __future__ import annotations

import json
import types
import typing
from datetime import datetime
from typing import Any

import pytest

from voicebus.calls.events import CallPayload, TelnyxBusEvent
from voicebus.ingress.envelope import PAYLOAD_TEXT_FIELDS, PAYLOAD_TIME_FIELDS, summarize
from voicebus.ingress.limits import JsonLimitError
from voicebus_cli.webhooks import bus_event


def _names(kind: type) -> set[str]:
    """CallPayload's fields typed `kind | None` (by alias, and by name when they differ)."""
    found: set[str] = set()
    for name, field in CallPayload.model_fields.items():
        if typing.get_origin(field.annotation) in (typing.Union, types.UnionType) and set(
            typing.get_args(field.annotation)
        ) == {kind, type(None)}:
            found |= {name, field.alias or name}
    return found


def test_the_ingress_checks_every_field_the_payload_model_types() -> None:
    assert _names(str) == PAYLOAD_TEXT_FIELDS
    assert _names(datetime) == PAYLOAD_TIME_FIELDS
    typed = set(CallPayload.model_fields) - {"from_"} | {"from"}
    assert typed - PAYLOAD_TEXT_FIELDS - PAYLOAD_TIME_FIELDS == {"recording_urls"}  # checked on its own


def _document(occurred_at: Any, payload: dict[str, Any]) -> str:
    data = {"id": "e-1", "event_type": "call.answered", "occurred_at": occurred_at, "payload": payload}
    return json.dumps({"data": data})


@pytest.mark.parametrize(
    "occurred_at",
    ["2026-11-21T10:00:00Z", "2026-11-21T10:00:00.5+02:00", "2026-11-21 10:00:00", "2026-11-21T10:00", None],
)
def test_a_time_the_ingress_accepts_is_one_the_consumers_parse(occurred_at: str | None) -> None:
    text = _document(occurred_at, {"call_control_id": "v3:c", "recording_started_at": occurred_at})
    summarize(text)
    TelnyxBusEvent.model_validate(bus_event(text.encode()))  # raises if the consumers could not


@pytest.mark.parametrize(
    ("payload", "occurred_at"),
    [
        ({"to": 5}, "2026-11-21T10:00:00Z"),
        ({"from": ["+1"]}, "2026-11-21T10:00:00Z"),
        ({"recording_ended_at": "soon"}, "2026-11-21T10:00:00Z"),
        ({"recording_urls": ["x"]}, "2026-11-21T10:00:00Z"),
        ({}, "2026-02-30T10:00:00Z"),
        ({}, 1700000000),
        ({"occurred_at": "later"}, None),
    ],
)
def test_a_field_the_consumers_could_not_parse_is_refused(payload: dict[str, Any], occurred_at: Any) -> None:
    text = _document(occurred_at, payload)
    with pytest.raises(JsonLimitError) as refused:
        summarize(text)
    assert refused.value.reason == "invalid_field"


def test_the_ingress_nests_as_deep_as_a_call_record_can() -> None:
    from voicebus.calls import items
    from voicebus.ingress import limits

    assert limits.MAX_NESTING == items.MAX_NESTING  # the ingress does not import the store's module (cold start)
