"""Fresh download links for a recording whose presigned link has expired: the one path that uses the telnyx SDK.

`call.recording.saved` links last 10 minutes; a retry after that asks Telnyx for the
recording again (`GET /recordings/{id}`) through the SDK. `import telnyx` loads the
SDK's whole type tree (seconds), so it happens here, on first use of this rare
path, and never at a cold start: the recording function imports this module, not
the SDK. The client is built once per container, with short timeouts and no SDK
retries (the archive is retried by Lambda and EventBridge).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

from voicebus.commands.client import (
    CONNECT_TIMEOUT_SECONDS,
    DEFAULT_BASE_URL,
    READ_TIMEOUT_SECONDS,
    ApiKey,
    base_url,
    load_api_key,
)
from voicebus.errors import RetryableError

if TYPE_CHECKING:  # annotations only: never imported at run time here
    from telnyx import Telnyx


class RecordingLinkError(RetryableError):
    """Telnyx gave no fresh download link for a recording whose link had expired."""


def build_client(api_key: str, *, base_url: str | None = None) -> Telnyx:
    """An SDK client that never retries by itself; `base_url=None` lets the SDK read TELNYX_BASE_URL.

    Imports the telnyx SDK (seconds on a cold start): only this module's rare path calls it.
    """
    import httpx
    from telnyx import Telnyx

    timeout = httpx.Timeout(READ_TIMEOUT_SECONDS, connect=CONNECT_TIMEOUT_SECONDS)
    return Telnyx(api_key=api_key, base_url=base_url, timeout=timeout, max_retries=0)


class _ClientCache:
    """Keeps one SDK client per container, replaced only when the key or base URL changes (a rotated secret)."""

    def __init__(self) -> None:
        self._identity: tuple[str, str | None] | None = None
        self._client: Telnyx | None = None

    def get(self, api_key: ApiKey, url: str | None) -> Telnyx:
        identity = (api_key.value, url)
        if self._client is None or self._identity != identity:
            self._identity, self._client = identity, build_client(api_key.value, base_url=url or DEFAULT_BASE_URL)
        return self._client


_CACHE = _ClientCache()


def sdk_client(api_key: ApiKey | None = None, environ: Mapping[str, str] | None = None) -> Telnyx:
    """The container's SDK client, built on first use (importing the SDK then), rebuilt if the key changes."""
    env = os.environ if environ is None else environ
    key = api_key if api_key is not None else load_api_key(env)
    return _CACHE.get(key, base_url(env))


def fresh_download_url(recording_id: str, fmt: str) -> str:
    """A new link for an expired one, from Telnyx's recording resource."""
    recording = sdk_client().recordings.retrieve(recording_id).data
    urls = recording.download_urls if recording is not None else None
    url = getattr(urls, fmt, None) if urls is not None else None
    if not url:
        raise RecordingLinkError(f"Telnyx has no {fmt} download link for recording {recording_id}")
    return str(url)
