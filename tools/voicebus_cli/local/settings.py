"""What `make local` is pointed at: the stand-ins (default) or your Telnyx account, from the environment.

TELNYX_PUBLIC_KEY    your account's webhook public key (base64); default: the committed TEST key
TELNYX_API_KEY       your API key; when set, commands go to Telnyx (never written to disk)
TELNYX_BASE_URL      the API to send them to; default https://api.telnyx.com/v2 with a key,
                     the local stand-in without one
VOICEBUS_PUBLIC_URL  the https URL your tunnel (ngrok, cloudflared, ...) forwards to the local API
VOICEBUS_PORT        the local API's port (what the tunnel forwards to); default 8080 with a
                     public URL, any free port without one
VOICEBUS_LOCAL_STATE_FILE  where local.json goes (default .voicebus/local.json); the bus record
                     and the function log go next to it
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from voicebus.commands.client import DEFAULT_BASE_URL
from voicebus_cli.operations import LOCAL_STATE_FILE, STATE_FILE_VARIABLE
from voicebus_cli.testkey import load_test_key

WEBHOOK_PATH = "/webhooks/telnyx"
DEFAULT_TUNNEL_PORT = 8080


class LocalSettingsError(ValueError):
    """The environment asks for something `make local` cannot do."""


@dataclass(frozen=True)
class LocalSettings:
    public_key_b64: str
    uses_test_key: bool
    # Never printed, logged or written: repr=False keeps it out of tracebacks and reprs too.
    api_key: str | None = field(default=None, repr=False)
    base_url: str | None = None  # None: the local stand-in
    public_url: str | None = None
    port: int = 0
    state_file: Path = LOCAL_STATE_FILE

    @property
    def state_dir(self) -> Path:
        """Where local.json, the bus record and the function log go."""
        return self.state_file.parent

    @property
    def real_telnyx(self) -> bool:
        return self.api_key is not None

    @property
    def public_webhook_url(self) -> str | None:
        if self.public_url is None:
            return None
        url = self.public_url.rstrip("/")
        return url if url.endswith(WEBHOOK_PATH) else url + WEBHOOK_PATH

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> LocalSettings:
        public_key = environ.get("TELNYX_PUBLIC_KEY", "").strip()
        api_key = environ.get("TELNYX_API_KEY", "").strip() or None
        if public_key:
            _check_public_key(public_key)
        elif api_key is not None:
            raise LocalSettingsError(
                "TELNYX_API_KEY is set but TELNYX_PUBLIC_KEY is not: webhooks from your account would be "
                "refused (Mission Control > Keys & Credentials > Public Key)"
            )
        base_url = environ.get("TELNYX_BASE_URL", "").strip() or None
        public_url = environ.get("VOICEBUS_PUBLIC_URL", "").strip() or None
        if public_url is not None and not public_url.startswith(("https://", "http://")):
            raise LocalSettingsError(f"VOICEBUS_PUBLIC_URL must be an http(s) URL, got {public_url!r}")
        port_text = environ.get("VOICEBUS_PORT", "").strip()
        try:
            port = int(port_text) if port_text else (DEFAULT_TUNNEL_PORT if public_url else 0)
        except ValueError:
            raise LocalSettingsError(f"VOICEBUS_PORT must be a port number, got {port_text!r}") from None
        state_file = environ.get(STATE_FILE_VARIABLE, "").strip()
        return cls(
            public_key_b64=public_key or load_test_key().public_key_b64,
            uses_test_key=not public_key,
            api_key=api_key,
            base_url=(base_url or DEFAULT_BASE_URL) if api_key is not None else None,
            public_url=public_url,
            port=port,
            state_file=Path(state_file) if state_file else LOCAL_STATE_FILE,
        )


def _check_public_key(value: str) -> None:
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise LocalSettingsError("TELNYX_PUBLIC_KEY must be base64 of the 32-byte Ed25519 key (44 characters)")
