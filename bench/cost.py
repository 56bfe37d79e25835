"""What a call costs on AWS at list prices, next to an always-on container doing the same work.

Two calls are played through the local stack with its SQS hops taken out
(bench/local_calls.py): the demo's voicemail call (9 webhooks: a duplicate, one out
of order, a 480 KB recording archived, its transcript) and a ten-event call (no
input, opening hours, the menu again, a transfer to sales, a key, hang-up).

- AWS requests: counted by service and operation by `voicebus_cli.local.meter.AwsMeter`
  (with DynamoDB write units priced from the items before and after each write), in
  one pass of each call. Only what AWS would bill is in that pass: the ingress's and
  the functions' own requests (nothing polls SQS; provisioning happened before).
- Lambda duration: every invocation timed, rounded up to 1 ms, at the function's
  MemorySize from template.yaml (arm64), over --repeats unmetered passes of each call
  (the meter's own reads would lengthen the writes); min and median per call.
- Cold starts: each function's module import in a fresh process (Lambda's INIT, billed
  since August 2025), median of 3, priced per 1,000 cold starts.

The container: two Fargate arm64 tasks (0.25 vCPU / 0.5 GB each) behind the same HTTP
API, writing the same DynamoDB items, S3 objects and log lines, but with no Lambda and
no EventBridge. Prices come from bench/aws_prices.json (us-east-1, dated there, to be
checked). Local durations are this machine's against moto on loopback, not Lambda's:
the break-even is printed at 0.5x, 1x and 3x the measured durations.

Run: `.venv/bin/python bench/cost.py [--repeats N]`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "layers" / "voicebus"), str(ROOT / "tools")]

import boto3  # noqa: E402

from bench.local_calls import Caller, DirectStack, Run, demo_call, ten_event_call  # noqa: E402
from voicebus_cli.local.meter import AwsMeter  # noqa: E402
from voicebus_cli.local.storage import StorageServer  # noqa: E402

PRICES = json.loads((ROOT / "bench" / "aws_prices.json").read_text())
TASKS, TASK_VCPU, TASK_GB = 2, 0.25, 0.5
S3_PUT_CLASS = ("Put", "Create", "Upload", "Complete", "Copy", "List")
S3_GET_CLASS = ("Get", "Head")
INIT = """
import sys, time
start = time.perf_counter()
sys.path[:0] = [{layer!r}, {code!r}]
import {module}
print(time.perf_counter() - start, file=sys.stderr)
"""


@dataclass
class CallCost:
    """One call type: what it asked of AWS (one metered pass) and its Lambda GB-s (several passes)."""

    name: str
    webhooks: int = 0
    requests: Counter[tuple[str, str]] | None = None
    write_units: int = 0
    put_entries: int = 0
    stored_bytes: int = 0
    log_bytes: int = 0
    invocations: Counter[str] | None = None
    gb_seconds: list[float] | None = None

    def line_items(self, duration_scale: float = 1.0) -> dict[str, float]:
        """USD for one call, by line item, at the median measured duration times `duration_scale`."""
        assert self.requests is not None
        assert self.invocations is not None
        assert self.gb_seconds
        p, ops = PRICES, self.requests
        runs = sum(self.invocations.values())
        dynamo_reads = sum(
            n for (service, op), n in ops.items() if service == "dynamodb" and op in ("GetItem", "Query")
        )
        s3_put = sum(n for (service, op), n in ops.items() if service == "s3" and op.startswith(S3_PUT_CLASS))
        s3_get = sum(n for (service, op), n in ops.items() if service == "s3" and op.startswith(S3_GET_CLASS))
        logs = self.log_bytes + runs * p["cloudwatch_logs"]["lambda_platform_bytes_per_invocation"]
        logs += self.webhooks * p["cloudwatch_logs"]["http_api_access_log_bytes_per_request"]
        return {
            "Lambda duration (arm64 GB-s)": statistics.median(self.gb_seconds)
            * duration_scale
            * p["lambda"]["arm64_gb_second"],
            "Lambda requests": runs * p["lambda"]["requests_per_million"] / 1e6,
            "HTTP API requests": self.webhooks * p["http_api"]["requests_per_million"] / 1e6,
            "EventBridge PutEvents entries": self.put_entries * p["eventbridge"]["custom_events_per_million"] / 1e6,
            "DynamoDB write units": self.write_units * p["dynamodb"]["on_demand_write_unit_per_million"] / 1e6,
            "DynamoDB read units": dynamo_reads * p["dynamodb"]["on_demand_read_unit_per_million"] / 1e6,
            "S3 requests": s3_put * p["s3"]["put_copy_post_list_per_thousand"] / 1e3
            + s3_get * p["s3"]["get_per_thousand"] / 1e3,
            "S3 storage, one month": self.stored_bytes / 2**30 * p["s3"]["standard_storage_gb_month"],
            "CloudWatch Logs ingestion": logs / 2**30 * p["cloudwatch_logs"]["ingestion_gb"],
        }

    def container_items(self) -> dict[str, float]:
        """The same call on the container: no Lambda, no EventBridge, no Lambda platform log lines."""
        items = self.line_items()
        assert self.invocations is not None
        runs = sum(self.invocations.values())
        platform = runs * PRICES["cloudwatch_logs"]["lambda_platform_bytes_per_invocation"]
        items["CloudWatch Logs ingestion"] -= platform / 2**30 * PRICES["cloudwatch_logs"]["ingestion_gb"]
        for lambda_only in ("Lambda duration (arm64 GB-s)", "Lambda requests", "EventBridge PutEvents entries"):
            items[lambda_only] = 0.0
        return items


def container_monthly() -> float:
    f = PRICES["fargate"]
    hourly = TASKS * (TASK_VCPU * f["arm64_vcpu_hour"] + TASK_GB * f["arm64_gb_hour"] + f["public_ipv4_hour"])
    return float(hourly * f["hours_per_month"])


def bucket_bytes(bucket: str) -> int:
    versions = boto3.client("s3").list_object_versions(Bucket=bucket).get("Versions", [])
    return sum(int(version["Size"]) for version in versions)


def play(stack: DirectStack, call: Callable[[Caller, Callable[[bytes], None]], None]) -> tuple[list[Run], int, int]:
    """One call: its function runs, the log bytes they wrote, and its webhook count."""
    caller, first_run, logs_before, webhooks = Caller(stack.telnyx), len(stack.runs), stack.log_bytes(), 0

    def send(body: bytes) -> None:
        nonlocal webhooks
        webhooks += 1
        caller.post(stack.webhook_url, body)
        stack.deliver()

    call(caller, send)
    return stack.runs[first_run:], stack.log_bytes() - logs_before, webhooks


def init_seconds(stack: DirectStack, logical: str, runs: int = 3) -> float:
    """The function's module import in a fresh process (its INIT), median of `runs`."""
    code, handler, env = stack.sources[logical]
    script = INIT.format(layer=str(ROOT / "layers" / "voicebus"), code=str(code), module=handler.rsplit(".", 1)[0])
    child_env = {
        "PATH": os.environ.get("PATH", ""),
        **{name: value for name, value in os.environ.items() if name.startswith(("AWS_", "PYTHONDONTWRITE"))},
        **env,
    }
    timings = []
    for _ in range(runs):
        done = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, env=child_env, check=True, cwd=ROOT
        )
        timings.append(float(done.stderr.strip().splitlines()[-1]))
    return statistics.median(timings)


