"""Reading configuration from the environment once, at cold start, with errors that name the variable.

Stdlib only, on purpose: the ingress must not pay pydantic's import (about 25 ms on
top of boto3, printed by bench/cold_starts.py) just to read three variables.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from voicebus.errors import PermanentError


class ConfigurationError(PermanentError):
    """An environment variable is missing or malformed; raised at cold start, never per request."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable} {problem}")
        self.variable = variable


def require(name: str, environ: Mapping[str, str] | None = None) -> str:
    """A variable that must be set to a non-empty value."""
    value = (os.environ if environ is None else environ).get(name, "").strip()
    if not value:
        raise ConfigurationError(name, "is not set")
    return value


def integer(
    name: str,
    default: int,
    *,
    minimum: int,
    maximum: int,
    environ: Mapping[str, str] | None = None,
) -> int:
    """An optional integer variable inside [minimum, maximum]."""
    text = (os.environ if environ is None else environ).get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise ConfigurationError(name, f"must be an integer, got {text!r}") from None
    if not minimum <= value <= maximum:
        raise ConfigurationError(name, f"must be between {minimum} and {maximum}, got {value}")
    return value
