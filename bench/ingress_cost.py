"""Ingress cost, measured side by side in one run, as ratios to the floor every ingress pays.

1. Per-request CPU: the full handler (HTTP API event -> router -> verify -> parse -> put
   -> JSON answer, with Powertools logging and metrics) on a ~1 KB webhook, against the
   floor of `VerifyKey.verify` + `json.loads` on the same body. Target <= 3 with the put
   answered in memory (the handler's own work). Also printed: the same with the put
   answered by botocore's Stubber, which adds botocore's per-call CPU (parameter
   validation, serialisation, user-agent building; no signing, no network).
2. Cold start: a fresh process importing the handler module and answering its first
   request, against a fresh process doing only what any ingress must (import boto3
   and PyNaCl, create the EventBridge client, verify one signature). Target <= 1.5.

Each figure is the median of several runs; per-request figures are the best of
several repeats (the floor of noise). Run: `make bench` or `.venv/bin/python bench/ingress.py`.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from mypy_boto3_events import EventBridgeClient

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "layers" / "voicebus"), str(ROOT / "tools")]

from nacl.signing import SigningKey  # noqa: E402

from voicebus.ingress.signature import sign  # noqa: E402
from voicebus_cli.testkey import load_test_key  # noqa: E402
from voicebus_cli.webhooks import api_gateway_event, compact  # noqa: E402

ENV = {
    "EVENT_BUS_NAME": "bench-bus",
    "POWERTOOLS_SERVICE_NAME": "ingress",
    "POWERTOOLS_METRICS_NAMESPACE": "voicebus",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
}
REQUESTS = 2000
REPEATS = 5
COLD_RUNS = 7


def webhook_body() -> bytes:
    """A realistic ~1 KB call.answered webhook."""
    document = json.loads(json.loads((ROOT / "events" / "webhooks" / "call.answered.json").read_text())["body"])
    document["data"]["payload"]["custom_headers"] = [{"name": f"X-Header-{i}", "value": "v" * 40} for i in range(6)]
    return compact(document)


def per_request_floor(body: bytes, key: SigningKey) -> float:
    """Seconds of CPU for verify + json.loads, best of REPEATS."""
    headers = sign(body, key, int(time.time()))
    message = headers["telnyx-timestamp"].encode() + b"|" + body
    import base64

    signature = base64.b64decode(headers["telnyx-signature-ed25519"])
    verify_key = key.verify_key
    best = float("inf")
    for _ in range(REPEATS):
        start = time.process_time()
        for _ in range(REQUESTS):
            verify_key.verify(message, signature)
            json.loads(body)
        best = min(best, (time.process_time() - start) / REQUESTS)
    return best


class AnsweringEventsClient:
    """Answers PutEvents in memory: what is left is the handler's own CPU."""

    def put_events(self, **_: Any) -> dict[str, Any]:
        return {"FailedEntryCount": 0, "Entries": [{"EventId": "bench"}]}


def per_request_handler(body: bytes, key: SigningKey, public_key_b64: str) -> tuple[float, float, float]:
    """CPU seconds per invocation, best of REPEATS: put stubbed in botocore, put answered in memory,
    and the latter with the accepted-webhook line logged (LogLevel DEBUG)."""
    from botocore.stub import Stubber

    from voicebus.ingress.receiver import WebhookIngress
    from voicebus.ingress.settings import IngressSettings
    from voicebus_cli.local.functions import LoadedFunction, LocalContext

    env = {**ENV, "TELNYX_PUBLIC_KEY": public_key_b64}
    os.environ.update(env)
    function = LoadedFunction("IngressFunction", "functions/ingress", "app.lambda_handler", env)
    module = function.module
    event = api_gateway_event(body, sign(body, key, int(time.time())))
    context = LocalContext("IngressFunction")
    ok = {"FailedEntryCount": 0, "Entries": [{"EventId": "bench"}]}

    def best_of(prepare: Any) -> float:
        best = float("inf")
        for _ in range(REPEATS):
            with prepare():
                start = time.process_time()
                for _ in range(REQUESTS):
                    result = module.lambda_handler(event, context)
                elapsed = time.process_time() - start
            assert result["statusCode"] == 200, result
            best = min(best, elapsed / REQUESTS)
        return best

    def stubbed() -> Stubber:
        stubber = Stubber(module._EVENTS_CLIENT)
        for _ in range(REQUESTS):
            stubber.add_response("put_events", ok)
        return stubber

    with _silenced_stdout():
        with stubbed():
            module.lambda_handler(event, context)  # the cold start is measured separately
        through_botocore = best_of(stubbed)
        answering = cast("EventBridgeClient", AnsweringEventsClient())
        settings = IngressSettings.from_env(env)
        # The handler reads the module-level `ingress` on every request: swap in one whose put is in memory.
        module.__dict__["ingress"] = WebhookIngress.from_settings(settings, answering, module.logger, module.metrics)
        in_memory = best_of(contextlib.nullcontext)
        module.logger.setLevel("DEBUG")
        with_accepted_line = best_of(contextlib.nullcontext)
        module.logger.setLevel("INFO")
    return through_botocore, in_memory, with_accepted_line


