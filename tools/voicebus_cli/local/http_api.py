"""The HTTP API route served on 127.0.0.1 by the ingress handler, as API Gateway would call it.

Requests are served side by side, each handed to the function (its pool of execution
environments), as API Gateway invokes Lambda. Headers reach the event as payload 2.0
has them: names in lower case, a header sent twice joined with commas.
"""

from __future__ import annotations

import base64
import contextlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

from voicebus_cli.webhooks import api_gateway_event

# API Gateway HTTP APIs refuse payloads over 10 MB before Lambda sees them.
MAX_REQUEST_BYTES = 10 * 1024 * 1024


class Invocable(Protocol):
    """A function as the API calls it: one environment (`LoadedFunction`) or a pool (`FunctionPool`)."""

    def invoke(self, event: dict[str, Any]) -> Any: ...


def joined_headers(headers: Message) -> dict[str, str]:
    """Payload 2.0's headers: lower-case names, the values of a repeated header joined with commas."""
    joined: dict[str, list[str]] = {}
    for name, value in headers.items():
        joined.setdefault(name.lower(), []).append(value)
    return {name: ",".join(values) for name, values in joined.items()}


@dataclass(frozen=True)
class Exchange:
    """One request to the API and the answer it got: what the timeline shows as "webhook in"."""

    method: str
    path: str
    body: bytes
    status: int
    answer: bytes
    at: float


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # Telnyx's bursts: many senders connect at once


class LocalHttpApi:
    """Turns HTTP requests into payload 2.0 events for one function, many at a time."""

    def __init__(
        self, function: Invocable, port: int = 0, on_exchange: Callable[[Exchange], None] | None = None
    ) -> None:
        self.function = function
        self.on_exchange = on_exchange
        api = self

        class RequestHandler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                api.forward(self)

            do_GET = do_PUT = do_PATCH = do_DELETE = do_POST

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the functions log for themselves."""

        self._server = _Server(("127.0.0.1", port), RequestHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> LocalHttpApi:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def forward(self, request: BaseHTTPRequestHandler) -> None:
        length = int(request.headers.get("content-length") or 0)
        if length > MAX_REQUEST_BYTES:
            self._reply(request, 413, {"message": "Request Entity Too Large"}, {})
            return
        body = request.rfile.read(length)
        path = request.path.split("?", 1)[0]
        is_text = "json" in (request.headers.get("content-type") or "") or "text" in (
            request.headers.get("content-type") or ""
        )
        try:
            body.decode("utf-8")
        except UnicodeDecodeError:
            is_text = False
        event = api_gateway_event(
            body, joined_headers(request.headers), base64_body=not is_text, method=request.command, path=path
        )
        try:
            result = self.function.invoke(event)
            payload = result.get("body") or ""
            raw = base64.b64decode(payload) if result.get("isBase64Encoded") else payload.encode("utf-8")
            status, headers = int(result.get("statusCode", 502)), result.get("headers") or {}
        except Exception as exc:  # API Gateway answers 500 when the integration fails
            status, headers = 500, {"Content-Type": "application/json"}
            problem = f"{type(exc).__name__}: {exc}"
            raw = json.dumps({"message": "Internal Server Error", "local_error": problem}).encode()
        self._send(request, status, raw, headers)
        if self.on_exchange is not None:
            with contextlib.suppress(Exception):  # the timeline must never break the API
                self.on_exchange(Exchange(request.command, path, body, status, raw, time.time()))

    def _reply(self, request: BaseHTTPRequestHandler, status: int, body: Any, headers: dict[str, str]) -> None:
        self._send(request, status, json.dumps(body).encode(), {"Content-Type": "application/json", **headers})

    @staticmethod
    def _send(request: BaseHTTPRequestHandler, status: int, body: bytes, headers: dict[str, str]) -> None:
        request.send_response(status)
        for name, value in headers.items():
            request.send_header(name, value)
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        request.wfile.write(body)
