"""Shared by bench/cost.py and bench/reaction.py: the local stack without its SQS hops, and Telnyx's side of a call.

`DirectStack` provisions template.yaml in moto server and serves the ingress on
127.0.0.1 as the local stack does, but starts no rule workers: what the ingress
puts on the bus is caught as it is put (a botocore hook), matched against the
template's rule patterns (moto's own matcher) and handed to the targeted functions
in the caller's thread, call control first (in AWS they run side by side). Nothing
polls SQS, so every AWS request made during a call is one AWS would bill, and each
invocation is timed as Lambda bills it (wall time, rounded up to 1 ms).
"""

from __future__ import annotations

import io
import json
import math
import os
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import boto3
from moto.events.models import EventPattern
from nacl.signing import SigningKey

from voicebus.ingress.signature import sign
from voicebus_cli.local.functions import LoadedFunction
from voicebus_cli.local.http_api import LocalHttpApi
from voicebus_cli.local.moto_server import MotoServer
from voicebus_cli.local.provision import provision
from voicebus_cli.local.stack import LOCAL_SECRET_ARN
from voicebus_cli.local.telnyx_api import TelnyxApiStandIn
from voicebus_cli.local.template import ACCOUNT_ID, Stack, load_template
from voicebus_cli.testkey import ROOT, load_test_key
from voicebus_cli.webhooks import compact, envelope

PARTIES = {"from": "+15550001111", "to": "+15550009999", "direction": "incoming"}


class LogBytes(io.StringIO):
    """A function's stdout (its logs and EMF metrics, CloudWatch Logs' ingestion): counted, not kept."""

    def __init__(self) -> None:
        super().__init__()
        self.bytes = 0

    def write(self, text: str) -> int:
        self.bytes += len(text.encode("utf-8"))
        return len(text)


@dataclass(frozen=True)
class Run:
    function: str
    seconds: float
    memory_mb: int
    error: str | None = None

    @property
    def billed_ms(self) -> int:
        """Lambda bills duration rounded up to the next millisecond."""
        return max(1, math.ceil(self.seconds * 1000))

    @property
    def gb_seconds(self) -> float:
        return self.billed_ms / 1000 * self.memory_mb / 1024


class TimedFunction(LoadedFunction):
    """A loaded function whose every invocation is timed into `runs`; its import time is `init_seconds`."""

    def __init__(self, *args: Any, runs: list[Run], memory_mb: int, **kwargs: Any) -> None:
        self.runs = runs
        self.memory_mb = memory_mb
        start = time.perf_counter()
        super().__init__(*args, **kwargs)
        self.init_seconds = time.perf_counter() - start

    def invoke(self, event: dict[str, Any]) -> Any:
        start = time.perf_counter()
        error: str | None = None
        try:
            return super().invoke(event)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            self.runs.append(Run(self.name, time.perf_counter() - start, self.memory_mb, error))


