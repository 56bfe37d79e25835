"""Reaction time: from the webhook's HTTP answer to the Call Control command arriving at Telnyx.

Per event type that makes call control send a command on the voicemail path
(call.initiated -> answer, call.answered -> the menu, call.gather.ended -> the
prompt, call.speak.ended -> record), as a ratio to a plain single-process handler
doing the same work: verify the signature, decide (a table from event type to
command), answer 200, then send the same command body with urllib3 to the same
Telnyx stand-in. Each reaction is the stand-in's receive time (time.time(), taken
after it validated the request against the spec) less the time the server finished
writing the answer (the local HTTP API's exchange record; the floor's own, just before
it sends): both server-side, as the client's wake-up after reading would race the floor.

voicebus runs through bench/local_calls.py's DirectStack: the ingress behind the
local HTTP API puts the webhook on the bus (moto), and once the answer is read the
event is handed to the rule's functions in this thread (call control first): no
SQS polling. EventBridge's delivery to Lambda, which AWS adds, is not in the figure.

Warm: modules imported, connections open. Cold: call control's module is imported
afresh after the answer, before its invocation (Lambda's INIT on the path; its
layers stay imported, see bench/cold_starts.py for those); the floor's cold is a
fresh handler state (signature key, urllib3 pool: a new connection) at the request.
Subject and floor calls alternate (which goes first alternates too); each step's
ratio is over the floor's same step in the same repeat; min and median of the ratios.

Run: `.venv/bin/python bench/reaction.py [--repeats N]`.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import statistics
import sys
import threading
import time
import warnings
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "layers" / "voicebus"), str(ROOT / "tools")]

import urllib3  # noqa: E402
from nacl.signing import VerifyKey  # noqa: E402

from bench.local_calls import PARTIES, Caller, DirectStack  # noqa: E402
from voicebus.ingress.signature import SIGNATURE_HEADER, TIMESTAMP_HEADER  # noqa: E402
from voicebus_cli.testkey import load_test_key  # noqa: E402

# (event type, its payload, the command it makes call control send)
STEPS: list[tuple[str, dict[str, Any], str]] = [
    ("call.initiated", {"state": "parked", **PARTIES}, "answer"),
    ("call.answered", dict(PARTIES), "gather_using_speak"),
    ("call.gather.ended", {"digits": "2", "status": "valid"}, "speak"),
    ("call.speak.ended", {"status": "completed"}, "record_start"),
]
Commands = dict[str, tuple[str, bytes]]  # event type -> (action, JSON body)


class FloorLogic:
    """The plain handler's state: built once per process (again for a cold start)."""

    def __init__(self, public_key_b64: str, base_url: str, api_key: str, commands: Commands) -> None:
        self.key = VerifyKey(base64.b64decode(public_key_b64))
        self.pool = urllib3.PoolManager(retries=False)
        self.base_url, self.commands = base_url, commands
        self.headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}

    def decide(self, body: bytes, headers: Any) -> tuple[str, str, bytes] | None:
        """Verify, parse, look the command up: (call_control_id, action, body), or None."""
        timestamp = headers[TIMESTAMP_HEADER]
        self.key.verify(timestamp.encode() + b"|" + body, base64.b64decode(headers[SIGNATURE_HEADER]))
        data = json.loads(body)["data"]
        command = self.commands.get(data["event_type"])
        return (data["payload"]["call_control_id"], *command) if command else None

    def send(self, call_control_id: str, action: str, body: bytes) -> None:
        url = f"{self.base_url}/calls/{call_control_id}/actions/{action}"
        response = self.pool.request("POST", url, body=body, headers=self.headers, timeout=5.0)
        if response.status != 200:
            raise RuntimeError(f"floor {action}: {response.status}")


class FloorServer:
    """The plain handler on 127.0.0.1: answers 200, then sends the command."""

    def __init__(self, make_logic: Callable[[], FloorLogic]) -> None:
        self.make_logic, self.logic, self.cold_next = make_logic, make_logic(), False
        self.answers: list[float] = []
        floor = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                if floor.cold_next:
                    floor.logic, floor.cold_next = floor.make_logic(), False
                body = self.rfile.read(int(self.headers["content-length"]))
                decided = floor.logic.decide(body, self.headers)
                answer = b'{"status":"accepted"}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)
                self.wfile.flush()
                floor.answers.append(time.time())
                if decided is not None:
                    floor.logic.send(*decided)

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/webhooks/telnyx"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def answer_time(answers: list[float], index: int, timeout: float = 5.0) -> float:
    """The server's time for its `index`th answer (its record may land just after the client read it)."""
    deadline = time.monotonic() + timeout
    while len(answers) <= index and time.monotonic() < deadline:
        time.sleep(0.0005)
    return answers[index]


