from __future__ import annotations

import base64

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
