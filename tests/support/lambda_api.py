"""A local server speaking Lambda's Invoke API, for `invoke` steps called through real boto3 over HTTP.

moto's Lambda invoke needs Docker; this answers `POST /2015-03-31/functions/{name}/invocations`
the way Lambda does (200 with the function's JSON result, `X-Amz-Function-Error` when the
function raised, 404 for an unknown function), from a Python callable per function name.
Point boto3 at it with `AWS_ENDPOINT_URL_LAMBDA`.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

PATH_PREFIX = "/2015-03-31/functions/"
PATH_SUFFIX = "/invocations"

# A function: its event -> its result (any JSON value); raising makes it an Unhandled function error.
Function = Callable[[Any], Any]


@dataclass
class Invocation:
    function: str
    invocation_type: str | None
    payload: Any


@dataclass
class LambdaApi:
    functions: dict[str, Function] = field(default_factory=dict)
    invocations: list[Invocation] = field(default_factory=list)
    url: str = ""


def _handler(api: LambdaApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the tests assert on `invocations`."""

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            body = self.rfile.read(length)
            if not (self.path.startswith(PATH_PREFIX) and self.path.endswith(PATH_SUFFIX)):
                self._send(404, {"message": f"no route {self.path}"})
                return
            name = unquote(self.path[len(PATH_PREFIX) : -len(PATH_SUFFIX)]).split(":")[-1]
            payload = json.loads(body or b"null")
            api.invocations.append(Invocation(name, self.headers.get("x-amz-invocation-type"), payload))
            function = api.functions.get(name)
            if function is None:
                self._send(
                    404,
                    {"Type": "User", "message": f"Function not found: {name}"},
                    error_type="ResourceNotFoundException",
                )
                return
            try:
                result = function(payload)
            except Exception as exc:  # the function raised: Lambda answers 200 with X-Amz-Function-Error
                self._send(200, {"errorMessage": str(exc), "errorType": type(exc).__name__}, function_error="Unhandled")
                return
            self._send(200, result)

        def _send(
            self, status: int, value: Any, *, function_error: str | None = None, error_type: str | None = None
        ) -> None:
            data = json.dumps(value).encode()
            try:
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.send_header("x-amz-executed-version", "$LATEST")
                if function_error is not None:
                    self.send_header("x-amz-function-error", function_error)
                if error_type is not None:
                    self.send_header("x-amzn-errortype", error_type)
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (its read timeout): as a real endpoint, nothing to do

    return Handler


@contextmanager
def lambda_api() -> Iterator[LambdaApi]:
    """The server on 127.0.0.1 (an ephemeral port) for the duration."""
    api = LambdaApi()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(api))
    server.daemon_threads = True
    api.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield api
    finally:
        server.shutdown()
        server.server_close()