@contextlib.contextmanager
def _silenced_stdout() -> Iterator[None]:
    """Logs and EMF metrics still get formatted and written, to /dev/null (fd level)."""
    sys.stdout.flush()
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(devnull)
        os.close(saved)


COLD_HANDLER = """
import json, os, sys, time
start = time.perf_counter()
sys.path[:0] = [{layer!r}, {function!r}]
import app
from botocore.stub import Stubber
stubber = Stubber(app._EVENTS_CLIENT)
stubber.add_response("put_events", {{"FailedEntryCount": 0, "Entries": [{{"EventId": "x"}}]}})
stubber.activate()
class Context:
    function_name = "ingress"; memory_limit_in_mb = 1024; aws_request_id = "cold"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:ingress"
    def get_remaining_time_in_millis(self): return 5000
result = app.lambda_handler(json.loads(sys.stdin.read()), Context())
elapsed = time.perf_counter() - start
assert result["statusCode"] == 200, result
print(elapsed, file=sys.stderr)
"""

COLD_FLOOR = """
import base64, sys, time
start = time.perf_counter()
import boto3
from nacl.signing import VerifyKey
client = boto3.client("events")
key = VerifyKey(base64.b64decode({public_key!r}))
key.verify({message!r}, base64.b64decode({signature!r}))
print(time.perf_counter() - start, file=sys.stderr)
"""


def cold_start(script: str, stdin: str = "") -> float:
    env = {**os.environ, **ENV}
    env.pop("AWS_ENDPOINT_URL", None)
    env.pop("PYTHONPATH", None)
    timings = []
    for _ in range(COLD_RUNS):
        done = subprocess.run(
            [sys.executable, "-c", script], input=stdin, capture_output=True, text=True, env=env, check=True
        )
        timings.append(float(done.stderr.strip().splitlines()[-1]))
    return statistics.median(timings)


def main() -> int:
    test_key = load_test_key()
    key = test_key.signing_key
    body = webhook_body()

    floor_cpu = per_request_floor(body, key)
    botocore_cpu, handler_cpu, logged_cpu = per_request_handler(body, key, test_key.public_key_b64)

    headers = sign(body, key, int(time.time()))
    event = api_gateway_event(body, headers)
    handler_script = COLD_HANDLER.format(
        layer=str(ROOT / "layers" / "voicebus"), function=str(ROOT / "functions" / "ingress")
    )
    ENV["TELNYX_PUBLIC_KEY"] = test_key.public_key_b64
    cold_handler = cold_start(handler_script, json.dumps(event))
    floor_script = COLD_FLOOR.format(
        public_key=test_key.public_key_b64,
        message=headers["telnyx-timestamp"].encode() + b"|" + body,
        signature=headers["telnyx-signature-ed25519"],
    )
    cold_floor = cold_start(floor_script)

    per_request_ratio = handler_cpu / floor_cpu
    botocore_ratio = botocore_cpu / floor_cpu
    cold_ratio = cold_handler / cold_floor
    print(f"ingress benchmark (python {sys.version.split()[0]}, body {len(body)} bytes)")
    print(f"{'measure':<34}{'ingress':>12}{'floor':>12}{'ratio':>8}{'target':>9}  verdict")
    print(
        f"{'per-request CPU, put in memory (us)':<34}{handler_cpu * 1e6:>12.1f}{floor_cpu * 1e6:>12.1f}"
        f"{per_request_ratio:>8.2f}{'<= 3':>9}  {'PASS' if per_request_ratio <= 3 else 'FAIL'}"
    )
    print(
        f"{'  same, put via botocore Stubber':<34}{botocore_cpu * 1e6:>12.1f}{floor_cpu * 1e6:>12.1f}"
        f"{botocore_ratio:>8.2f}{'-':>9}  (botocore's own per-call CPU included)"
    )
    print(
        f"{'  same, accepted line logged':<34}{logged_cpu * 1e6:>12.1f}{floor_cpu * 1e6:>12.1f}"
        f"{logged_cpu / floor_cpu:>8.2f}{'-':>9}  (LogLevel=DEBUG: the line costs "
        f"{(logged_cpu - handler_cpu) * 1e6:.0f} us)"
    )
    print(
        f"{'cold start, import + 1st req (ms)':<34}{cold_handler * 1e3:>12.1f}{cold_floor * 1e3:>12.1f}"
        f"{cold_ratio:>8.2f}{'<= 1.5':>9}  {'PASS' if cold_ratio <= 1.5 else 'FAIL'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
