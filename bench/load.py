"""Concurrent load through `make local`: signed webhooks from many senders, then what became of each.

    .venv/bin/python bench/load.py [--webhooks 2000] [--senders 32]

Starts `make local` (its own state directory, so a running one is not disturbed), plays
calls of ten webhooks each from `--senders` threads posting at once (each retrying a
non-200 answer as Telnyx does), waits until the stack is quiet, stops it, and prints:
webhooks accepted, lost (some function a rule routes it to never processed it), put on
the bus more than once, function runs missing or repeated (from the stack's run log;
repeats counted apart for functions without idempotency, where a repeat is harmless),
and the answer latency p50 / p99 / max with how many answers took over Telnyx's 2 s.
Target on a 2-core machine: nothing lost or repeated, p99 under 2 s. Not a timed test:
the figures depend on the machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3

from voicebus.calls.client_state import encode
from voicebus.ingress.signature import sign
from voicebus_cli.local.recovery import Route
from voicebus_cli.local.run_log import read_runs
from voicebus_cli.local.template import Stack, load_template
from voicebus_cli.testkey import ROOT, load_test_key
from voicebus_cli.webhooks import compact, envelope

TELNYX_BUDGET_SECONDS = 2.0
PARTIES = {"from": "+15550001111", "to": "+15550002222", "direction": "incoming"}


def call_webhooks(index: int) -> list[dict[str, Any]]:
    """Ten webhooks of one call, as a voicemail call sends them."""
    call = f"v3:load-{index}-{os.urandom(4).hex()}"
    base = {"call_control_id": call, "call_leg_id": f"leg-{call}", "call_session_id": f"session-{call}"}
    clock = datetime.now(UTC)
    menu = encode({"step": "menu"})
    steps: list[tuple[str, dict[str, Any]]] = [
        ("call.initiated", {"state": "parked", **PARTIES}),
        ("call.answered", PARTIES),
        ("call.speak.started", {"client_state": menu}),
        ("call.speak.ended", {"status": "completed", "client_state": menu}),
        ("call.gather.ended", {"digits": "2", "status": "valid", "client_state": menu}),
        ("call.playback.started", {"media_url": "https://example.test/beep.mp3"}),
        ("call.playback.ended", {"media_url": "https://example.test/beep.mp3", "status": "completed"}),
        ("call.recording.error", {"reason": "no_audio"}),
        ("call.dtmf.received", {"digit": "#"}),
        ("call.hangup", {"hangup_cause": "normal_clearing", "hangup_source": "caller"}),
    ]
    webhooks = []
    for offset, (event_type, payload) in enumerate(steps):
        occurred = clock + timedelta(milliseconds=250 * offset)
        webhooks.append(envelope(event_type, {**base, **payload}, occurred_at=occurred))
    return webhooks


class Senders:
    """Posts webhooks from many threads at once, like Telnyx: a non-200 answer is retried."""

    def __init__(self, url: str, webhooks: list[dict[str, Any]], senders: int) -> None:
        self.url = url
        self.key = load_test_key()
        self._pending = list(webhooks)
        self._lock = threading.Lock()
        self.latencies: list[float] = []
        self.statuses: Counter[int] = Counter()
        self.accepted: list[dict[str, Any]] = []
        self.given_up: list[dict[str, Any]] = []
        self._threads = [threading.Thread(target=self._send_all, daemon=True) for _ in range(senders)]

    def run(self) -> float:
        start = time.perf_counter()
        for thread in self._threads:
            thread.start()
        for thread in self._threads:
            thread.join()
        return time.perf_counter() - start

    def _send_all(self) -> None:
        while True:
            with self._lock:
                if not self._pending:
                    return
                webhook = self._pending.pop(0)
            for attempt in range(1, 11):
                webhook["meta"]["attempt"] = attempt
                status = self._post(compact(webhook))
                if status == 200:
                    with self._lock:
                        self.accepted.append(webhook)
                    break
                time.sleep(0.5)
            else:
                with self._lock:
                    self.given_up.append(webhook)

    def _post(self, body: bytes) -> int:
        headers = {"Content-Type": "application/json", **sign(body, self.key.signing_key, int(time.time()))}
        request = urllib.request.Request(self.url, data=body, method="POST", headers=headers)  # noqa: S310
        start = time.perf_counter()
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback
                response.read()
                status = int(response.status)
        except urllib.error.HTTPError as error:
            status = error.code
        except OSError:
            status = 0  # no answer
        with self._lock:
            self.latencies.append(time.perf_counter() - start)
            self.statuses[status] += 1
        return status


def routes() -> list[Route]:
    """Each rule in template.yaml: which function hears which pattern."""
    stack = Stack(load_template(), "load")
    found = []
    for logical, resource in stack.resources.items():
        if resource.get("Type") != "AWS::Serverless::Function" or not stack.includes(resource):
            continue
        for event in resource.get("Properties", {}).get("Events", {}).values():
            if event.get("Type") == "EventBridgeRule":
                found.append(Route(logical, "", stack.resolve(event["Properties"]["Pattern"])))
    return found


def as_bus_event(webhook: dict[str, Any]) -> dict[str, Any]:
    return {"source": "telnyx", "detail-type": webhook["data"]["event_type"], "detail": webhook}


def start_local(state_dir: Path) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    env = {**os.environ, "VOICEBUS_LOCAL_STATE_FILE": str(state_dir / "local.json")}
    for name in ("TELNYX_PUBLIC_KEY", "TELNYX_API_KEY", "VOICEBUS_PUBLIC_URL", "VOICEBUS_PORT"):
        env.pop(name, None)  # the committed TEST key and the stand-ins, whatever the shell says
    output = (state_dir / "make-local.out").open("wb")
    process = subprocess.Popen(
        ["make", "-s", "local"], cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
    )
    deadline = time.monotonic() + 300
    state_file = state_dir / "local.json"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"make local exited with {process.returncode}: see {state_dir / 'make-local.out'}")
        if state_file.exists():
            try:
                return process, json.loads(state_file.read_text())
            except ValueError:
                pass  # being written
        time.sleep(0.2)
    stop_local(process)
    raise SystemExit("make local did not come up within 300 s")


def stop_local(process: subprocess.Popen[bytes]) -> None:
    os.killpg(process.pid, signal.SIGINT)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)


def wait_quiet(state: dict[str, Any], quiet_for: float = 5.0, timeout: float = 600.0) -> bool:
    """True once the rule queues are empty and the run log has not grown for `quiet_for` s."""
    sqs = boto3.client(
        "sqs",
        endpoint_url=state["EndpointUrl"],
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # noqa: S106 - moto's
    )
    run_log = Path(state["RunLogFile"])
    names: list[Any] = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    deadline = time.monotonic() + timeout
    size, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        pending = sum(
            int(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"].get(name, "0"))
            for url in state["RuleQueues"].values()
            for name in names
        )
        now_size = run_log.stat().st_size if run_log.exists() else 0
        if pending or now_size != size:
            size, since = now_size, time.monotonic()
        elif time.monotonic() - since >= quiet_for:
            return True
        time.sleep(0.5)
    return False


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


def report(senders: Senders, runs: list[dict[str, Any]], bus: list[dict[str, Any]], seconds: float) -> int:
    rules = routes()
    expected = Counter(
        (route.function, webhook["data"]["id"])
        for webhook in senders.accepted
        for route in rules
        if route.matches(as_bus_event(webhook))
    )
    expected = Counter(dict.fromkeys(expected, 1))
    guarded = {str(run["function"]) for run in runs if run.get("guarded")}
    processed = Counter((str(run["function"]), str(run["event"])) for run in runs if run.get("processed"))
    missing = [key for key in expected if processed[key] == 0]
    repeated = [key for key, count in processed.items() if count > 1 and key[0] in guarded]
    repeated_harmless = sum(count - 1 for key, count in processed.items() if count > 1 and key[0] not in guarded)
    lost = {webhook_id for _, webhook_id in missing}
    on_bus = Counter(
        str(event["detail"]["data"]["id"]) for event in bus if event.get("source") == "telnyx" and "detail" in event
    )
    errors = Counter(str(run["error"]).split(":", 1)[0] for run in runs if run.get("error"))
    tried = len(senders.accepted) + len(senders.given_up)
    answers = senders.latencies
    over = sum(1 for latency in answers if latency > TELNYX_BUDGET_SECONDS)
    p50, p99 = statistics.median(answers) if answers else float("nan"), percentile(answers, 0.99)
    print(f"webhooks sent               {tried} in {seconds:.1f} s ({tried / seconds:.0f}/s)")
    print(f"accepted (200)              {len(senders.accepted)}   given up after 10 attempts: {len(senders.given_up)}")
    print(f"answers by status           {dict(sorted(senders.statuses.items()))}")
    print(f"lost (a function never ran) {len(lost)}")
    print(f"on the bus more than once   {sum(1 for count in on_bus.values() if count > 1)}")
    print(f"function runs expected      {len(expected)}")
    print(f"function runs missing       {len(missing)}")
    print(f"repeated (idempotent fns)   {len(repeated)}")
    print(f"repeated (record-only fns)  {repeated_harmless}   (harmless: recording again changes nothing)")
    print(f"failed attempts             {sum(errors.values())} {dict(errors.most_common(5))}")
    print(f"answer latency              p50 {p50 * 1000:.0f} ms   p99 {p99 * 1000:.0f} ms   max {max(answers):.2f} s")
    print(f"answers over {TELNYX_BUDGET_SECONDS:.0f} s             {over} of {len(answers)}")
    ok = not lost and not missing and not repeated and not senders.given_up and p99 < TELNYX_BUDGET_SECONDS
    print(f"target: nothing lost or repeated, p99 < 2 s: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--webhooks", type=int, default=2000, help="how many (rounded up to calls of 10)")
    parser.add_argument("--senders", type=int, default=32, help="threads posting at once")
    args = parser.parse_args()
    webhooks = [webhook for index in range(-(-args.webhooks // 10)) for webhook in call_webhooks(index)]
    bytecode = "no bytecode (PYTHONDONTWRITEBYTECODE set)" if os.environ.get("PYTHONDONTWRITEBYTECODE") else "bytecode"
    print(f"bench/load.py: {len(webhooks)} webhooks, {args.senders} senders, through make local ({bytecode})")
    print(f"this machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start")
    with tempfile.TemporaryDirectory(prefix="voicebus-load-") as directory:
        state_dir = Path(directory)
        process, state = start_local(state_dir)
        try:
            senders = Senders(state["WebhookUrl"], webhooks, args.senders)
            seconds = senders.run()
            quiet = wait_quiet(state)
            runs = read_runs(Path(state["RunLogFile"]))
            bus_file = Path(state["BusRecordFile"])
            bus = [json.loads(line) for line in bus_file.read_text().splitlines() if line.strip()]
        finally:
            stop_local(process)
    if not quiet:
        print("warning: the stack was still busy after 600 s; counts below are as of then")
    return report(senders, runs, bus, seconds)


if __name__ == "__main__":
    sys.exit(main())