def arrival(caller: Caller, index: int, timeout: float = 10.0) -> tuple[str, float]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        commands = caller.commands()
        if len(commands) > index:
            return commands[index]
        time.sleep(0.0005)
    raise RuntimeError(f"no command {index} for {caller.call_control_id}")


def subject_call(stack: DirectStack, cold: bool) -> list[float]:
    caller, reactions = Caller(stack.telnyx), []
    for index, (event_type, payload, action) in enumerate(STEPS):
        answers = len(stack.answers)
        caller.post(stack.webhook_url, caller.webhook(event_type, **payload))
        answered = answer_time(stack.answers, answers)
        if cold:
            stack.load("CallControlFunction")
        stack.deliver()
        sent, received = arrival(caller, index)
        assert sent == action, (event_type, sent, action)
        reactions.append(received - answered)
    return reactions


def floor_call(stack: DirectStack, floor: FloorServer, cold: bool) -> list[float]:
    caller, reactions = Caller(stack.telnyx), []
    for index, (event_type, payload, action) in enumerate(STEPS):
        floor.cold_next, answers = cold, len(floor.answers)
        caller.post(floor.url, caller.webhook(event_type, **payload))
        sent, received = arrival(caller, index)
        answered = answer_time(floor.answers, answers)
        assert sent == action, (event_type, sent, action)
        reactions.append(received - answered)
    return reactions


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--repeats", type=int, default=7, help="subject/floor call pairs per mode (default 7)")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    ratios: dict[tuple[str, int], list[float]] = {}
    floor_ms: dict[str, list[float]] = {"warm": [], "cold": []}
    with DirectStack() as stack:
        subject_call(stack, cold=False)  # warm-up; its commands are the ones the floor sends
        first = stack.telnyx.requests()
        commands: Commands = {step[0]: (r.action or "", r.raw_body) for step, r in zip(STEPS, first, strict=True)}
        public_key = load_test_key().public_key_b64
        floor = FloorServer(lambda: FloorLogic(public_key, stack.telnyx.base_url, stack.telnyx.api_key, commands))
        floor_call(stack, floor, cold=False)
        try:
            for mode in ("warm", "cold"):
                for repeat in range(args.repeats):
                    if repeat % 2:
                        base = floor_call(stack, floor, mode == "cold")
                        measured = subject_call(stack, mode == "cold")
                    else:
                        measured = subject_call(stack, mode == "cold")
                        base = floor_call(stack, floor, mode == "cold")
                    floor_ms[mode].extend(seconds * 1000 for seconds in base)
                    for index, (subject, plain) in enumerate(zip(measured, base, strict=True)):
                        ratios.setdefault((mode, index), []).append(subject / plain)
        finally:
            floor.stop()
        errors = stack.errors()
    bytecode = (
        "PYTHONDONTWRITEBYTECODE set (no .pyc written)"
        if os.environ.get("PYTHONDONTWRITEBYTECODE")
        else "bytecode cached"
    )
    print("reaction: webhook answered -> command at the Telnyx stand-in, voicebus over a plain single-process handler")
    print(f"python {sys.version.split()[0]}; {bytecode}; {args.repeats} alternating pairs per mode; functions invoked")
    print("directly (no SQS, no EventBridge-to-Lambda delivery); cold = call control's module imported afresh")
    print(f"\n{'event -> command':<40}{'warm min x':>11}{'median x':>10}{'cold min x':>12}{'median x':>10}")
    for index, (event_type, _, action) in enumerate(STEPS):
        warm, cold = ratios[("warm", index)], ratios[("cold", index)]
        print(
            f"{event_type + ' -> ' + action:<40}{min(warm):>11.1f}{statistics.median(warm):>10.1f}"
            f"{min(cold):>12.1f}{statistics.median(cold):>10.1f}"
        )
    print(
        f"\nfloor, for scale only (this machine): median {statistics.median(floor_ms['warm']):.1f} ms warm, "
        f"{statistics.median(floor_ms['cold']):.1f} ms cold"
    )
    if errors:
        print(f"\nFAILED: {len(errors)} function errors, first: {errors[0]}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
