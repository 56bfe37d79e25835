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

The floor and the subject run alternately, ROUNDS times for the per-request figures
and COLD_RUNS times for the cold start, and each row prints the min and median of the
ratios of those pairs: a shared, noisy machine slows both sides of a pair alike.
Bytecode: PYTHONDONTWRITEBYTECODE is set here, so the cold start reads only the .pyc
files already on disk. Run: `make bench` or `.venv/bin/python bench/ingress_cost.py`.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
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
REQUESTS = 1000
ROUNDS = 9
COLD_RUNS = 7


def webhook_body() -> bytes:
    """A realistic ~1 KB call.answered webhook."""
    document = json.loads(json.loads((ROOT / "events" / "webhooks" / "call.answered.json").read_text())["body"])
    document["data"]["payload"]["custom_headers"] = [{"name": f"X-Header-{i}", "value": "v" * 40} for i in range(6)]
    return compact(document)


def floor_work(body: bytes, key: SigningKey) -> Callable[[], None]:
    """What every ingress pays per request: verify the signature and parse the JSON."""
    import base64

    headers = sign(body, key, int(time.time()))
    message = headers["telnyx-timestamp"].encode() + b"|" + body
    signature = base64.b64decode(headers["telnyx-signature-ed25519"])
    verify_key = key.verify_key

    def work() -> None:
        verify_key.verify(message, signature)
        json.loads(body)

    return work


def cpu_per_call(work: Callable[[], Any]) -> float:
    """CPU seconds per call of `work`, over REQUESTS calls."""
    start = time.process_time()
    for _ in range(REQUESTS):
        work()
    return (time.process_time() - start) / REQUESTS


class AnsweringEventsClient:
    """Answers PutEvents in memory: what is left is the handler's own CPU."""

    def put_events(self, **_: Any) -> dict[str, Any]:
        return {"FailedEntryCount": 0, "Entries": [{"EventId": "bench"}]}


class IngressHandler:
    """The ingress module, loaded once; each mode is one request through `lambda_handler`."""

    def __init__(self, body: bytes, key: SigningKey, public_key_b64: str) -> None:
        from voicebus.ingress.receiver import WebhookIngress
        from voicebus.ingress.settings import IngressSettings
        from voicebus_cli.local.functions import LoadedFunction, LocalContext

        env = {**ENV, "TELNYX_PUBLIC_KEY": public_key_b64}
        os.environ.update(env)
        self.module = LoadedFunction("IngressFunction", "functions/ingress", "app.lambda_handler", env).module
        self.event = api_gateway_event(body, sign(body, key, int(time.time())))
        self.context = LocalContext("IngressFunction")
        self.botocore_client = self.module._EVENTS_CLIENT
        settings = IngressSettings.from_env(env)
        logger, metrics = self.module.logger, self.module.metrics
        self.through_botocore = WebhookIngress.from_settings(settings, self.botocore_client, logger, metrics)
        answering = cast("EventBridgeClient", AnsweringEventsClient())
        self.in_memory = WebhookIngress.from_settings(settings, answering, logger, metrics)

    def request(self) -> None:
        result = self.module.lambda_handler(self.event, self.context)
        assert result["statusCode"] == 200, result

    def cpu(self, mode: str) -> float:
        """CPU per request: "botocore" (put answered by botocore's Stubber), "memory", or "logged" (DEBUG)."""
        from botocore.stub import Stubber

        # The handler reads the module-level `ingress` on every request.
        self.module.__dict__["ingress"] = self.through_botocore if mode == "botocore" else self.in_memory
        self.module.logger.setLevel("DEBUG" if mode == "logged" else "INFO")
        with _silenced_stdout():
            if mode != "botocore":
                return cpu_per_call(self.request)
            stubber = Stubber(self.botocore_client)
            for _ in range(REQUESTS):
                stubber.add_response("put_events", {"FailedEntryCount": 0, "Entries": [{"EventId": "bench"}]})
            with stubber:
                return cpu_per_call(self.request)


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
    """Seconds for one fresh process to run `script` (it prints its own elapsed time last)."""
    env = {**os.environ, **ENV}
    env.pop("AWS_ENDPOINT_URL", None)
    env.pop("PYTHONPATH", None)
    done = subprocess.run(
        [sys.executable, "-c", script], input=stdin, capture_output=True, text=True, env=env, check=True
    )
    return float(done.stderr.strip().splitlines()[-1])


