"""The telnyx SDK client for Lambda: built once per container, short timeouts, no SDK retries.

The API key is `TELNYX_API_KEY` when set (local runs and tests use it as is),
else the SecretString of the Secrets Manager secret whose ARN is in
`TELNYX_API_KEY_SECRET_ARN`, read through Powertools parameters and cached for
five minutes. `TELNYX_BASE_URL` points the client elsewhere, as the SDK itself
does (the local Telnyx stand-in, for instance).

The SDK's defaults (60 s timeout, 2 retries) suit a long-running process, not a
Lambda invocation: a hung request would eat the whole invocation. Here each
request gives up after a few seconds and `CommandSender` retries by itself,
within the time the invocation has left.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

import httpx
from aws_lambda_powertools.utilities import parameters
from telnyx import Telnyx

from voicebus.config import ConfigurationError

API_KEY_VARIABLE = "TELNYX_API_KEY"
API_KEY_SECRET_VARIABLE = "TELNYX_API_KEY_SECRET_ARN"  # noqa: S105 - a variable name, not a secret
BASE_URL_VARIABLE = "TELNYX_BASE_URL"
SECRET_MAX_AGE_SECONDS = 300
DEFAULT_TIMEOUT = httpx.Timeout(5.0, connect=2.0)
"""Per request: Call Control commands answer in well under a second when Telnyx is healthy."""


class MissingApiKeyError(ConfigurationError):
    """Neither variable gives a Telnyx API key; raised at cold start, before any command."""

    def __init__(self, problem: str) -> None:
        super().__init__(API_KEY_VARIABLE, problem)


@dataclass(frozen=True)
class ApiKey:
    """The key, and where it came from: error messages name the source, never the key."""

    value: str = field(repr=False)
    source: str


def load_api_key(environ: Mapping[str, str] | None = None) -> ApiKey:
    """The Telnyx API key from the environment, or from Secrets Manager (cached 5 minutes)."""
    env = os.environ if environ is None else environ
    direct = env.get(API_KEY_VARIABLE, "").strip()
    if direct:
        return ApiKey(direct, API_KEY_VARIABLE)
    secret_arn = env.get(API_KEY_SECRET_VARIABLE, "").strip()
    if not secret_arn:
        raise MissingApiKeyError(
            f"is not set, and neither is {API_KEY_SECRET_VARIABLE} (the ARN of the secret holding the key)"
        )
    source = f"the secret {secret_arn} named by {API_KEY_SECRET_VARIABLE}"
    secret = parameters.get_secret(secret_arn, max_age=SECRET_MAX_AGE_SECONDS)
    value = secret.strip() if isinstance(secret, str) else ""
    if not value:
        raise MissingApiKeyError(f"is not set, and {source} has an empty SecretString")
    return ApiKey(value, source)


def build_client(
    api_key: str,
    *,
    base_url: str | None = None,
    timeout: httpx.Timeout = DEFAULT_TIMEOUT,
) -> Telnyx:
    """A client that never retries by itself; `base_url=None` lets the SDK read TELNYX_BASE_URL."""
    return Telnyx(api_key=api_key, base_url=base_url, timeout=timeout, max_retries=0)


class _ClientCache:
    """Keeps one client per container, replaced only when the key or base URL changes (a rotated secret)."""

    def __init__(self) -> None:
        self._identity: tuple[str, str | None] | None = None
        self._client: Telnyx | None = None

    def get(self, api_key: ApiKey, base_url: str | None) -> Telnyx:
        identity = (api_key.value, base_url)
        if self._client is None or self._identity != identity:
            client = build_client(api_key.value, base_url=base_url)
            # The first touch of `calls` imports the SDK's resource modules (about a
            # second): pay it now, during the Lambda init phase, not in the first command.
            _ = client.calls.actions
            self._identity, self._client = identity, client
        return self._client


_CACHE = _ClientCache()


def get_client(api_key: ApiKey | None = None, environ: Mapping[str, str] | None = None) -> Telnyx:
    """The container's client; call it at module level of the handler, and again per invocation if you like.

    Cheap after the first call: the key comes from the environment or the
    Powertools cache, and the client is rebuilt only if the key has changed.
    """
    env = os.environ if environ is None else environ
    key = api_key if api_key is not None else load_api_key(env)
    base_url = env.get(BASE_URL_VARIABLE, "").strip() or None
    return _CACHE.get(key, base_url)
