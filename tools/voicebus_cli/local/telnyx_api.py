"""A local stand-in for the Telnyx API, strict about the vendored OpenAPI spec.

It listens on 127.0.0.1 (an ephemeral port, a background thread) and serves the
spec's paths under `/v2`, the way the SDK joins its base URL and paths. Every
request is checked as Telnyx would: an unknown path is a 404, a known path with
the wrong method a 405, a missing or wrong `Authorization: Bearer <key>` a 401,
and a JSON body that breaks the operation's requestBody schema (JSON Schema
2020-12, `$ref`s resolved inside the spec) a 422 in Telnyx's error shape. A
request that passes is recorded and answered like the spec's 200 response.

Test hooks: `fail_next` queues faults (a status with Telnyx's error body, or a
dropped connection) for the next requests that reach a known route;
`set_recording` stores what `GET /recordings/{recording_id}` answers;
`requests` / `take_requests` read what was received.
"""

from __future__ import annotations

import contextlib
import functools
import json
import re
import socket
import threading
import time
import urllib.parse
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

from jsonschema import Draft202012Validator  # type: ignore[import-untyped]  # no stubs in the dev group
from jsonschema.exceptions import ValidationError, best_match  # type: ignore[import-untyped]
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from voicebus.calls import client_state

SPEC_PATH = Path(__file__).resolve().parent / "telnyx-voice-openapi.json"
DEFAULT_API_KEY = "KEY_voicebus_stand_in"
_SPEC_URI = "urn:voicebus:telnyx-voice-openapi"
_METHODS = ("get", "put", "post", "delete", "patch")
INSPECT_PATH = "/_voicebus/requests"
"""Not a Telnyx path: GET lists the requests received (for `voicebus play`, which runs in another process)."""
_ACTION_PATH = re.compile(r"/calls/\{call_control_id\}/actions/(?P<action>[a-z_]+)$")
_RANGE_KEYWORDS = frozenset(
    {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "minLength", "maxLength", "minItems", "maxItems"}
)

JsonBody = dict[str, Any]


def telnyx_error(code: str, title: str, detail: str, pointer: str | None = None) -> dict[str, Any]:
    """One entry of Telnyx's `{"errors": [...]}`."""
    entry: dict[str, Any] = {"code": code, "title": title, "detail": detail}
    if pointer is not None:
        entry["source"] = {"pointer": pointer}
    return entry


def _pointer(parts: Iterable[str | int]) -> str:
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in parts)


# ---------------------------------------------------------------------------
# The spec: routes and validators


@dataclass(frozen=True)
class Operation:
    """One method on one spec path."""

    method: str  # upper case
    template: str  # the spec's path, e.g. /calls/{call_control_id}/actions/speak
    operation_id: str
    spec_pointer: str  # JSON pointer to the operation object in the spec

    @property
    def action(self) -> str | None:
        """The Call Control action of `/calls/{call_control_id}/actions/<action>`."""
        match = _ACTION_PATH.search(self.template)
        return match.group("action") if match else None


@dataclass(frozen=True)
class _Route:
    template: str
    pattern: re.Pattern[str]
    operations: Mapping[str, Operation]


