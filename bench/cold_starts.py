"""Cold start of every function: module import (Lambda's init phase) in a fresh process, side by side.

Each function's environment comes from template.yaml (resource names are placeholders;
nothing is called over the network during init). The floor is what any function pays:
`import boto3` and one client. Functions that import the telnyx SDK show its cost; the
remedy is the template's EnableSnapStart parameter. Run: `.venv/bin/python bench/cold_starts.py`.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "layers" / "voicebus"), str(ROOT / "tools")]

from voicebus_cli.local.provision import function_environment  # noqa: E402
from voicebus_cli.local.template import Stack, load_template  # noqa: E402
from voicebus_cli.testkey import load_test_key  # noqa: E402

RUNS = 5
INIT = """
import sys, time
start = time.perf_counter()
sys.path[:0] = [{layer!r}, {code!r}]
import {module}
print(time.perf_counter() - start, file=sys.stderr)
print("telnyx" in sys.modules, file=sys.stderr)
"""
FLOOR = """
import sys, time
start = time.perf_counter()
import boto3
boto3.client("dynamodb")
{extra}
print(time.perf_counter() - start, file=sys.stderr)
print({telnyx}, file=sys.stderr)
"""
# What a single import adds on top of the floor: why the ingress avoids pydantic and the SDK.
EXTRA_IMPORTS = {"pydantic": "import pydantic", "telnyx SDK": "import telnyx"}


def placeholder_stack() -> Stack:
    stack = Stack(
        load_template(),
        "bench",
        parameters={
            "TelnyxPublicKey": load_test_key().public_key_b64,
            "TelnyxApiKeySecretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:bench",
        },
    )
    for logical in stack.resources:
        stack.physical[logical] = f"bench-{logical}"
        stack.attributes[logical] = {"Arn": f"arn:aws:local:us-east-1:123456789012:{logical}", "QueueName": logical}
    return stack


def measure(script: str, env: dict[str, str]) -> tuple[float, bool]:
    timings = []
    imports_telnyx = False
    for _ in range(RUNS):
        done = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True, cwd=ROOT
        )
        seconds, telnyx = done.stderr.strip().splitlines()[-2:]
        timings.append(float(seconds))
        imports_telnyx = telnyx == "True"
    return statistics.median(timings), imports_telnyx


def main() -> int:
    stack = placeholder_stack()
    base = {
        "PATH": os.environ.get("PATH", ""),
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        # Set locally instead of the secret: init must not call Secrets Manager here.
        "TELNYX_API_KEY": "KEY_bench",
    }
    floor, _ = measure(FLOOR.format(extra="", telnyx=False), base)
    print(f"cold start: module import in a fresh process, median of {RUNS} (python {sys.version.split()[0]})")
    print(f"{'function':<24}{'init ms':>9}{'x floor':>9}  telnyx SDK")
    print(f"{'(floor: boto3 + client)':<24}{floor * 1e3:>9.0f}{1.0:>9.2f}")
    for logical, resource in stack.resources.items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        props = resource["Properties"]
        module = props["Handler"].rsplit(".", 1)[0]
        script = INIT.format(layer=str(ROOT / "layers" / "voicebus"), code=str(ROOT / props["CodeUri"]), module=module)
        env = {**base, **function_environment(stack, props)}
        seconds, telnyx = measure(script, env)
        print(f"{logical:<24}{seconds * 1e3:>9.0f}{seconds / floor:>9.2f}  {'imported' if telnyx else '-'}")
    print(f"\n{'one import on top of the floor':<32}{'adds ms':>9}")
    for name, statement in EXTRA_IMPORTS.items():
        seconds, _ = measure(FLOOR.format(extra=statement, telnyx="telnyx" in statement), base)
        print(f"{name:<32}{(seconds - floor) * 1e3:>9.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
