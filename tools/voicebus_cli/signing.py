"""`voicebus sign`: a JSON body signed with the test key, as headers, a curl command, or sent.

The curl command is printed for `| sh`, so every word that comes from the user (the
URL, the file's path) or from the signature is quoted with `shlex.quote`: a space or
a quote in either cannot split the command or run anything else.
"""

from __future__ import annotations

import json
import shlex
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from voicebus.ingress.signature import sign
from voicebus_cli.cli_errors import UsageError
from voicebus_cli.testkey import load_test_key

CONTENT_TYPE = "application/json"
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def signed_headers(body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """Telnyx's signature headers for `body`, with the test key, at `timestamp` (default now)."""
    return sign(body, load_test_key().signing_key, int(time.time()) if timestamp is None else timestamp)


def read_json_body(path: str) -> bytes:
    """The file's bytes, refused unless they are JSON (a typo'd file should not be signed and sent)."""
    body = Path(path).read_bytes()
    json.loads(body)
    return body


def curl_command(url: str, path: str, headers: dict[str, str]) -> str:
    """A curl command POSTing the file as signed; `--fail-with-body` makes a 4xx/5xx fail `sh`."""
    words = ["curl", "-sS", "--fail-with-body", "-X", "POST", shlex.quote(url)]
    words += ["-H", shlex.quote(f"content-type: {CONTENT_TYPE}")]
    for name, value in headers.items():
        words += ["-H", shlex.quote(f"{name}: {value}")]
    words += ["--data-binary", shlex.quote(f"@{path}")]
    return " ".join(words)


@dataclass(frozen=True)
class SentRequest:
    status: int
    body: str

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def send(url: str, body: bytes, headers: dict[str, str], timeout: float = 10.0) -> SentRequest:
    """POST the signed body; any HTTP answer is returned (4xx/5xx too), a connection failure raises."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in {"http", "https"} or not parsed.hostname:
        raise UsageError(f"--url must be an http(s) URL, not {url!r}")
    request = urllib.request.Request(  # noqa: S310 - the scheme is checked above
        url, data=body, method="POST", headers={"content-type": CONTENT_TYPE, **headers}
    )
    # A proxy from the environment has no business between us and the local stack.
    handlers = [urllib.request.ProxyHandler({})] if parsed.hostname in _LOOPBACK else []
    opener = urllib.request.build_opener(*handlers)
    try:
        with opener.open(request, timeout=timeout) as response:
            return SentRequest(response.status, response.read().decode("utf-8", "replace"))
    except urllib.error.HTTPError as error:
        return SentRequest(error.code, error.read().decode("utf-8", "replace"))


def run_sign(path: str, url: str | None, send_it: bool) -> int:
    body = read_json_body(path)
    headers = signed_headers(body)
    if send_it:
        if not url:
            raise UsageError("--send needs --url")
        answer = send(url, body, headers)
        print(f"HTTP {answer.status}")
        if answer.body:
            print(answer.body)
        return 0 if answer.ok else 1
    if url:
        print(curl_command(url, path, headers))
    else:
        print(json.dumps(headers, indent=2))
    return 0