def usd(value: float) -> str:
    return f"{value:.4f}" if value < 10 else f"{value:,.2f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed passes of each call (default 5)")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    calls: dict[str, Callable[[Caller, Callable[[bytes], None]], None]] = {}
    costs = {name: CallCost(name) for name in ("demo call", "ten-event call")}
    with StorageServer() as storage, DirectStack() as stack:
        recording = storage.publish("bench-recording.mp3", 480_000)
        calls["demo call"] = lambda caller, send: demo_call(caller, send, recording.url)
        calls["ten-event call"] = ten_event_call
        bucket = stack.functions["RecordingFunction"].env["ARCHIVE_BUCKET_NAME"]
        for call in calls.values():  # warm-up: first requests, lazy imports, connection pools
            play(stack, call)
        for name, call in calls.items():
            before = bucket_bytes(bucket)
            with AwsMeter() as meter:
                runs, log_bytes, webhooks = play(stack, call)
            cost = costs[name]
            cost.requests, cost.write_units, cost.webhooks = meter.requests, meter.write_units, webhooks
            cost.put_entries = meter.requests[("events", "PutEvents")]  # one webhook per entry, each < 64 KB
            cost.stored_bytes, cost.log_bytes = bucket_bytes(bucket) - before, log_bytes
            cost.invocations = Counter(run.function for run in runs)
            if meter.unpriced:
                print(f"warning: unpriced DynamoDB writes {dict(meter.unpriced)}")
        for cost in costs.values():
            cost.gb_seconds = []
        for _ in range(args.repeats):
            for name, call in calls.items():
                runs, _, _ = play(stack, call)
                gb_seconds = costs[name].gb_seconds
                assert gb_seconds is not None
                gb_seconds.append(sum(run.gb_seconds for run in runs))
        errors = stack.errors()
        touched = sorted({f for cost in costs.values() for f in (cost.invocations or Counter())})
        inits = {logical: (init_seconds(stack, logical), stack.functions[logical].memory_mb) for logical in touched}
    report(costs, inits, args.repeats)
    if errors:
        print(f"\nFAILED: {len(errors)} function errors, first: {errors[0]}")
        return 1
    return 0