class DirectStack:
    """moto, the Telnyx stand-in, the HTTP API and every function of template.yaml; no rule workers."""

    def __init__(self) -> None:
        self.name = f"bench-{uuid.uuid4().hex[:6]}"
        self.runs: list[Run] = []
        self.answers: list[float] = []
        self.logs: dict[str, LogBytes] = {}
        self.functions: dict[str, TimedFunction] = {}
        self.routes: list[tuple[str, EventPattern]] = []
        self._put: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self.moto = MotoServer()
        self.telnyx = TelnyxApiStandIn()
        self.api: LocalHttpApi | None = None
        self.sources: dict[str, tuple[Path, str, dict[str, str]]] = {}

    def start(self) -> DirectStack:
        self.moto.start()
        os.environ.update(self.moto.environment())
        boto3.setup_default_session()
        assert boto3.DEFAULT_SESSION is not None
        # Registered before any function makes its clients: each client copies the session's handlers.
        boto3.DEFAULT_SESSION.events.register("before-parameter-build.events.PutEvents", self._caught)
        parameters = {"TelnyxPublicKey": load_test_key().public_key_b64, "TelnyxApiKeySecretArn": LOCAL_SECRET_ARN}
        provisioned = provision(Stack(load_template(), self.name, parameters=parameters))
        self.telnyx.start()
        stack = provisioned.stack
        default_memory = int(stack.template.get("Globals", {}).get("Function", {}).get("MemorySize", 128))
        telnyx_env = {"TELNYX_API_KEY": self.telnyx.api_key, "TELNYX_BASE_URL": self.telnyx.base_url}
        for logical, function in provisioned.functions.items():
            props = stack.resources[logical].get("Properties", {})
            self.sources[logical] = (ROOT / function.code_uri, function.handler, {**function.environment, **telnyx_env})
            self.logs[logical] = LogBytes()
            self.load(logical, int(props.get("MemorySize", default_memory)))
            for event in props.get("Events", {}).values():
                if event["Type"] == "EventBridgeRule":
                    pattern = stack.resolve(event["Properties"])["Pattern"]
                    self.routes.append((logical, EventPattern.load(json.dumps(pattern))))
        self.routes.sort(key=lambda route: route[0] != "CallControlFunction")
        # time.time() right after each answer was written, as the HTTP API server saw it.
        self.api = LocalHttpApi(self.functions["IngressFunction"], on_exchange=lambda x: self.answers.append(x.at))
        self.api.start()
        return self

    def load(self, logical: str, memory_mb: int | None = None) -> TimedFunction:
        """Import the function's module afresh (a cold start) and route its events to the new one."""
        code, handler, env = self.sources[logical]
        memory = memory_mb if memory_mb is not None else self.functions[logical].memory_mb
        function = TimedFunction(
            logical, code, handler, env, stdout=self.logs[logical], runs=self.runs, memory_mb=memory
        )
        self.functions[logical] = function
        return function

    @property
    def webhook_url(self) -> str:
        assert self.api is not None
        return f"{self.api.url}/webhooks/telnyx"

    def _caught(self, params: dict[str, Any], **_: Any) -> None:
        with self._lock:
            self._put.extend(params.get("Entries", []))

    def deliver(self) -> None:
        """Invoke every function whose rule matches what was put on the bus, until nothing is left."""
        while True:
            with self._lock:
                entries, self._put = self._put, []
            if not entries:
                return
            for entry in entries:
                event = {
                    "version": "0",
                    "id": str(uuid.uuid4()),
                    "detail-type": entry["DetailType"],
                    "source": entry["Source"],
                    "account": ACCOUNT_ID,
                    "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "region": "us-east-1",
                    "resources": entry.get("Resources", []),
                    "detail": json.loads(entry["Detail"]),
                }
                for logical, pattern in self.routes:
                    if pattern.matches_event(cast(Any, event)):  # moto's TypedDict
                        self.functions[logical].invoke(json.loads(json.dumps(event)))

    def errors(self) -> list[str]:
        return [f"{run.function}: {run.error}" for run in self.runs if run.error]

    def log_bytes(self) -> int:
        return sum(log.bytes for log in self.logs.values())

    def stop(self) -> None:
        if self.api is not None:
            self.api.stop()
        self.telnyx.stop()
        self.moto.stop()

    def __enter__(self) -> DirectStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Caller:
    """Telnyx's side of one call: signed webhooks, each echoing the client_state of the call's last command."""

    def __init__(self, telnyx: TelnyxApiStandIn, key: SigningKey | None = None) -> None:
        self.telnyx = telnyx
        self.key = key or load_test_key().signing_key
        self.call_control_id = f"v3:bench-{uuid.uuid4().hex[:12]}"
        self.session = str(uuid.uuid4())
        self.clock = datetime.now(UTC)

    def webhook(self, event_type: str, **payload: Any) -> bytes:
        self.clock += timedelta(milliseconds=400)
        state = self.last_client_state()
        payload = {
            "call_control_id": self.call_control_id,
            "call_leg_id": str(uuid.uuid4()),
            "call_session_id": self.session,
            "connection_id": "1494404757140276705",
            **({"client_state": state} if state else {}),
            **payload,
        }
        return compact(envelope(event_type, payload, occurred_at=self.clock))

    def post(self, url: str, body: bytes) -> float:
        """Sign and POST; returns time.time() once the answer (which must be a 200) has been read."""
        request = urllib.request.Request(  # noqa: S310 - loopback
            url,
            data=body,
            method="POST",
            headers={**sign(body, self.key, int(time.time())), "content-type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            response.read()
            status = response.status
        answered = time.time()
        if status != 200:
            raise RuntimeError(f"webhook answered {status}")
        return answered

    def commands(self) -> list[tuple[str, float]]:
        """(action, time.time() the stand-in received it) for each command sent to this call."""
        return [
            (request.action or "", request.received_at)
            for request in self.telnyx.requests()
            if request.call_control_id == self.call_control_id
        ]

    def last_client_state(self) -> str | None:
        for request in reversed(self.telnyx.requests()):
            if request.call_control_id == self.call_control_id and isinstance(request.body, dict):
                state = request.body.get("client_state")
                if isinstance(state, str):
                    return state
        return None


Send = Callable[[bytes], None]


def demo_call(caller: Caller, send: Send, recording_url: str) -> None:
    """The demo's call, 9 webhooks: voicemail, a duplicate, one out of order, the recording, its transcript."""
    send(caller.webhook("call.initiated", state="parked", **PARTIES))
    answered = caller.webhook("call.answered", **PARTIES)
    send(answered)
    send(answered)  # Telnyx retried: a duplicate
    send(caller.webhook("call.gather.ended", digits="2", status="valid"))
    started = caller.webhook("call.speak.started")
    send(caller.webhook("call.speak.ended", status="completed"))
    send(started)  # late: sent before speak.ended
    recording_started = caller.clock
    send(caller.webhook("call.hangup", hangup_cause="normal_clearing", hangup_source="caller"))
    send(
        caller.webhook(
            "call.recording.saved",
            recording_id=f"rec-{caller.session}",
            channels="single",
            recording_started_at=recording_started.isoformat(),
            recording_ended_at=caller.clock.isoformat(),
            recording_urls={"mp3": recording_url, "wav": None},
        )
    )
    send(
        caller.webhook(
            "call.recording.transcription.saved",
            recording_id=f"rec-{caller.session}",
            recording_transcription_id=str(uuid.uuid4()),
            status="completed",
            transcription_text="Hi, this is Sam. Please call me back about my order. Thanks!",
        )
    )


def ten_event_call(caller: Caller, send: Send) -> None:
    """10 webhooks: no input, opening hours (a playback), the menu again, sales (a transfer), a key, hang-up."""
    send(caller.webhook("call.initiated", state="parked", **PARTIES))
    send(caller.webhook("call.answered", **PARTIES))
    send(caller.webhook("call.gather.ended", digits="", status="timeout"))
    send(caller.webhook("call.gather.ended", digits="3", status="valid"))
    send(caller.webhook("call.playback.started", media_url="https://example.test/hours.mp3"))
    send(caller.webhook("call.playback.ended", media_url="https://example.test/hours.mp3", status="completed"))
    send(caller.webhook("call.gather.ended", digits="1", status="valid"))
    send(caller.webhook("call.bridged", **PARTIES))
    send(caller.webhook("call.dtmf.received", digit="5"))
    send(caller.webhook("call.hangup", hangup_cause="normal_clearing", hangup_source="caller"))
