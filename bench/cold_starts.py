"""Cold start of every function: module import (Lambda's init phase) in a fresh process, as a multiple of the floor.

The floor is what any function pays: `import boto3`, PyNaCl and one client. Floor
and function runs alternate, each in a fresh process, and each function run is
divided by the floor run just before it, so a machine that slows down or speeds up
during the bench moves both; the bench prints the min and median of those ratios,
never an absolute time (absolute times here say little about Lambda's).

Each function's environment comes from template.yaml (resource names are
placeholders; nothing is called over the network during init). The last column
says whether the init imported the telnyx SDK: only the recording path should,
and only when a download link has expired, never at init.

Bytecode: by default the children run as this environment is set
(PYTHONDONTWRITEBYTECODE=1 here: modules without a .pyc are compiled from source
on every run, as in a deployment package built without bytecode). `--bytecode`
gives the children a private bytecode cache (PYTHONPYCACHEPREFIX, a temporary
directory) and one unmeasured warm-up run per script, as a package with compiled
.pyc files. The header states which, and the share of imported modules that had a .pyc.

Run: `.venv/bin/python bench/cold_starts.py [--runs N] [--bytecode]`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "layers" / "voicebus"), str(ROOT / "tools")]

from voicebus_cli.local.provision import function_environment  # noqa: E402
from voicebus_cli.local.template import Stack, load_template  # noqa: E402
from voicebus_cli.testkey import load_test_key  # noqa: E402

LAYER = str(ROOT / "layers" / "voicebus")
REPORT = """  # braces doubled: formatted as part of INIT and FLOOR
import json, os, sys, time
elapsed = time.perf_counter() - start
modules = [m for m in list(sys.modules.values()) if getattr(m, "__cached__", None) and getattr(m, "__file__", "")]
json.dump({{"seconds": elapsed, "telnyx": "telnyx" in sys.modules,
           "compiled": sum(os.path.exists(m.__cached__) for m in modules), "modules": len(modules)}}, sys.stderr)
"""
INIT = (
    """
import sys, time
start = time.perf_counter()
sys.path[:0] = [{layer!r}, {code!r}]
import {module}
"""
    + REPORT
)
FLOOR = (
    """
import sys, time
start = time.perf_counter()
import boto3
import nacl.signing
boto3.client("dynamodb")
{extra}
"""
    + REPORT
)
# What a single import adds on top of the floor: why the hot paths avoid pydantic and the SDK.
EXTRA_IMPORTS = {"pydantic": "import pydantic", "telnyx SDK": "import telnyx", "urllib3": "import urllib3"}


@dataclass(frozen=True)
class Run:
    seconds: float
    telnyx: bool
    compiled: int
    modules: int


@dataclass
class Bench:
    env: dict[str, str]
    runs: int
    warm_up: bool
    compiled: int = 0
    modules: int = 0

    def run(self, script: str) -> Run:
        done = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, env=self.env, check=False, cwd=ROOT
        )
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
            raise RuntimeError(last)
        report = json.loads(done.stderr.strip().splitlines()[-1])
        return Run(report["seconds"], report["telnyx"], report["compiled"], report["modules"])

    def ratios(self, script: str, floor: str) -> tuple[list[float], bool]:
        """Floor, script, floor, script...: each script run over the floor run just before it."""
        if self.warm_up:
            self.run(floor)
            self.run(script)
        ratios, telnyx = [], False
        for _ in range(self.runs):
            base = self.run(floor)
            measured = self.run(script)
            ratios.append(measured.seconds / base.seconds)
            telnyx = telnyx or measured.telnyx
            self.compiled += measured.compiled
            self.modules += measured.modules
        return ratios, telnyx


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


def row(name: str, ratios: list[float], note: str) -> str:
    return f"{name:<28}{min(ratios):>8.2f}{statistics.median(ratios):>9.2f}  {note}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=5, help="floor/function pairs per row (default 5)")
    parser.add_argument("--bytecode", action="store_true", help="children read bytecode from a private cache")
    args = parser.parse_args()

    base = {
        "PATH": os.environ.get("PATH", ""),
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        # Set locally instead of the secret: init must not call Secrets Manager here.
        "TELNYX_API_KEY": "KEY_bench",
    }
    with tempfile.TemporaryDirectory(prefix="voicebus-pycache-") as pycache:
        if args.bytecode:
            base["PYTHONPYCACHEPREFIX"] = pycache
            mode = f"bytecode: a private cache ({pycache}), written by one unmeasured warm-up run per script"
        elif os.environ.get("PYTHONDONTWRITEBYTECODE"):
            base["PYTHONDONTWRITEBYTECODE"] = os.environ["PYTHONDONTWRITEBYTECODE"]
            mode = "bytecode: PYTHONDONTWRITEBYTECODE is set: only .pyc files already on disk are read, none written"
        else:
            mode = "bytecode: written to __pycache__ by the first run and read by the later ones"
        bench = Bench(base, args.runs, warm_up=args.bytecode)
        floor = FLOOR.format(extra="")
        stack = placeholder_stack()
        print(f"cold start: module import in a fresh process over the floor's, {args.runs} alternating pairs per row")
        print(f"python {sys.version.split()[0]}; {mode}")
        print(f"{'function':<28}{'min x':>8}{'median x':>9}  telnyx SDK at init")
        for logical, resource in stack.resources.items():
            if resource["Type"] != "AWS::Serverless::Function":
                continue
            props = resource["Properties"]
            module = props["Handler"].rsplit(".", 1)[0]
            script = INIT.format(layer=LAYER, code=str(ROOT / props["CodeUri"]), module=module)
            bench.env = {**base, **function_environment(stack, props)}
            try:
                ratios, telnyx = bench.ratios(script, floor)
            except RuntimeError as error:
                print(f"{logical:<28}{'-':>8}{'-':>9}  init failed: {error}")
                continue
            print(row(logical, ratios, "imported" if telnyx else "-"))
        bench.env = base
        print(f"\n{'one import on top of the floor':<28}{'min x':>8}{'median x':>9}")
        for name, statement in EXTRA_IMPORTS.items():
            ratios, _ = bench.ratios(FLOOR.format(extra=statement), floor)
            print(row(name, ratios, ""))
        share = bench.compiled / bench.modules if bench.modules else 0.0
        print(f"\nmodules imported with a .pyc on disk: {share:.0%} of {bench.modules} over the measured runs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
