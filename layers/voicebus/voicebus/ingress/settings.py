"""The ingress's configuration: read from the environment once, at cold start.

A missing or malformed variable fails the cold start with a message naming it,
never a request. Stdlib only: the ingress must not pay pydantic's import.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from voicebus import config
from voicebus.bus import MAX_WEBHOOK_BYTES
from voicebus.ingress.signature import DEFAULT_TOLERANCE_SECONDS, PublicKeyError, decode_public_key


@dataclass(frozen=True)
class IngressSettings:
    """The ingress's environment, validated once at cold start."""

    public_key_b64: str
    event_bus_name: str
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS
    max_body_bytes: int = MAX_WEBHOOK_BYTES

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> IngressSettings:
        public_key = config.require("TELNYX_PUBLIC_KEY", environ)
        try:
            decode_public_key(public_key)
        except PublicKeyError as exc:
            raise config.ConfigurationError("TELNYX_PUBLIC_KEY", str(exc)) from None
        return cls(
            public_key_b64=public_key,
            event_bus_name=config.require("EVENT_BUS_NAME", environ),
            tolerance_seconds=config.integer(
                "WEBHOOK_TOLERANCE_SECONDS",
                DEFAULT_TOLERANCE_SECONDS,
                minimum=1,
                maximum=3600,
                environ=environ,
            ),
            max_body_bytes=config.integer(
                "MAX_WEBHOOK_BYTES",
                MAX_WEBHOOK_BYTES,
                minimum=1024,
                maximum=MAX_WEBHOOK_BYTES,
                environ=environ,
            ),
        )
