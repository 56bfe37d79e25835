"""Call Control requests over urllib3, written byte for byte as the telnyx SDK writes them.

`import telnyx` costs seconds on a cold start, and a Call Control command is one
small JSON request; urllib3 already comes with botocore, so every function has it.
This module only speaks the wire format: the retry policy is `CommandSender`'s,
because it must follow the invocation's remaining time.

What the SDK sends, and so what this client sends
(tests/integration/test_command_wire.py compares the two on every action):

- `POST` (`PUT` for client_state_update) `{base_url}/calls/{call_control_id}/actions/{action}`,
  the id quoted as a path segment (RFC 3986 `pchar`: `/`, `?`, `#`, `%` and
  spaces are escaped, `:` and `@` are not), as the SDK's `path_template` does;
- `Authorization: Bearer <key>`, `Content-Type` and `Accept: application/json`;
- compact UTF-8 JSON (`ensure_ascii=False`, no spaces), its top-level keys in
  the SDK's order: the spec's required fields, then the others, each
  alphabetically. Telnyx ignores the order; matching it keeps the comparison exact.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote

import urllib3
from urllib3.exceptions import HTTPError, LocationValueError

from voicebus.commands.client import (
    BASE_URL_VARIABLE,
    CONNECT_TIMEOUT_SECONDS,
    DEFAULT_BASE_URL,
    READ_TIMEOUT_SECONDS,
    ApiKey,
    base_url,
)
from voicebus.config import ConfigurationError
from voicebus.errors import RetryableError

HttpMethod = Literal["POST", "PUT"]

_PATH_SEGMENT_SAFE = "!$&'()*+,;=:@"  # RFC 3986 pchar beyond the unreserved set, as the SDK's path_template
_DOT_SEGMENT = re.compile(r"^(?:\.|%2[eE]){1,2}$")


class TelnyxConnectionError(RetryableError):
    """No answer from Telnyx: the connection failed, dropped, or timed out. Worth another attempt."""


@dataclass(frozen=True)
class TelnyxResponse:
    """Telnyx's answer: status, headers (case-insensitive), and the body as sent."""

    status: int
    headers: Mapping[str, str]
    data: bytes

    def json(self) -> Any:
        """The parsed body; None when it is empty or not JSON (a proxy's HTML error page, say)."""
        if not self.data:
            return None
        try:
            return json.loads(self.data)
        except ValueError:  # JSONDecodeError and UnicodeDecodeError
            return None


def action_path(call_control_id: str, action: str) -> str:
    """`/calls/{call_control_id}/actions/{action}`, the id escaped as one path segment, as the SDK escapes it."""
    if not call_control_id:
        raise ValueError("call_control_id must not be empty")
    segment = quote(call_control_id, safe=_PATH_SEGMENT_SAFE)
    if _DOT_SEGMENT.match(segment):
        raise ValueError(f"call_control_id {call_control_id!r} would make a dot-segment of the path")
    return f"/calls/{segment}/actions/{action}"


def encode_body(body: Mapping[str, Any], required: Collection[str] = ()) -> bytes:
    """The JSON body as the SDK serialises it: compact, UTF-8, the spec's required fields first, then the rest,
    each alphabetically (the command says which are required: `CallCommand.required_fields`)."""
    required = sorted(name for name in required if name in body)
    rest = sorted(name for name in body if name not in required)
    ordered = {name: body[name] for name in (*required, *rest)}
    return json.dumps(ordered, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")


class CallControlClient:
    """Sends one Call Control request and returns Telnyx's answer, whatever its status; never retries.

    Build it once per container (`get_call_control_client`): the pool keeps the
    TLS connection to Telnyx open between invocations.
    """

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        connect_timeout: float = CONNECT_TIMEOUT_SECONDS,
        read_timeout: float = READ_TIMEOUT_SECONDS,
        pool: urllib3.PoolManager | None = None,
    ) -> None:
        try:
            parsed = urllib3.util.parse_url(base_url)
        except LocationValueError as exc:
            raise ConfigurationError(BASE_URL_VARIABLE, f"is not a URL: {base_url!r}") from exc
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise ConfigurationError(BASE_URL_VARIABLE, f"must be an http(s) URL, got {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._headers = {
            "Accept": "application/json",
            "Content-Type": "application/json",
            "Authorization": f"Bearer {api_key}",
            "User-Agent": "voicebus",
        }
        self._pool = pool or urllib3.PoolManager(retries=False)

    @property
    def timeout(self) -> urllib3.Timeout:
        """Each request's timeout unless `send` is given a shorter one."""
        return urllib3.Timeout(connect=self.connect_timeout, read=self.read_timeout)

    def timeout_within(self, seconds: float) -> urllib3.Timeout:
        """The client's timeout, shortened so that connecting and reading together take at most `seconds`."""
        return urllib3.Timeout(
            connect=min(self.connect_timeout, seconds), read=min(self.read_timeout, seconds), total=seconds
        )

    def send(
        self,
        method: HttpMethod,
        call_control_id: str,
        action: str,
        body: Mapping[str, Any],
        *,
        required: Collection[str] = (),
        timeout: urllib3.Timeout | None = None,
    ) -> TelnyxResponse:
        """One request; raises `TelnyxConnectionError` when no answer came back."""
        url = self.base_url + action_path(call_control_id, action)
        try:
            response = self._pool.request(
                method,
                url,
                body=encode_body(body, required),
                headers=self._headers,
                timeout=timeout or self.timeout,
                retries=False,
                redirect=False,
            )
        except HTTPError as exc:
            raise TelnyxConnectionError(f"{method} {action}: {type(exc).__name__}: {exc}") from exc
        return TelnyxResponse(response.status, response.headers, response.data)


class _ClientCache:
    """One client per container, replaced only when the key or base URL changes (a rotated secret)."""

    def __init__(self) -> None:
        self._identity: tuple[str, str] | None = None
        self._client: CallControlClient | None = None

    def get(self, api_key: ApiKey, url: str) -> CallControlClient:
        if self._client is None or self._identity != (api_key.value, url):
            self._identity, self._client = (api_key.value, url), CallControlClient(api_key.value, base_url=url)
        return self._client


_CACHE = _ClientCache()


def get_call_control_client(api_key: ApiKey, environ: Mapping[str, str] | None = None) -> CallControlClient:
    """The container's client for this key, at TELNYX_BASE_URL (or Telnyx itself)."""
    return _CACHE.get(api_key, base_url(environ) or DEFAULT_BASE_URL)
