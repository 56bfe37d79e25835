from __future__ import annotations

import base64
import json

import pytest

from voicebus.calls import client_state
from voicebus.calls.client_state import ClientStateError, ClientStateKind


def test_json_round_trips_on_one_line() -> None:
    value = {"flow": "main", "step": "menu", "attempt": 2, "note": "é" * 50}
    encoded = client_state.encode(value)

    assert "\n" not in encoded
    decoded = client_state.decode(encoded)
    assert (decoded.kind, decoded.value, decoded.raw) == (ClientStateKind.JSON, value, encoded)


def test_text_that_is_not_json_decodes_as_text() -> None:
    raw = "aGF2ZSBhIG5pY2UgZGF5ID1d"  # the spec's example: "have a nice day =]"
    decoded = client_state.decode(raw)
    assert (decoded.kind, decoded.value) == (ClientStateKind.TEXT, "have a nice day =]")


@pytest.mark.parametrize("raw", ["not base64!", "aGVsbG8", base64.b64encode(b"\xff\xfe").decode()])
def test_invalid_base64_or_bytes_are_kept_raw(raw: str) -> None:
    decoded = client_state.decode(raw)
    assert (decoded.kind, decoded.value, decoded.raw) == (ClientStateKind.INVALID, None, raw)


def test_oversized_or_unserialisable_values_are_refused_before_sending() -> None:
    with pytest.raises(ClientStateError, match="allows 4096"):
        client_state.encode({"blob": "x" * 4000})
    with pytest.raises(ClientStateError, match="JSON-serialisable"):
        client_state.encode({"when": object()})


def _b64(json_text: str) -> str:
    return base64.b64encode(json_text.encode("utf-8", "surrogatepass")).decode("ascii")


@pytest.mark.parametrize(
    ("json_text", "fragment"),
    [
        ("1" + "0" * 40, "38 digits"),
        ("1e200", "range"),
        ("1e-200", "range"),
        ('"\\udc00"', "surrogate"),
        ('{"a":' * 32 + "1" + "}" * 32, "levels"),  # the lane is one level: 31 are left for the value
        ("[" * 600 + "]" * 600, "levels"),
        ('{"ok":{"":1}}', "empty map key"),
        ("9" * 5000, "Python cannot decode it"),
        ("[" * 50_000 + "]" * 50_000, "Python cannot decode it"),
    ],
)
def test_values_dynamodb_cannot_hold_keep_the_raw_string_only(json_text: str, fragment: str) -> None:
    decoded = client_state.decode(_b64(json_text))

    assert decoded.kind is ClientStateKind.JSON
    assert decoded.unstorable is not None and fragment in decoded.unstorable
    assert decoded.lane_fields() == {"raw": _b64(json_text), "kind": "json", "unstorable": decoded.unstorable}


def test_values_at_dynamodb_limits_are_stored_decoded() -> None:
    value = {"n": -(10**38) + 1, "small": 1e-130, "big": 9.99e125, "deep": json.loads("[" * 30 + "]" * 30)}
    decoded = client_state.decode(client_state.encode(value))

    assert decoded.unstorable is None
    assert decoded.lane_fields() == {"raw": client_state.encode(value), "kind": "json", "value": value}


def test_a_large_client_state_from_elsewhere_keeps_its_raw_string_only() -> None:
    raw = _b64('"' + "x" * client_state.MAX_STORED_DECODED_BYTES + '"')
    assert "larger than" in (client_state.decode(raw).unstorable or "")


@pytest.mark.parametrize("value", [10**40, 1e200, "\ud800", {"": 1}, json.loads("[" * 32 + "]" * 32)])
def test_values_the_call_could_not_store_once_echoed_are_refused_before_sending(value: object) -> None:
    with pytest.raises(ClientStateError, match="cannot be stored with the call"):
        client_state.encode(value)