class OpenApiSpec:
    """The vendored spec: which operation a request is, and what its bodies must look like."""

    def __init__(self, document: Mapping[str, Any]) -> None:
        self.document = document
        self.prefix = urllib.parse.urlsplit(document["servers"][0]["url"]).path.rstrip("/")  # "/v2"
        resource = Resource.from_contents(document, default_specification=DRAFT202012)
        self._registry: Registry[Any] = Registry().with_resource(_SPEC_URI, resource)
        self._validators: dict[str, Draft202012Validator] = {}
        self._lock = threading.Lock()
        routes = []
        for template, item in document["paths"].items():
            operations = {
                method.upper(): Operation(
                    method.upper(),
                    template,
                    str(item[method].get("operationId", "")),
                    _pointer(["paths", template, method]),
                )
                for method in _METHODS
                if method in item
            }
            regex = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template))
            routes.append(_Route(template, re.compile(f"^{regex}$"), operations))
        # Literal segments win over parameters: /recordings/actions/delete before /recordings/{recording_id}.
        self._routes = sorted(routes, key=lambda route: (route.template.count("{"), -len(route.template)))

    def route(self, path: str) -> tuple[_Route, dict[str, str]] | None:
        """The spec path that `path` (with the /v2 prefix) is, and its decoded parameters."""
        if not path.startswith(self.prefix + "/"):
            return None
        relative = path[len(self.prefix) :]
        for route in self._routes:
            match = route.pattern.match(relative)
            if match:
                return route, {name: urllib.parse.unquote(value) for name, value in match.groupdict().items()}
        return None

    def request_schema_pointer(self, operation: Operation) -> str | None:
        """Where the operation's JSON request body schema is, following a requestBody `$ref`."""
        request_body = self.resolve(operation.spec_pointer).get("requestBody")
        if request_body is None:
            return None
        if "$ref" in request_body:
            base = str(request_body["$ref"]).removeprefix("#")
            request_body = self.resolve(base)
        else:
            base = operation.spec_pointer + "/requestBody"
        if "application/json" not in request_body.get("content", {}):
            return None
        return base + "/content/application~1json/schema"

    def requires_body(self, operation: Operation) -> bool:
        request_body = self.resolve(operation.spec_pointer).get("requestBody") or {}
        if "$ref" in request_body:
            request_body = self.resolve(request_body["$ref"].removeprefix("#"))
        return bool(request_body.get("required", False))

    def response_schema_pointer(self, operation: Operation, status: int) -> str:
        return operation.spec_pointer + f"/responses/{status}/content/application~1json/schema"

    def resolve(self, pointer: str) -> Any:
        """The spec's value at a JSON pointer."""
        value: Any = self.document
        for part in pointer.lstrip("/").split("/"):
            value = value[part.replace("~1", "/").replace("~0", "~")]
        return value

    def validator(self, schema_pointer: str) -> Draft202012Validator:
        """A Draft 2020-12 validator for the schema at `schema_pointer`, `$ref`s resolved in the spec."""
        with self._lock:
            validator = self._validators.get(schema_pointer)
            if validator is None:
                reference = f"{_SPEC_URI}#{urllib.parse.quote(schema_pointer, safe='/~')}"
                validator = Draft202012Validator(
                    {"$ref": reference},
                    registry=self._registry,
                    format_checker=Draft202012Validator.FORMAT_CHECKER,
                )
                self._validators[schema_pointer] = validator
            return validator

    def errors(self, schema_pointer: str, instance: Any) -> list[dict[str, Any]]:
        """Telnyx-shaped errors for everything in `instance` that the schema refuses; empty when valid."""
        entries: dict[tuple[str, str | None], dict[str, Any]] = {}
        for error in self.validator(schema_pointer).iter_errors(instance):
            for entry in _telnyx_errors(_most_specific(error)):
                entries.setdefault((entry["code"], entry.get("source", {}).get("pointer")), entry)
        return list(entries.values())


def _most_specific(error: ValidationError) -> ValidationError:
    """For a failed oneOf/anyOf (voice_settings), the error inside the branch that was meant."""
    if error.validator in ("oneOf", "anyOf") and error.context:
        meant = [sub for sub in error.context if not (sub.validator in ("enum", "const") and sub.path)]
        candidate = best_match(meant or error.context)
        if candidate is not None:
            return _most_specific(candidate)
    return error


def _telnyx_errors(error: ValidationError) -> list[dict[str, Any]]:
    path = list(error.absolute_path)
    if error.validator == "required":
        instance = error.instance if isinstance(error.instance, Mapping) else {}
        missing = [name for name in error.validator_value if name not in instance]
        return [
            telnyx_error(
                "10004",
                "Missing required parameter",
                f"The '{name}' parameter is required and cannot be blank.",
                _pointer([*path, name]),
            )
            for name in missing
        ]
    if error.validator in ("enum", "const"):
        allowed = error.validator_value if error.validator == "enum" else [error.validator_value]
        values = ", ".join(str(value) for value in allowed)
        return [
            telnyx_error("10032", "Invalid enumerated value", f"The value must be one of: {values}.", _pointer(path))
        ]
    if error.validator in _RANGE_KEYWORDS:
        return [telnyx_error("10033", "Value outside of range", error.message, _pointer(path))]
    return [telnyx_error("10015", "Bad Request", error.message, _pointer(path))]


@functools.cache
def load_spec(path: Path = SPEC_PATH) -> OpenApiSpec:
    """The spec, parsed once per test run (it is 700 KB)."""
    return OpenApiSpec(json.loads(path.read_text(encoding="utf-8")))