def row(label: str, subject: list[float], floor: list[float], unit: float, target: float | None, note: str = "") -> str:
    """One line: median absolute figures for scale, then min and median of the paired ratios."""
    ratios = [s / f for s, f in zip(subject, floor, strict=True)]
    low, mid = min(ratios), statistics.median(ratios)
    verdict = ("PASS" if mid <= target else "FAIL") if target is not None else note
    shown = f"<= {target:g}" if target is not None else "-"
    return (
        f"{label:<36}{statistics.median(subject) * unit:>10.1f}{statistics.median(floor) * unit:>10.1f}"
        f"{low:>8.2f}{mid:>9.2f}{shown:>9}  {verdict}"
    )


def main() -> int:
    test_key = load_test_key()
    key = test_key.signing_key
    body = webhook_body()

    floor = floor_work(body, key)
    handler = IngressHandler(body, key, test_key.public_key_b64)
    handler.cpu("botocore")  # warm: the first requests pay lazy imports and caches
    samples: dict[str, list[float]] = {"floor": [], "memory": [], "botocore": [], "logged": []}
    for _ in range(ROUNDS):  # alternating: each mode's sample is paired with the floor's taken beside it
        for mode in ("memory", "botocore", "logged"):
            samples["floor"].append(cpu_per_call(floor))
            samples[mode].append(handler.cpu(mode))
    floors = {mode: samples["floor"][index::3] for index, mode in enumerate(("memory", "botocore", "logged"))}

    headers = sign(body, key, int(time.time()))
    event = api_gateway_event(body, headers)
    ENV["TELNYX_PUBLIC_KEY"] = test_key.public_key_b64
    handler_script = COLD_HANDLER.format(
        layer=str(ROOT / "layers" / "voicebus"), function=str(ROOT / "functions" / "ingress")
    )
    floor_script = COLD_FLOOR.format(
        public_key=test_key.public_key_b64,
        message=headers["telnyx-timestamp"].encode() + b"|" + body,
        signature=headers["telnyx-signature-ed25519"],
    )
    cold_floor, cold_handler = [], []
    for _ in range(COLD_RUNS):
        cold_floor.append(cold_start(floor_script))
        cold_handler.append(cold_start(handler_script, json.dumps(event)))

    line_cost = statistics.median(samples["logged"]) - statistics.median(samples["memory"])
    print(f"ingress benchmark (python {sys.version.split()[0]}, body {len(body)} bytes)")
    print(
        f"alternating pairs: {ROUNDS} per request row ({REQUESTS} requests each), {COLD_RUNS} cold; "
        "bytecode: PYTHONDONTWRITEBYTECODE is set, only .pyc already on disk are read"
    )
    print(
        f"{'measure (median us / ms)':<36}{'ingress':>10}{'floor':>10}{'min x':>8}{'median x':>9}{'target':>9}  verdict"
    )
    print(row("per-request CPU, put in memory (us)", samples["memory"], floors["memory"], 1e6, 3))
    print(
        row(
            "  same, put via botocore Stubber", samples["botocore"], floors["botocore"], 1e6, None,
            "(botocore's own per-call CPU included)",
        )
    )  # fmt: skip
    print(
        row(
            "  same, accepted line logged", samples["logged"], floors["logged"], 1e6, None,
            f"(LogLevel=DEBUG: the line costs {line_cost * 1e6:.0f} us)",
        )
    )  # fmt: skip
    print(row("cold start, import + 1st req (ms)", cold_handler, cold_floor, 1e3, 1.5))
    return 0


if __name__ == "__main__":
    sys.exit(main())
