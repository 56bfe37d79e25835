"""Where the Telnyx API is and which key opens it.

The API key is `TELNYX_API_KEY` when set (local runs and tests use it as is),
else the SecretString of the Secrets Manager secret whose ARN is in
`TELNYX_API_KEY_SECRET_ARN`, read through Powertools parameters and cached for
five minutes. `TELNYX_BASE_URL` points the clients elsewhere (the local Telnyx
stand-in, for instance); unset or empty means Telnyx itself.

Call Control commands do not go through the SDK: `voicebus.commands.http` sends
them over urllib3, because `import telnyx` loads the SDK's whole type tree
(seconds of cold start, while the caller hears ringing). The one rare path that
uses the SDK, fresh links for an expired recording, has its own module
(`voicebus.archive.recording_links`).

Per-request timeouts are short: a Lambda invocation cannot wait out the SDK's
default minute, and the command sender retries by itself within the time the
invocation has left.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from aws_lambda_powertools.utilities import parameters

from voicebus.config import ConfigurationError

API_KEY_VARIABLE = "TELNYX_API_KEY"
API_KEY_SECRET_VARIABLE = "TELNYX_API_KEY_SECRET_ARN"  # noqa: S105 - a variable name, not a secret
BASE_URL_VARIABLE = "TELNYX_BASE_URL"
DEFAULT_BASE_URL = "https://api.telnyx.com/v2"
"""The SDK's default, used when TELNYX_BASE_URL is unset or empty."""
SECRET_MAX_AGE_SECONDS = 300
CONNECT_TIMEOUT_SECONDS = 2.0
READ_TIMEOUT_SECONDS = 5.0
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


def base_url(environ: Mapping[str, str] | None = None) -> str | None:
    """TELNYX_BASE_URL, or None when it is unset or empty (meaning Telnyx itself)."""
    env = os.environ if environ is None else environ
    return env.get(BASE_URL_VARIABLE, "").strip() or None
