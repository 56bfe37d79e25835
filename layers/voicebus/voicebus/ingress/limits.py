"""The JSON every consumer can carry: one parse with hooks, and a bounded check only when the text calls for it.

A webhook answered 200 must never fail downstream, and no real Telnyx webhook comes
near these limits, so the ingress refuses (400, a reason each) what would fail later:

- numbers: integers outside int64 (EventBridge's own limit for JSON integers, and far
  inside DynamoDB's 38 digits and Python's 4,300-digit conversion limit); decimals
  outside DynamoDB's range (1E-130 to 1E+126, which also catches `1e400` parsed as
  infinity). Checked by `json.loads`'s own number hooks, before Python converts.
- `NaN` / `Infinity`: not JSON (RFC 8259); Python accepts them, consumers cannot.
- nesting over 32 levels (DynamoDB's limit; EventBridge's is 1,000), or so deep that
  Python's parser gives up (RecursionError).
- lone UTF-16 surrogates (`"\\ud800"`): not Unicode, so not UTF-8 for DynamoDB or logs.
- an empty object key: DynamoDB refuses it in a map.

Cost: the hooks run only on numbers and constants. Nesting, surrogates and empty keys
need a walk of the parsed value (~12 us on a 1 KB webhook), run only when the text could
hold one of them (more brackets than the nesting limit, a `\\ud` escape, or `""`):
C-speed substring scans (~3 us) decide, and a typical webhook never walks.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any

from voicebus.errors import PermanentError

MAX_NESTING = 32  # DynamoDB's, as voicebus.calls.items.MAX_NESTING (not imported: cold start)
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
_INT64_CHARS = len(str(INT64_MIN))  # 20: longer integer text is out of range without converting it
SMALLEST_DECIMAL = 1e-130
LARGEST_DECIMAL = 1e126


class LimitReason(StrEnum):
    """The 400 `error` of each refusal (the ingress contract lists them)."""

    MALFORMED = "malformed_body"
    NUMBER = "number_out_of_range"
    NESTING = "nested_too_deep"
    UNICODE = "invalid_unicode"
    EMPTY_KEY = "empty_key"
    FIELD = "invalid_field"


class JsonLimitError(PermanentError, ValueError):
    """The body is JSON that an EventBridge entry or the call store cannot carry."""

    def __init__(self, reason: LimitReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def _int(text: str) -> int:
    if len(text) > _INT64_CHARS:
        raise JsonLimitError(LimitReason.NUMBER, f"an integer of {len(text)} characters is outside 64 bits")
    value = int(text)
    if not INT64_MIN <= value <= INT64_MAX:
        raise JsonLimitError(LimitReason.NUMBER, f"the integer {text} is outside 64 bits")
    return value


def _float(text: str) -> float:
    value = float(text)
    if value and not SMALLEST_DECIMAL <= abs(value) < LARGEST_DECIMAL:
        raise JsonLimitError(LimitReason.NUMBER, f"the number {text[:40]} is outside 1E-130 to 1E+126")
    return value


def _constant(name: str) -> Any:
    raise JsonLimitError(LimitReason.MALFORMED, f"the body is not valid JSON: {name} is not a JSON value")


# Built once: json.loads with hooks would build a decoder on every call.
_DECODER = json.JSONDecoder(parse_int=_int, parse_float=_float, parse_constant=_constant)


def loads(text: str) -> Any:
    """`json.loads` that refuses, as `JsonLimitError`, what the bus or the call store cannot carry."""
    try:
        value = _DECODER.decode(text)
    except JsonLimitError:
        raise
    except RecursionError:
        raise JsonLimitError(LimitReason.NESTING, f"the body nests deeper than {MAX_NESTING} levels") from None
    except ValueError:  # JSONDecodeError, and anything else Python's parser refuses
        raise JsonLimitError(LimitReason.MALFORMED, "the body is not valid JSON") from None
    if _may_hold_a_problem(text):
        _walk(value)
    return value


def _may_hold_a_problem(text: str) -> bool:
    """Whether the text could nest too deep, hold a lone surrogate or an empty key: C-speed scans, no parse."""
    if text.count("{") + text.count("[") > MAX_NESTING or '""' in text:  # an empty key, or an empty string
        return True
    return "\\u" in text and ("\\ud" in text or "\\uD" in text)


def _walk(value: Any) -> None:
    """One iterative pass over the parsed body: nesting, lone surrogates, empty keys."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            _text(item)
        elif isinstance(item, dict | list):
            if depth >= MAX_NESTING:
                raise JsonLimitError(LimitReason.NESTING, f"the body nests deeper than {MAX_NESTING} levels")
            if isinstance(item, dict):
                for key in item:
                    if not key:
                        raise JsonLimitError(LimitReason.EMPTY_KEY, "the body has an empty object key")
                    _text(key)
                stack.extend((child, depth + 1) for child in item.values())
            else:
                stack.extend((child, depth + 1) for child in item)


def _text(text: str) -> None:
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise JsonLimitError(LimitReason.UNICODE, "the body holds a lone UTF-16 surrogate") from None