# ---------------------------------------------------------------------------
# What the stand-in records and the faults it can inject


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the stand-in received it, and the status it answered (None: connection dropped)."""

    method: str
    path: str
    status: int | None
    operation_id: str
    call_control_id: str | None
    action: str | None
    body: Any  # the parsed JSON body; None without one
    raw_body: bytes
    headers: Mapping[str, str]  # lower-case names
    received_at: float = field(default_factory=time.time)

    @property
    def command_id(self) -> str | None:
        value = self.body.get("command_id") if isinstance(self.body, Mapping) else None
        return value if isinstance(value, str) else None

    @property
    def client_state(self) -> Any:
        """client_state decoded back to the JSON value voicebus encoded; None when absent."""
        if not isinstance(self.body, Mapping) or "client_state" not in self.body:
            return None
        return client_state.decode(self.body["client_state"]).value


@dataclass(frozen=True)
class Fault:
    """What to answer instead of the real thing; `status=None` closes the connection without a response."""

    status: int | None
    body: JsonBody | None = None
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def rate_limited(cls, retry_after_seconds: float | None = None) -> Fault:
        headers = {} if retry_after_seconds is None else {"Retry-After": f"{retry_after_seconds:g}"}
        return cls(429, {"errors": [telnyx_error("10011", "Too many requests", "Rate limit exceeded.")]}, headers)

    @classmethod
    def server_error(cls, status: int = 500) -> Fault:
        title = "Service unavailable" if status == 503 else "Internal server error"
        return cls(status, {"errors": [telnyx_error("10007", title, "An unexpected error occurred.")]})

    @classmethod
    def call_ended(cls) -> Fault:
        """The spec's `call_already_ended` example of a 422."""
        detail = "This call is no longer active and can't receive commands."
        return cls(422, {"errors": [telnyx_error("90018", "Call has already ended", detail)]})

    @classmethod
    def unauthorized(cls) -> Fault:
        return cls(401, _UNAUTHORIZED)

    @classmethod
    def dropped(cls) -> Fault:
        return cls(None)


_UNAUTHORIZED = {
    "errors": [
        telnyx_error(
            "10009",
            "Authentication failed",
            "The required authentication headers were either invalid or not included in the request.",
        )
    ]
}
_COMMAND_OK = {"data": {"result": "ok"}}