def report(costs: dict[str, CallCost], inits: dict[str, tuple[float, int]], repeats: int) -> None:
    bytecode = (
        "PYTHONDONTWRITEBYTECODE set (no .pyc written)"
        if os.environ.get("PYTHONDONTWRITEBYTECODE")
        else "bytecode cached"
    )
    print(f"cost per call at AWS list prices ({PRICES['region']}; {PRICES['taken_from'].split(';')[0]}: to be checked)")
    print(f"python {sys.version.split()[0]}; {bytecode}; Lambda duration over {repeats} passes per call")
    for cost in costs.values():
        assert cost.requests is not None
        assert cost.invocations is not None
        assert cost.gb_seconds
        print(
            f"\n{cost.name}: {cost.webhooks} webhooks, {sum(cost.invocations.values())} invocations "
            f"({', '.join(f'{f} {n}' for f, n in sorted(cost.invocations.items()))})"
        )
        print("  AWS requests: " + ", ".join(f"{s}:{o} {n}" for (s, o), n in sorted(cost.requests.items())))
        print(
            f"  DynamoDB write units {cost.write_units}; archived {cost.stored_bytes / 1000:.0f} KB; "
            f"function log output {cost.log_bytes / 1000:.1f} KB"
        )
        print(
            f"  Lambda GB-s per call: min {min(cost.gb_seconds):.3f}, median {statistics.median(cost.gb_seconds):.3f}"
        )
    names = list(costs)
    columns = {
        f"{name}, {kind}": (costs[name].line_items() if kind == "Lambda" else costs[name].container_items())
        for name in names
        for kind in ("Lambda", "container")
    }
    print(f"\n{'USD per 1,000 calls':<40}" + "".join(f"{column:>26}" for column in columns))
    for item in columns[next(iter(columns))]:
        print(f"  {item:<38}" + "".join(f"{usd(values[item] * 1000):>26}" for values in columns.values()))
    print(f"  {'total':<38}" + "".join(f"{usd(sum(values.values()) * 1000):>26}" for values in columns.values()))
    monthly = container_monthly()
    print(
        f"\ncontainer: {TASKS} Fargate arm64 tasks x {TASK_VCPU} vCPU / {TASK_GB} GB + a public IPv4 each, "
        f"always on: {usd(monthly)} USD a month on top of its per-call columns"
    )
    print("\nbreak-even (calls a month above which the container is cheaper)")
    print(f"  {'Lambda duration as measured x':<32}" + "".join(f"{name:>16}" for name in names))
    for scale in (0.5, 1.0, 3.0):
        row = ""
        for name in names:
            extra = sum(costs[name].line_items(scale).values()) - sum(costs[name].container_items().values())
            row += f"{monthly / extra:>16,.0f}" if extra > 0 else f"{'never':>16}"
        print(f"  {scale:<32}{row}")
    print("\ncold starts (INIT billed as duration; a fresh process, median of 3)")
    print(f"  {'function':<24}{'MB':>6}{'init ms':>9}{'USD per 1,000 cold starts':>27}")
    for logical, (seconds, memory) in inits.items():
        dollars = math.ceil(seconds * 1000) / 1000 * memory / 1024 * PRICES["lambda"]["arm64_gb_second"] * 1000
        if logical == "CallControlFunction":  # reads the Telnyx key from Secrets Manager at init
            dollars += PRICES["secrets_manager"]["api_calls_per_ten_thousand"] / 10
        print(f"  {logical:<24}{memory:>6}{seconds * 1000:>9.0f}{usd(dollars):>27}")


if __name__ == "__main__":
    sys.exit(main())