# ---------------------------------------------------------------------------
# The server


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], stand_in: TelnyxApiStandIn) -> None:
        super().__init__(address, _Handler)
        self.stand_in = stand_in


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as httpx expects
    timeout = 30  # idle keep-alive connections close eventually
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.stand_in._connections.add(self.connection)

    def finish(self) -> None:
        self.server.stand_in._connections.discard(self.connection)
        super().finish()

    def do_GET(self) -> None:
        self.server.stand_in._handle(self)

    def do_POST(self) -> None:
        self.server.stand_in._handle(self)

    def do_PUT(self) -> None:
        self.server.stand_in._handle(self)

    def do_PATCH(self) -> None:
        self.server.stand_in._handle(self)

    def do_DELETE(self) -> None:
        self.server.stand_in._handle(self)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read `requests()`, not stderr."""

    def read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def answer(self, status: int, body: Any, headers: Mapping[str, str] | None = None) -> None:
        payload = json.dumps(body).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)


class TelnyxApiStandIn:
    """The Telnyx API on 127.0.0.1 for one test (or a session): `with TelnyxApiStandIn() as api: api.base_url`."""

    def __init__(
        self, *, api_key: str = DEFAULT_API_KEY, spec: OpenApiSpec | None = None, host: str = "127.0.0.1"
    ) -> None:
        self.api_key = api_key
        self.host = host  # other than loopback only for containers (`sam local`) that reach it at docker0's address
        self.spec = spec or load_spec()
        self._lock = threading.Lock()
        self._faults: deque[Fault] = deque()
        self._requests: list[RecordedRequest] = []
        self._recordings: dict[str, JsonBody] = {}
        self._connections: set[socket.socket] = set()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the Telnyx stand-in is not running")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        """What to give the SDK as base_url (or TELNYX_BASE_URL)."""
        return f"http://{self.host}:{self.port}{self.spec.prefix}"

    def start(self) -> TelnyxApiStandIn:
        self._server = _Server((self.host, 0), self)
        self._thread = threading.Thread(target=self._server.serve_forever, name="telnyx-stand-in", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        for connection in list(self._connections):
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server, self._thread = None, None

    def __enter__(self) -> TelnyxApiStandIn:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()

    # -- test hooks

    def fail_next(self, *faults: Fault) -> None:
        """Answer the next requests to known routes with these faults, in order, before any other check."""
        with self._lock:
            self._faults.extend(faults)

    def pending_faults(self) -> int:
        with self._lock:
            return len(self._faults)

    def set_recording(
        self,
        recording_id: str,
        download_urls: Mapping[str, str],
        **fields: Any,
    ) -> JsonBody:
        """What `GET /recordings/{recording_id}` answers: a completed call recording, checked against the spec."""
        data: JsonBody = {
            "record_type": "recording",
            "id": recording_id,
            "call_control_id": "v3:stand-in-call",
            "call_leg_id": "stand-in-leg",
            "call_session_id": "stand-in-session",
            "channels": "single",
            "source": "call",
            "status": "completed",
            "created_at": "2026-11-21T10:00:00Z",
            "updated_at": "2026-11-21T10:01:00Z",
            "recording_started_at": "2026-11-21T10:00:00Z",
            "recording_ended_at": "2026-11-21T10:01:00Z",
            "duration_millis": 60000,
            "download_urls": dict(download_urls),
            **fields,
        }
        body = {"data": data}
        route = self.spec.route(f"{self.spec.prefix}/recordings/{recording_id}")
        if route is None:
            raise ValueError(f"{recording_id!r} does not fit /recordings/{{recording_id}}")
        problems = self.spec.errors(self.spec.response_schema_pointer(route[0].operations["GET"], 200), body)
        if problems:
            raise ValueError(f"this recording breaks the spec's RecordingResponse: {problems}")
        with self._lock:
            self._recordings[recording_id] = body
        return body

    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, oldest first, including refused ones."""
        with self._lock:
            return list(self._requests)

    def take_requests(self) -> list[RecordedRequest]:
        """Every request received so far, forgetting them."""
        with self._lock:
            taken, self._requests = self._requests, []
            return taken

    def clear(self) -> None:
        """Forget requests, faults and recordings."""
        with self._lock:
            self._requests.clear()
            self._faults.clear()
            self._recordings.clear()

    def _inspection(self) -> list[JsonBody]:
        """What INSPECT_PATH answers: each request as received, oldest first."""
        fields = ("method", "path", "status", "call_control_id", "action", "body")
        return [{name: getattr(request, name) for name in fields} for request in self.requests()]

    # -- handling one request

    def _handle(self, handler: _Handler) -> None:
        method = handler.command
        path = urllib.parse.urlsplit(handler.path).path
        raw = handler.read_body()
        headers = {name.lower(): value for name, value in handler.headers.items()}
        body = _parse_json(raw)
        if method == "GET" and path == INSPECT_PATH:
            handler.answer(200, {"data": self._inspection()})
            return
        routed = self.spec.route(path)
        operation = routed[0].operations.get(method) if routed else None
        params = routed[1] if routed else {}

        def record(status: int | None) -> None:
            entry = RecordedRequest(
                method=method,
                path=path,
                status=status,
                operation_id=operation.operation_id if operation else "",
                call_control_id=params.get("call_control_id"),
                action=operation.action if operation else None,
                body=body,
                raw_body=raw,
                headers=headers,
            )
            with self._lock:
                self._requests.append(entry)

        if routed is None:
            record(404)
            detail = f"{method} {path} is not a path of the Telnyx API."
            handler.answer(404, {"errors": [telnyx_error("10005", "Resource not found", detail)]})
            return
        if operation is None:
            allowed = ", ".join(sorted(routed[0].operations))
            record(405)
            detail = f"{path} does not accept {method}; it accepts {allowed}."
            handler.answer(405, {"errors": [telnyx_error("10015", "Method not allowed", detail)]}, {"Allow": allowed})
            return

        with self._lock:
            fault = self._faults.popleft() if self._faults else None
        if fault is not None:
            record(fault.status)
            if fault.status is None:
                handler.drop()
            else:
                handler.answer(fault.status, fault.body or {}, fault.headers)
            return

        if headers.get("authorization") != f"Bearer {self.api_key}":
            record(401)
            handler.answer(401, _UNAUTHORIZED)
            return

        status, answer = self._answer(operation, params, raw, body)
        record(status)
        handler.answer(status, answer)

    def _answer(self, operation: Operation, params: Mapping[str, str], raw: bytes, body: Any) -> tuple[int, Any]:
        schema_pointer = self.spec.request_schema_pointer(operation)
        if schema_pointer is not None and (raw or self.spec.requires_body(operation)):
            if body is None:
                detail = "The request body is not valid JSON." if raw else "The request body is missing."
                return 400, {"errors": [telnyx_error("10015", "Bad Request", detail)]}
            problems = self.spec.errors(schema_pointer, body)
            if problems:
                return 422, {"errors": problems}
        if operation.action is not None:
            return 200, _COMMAND_OK
        if operation.operation_id == "GetRecording":
            with self._lock:
                recording = self._recordings.get(params["recording_id"])
            if recording is None:
                detail = f"No recording {params['recording_id']} (set one with set_recording)."
                return 404, {"errors": [telnyx_error("10005", "Resource not found", detail)]}
            return 200, recording
        detail = f"The stand-in does not implement {operation.operation_id} ({operation.method} {operation.template})."
        return 501, {"errors": [telnyx_error("10015", "Not implemented", detail)]}


def _parse_json(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
